"""The bedrock_train step's calls and command line (entry script: steps/bedrock_train.py says what it does)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bedrock_train.contract import FLAG_SEPARATOR, RECORD_FILE, SUBCOMMANDS, BedrockTrainError
from bedrock_train.formats import DataFormat, FormatError, data_format, to_record
from common.contract import build_subcommand_parser, parse_list
from common.examples import ExampleError, read_examples
from common.jsonl import write_jsonl

DESCRIPTION = "Bedrock train step: prepared splits → a Bedrock model customization job → an invocable custom model."
JOB_DONE = {"Completed"}
JOB_FAILED = {"Failed", "Stopped"}


@dataclass(frozen=True)
class Datasets:
    """The JSONL files written for Bedrock and what went into them."""

    format: DataFormat
    train: Path
    validation: Path | None
    train_examples: int
    validation_examples: int
    context_dropped: int


def hyper_parameters(epochs: float, batch_size: int, learning_rate: float, extra: str) -> dict[str, str]:
    """Bedrock's hyperParameters (all strings) from the training config's; `extra` (NAME=VALUE,...) wins."""
    if epochs != int(epochs) or epochs < 1:
        raise BedrockTrainError(f"--epochs {epochs:g}: Bedrock's epochCount is a whole number of at least 1 "
                                "(training.epochs)")
    values = {"epochCount": str(int(epochs)), "batchSize": str(batch_size), "learningRate": f"{learning_rate:g}"}
    for item in parse_list(extra):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BedrockTrainError(f"--hyper-parameters: {item!r} is not NAME=VALUE (training.bedrock.hyper_parameters)")
        values[name.strip()] = value.strip()
    return values


def write_datasets(train_dir: Path, validation_dir: Path | None, fmt: DataFormat, output_dir: Path) -> Datasets:
    """train.jsonl (and validation.jsonl when the split has examples) in Bedrock's format under output_dir."""
    try:
        train, validation = read_examples(train_dir), read_examples(validation_dir)
    except ExampleError as exc:
        raise BedrockTrainError(str(exc)) from exc
    if not train:
        raise BedrockTrainError(f"{train_dir}: no training examples (*.jsonl)")
    dropped = 0

    def records(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal dropped
        out = []
        for example in examples:
            record, lost = to_record(example, fmt)
            dropped += lost
            out.append(record)
        return out

    train_path = output_dir / "data" / "train.jsonl"
    write_jsonl(train_path, records(train))
    validation_path = None
    if validation:
        validation_path = output_dir / "data" / "validation.jsonl"
        write_jsonl(validation_path, records(validation))
    return Datasets(fmt, train_path, validation_path, len(train), len(validation), dropped)


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or not uri[5:].split("/")[0]:
        raise BedrockTrainError(f"--data-s3-uri {uri!r}: expected s3://bucket/prefix")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key.strip("/")


def upload(s3: Any, path: Path, prefix_uri: str) -> str:
    """Put `path` under the s3:// prefix; its URI."""
    bucket, prefix = split_s3_uri(prefix_uri)
    key = f"{prefix}/{path.name}" if prefix else path.name
    s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def customization_request(settings: Any, training_uri: str, validation_uri: str | None,
                          hyper: dict[str, str]) -> dict[str, Any]:
    """CreateModelCustomizationJob's parameters."""
    request: dict[str, Any] = {
        "jobName": settings.job_name,
        "customModelName": settings.custom_model_name,
        "roleArn": settings.role_arn,
        "clientRequestToken": settings.job_name.replace(".", "-").replace("+", "-"),
        "baseModelIdentifier": settings.base_model_identifier,
        "customizationType": "FINE_TUNING",
        "trainingDataConfig": {"s3Uri": training_uri},
        "outputDataConfig": {"s3Uri": settings.data_s3_uri.rstrip("/") + "/output/"},
        "hyperParameters": hyper,
    }
    if validation_uri:
        request["validationDataConfig"] = {"validators": [{"s3Uri": validation_uri}]}
    if settings.kms_key_id:
        request["customModelKmsKeyId"] = settings.kms_key_id
    subnets, groups = parse_list(settings.subnet_ids), parse_list(settings.security_group_ids)
    if bool(subnets) != bool(groups):
        raise BedrockTrainError("--subnet-ids and --security-group-ids go together (training.bedrock.subnet_ids / "
                                "security_group_ids): a VPC needs both")
    if subnets:
        request["vpcConfig"] = {"subnetIds": list(subnets), "securityGroupIds": list(groups)}
    return request


def wait_for(describe: Callable[[], dict[str, Any]], done: set[str], failed: set[str], what: str, poll: float,
             max_wait: float, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll `describe` until its status is in `done` (returned); a status in `failed` or the time limit: error."""
    deadline = clock() + max_wait
    while True:
        state = describe()
        status = state.get("status")
        if status in done:
            return state
        if status in failed:
            raise BedrockTrainError(f"{what}: {status}: {state.get('failureMessage') or 'Bedrock gave no reason'}")
        if clock() >= deadline:
            raise BedrockTrainError(f"{what}: still {status} after {max_wait:g} s (training.bedrock.max_wait_seconds)")
        print(f"{what}: {status}", flush=True)
        sleep(poll)


def make_invocable(bedrock: Any, settings: Any, model_arn: str,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[str, str]:
    """(the model id to invoke through bedrock-runtime, the resource created for it), per --inference."""
    name = settings.custom_model_name
    if settings.inference == "provisioned":
        arn = bedrock.create_provisioned_model_throughput(
            modelUnits=settings.model_units, provisionedModelName=name, modelId=model_arn)["provisionedModelArn"]
        state = wait_for(lambda: bedrock.get_provisioned_model_throughput(provisionedModelId=arn),
                         {"InService"}, {"Failed"}, f"provisioned throughput {name}", settings.poll_seconds,
                         settings.max_wait_seconds, sleep)
        return state.get("provisionedModelArn", arn), arn
    if settings.inference == "on_demand":
        if not hasattr(bedrock, "create_custom_model_deployment"):
            raise BedrockTrainError("this boto3 has no "
                                    "CreateCustomModelDeployment; upgrade it (steps/requirements.txt) or set "
                                    "training.bedrock.inference: provisioned")
        arn = bedrock.create_custom_model_deployment(modelDeploymentName=name, modelArn=model_arn)[
            "customModelDeploymentArn"]
        state = wait_for(lambda: bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn),
                         {"Active"}, {"Failed"}, f"custom model deployment {name}", settings.poll_seconds,
                         settings.max_wait_seconds, sleep)
        return state.get("customModelDeploymentArn", arn), arn
    raise BedrockTrainError(f"--inference {settings.inference!r}: expected on_demand or provisioned")


def data_version(report_dir: Path | None) -> str | None:
    path = Path(report_dir) / "report.json" if report_dir else None
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("data_version")


def run(settings: Any, bedrock: Any, s3: Any, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The whole step: datasets, job, wait, inference; the bedrock.json record."""
    for name in ("base_model_identifier", "role_arn"):
        if not getattr(settings, name):
            raise BedrockTrainError(f"--{name.replace('_', '-')} is required (training.bedrock.{name})")
    try:
        fmt = data_format(settings.base_model_identifier)
    except FormatError as exc:
        raise BedrockTrainError(str(exc)) from exc
    hyper = hyper_parameters(settings.epochs, settings.batch_size, settings.learning_rate, settings.hyper_parameters)
    datasets = write_datasets(settings.train_dir, settings.validation_dir if settings.use_validation else None, fmt,
                              settings.output_dir)
    training_uri = upload(s3, datasets.train, settings.data_s3_uri)
    validation_uri = upload(s3, datasets.validation, settings.data_s3_uri) if datasets.validation else None
    request = customization_request(settings, training_uri, validation_uri, hyper)
    job_arn = bedrock.create_model_customization_job(**request)["jobArn"]
    print(f"started Bedrock customization job {settings.job_name} ({job_arn}) on {settings.base_model_identifier}: "
          f"{datasets.train_examples} train / {datasets.validation_examples} validation examples, {fmt.name} format",
          flush=True)
    job = wait_for(lambda: bedrock.get_model_customization_job(jobIdentifier=settings.job_name), JOB_DONE, JOB_FAILED,
                   f"customization job {settings.job_name}", settings.poll_seconds, settings.max_wait_seconds, sleep)
    model_arn = job["outputModelArn"]
    invoke_id, resource = make_invocable(bedrock, settings, model_arn, sleep)
    return {
        "job_name": settings.job_name, "job_arn": job_arn, "custom_model_arn": model_arn,
        "custom_model_name": settings.custom_model_name, "base_model_identifier": settings.base_model_identifier,
        "data_format": fmt.name, "training_data_uri": training_uri, "validation_data_uri": validation_uri or "none",
        "output_data_uri": request["outputDataConfig"]["s3Uri"], "hyper_parameters": hyper,
        "train_examples": datasets.train_examples, "validation_examples": datasets.validation_examples,
        "context_dropped": datasets.context_dropped, "data_version": data_version(settings.data_report_dir),
        "inference": settings.inference, "inference_model_id": invoke_id,
        "inference_resource_arn": resource,
        "training_metrics": job.get("trainingMetrics"), "validation_metrics": job.get("validationMetrics"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_subcommand_parser(SUBCOMMANDS, DESCRIPTION, FLAG_SEPARATOR).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    import boto3

    from bedrock_train.register import register

    try:
        if settings.mode == "train":
            record = run(settings, boto3.client("bedrock"), boto3.client("s3"))
        else:
            record = register(settings, boto3.client("sagemaker"))
    except BedrockTrainError as exc:
        print(f"bedrock_train.py {settings.mode}: error: {exc}", file=sys.stderr)
        return 2
    name = RECORD_FILE if settings.mode == "train" else "registered.json"
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    (settings.output_dir / name).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    if settings.mode == "train":
        print(f"custom model {record['custom_model_arn']}; evaluate through {record['inference_model_id']}")
    else:
        print(f"registered {record['model_package_arn']} (Bedrock custom model {record['custom_model_arn']})")
    return 0
