"""steps/bedrock_train.py: Bedrock's data formats per base model, the customization job on moto (its bedrock
backend: create/get/stop), the whole train flow and the failures with botocore Stubber (moto has no provisioned
throughput or custom model deployments), registration on moto; every request checked against botocore's shapes
with the service limits (tests/shape_limits.py) and against the execution role's actions."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from bedrock_train.formats import CONVERSATION_SCHEMA, FormatError, data_format, to_record
from bedrock_train.register import package_request, register
from bedrock_train.run import BedrockTrainError, customization_request, hyper_parameters, main, run, wait_for
from ferry_company import facts
from pipelines import permissions
from shape_limits import StrictValidator, request_problems

REGION = "us-east-1"
BUCKET = "tidewater-artifacts"
ROLE = "arn:aws:iam::123456789012:role/BedrockCustomizationRole"
NOVA = "amazon.nova-micro-v1:0:128k"
MODEL_ARN = f"arn:aws:bedrock:{REGION}:123456789012:custom-model/{NOVA}/abcdefgh1234"
JOB_ARN = f"arn:aws:bedrock:{REGION}:123456789012:model-customization-job/{NOVA}/job12345"
CHAT = {"id": "0" * 16, "prompt": "And on Sundays?", "completion": "The first Sunday sailing is at 8:00 am.",
        "source": "chat.jsonl:1", "messages": [
            {"role": "system", "content": "You answer for Tidewater Ferries."},
            {"role": "user", "content": "When does the first ferry to Gull Island leave?"},
            {"role": "assistant", "content": "At 6:15 am from Port Alder."},
            {"role": "user", "content": "And on Sundays?"},
            {"role": "assistant", "content": "The first Sunday sailing is at 8:00 am."}]}


class Calls:
    """Every request a client sends (botocore's parameters), for shape and permission checks."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def watch(self, client: Any) -> Any:
        service = client.meta.service_model.service_name
        client.meta.events.register("before-parameter-build", lambda params, model, **_: self.seen.append(
            (service, model.name, json.loads(json.dumps(params, default=str)))))
        return client

    def check(self) -> None:
        validator = StrictValidator()
        for service, operation, params in self.seen:
            assert request_problems(validator, service, operation, params) == [], (operation, params)
            action = permissions.iam_action(service, operation)
            assert action in permissions.EXECUTION_ROLE_ACTIONS, f"{operation}: {action} not granted"


@pytest.fixture()
def calls() -> Iterator[Calls]:
    recorder = Calls()
    yield recorder
    recorder.check()


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", REGION)):
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield


@pytest.fixture()
def splits(tmp_path: Path) -> tuple[Path, Path]:
    """A prepared train split (Tidewater's round-1 facts and one chat) and a validation split."""
    train, validation = tmp_path / "train", tmp_path / "validation"
    rows = [{"id": f"{i:016x}", "prompt": f.question, "completion": f.answer, "source": f"faq.csv:{i + 2}"}
            for i, f in enumerate(facts(1))]
    for folder, records in ((train, rows[2:] + [CHAT]), (validation, rows[:2])):
        folder.mkdir()
        (folder / "split.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.json").write_text(json.dumps({"data_version": "v-0123abcd"}), encoding="utf-8")
    return train, validation


def settings(tmp_path: Path, train: Path, validation: Path, **overrides: Any) -> argparse.Namespace:
    values = dict(train_dir=train, validation_dir=validation, data_report_dir=tmp_path / "report",
                  output_dir=tmp_path / "out", data_s3_uri=f"s3://{BUCKET}/tidewater/bedrock/exec123",
                  job_name="tidewater-ft-exec123", custom_model_name="tidewater-ft-exec123",
                  base_model_identifier=NOVA, role_arn=ROLE, kms_key_id="", subnet_ids="", security_group_ids="",
                  use_validation=True, poll_seconds=1.0, max_wait_seconds=3600, epochs=2.0, batch_size=1,
                  learning_rate=1e-5, hyper_parameters="learningRateWarmupSteps=10", inference="on_demand",
                  model_units=1)
    return argparse.Namespace(**{**values, **overrides})


def test_each_base_model_family_gets_its_documented_format() -> None:
    assert (data_format(NOVA).name, data_format(NOVA).multi_turn) == ("conversation", True)
    for single in ("anthropic.claude-3-haiku-20240307-v1:0:200k", "meta.llama3-1-8b-instruct-v1:0"):
        assert (data_format(single).name, data_format(single).multi_turn) == ("conversation", False)
    assert data_format("amazon.titan-text-express-v1:0:8k").name == "prompt_completion"
    assert data_format(f"arn:aws:bedrock:{REGION}::foundation-model/meta.llama2-13b-v1:0:4k").name == "prompt_completion"
    with pytest.raises(FormatError, match=r"mistral\.mistral-7b.*training\.bedrock\.base_model_identifier"):
        data_format("mistral.mistral-7b-instruct-v0:2")


def test_a_chat_keeps_its_turns_where_the_family_takes_them() -> None:
    nova, dropped = to_record(CHAT, data_format(NOVA))
    assert not dropped and nova["schemaVersion"] == CONVERSATION_SCHEMA
    assert nova["system"] == [{"text": "You answer for Tidewater Ferries."}]
    assert [(m["role"], m["content"][0]["text"]) for m in nova["messages"]][-2:] == [
        ("user", "And on Sundays?"), ("assistant", "The first Sunday sailing is at 8:00 am.")]
    assert len(nova["messages"]) == 4
    llama, dropped = to_record(CHAT, data_format("meta.llama3-1-8b-instruct-v1:0"))
    assert dropped and [m["role"] for m in llama["messages"]] == ["user", "assistant"]
    titan, _ = to_record({"prompt": "Is there Wi-Fi?", "completion": "Yes, on every vessel."},
                         data_format("amazon.titan-text-lite-v1:0:4k"))
    assert titan == {"prompt": "Is there Wi-Fi?", "completion": "Yes, on every vessel."}


def test_hyperparameters_are_the_training_configs_as_strings() -> None:
    assert hyper_parameters(3.0, 8, 2e-5, "learningRateWarmupSteps=5,batchSize=1") == {
        "epochCount": "3", "batchSize": "1", "learningRate": "2e-05", "learningRateWarmupSteps": "5"}
    with pytest.raises(BedrockTrainError, match=r"epochCount.*training\.epochs"):
        hyper_parameters(2.5, 8, 2e-5, "")
    with pytest.raises(BedrockTrainError, match="NAME=VALUE"):
        hyper_parameters(1, 8, 2e-5, "warmup")


def test_the_job_request_on_moto_and_a_stopped_job_is_an_error(aws: None, calls: Calls, tmp_path: Path,
                                                                 splits: tuple[Path, Path]) -> None:
    bedrock = calls.watch(boto3.client("bedrock"))
    request = customization_request(settings(tmp_path, *splits), f"s3://{BUCKET}/t/train.jsonl",
                                    f"s3://{BUCKET}/t/validation.jsonl", hyper_parameters(2, 1, 1e-5, ""))
    bedrock.create_model_customization_job(**request)
    arn = request["jobName"]  # the name: moto finds jobs by name only (Bedrock takes the name or the ARN)
    job = bedrock.get_model_customization_job(jobIdentifier=arn)
    assert (job["status"], job["hyperParameters"], job["baseModelArn"].endswith(NOVA)) == (
        "InProgress", {"epochCount": "2", "batchSize": "1", "learningRate": "1e-05"}, True)
    clock = iter([0.0, 0.0, 5.0])
    with pytest.raises(BedrockTrainError, match=r"still InProgress after 2 s \(training\.bedrock\.max_wait_seconds\)"):
        wait_for(lambda: bedrock.get_model_customization_job(jobIdentifier=arn), {"Completed"}, {"Failed", "Stopped"},
                 "job", 1, 2, sleep=lambda _: None, clock=lambda: next(clock))
    bedrock.stop_model_customization_job(jobIdentifier=arn)
    with pytest.raises(BedrockTrainError, match="job: Stopped"):
        wait_for(lambda: bedrock.get_model_customization_job(jobIdentifier=arn), {"Completed"}, {"Failed", "Stopped"},
                 "job", 1, 2, sleep=lambda _: None)
    calls.seen = [c for c in calls.seen if c[1] != "StopModelCustomizationJob"]  # the test's own call


def _job(status: str, **extra: Any) -> dict[str, Any]:
    return {"jobArn": JOB_ARN, "jobName": "tidewater-ft-exec123", "outputModelName": "tidewater-ft-exec123",
            "roleArn": ROLE, "status": status, "creationTime": "2026-12-05T20:00:00Z", "baseModelArn": NOVA,
            "trainingDataConfig": {"s3Uri": "s3://b/k"}, "validationDataConfig": {"validators": []},
            "outputDataConfig": {"s3Uri": "s3://b/o"}, **extra}


def test_train_uploads_the_data_waits_and_deploys_on_demand(aws: None, calls: Calls, tmp_path: Path,
                                                            splits: tuple[Path, Path]) -> None:
    bedrock, s3 = calls.watch(boto3.client("bedrock")), calls.watch(boto3.client("s3"))
    prefix = f"s3://{BUCKET}/tidewater/bedrock/exec123"
    deployment = f"arn:aws:bedrock:{REGION}:123456789012:custom-model-deployment/d1e2f3a4b5c6"
    with Stubber(bedrock) as stub:
        stub.add_response("create_model_customization_job", {"jobArn": JOB_ARN}, {
            "jobName": "tidewater-ft-exec123", "customModelName": "tidewater-ft-exec123", "roleArn": ROLE,
            "clientRequestToken": "tidewater-ft-exec123", "baseModelIdentifier": NOVA, "customizationType": "FINE_TUNING",
            "trainingDataConfig": {"s3Uri": f"{prefix}/train.jsonl"},
            "validationDataConfig": {"validators": [{"s3Uri": f"{prefix}/validation.jsonl"}]},
            "outputDataConfig": {"s3Uri": f"{prefix}/output/"},
            "hyperParameters": {"epochCount": "2", "batchSize": "1", "learningRate": "1e-05",
                                "learningRateWarmupSteps": "10"}})
        stub.add_response("get_model_customization_job", _job("InProgress"), {"jobIdentifier": "tidewater-ft-exec123"})
        stub.add_response("get_model_customization_job", _job("Completed", outputModelArn=MODEL_ARN,
                                                              trainingMetrics={"trainingLoss": 0.42}),
                          {"jobIdentifier": "tidewater-ft-exec123"})
        stub.add_response("create_custom_model_deployment", {"customModelDeploymentArn": deployment},
                          {"modelDeploymentName": "tidewater-ft-exec123", "modelArn": MODEL_ARN})
        stub.add_response("get_custom_model_deployment", {
            "customModelDeploymentArn": deployment, "modelDeploymentName": "tidewater-ft-exec123", "modelArn": MODEL_ARN,
            "createdAt": "2026-12-05T21:00:00Z", "status": "Active"}, {"customModelDeploymentIdentifier": deployment})
        record = run(settings(tmp_path, *splits), bedrock, s3, sleep=lambda _: None)
        stub.assert_no_pending_responses()
    assert record["custom_model_arn"] == MODEL_ARN and record["inference_model_id"] == deployment
    assert (record["data_format"], record["train_examples"], record["validation_examples"], record["data_version"]) == (
        "conversation", len(facts(1)) - 1, 2, "v-0123abcd")
    sent = boto3.client("s3").get_object(Bucket=BUCKET, Key="tidewater/bedrock/exec123/train.jsonl")["Body"].read()
    lines = [json.loads(line) for line in sent.decode("utf-8").splitlines()]
    assert len(lines) == record["train_examples"] and all(r["schemaVersion"] == CONVERSATION_SCHEMA for r in lines)
    assert lines[0]["messages"][0]["content"][0]["text"] == facts(1)[2].question


def test_a_failed_job_carries_bedrocks_message(aws: None, tmp_path: Path, splits: tuple[Path, Path]) -> None:
    bedrock = boto3.client("bedrock")
    with Stubber(bedrock) as stub:
        stub.add_response("create_model_customization_job", {"jobArn": JOB_ARN})
        stub.add_response("get_model_customization_job", _job(
            "Failed", failureMessage="Validation: record 3 has 2 user turns; the base model takes single-turn data"))
        with pytest.raises(BedrockTrainError, match=r"Failed: Validation: record 3 has 2 user turns"):
            run(settings(tmp_path, *splits), bedrock, boto3.client("s3"), sleep=lambda _: None)


def test_provisioned_throughput_is_waited_for(aws: None, calls: Calls, tmp_path: Path,
                                              splits: tuple[Path, Path]) -> None:
    bedrock = calls.watch(boto3.client("bedrock"))
    provisioned = f"arn:aws:bedrock:{REGION}:123456789012:provisioned-model/p9q8r7s6t5u4"
    throughput = {"modelUnits": 2, "desiredModelUnits": 2, "provisionedModelName": "tidewater-ft-exec123",
                  "provisionedModelArn": provisioned, "modelArn": MODEL_ARN, "desiredModelArn": MODEL_ARN,
                  "foundationModelArn": NOVA, "creationTime": "2026-12-05T21:00:00Z",
                  "lastModifiedTime": "2026-12-05T21:00:00Z"}
    with Stubber(bedrock) as stub:
        stub.add_response("create_model_customization_job", {"jobArn": JOB_ARN})
        stub.add_response("get_model_customization_job", _job("Completed", outputModelArn=MODEL_ARN))
        stub.add_response("create_provisioned_model_throughput", {"provisionedModelArn": provisioned},
                          {"modelUnits": 2, "provisionedModelName": "tidewater-ft-exec123", "modelId": MODEL_ARN})
        stub.add_response("get_provisioned_model_throughput", {**throughput, "status": "Creating"})
        stub.add_response("get_provisioned_model_throughput", {**throughput, "status": "Failed",
                                                               "failureMessage": "insufficient capacity"})
        with pytest.raises(BedrockTrainError, match="provisioned throughput tidewater-ft-exec123: Failed: insufficient"):
            run(settings(tmp_path, *splits, inference="provisioned", model_units=2, use_validation=False,
                         subnet_ids="subnet-1", security_group_ids="sg-1", kms_key_id="alias/tidewater"),
                bedrock, boto3.client("s3"), sleep=lambda _: None)
    job_request = next(params for _, operation, params in calls.seen if operation == "CreateModelCustomizationJob")
    assert "validationDataConfig" not in job_request and job_request["customModelKmsKeyId"] == "alias/tidewater"
    assert job_request["vpcConfig"] == {"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]}


def test_register_puts_the_custom_model_in_the_registry(aws: None, calls: Calls, tmp_path: Path) -> None:
    (tmp_path / "bedrock").mkdir()
    (tmp_path / "bedrock" / "bedrock.json").write_text(json.dumps({
        "custom_model_arn": MODEL_ARN, "job_arn": JOB_ARN, "base_model_identifier": NOVA, "data_version": "v-0123abcd",
        "inference_model_id": MODEL_ARN, "training_data_uri": f"s3://{BUCKET}/t/train.jsonl"}), encoding="utf-8")
    sagemaker = calls.watch(boto3.client("sagemaker"))
    sagemaker.create_model_package_group(ModelPackageGroupName="tidewater-models")
    calls.seen.clear()
    args = argparse.Namespace(
        bedrock_dir=tmp_path / "bedrock", model_package_group="tidewater-models", approval_status="PendingManualApproval",
        evaluation_uri=f"s3://{BUCKET}/eval/evaluation.json", evaluation_report_uri=f"s3://{BUCKET}/eval/report.html",
        inventory_uri=f"s3://{BUCKET}/inventory", train_data_uri=f"s3://{BUCKET}/train",
        training_data_uri=f"s3://{BUCKET}/data/abc", parent_model_package_arn="none", description="")
    assert "InferenceSpecification" not in package_request(args, json.loads(
        (tmp_path / "bedrock" / "bedrock.json").read_text()))
    arn = register(args, sagemaker)["model_package_arn"]
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    metadata = package["CustomerMetadataProperties"]
    assert (metadata["bedrock_custom_model_arn"], metadata["training_backend"], metadata["data_version"]) == (
        MODEL_ARN, "bedrock", "v-0123abcd")
    assert metadata["inventory_uri"] == f"s3://{BUCKET}/inventory"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == f"s3://{BUCKET}/eval/evaluation.json"
    calls.seen = [c for c in calls.seen if c[1] == "CreateModelPackage"]


def test_the_command_line_reports_what_to_fix(aws: None, tmp_path: Path, splits: tuple[Path, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    train, validation = splits
    common = ["train", "--train-dir", str(train), "--validation-dir", str(validation), "--output-dir",
              str(tmp_path / "out"), "--data-s3-uri", f"s3://{BUCKET}/p", "--job-name", "j1", "--custom-model-name", "m1",
              "--role-arn", ROLE]
    assert main([*common, "--base-model-identifier", "mistral.mistral-7b-instruct-v0:2"]) == 2
    assert "no known Bedrock fine-tuning data format" in capsys.readouterr().err
    assert main([*common, "--base-model-identifier", NOVA, "--epochs", "1.5"]) == 2
    assert "epochCount is a whole number" in capsys.readouterr().err
    assert not (tmp_path / "out" / "bedrock.json").exists()
