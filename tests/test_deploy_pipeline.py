"""The deploy and monitor pipeline definitions (SDK against moto), the EventBridge rules (moto) and
`continuum download` (a presigned URL on moto's S3, a path locally)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from pipelines.backend import Backend, local_backend
from pipelines.cli import main as cli_main
from pipelines.config import load_config
from pipelines.definitions import definition_json
from pipelines.deploy.artifacts import artifact_location
from pipelines.deploy.monitor_pipeline import put_monitor_schedule
from pipelines.deploy.trigger import put_deploy_trigger, trigger_rule_name

CONFIG = load_config()
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/events-start-pipeline"


@pytest.fixture(scope="module")
def aws() -> Iterator[Backend]:
    with mock_aws():
        session = boto3.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=CONFIG.project.bucket)
        yield Backend("aws", session)


def _arguments(step: dict[str, Any]) -> dict[str, Any]:
    args = step["Arguments"]["AppSpecification"]["ContainerArguments"]
    return {flag: value for flag, value in zip(args, args[1:]) if isinstance(flag, str) and flag.startswith("--")}


def test_deploy_definition_promotes_to_production_with_guardrails(aws: Backend) -> None:
    definition = definition_json("deploy", CONFIG, aws)
    steps = {step["Name"]: step for step in definition["Steps"]}
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    production = CONFIG.deploy.production
    assert production is not None
    assert parameters["TrafficRouting"]["EnumValues"] == ["ALL_AT_ONCE", "CANARY", "LINEAR"]
    assert parameters["BakeSeconds"]["DefaultValue"] == production.bake_seconds
    assert parameters["PromoteToProduction"] == {"Name": "PromoteToProduction", "Type": "Boolean", "DefaultValue": True}
    condition = steps["CheckPromoteToProduction"]
    assert condition["DependsOn"] == ["SmokeTest"]
    assert condition["Arguments"]["Conditions"] == [
        {"Type": "Equals", "LeftValue": {"Get": "Parameters.PromoteToProduction"}, "RightValue": True}]
    (promote,) = condition["Arguments"]["IfSteps"]
    args = _arguments(promote)
    for flag, parameter in (("--endpoint-name", "ProductionEndpointName"), ("--instance-type", "ProductionInstanceType"),
                            ("--traffic-routing", "TrafficRouting"), ("--capture-kms-key-id", "DataCaptureKmsKeyId")):
        assert args[flag] == {"Get": f"Parameters.{parameter}"}, flag
    for flag, parameter in (("--wait-interval-seconds", "BakeSeconds"), ("--alarm-max-error-rate", "AlarmMaxErrorRate"),
                            ("--alarm-max-latency-ms", "AlarmMaxLatencyMs"), ("--autoscaling-max", "AutoScalingMaxInstances"),
                            ("--invocations-per-instance", "InvocationsPerInstance"), ("--canary-percent", "CanaryPercent")):
        assert args[flag] == {"Std:Join": {"On": "", "Values": [{"Get": f"Parameters.{parameter}"}]}}, flag
    smoke = _arguments(steps["SmokeTest"])
    assert smoke["--gate-metric"] == CONFIG.evaluation.gate.metric and smoke["--benchmarks-dir"].endswith("benchmarks")
    baseline = steps["MonitoringBaseline"]["Arguments"]
    assert baseline["AppSpecification"]["ContainerArguments"][:1] == ["baseline"]
    assert baseline["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == f"{CONFIG.s3_prefix}/monitoring/baseline"
    train_input = next(i for i in baseline["ProcessingInputs"] if i["InputName"] == "train")
    assert train_input["S3Input"]["S3Uri"]["Std:JsonGet"]["Path"] == "replay_data_uri"


def test_deploy_definition_without_production_stage(aws: Backend) -> None:
    config = CONFIG.model_copy(update={"deploy": CONFIG.deploy.model_copy(update={"production": None})})
    definition = definition_json("deploy", config, aws)
    assert [s["Name"] for s in definition["Steps"]] == ["ResolveApprovedModel", "CheckSmokeSuites", "DeployEndpoint", "SmokeTest",
                                                        "MonitoringBaseline"]
    assert "PromoteToProduction" not in {p["Name"] for p in definition["Parameters"]}


def test_monitor_definition_reads_capture_and_baseline(aws: Backend) -> None:
    definition = definition_json("monitor", CONFIG, aws)
    (step,) = definition["Steps"]
    arguments = step["Arguments"]
    assert arguments["AppSpecification"]["ContainerArguments"][0] == "check"
    assert "--create-alarm" in arguments["AppSpecification"]["ContainerArguments"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in arguments["ProcessingInputs"] if i["InputName"] != "code"}
    assert inputs["baseline"] == {"Get": "Parameters.MonitoringBaselineUri"}
    assert inputs["capture"] == {"Std:Join": {"On": "/", "Values": [{"Get": "Parameters.DataCaptureS3Uri"},
                                                                    {"Get": "Parameters.MonitoredEndpointName"}]}}
    output = arguments["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    assert output["Std:Join"]["Values"][-1] == {"Get": "Execution.PipelineExecutionId"}
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert defaults["MonitoredEndpointName"] == CONFIG.deploy.monitored_endpoint == "continuum-demo-prod"


def test_approval_rule_starts_the_deploy_pipeline(aws: Backend) -> None:
    events, sqs = aws.client("events"), aws.client("sqs")
    result = put_deploy_trigger(events, CONFIG, ACCOUNT, ROLE, {"BakeSeconds": "600"})
    rule = events.describe_rule(Name=trigger_rule_name(CONFIG))
    assert rule["State"] == "ENABLED" and json.loads(rule["EventPattern"]) == result["event_pattern"]
    (target,) = events.list_targets_by_rule(Rule=trigger_rule_name(CONFIG))["Targets"]
    assert target["Arn"] == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/{CONFIG.deploy_pipeline_name}"
    assert target["RoleArn"] == ROLE
    assert target["SageMakerPipelineParameters"] == {"PipelineParameterList": [{"Name": "BakeSeconds", "Value": "600"}]}
    put_deploy_trigger(events, CONFIG, ACCOUNT, ROLE, enabled=False)  # an update, not a second rule
    assert events.describe_rule(Name=trigger_rule_name(CONFIG))["State"] == "DISABLED"
    assert [r["Name"] for r in events.list_rules(NamePrefix=CONFIG.deploy_pipeline_name)["Rules"]] == [
        trigger_rule_name(CONFIG)]
    assert len(events.list_targets_by_rule(Rule=trigger_rule_name(CONFIG))["Targets"]) == 1
    # the rule matches an approval of this group only: moto cannot deliver to a SageMaker pipeline, so the
    # rule's target is swapped for a queue to see which events it lets through
    queue = sqs.create_queue(QueueName="probe")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.remove_targets(Rule=trigger_rule_name(CONFIG), Ids=["deploy-pipeline"])
    events.put_targets(Rule=trigger_rule_name(CONFIG), Targets=[{"Id": "probe", "Arn": queue_arn}])
    for group, status in ((CONFIG.model.model_package_group, "Rejected"), ("another-group", "Approved"),
                          (CONFIG.model.model_package_group, "Approved")):
        events.put_events(Entries=[{"Source": "aws.sagemaker", "DetailType": "SageMaker Model Package State Change",
                                    "Detail": json.dumps({"ModelPackageGroupName": group, "ModelApprovalStatus": status,
                                                          "ModelPackageVersion": 7})}])
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["detail"]["ModelApprovalStatus"] for m in messages] == ["Approved"]
    assert json.loads(messages[0]["Body"])["detail"]["ModelPackageGroupName"] == CONFIG.model.model_package_group


def test_monitor_schedule_and_retrain_rule(aws: Backend) -> None:
    events = aws.client("events")
    result = put_monitor_schedule(events, CONFIG, ACCOUNT, "rate(1 day)", ROLE, retrain_on_violation=True)
    schedule = events.describe_rule(Name="continuum-demo-monitor-schedule")
    assert schedule["ScheduleExpression"] == "rate(1 day)"
    retrain = json.loads(events.describe_rule(Name="continuum-demo-monitor-retrain-on-violation")["EventPattern"])
    assert retrain["resources"] == [f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:continuum-demo-prod-monitoring-violations"]
    (target,) = events.list_targets_by_rule(Rule="continuum-demo-monitor-retrain-on-violation")["Targets"]
    assert target["Arn"].endswith(f":pipeline/{CONFIG.training_pipeline_name}")
    assert result["schedule"] == "rate(1 day)"
    with pytest.raises(ValueError, match="not valid"):
        put_monitor_schedule(events, CONFIG, ACCOUNT, "every day", ROLE)


def test_download_gives_a_presigned_url_on_aws(aws: Backend) -> None:
    uri = f"s3://{CONFIG.project.bucket}/models/v3/model.tar.gz"
    aws.client("s3").put_object(Bucket=CONFIG.project.bucket, Key="models/v3/model.tar.gz", Body=b"artifact")
    url = artifact_location(aws, uri, expires_in=600)
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.path.endswith("/models/v3/model.tar.gz")
    assert parse_qs(parts.query)["X-Amz-Expires"] == ["600"]
    with pytest.raises(ValueError, match="--expires-in must be within"):
        artifact_location(aws, uri, expires_in=0)


def test_download_command_prints_the_local_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    backend = local_backend(CONFIG, tmp_path)
    sagemaker = backend.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=CONFIG.model.model_package_group)
    uri = f"s3://{CONFIG.project.bucket}/models/v1/model.tar.gz"
    backend.local_api.s3.put_bytes(uri, b"artifact")
    sagemaker.create_model_package(ModelPackageGroupName=CONFIG.model.model_package_group,
                                   InferenceSpecification={"Containers": [{"Image": "img", "ModelDataUrl": uri}],
                                                           "SupportedContentTypes": ["application/json"],
                                                           "SupportedResponseMIMETypes": ["application/json"]})
    assert cli_main(["--home", str(tmp_path), "download", "1"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.read_bytes() == b"artifact" and path == backend.local_api.s3.path(uri)
    assert cli_main(["--home", str(tmp_path), "download", "4"]) == 1
    assert "has no version 4" in capsys.readouterr().err
