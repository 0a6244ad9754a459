"""The bedrock_train step's contract: every bedrock_train.py argument, declared once (common/contract.py explains
the fields).

bedrock_train.py has one subcommand per entry of SUBCOMMANDS: `train` (TrainModel in the training pipeline with
training.backend: bedrock) and `register` (RegisterModel, after the gate). The config schema (training.bedrock.*)
takes its defaults from here (pipelines/bedrock_config.py, "bedrock_train:train") and the pipeline passes, in
this order, every argument with a config key and the ones it wires itself (folders, the data prefix, the job and
model names, the LearningRate/Epochs parameters, the lineage URIs: pipelines/training/bedrock_steps.py).

Standard library and common/contract.py only.
"""
from __future__ import annotations

from pathlib import Path

from common.contract import Argument, parse_bool

RECORD_FILE = "bedrock.json"  # what `train` writes and `register` reads: the job, the custom model, how to invoke it


class BedrockTrainError(Exception):
    """The customization cannot start or did not give an invocable model; the message says why."""


FLAG_SEPARATOR = "-"
INPUT_ROOT = Path("/opt/ml/processing/input")
OUTPUT_DIR = Path("/opt/ml/processing/output/bedrock")
INFERENCE_MODES = ("on_demand", "provisioned")

FOLDERS = "folders (processing-container contract)"
JOB = "model customization job"
HYPER = "hyperparameters (sent as strings)"
SERVING = "inference for evaluation"

TRAIN_ARGUMENTS = (
    Argument("train_dir", Path, INPUT_ROOT / "train", group=FOLDERS, help="prepare's train split (*.jsonl)"),
    Argument("validation_dir", Path, INPUT_ROOT / "validation", group=FOLDERS,
             help="prepare's validation split (*.jsonl; empty: no validation data)"),
    Argument("data_report_dir", Path, INPUT_ROOT / "report", group=FOLDERS,
             help="prepare's report.json (data_version, recorded in bedrock.json)"),
    Argument("output_dir", Path, OUTPUT_DIR, group=FOLDERS, help="bedrock.json and the JSONL files sent"),
    Argument("data_s3_uri", str, required=True, group=JOB,
             help="s3:// prefix the Bedrock JSONL files are uploaded to; the job's output goes to <prefix>/output"),
    Argument("job_name", str, required=True, group=JOB, help="jobName (unique per run; also the idempotency token)"),
    Argument("custom_model_name", str, required=True, group=JOB, help="customModelName"),
    Argument("base_model_identifier", str, config="training.bedrock.base_model_identifier", group=JOB,
             help="the Bedrock base model id or ARN, e.g. amazon.nova-micro-v1:0:128k (decides the data format)"),
    Argument("role_arn", str, config="training.bedrock.role_arn", group=JOB,
             help="the service role Bedrock assumes to read the data and write the output"),
    Argument("kms_key_id", str, "", config="training.bedrock.kms_key_id", group=JOB,
             help="customModelKmsKeyId ('' : Bedrock's key)"),
    Argument("subnet_ids", str, "", config="training.bedrock.subnet_ids", group=JOB,
             help="vpcConfig subnets, comma-separated ('' : no VPC)"),
    Argument("security_group_ids", str, "", config="training.bedrock.security_group_ids", group=JOB,
             help="vpcConfig security groups, comma-separated"),
    Argument("use_validation", parse_bool, True, config="training.bedrock.use_validation", group=JOB,
             help="send the validation split as validationDataConfig (some base models take none)"),
    Argument("poll_seconds", float, 60.0, config="training.bedrock.poll_seconds", group=JOB,
             help="seconds between status checks"),
    Argument("max_wait_seconds", int, 86400, config="training.bedrock.max_wait_seconds", group=JOB,
             help="give up (and stop the job) after this long"),
    Argument("epochs", float, 1.0, config="training.epochs", group=HYPER,
             help="epochCount (a whole number)"),
    Argument("batch_size", int, 1, config="training.batch_size", group=HYPER, help="batchSize"),
    Argument("learning_rate", float, 1e-5, config="training.learning_rate", group=HYPER, help="learningRate"),
    Argument("hyper_parameters", str, "", config="training.bedrock.hyper_parameters", group=HYPER,
             help="more hyperparameters for the base model, NAME=VALUE,... (they win over the mapped ones)"),
    Argument("inference", str, "on_demand", choices=INFERENCE_MODES, config="training.bedrock.inference",
             group=SERVING, help="how the custom model is made invocable for evaluation: an on-demand custom model "
                                 "deployment (billed per token; for the models Bedrock offers it for) or provisioned "
                                 "throughput (billed per hour while it exists)"),
    Argument("model_units", int, 1, config="training.bedrock.model_units", group=SERVING,
             help="provisioned throughput's modelUnits (no commitment)"),
)

REGISTRY = "registry"
REGISTER_ARGUMENTS = (
    Argument("bedrock_dir", Path, INPUT_ROOT / "bedrock", group=FOLDERS, help="the train subcommand's bedrock.json"),
    Argument("output_dir", Path, Path("/opt/ml/processing/output/registered"), group=FOLDERS,
             help="registered.json (the model package ARN)"),
    Argument("model_package_group", str, config="model.model_package_group", group=REGISTRY),
    Argument("approval_status", str, "PendingManualApproval",
             choices=("PendingManualApproval", "Approved", "Rejected"), group=REGISTRY),
    Argument("evaluation_uri", str, required=True, group=REGISTRY, help="evaluation.json (ModelMetrics)"),
    Argument("evaluation_report_uri", str, required=True, group=REGISTRY, help="report.html"),
    Argument("inventory_uri", str, required=True, group=REGISTRY, help="this version's knowledge inventory"),
    Argument("train_data_uri", str, required=True, group=REGISTRY, help="the prepared train split (next replay)"),
    Argument("training_data_uri", str, required=True, group=REGISTRY, help="the versioned raw data"),
    Argument("parent_model_package_arn", str, "none", group=REGISTRY, help="the version this one was compared with"),
    Argument("description", str, "", group=REGISTRY),
)

SUBCOMMANDS = {  # subcommand → (its --help line, its arguments)
    "train": ("the customization job and the model's inference for evaluation", TRAIN_ARGUMENTS),
    "register": ("the custom model as a version in the SageMaker Model Registry", REGISTER_ARGUMENTS),
}
