"""The two pipeline definitions, built with the SageMaker SDK against moto, and upsert/start on moto."""
from __future__ import annotations

import json
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from pipelines import s3_layout
from pipelines.backend import Backend
from pipelines.config import load_config
from pipelines.definitions import build_pipeline, definition_json
from pipelines.execution import aws_tags, upsert

CONFIG = load_config()


def _steps_by_name(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def visit(step: dict[str, Any]) -> None:
        found[step["Name"]] = step
        if step["Type"] == "Condition":
            for child in step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"]:
                visit(child)

    for step in definition["Steps"]:
        visit(step)
    return found


@pytest.fixture(scope="module")
def aws() -> Iterator[Backend]:
    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=CONFIG.project.bucket)
        yield Backend("aws", session)


@pytest.fixture(scope="module")
def training(aws: Backend) -> dict[str, Any]:
    return definition_json("training", CONFIG, aws)


@pytest.fixture(scope="module")
def deploy(aws: Backend) -> dict[str, Any]:
    return definition_json("deploy", CONFIG, aws)


def test_training_steps_and_types(training: dict[str, Any]) -> None:
    steps = _steps_by_name(training)
    assert {name: step["Type"] for name, step in steps.items()} == {
        "ResolveBaseline": "Processing",
        "PrepareData": "Processing",
        "CheckInputData": "Condition",
        "NoInputData": "Fail",
        "CheckDataChanged": "Condition",
        "TrainModel": "Training",
        "EvaluateModel": "Processing",
        "CheckQualityThreshold": "Condition",
        "CheckForgetting": "Condition",
        "CheckNoRegression": "Condition",
        "RegisterModel-RegisterModel": "RegisterModel",
        "FailQualityThreshold": "Fail",
        "FailForgetting": "Fail",
        "FailRegression": "Fail",
    }
    assert [s["Name"] for s in training["Steps"]] == ["ResolveBaseline", "PrepareData", "CheckInputData"]
    input_data = steps["CheckInputData"]["Arguments"]  # no data in InputDataUri: the run ends in NoInputData
    assert [s["Name"] for s in input_data["IfSteps"]] == ["CheckDataChanged"]
    assert [s["Name"] for s in input_data["ElseSteps"]] == ["NoInputData"]
    data_changed = steps["CheckDataChanged"]["Arguments"]
    assert [s["Name"] for s in data_changed["IfSteps"]] == ["TrainModel", "EvaluateModel", "CheckForgetting"]
    assert data_changed["ElseSteps"] == []
    forgetting = steps["CheckForgetting"]["Arguments"]  # first: a round that forgot fails as forgetting
    assert [s["Name"] for s in forgetting["IfSteps"]] == ["CheckQualityThreshold"]
    assert [s["Name"] for s in forgetting["ElseSteps"]] == ["FailForgetting"]
    gate = steps["CheckQualityThreshold"]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["CheckNoRegression"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["FailQualityThreshold"]
    regression = steps["CheckNoRegression"]["Arguments"]
    assert [s["Name"] for s in regression["IfSteps"]] == ["RegisterModel-RegisterModel"]
    assert [s["Name"] for s in regression["ElseSteps"]] == ["FailRegression"]


def test_training_skips_when_the_data_did_not_change(training: dict[str, Any]) -> None:
    steps = _steps_by_name(training)
    assert steps["CheckDataChanged"]["Arguments"]["Conditions"] == [{
        "Type": "GreaterThanOrEqualTo",
        "LeftValue": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.PrepareData.PropertyFiles.DataReport"},
                                      "Path": "retrain.score"}},
        "RightValue": {"Get": "Parameters.RetrainMinChange"},
    }]
    parameters = {p["Name"]: p for p in training["Parameters"]}
    assert parameters["RetrainMinChange"] == {"Name": "RetrainMinChange", "Type": "Float",
                                              "DefaultValue": CONFIG.data.retrain_min_change}
    prepare = steps["PrepareData"]["Arguments"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in prepare["ProcessingInputs"]}
    assert inputs["tokenizer"] == {"Get": "Parameters.BaseModelUri"}
    assert {o["OutputName"] for o in prepare["ProcessingOutputConfig"]["Outputs"]} == {
        "train", "validation", "test", "report", "data"}
    arguments = prepare["AppSpecification"]["ContainerArguments"]
    pairs = dict(zip(arguments[::2], arguments[1::2]))
    assert pairs["--retrain-min-change"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.RetrainMinChange"}]}}
    assert pairs["--max-tokens"] == str(CONFIG.training.max_seq_length)
    assert pairs["--pii"] == CONFIG.data.pii and pairs["--pii-allow"] == ",".join(CONFIG.data.pii_allow)
    assert pairs["--tokenizer-dir"] == "/opt/ml/processing/input/tokenizer"


def test_training_data_flow_between_steps(training: dict[str, Any]) -> None:
    from pipelines.local.expressions import references_in

    steps = _steps_by_name(training)
    assert references_in(steps["PrepareData"]["Arguments"]) == {"ResolveBaseline"}
    replay = {i["InputName"]: i["S3Input"]["S3Uri"] for i in steps["PrepareData"]["Arguments"]["ProcessingInputs"]}["replay"]
    assert replay["Std:JsonGet"]["Path"] == "replay_data_uri"
    resolve_args = steps["ResolveBaseline"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert resolve_args[resolve_args.index("--fallback-replay-uri") + 1] == s3_layout.empty_replay_uri(CONFIG)
    assert references_in(steps["TrainModel"]["Arguments"]) == {"PrepareData", "ResolveBaseline"}
    assert references_in(steps["EvaluateModel"]["Arguments"]) == {"PrepareData", "TrainModel", "ResolveBaseline"}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in steps["TrainModel"]["Arguments"]["InputDataConfig"]}
    assert channels["train"] == {"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}
    assert channels["base_model"] == {
        "Std:JsonGet": {"PropertyFile": {"Get": "Steps.ResolveBaseline.PropertyFiles.ResolvedModel"}, "Path": "model_data_url"}
    }
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in steps["EvaluateModel"]["Arguments"]["ProcessingInputs"]}
    assert inputs["model"] == {"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}
    assert steps["EvaluateModel"]["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]


def test_training_parameters_and_hyperparameters(training: dict[str, Any]) -> None:
    parameters = {p["Name"]: p for p in training["Parameters"]}
    assert parameters["LoraR"] == {"Name": "LoraR", "Type": "Integer", "DefaultValue": CONFIG.training.lora.r}
    assert parameters["GateThreshold"]["DefaultValue"] == CONFIG.evaluation.gate.threshold
    assert parameters["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    assert {"InputDataUri", "BaseModelUri", "ReplayFraction", "TrainingInstanceType", "MaxRegression", "MaxForgetting", "LearningRate"} <= set(parameters)
    hyper = _steps_by_name(training)["TrainModel"]["Arguments"]["HyperParameters"]
    assert hyper["lora_r"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.LoraR"}]}}
    assert hyper["target_modules"] == {"Get": "Parameters.LoraTargetModules"}
    assert json.loads(hyper["sagemaker_program"]) == "train.py"
    metrics = _steps_by_name(training)["TrainModel"]["Arguments"]["AlgorithmSpecification"]["MetricDefinitions"]
    assert {m["Name"] for m in metrics} == {"train_loss", "eval_loss", "epoch"}


def test_gate_reads_evaluation_json(training: dict[str, Any]) -> None:
    steps = _steps_by_name(training)
    paths = [condition["LeftValue"]["Std:JsonGet"]["Path"]
             for name in ("CheckForgetting", "CheckQualityThreshold", "CheckNoRegression")
             for condition in steps[name]["Arguments"]["Conditions"]]
    assert paths == [f"gate.checks.{check}.passed" for check in ("forgetting", "threshold", "regression",
                                                                  "suite_thresholds")]
    evaluate = steps["EvaluateModel"]
    assert evaluate["PropertyFiles"] == [{"PropertyFileName": "EvaluationReport", "OutputName": "evaluation",
                                          "FilePath": "evaluation.json"}]
    arguments = evaluate["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--gate-metric") + 1] == CONFIG.evaluation.gate.metric
    assert "--gate-lower-is-better" not in arguments  # token F1: higher is better
    message = json.dumps(steps["FailQualityThreshold"]["Arguments"]["ErrorMessage"])
    assert "gate.checks.threshold.message" in message


def test_register_arguments(training: dict[str, Any]) -> None:
    register = _steps_by_name(training)["RegisterModel-RegisterModel"]["Arguments"]
    assert register["ModelPackageGroupName"] == CONFIG.model.model_package_group
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}
    assert "huggingface-pytorch-inference" in container["Image"]
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"]["Std:Join"]["Values"][-1] == "evaluation.json"
    lineage = register["CustomerMetadataProperties"]
    assert lineage["data_version"]["Std:JsonGet"]["Path"] == "data_version"
    assert lineage["training_data_uri"] == {"Std:Join": {"On": "/", "Values": [  # prepare's copy of the raw files
        s3_layout.data_uri(CONFIG), {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.PrepareData.PropertyFiles.DataReport"},
                                                     "Path": "input_digest"}}]}}
    assert lineage["train_data_uri"] == {"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}
    assert lineage["inventory_uri"] == {
        "Get": "Steps.EvaluateModel.ProcessingOutputConfig.Outputs['inventory'].S3Output.S3Uri"}


def test_deploy_definition(deploy: dict[str, Any]) -> None:
    steps = _steps_by_name(deploy)
    assert list(steps) == ["ResolveApprovedModel", "CheckSmokeSuites", "DeployEndpoint", "SmokeTest", "MonitoringBaseline",
                           "CheckPromoteToProduction", "DeployProduction"]
    resolve_args = steps["ResolveApprovedModel"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert "--require-approved" in resolve_args
    deploy_args = steps["DeployEndpoint"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    pairs = dict(zip(deploy_args[::2], deploy_args[1::2]))
    assert pairs["--model-package-arn"]["Std:JsonGet"]["Path"] == "model_package_arn"
    assert pairs["--capture-percent"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.DataCapturePercent"}]}}
    assert pairs["--capture-s3-uri"] == {"Get": "Parameters.DataCaptureS3Uri"}
    assert steps["SmokeTest"]["DependsOn"] == ["DeployEndpoint"]
    assert steps["DeployEndpoint"]["DependsOn"] == ["CheckSmokeSuites"]  # a suite the gate cannot run: no endpoint change
    check_args = steps["CheckSmokeSuites"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert "--check-only" in check_args and check_args[check_args.index("--gate-metric") + 1] == CONFIG.evaluation.gate.metric
    check_inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in steps["CheckSmokeSuites"]["Arguments"]["ProcessingInputs"]}
    smoke_inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in steps["SmokeTest"]["Arguments"]["ProcessingInputs"]}
    assert check_inputs["benchmarks"] == smoke_inputs["benchmarks"] == s3_layout.benchmarks_uri(CONFIG)
    parameters = {p["Name"]: p["DefaultValue"] for p in deploy["Parameters"]}
    assert parameters["DataCapturePercent"] == CONFIG.deploy.capture_percent
    assert parameters["EndpointName"] == CONFIG.deploy.endpoint_name


def test_definitions_are_deterministic(aws: Backend, training: dict[str, Any]) -> None:
    assert definition_json("training", CONFIG, aws) == training


def test_upsert_and_start_on_moto(aws: Backend) -> None:
    pipeline = upsert("training", CONFIG, aws)
    execution = pipeline.start(parameters={"LoraR": 4})
    sagemaker = aws.client("sagemaker")
    described = sagemaker.describe_pipeline(PipelineName=CONFIG.training_pipeline_name)
    assert json.loads(described["PipelineDefinition"])["Parameters"][0]["Name"] == "InputDataUri"
    assert described["RoleArn"] == CONFIG.project.role_arn
    tags = sagemaker.list_tags(ResourceArn=described["PipelineArn"])["Tags"]
    assert {(t["Key"], t["Value"]) for t in tags} >= {(t["Key"], t["Value"]) for t in aws_tags(CONFIG)}
    status = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution.arn)["PipelineExecutionStatus"]
    assert status in ("Executing", "Succeeded")
    assert sagemaker.list_pipeline_executions(PipelineName=CONFIG.training_pipeline_name)["PipelineExecutionSummaries"]


def test_build_uploads_step_code(aws: Backend) -> None:
    build_pipeline("deploy", CONFIG, aws).definition()
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=CONFIG.project.bucket)["Contents"]]
    assert any(key.endswith("sourcedir.tar.gz") for key in keys)
    assert any(key.endswith("runproc.sh") for key in keys)
