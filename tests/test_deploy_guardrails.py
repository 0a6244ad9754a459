"""Production guardrails of steps/deploy.py (botocore Stubber: moto lacks update_endpoint), the local
CloudWatch / Application Auto Scaling stand-ins and the local traffic-shift plan."""
from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import ANY, Stubber

import deploy
from deploy.guardrails import AlarmSettings, ScalingSettings
from pipelines.local.cloudwatch import LocalCloudWatch
from pipelines.local.traffic_shift import TrafficShift, traffic_steps

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/continuum-demo-models/4"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.1-gpu-py310"
MODEL_URL = "s3://bucket/models/v4/model.tar.gz"
NOW = datetime(2026, 11, 23, 10, 4, 5, 123000, tzinfo=timezone.utc)
NAME = "continuum-prod-v4-20261123100405123"
OLD = "continuum-prod-v3-20261101090000000"
ENDPOINT = "continuum-prod"
RESOURCE = f"endpoint/{ENDPOINT}/variant/AllTraffic"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def _client(service: str):
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")


def _endpoint(status: str, config: str, reason: str | None = None) -> dict:
    response = {"EndpointName": ENDPOINT, "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
                "EndpointConfigName": config, "EndpointStatus": status, "CreationTime": NOW, "LastModifiedTime": NOW}
    return {**response, "FailureReason": reason} if reason else response


def _settings() -> deploy.DeploySettings:
    return deploy.DeploySettings(
        model_package_arn=ARN, endpoint_name=ENDPOINT, instance_type="ml.g5.2xlarge", instance_count=2,
        role_arn="arn:aws:iam::123456789012:role/sm", capture_percent=100, capture_s3_uri="s3://bucket/capture",
        capture_kms_key_id="arn:aws:kms:us-east-1:123456789012:key/abc", traffic_routing="LINEAR",
        linear_step_percent=50, wait_interval_seconds=600, rollback_alarms=["team-wide-5xx"],
        alarms=AlarmSettings(max_error_rate=0.02, max_latency_ms=1500, period_seconds=60, evaluation_periods=2),
        scaling=ScalingSettings(min_instances=2, max_instances=6, invocations_per_instance=80), poll_seconds=1)


def _stub_package_model_config(sm: Stubber) -> None:
    sm.add_response("describe_model_package", {
        "ModelPackageGroupName": "continuum-demo-models", "ModelPackageVersion": 4, "ModelPackageArn": ARN,
        "ModelPackageName": "continuum-demo-models", "CreationTime": NOW, "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []}, "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {"Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_URL}],
                                   "SupportedContentTypes": ["application/json"],
                                   "SupportedResponseMIMETypes": ["application/json"]}}, {"ModelPackageName": ARN})
    sm.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{NAME}"}, {
        "ModelName": NAME, "ExecutionRoleArn": "arn:aws:iam::123456789012:role/sm",
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": MODEL_URL}})
    sm.add_response("create_endpoint_config", {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{NAME}"}, {
        "EndpointConfigName": NAME, "ProductionVariants": [{
            "VariantName": "AllTraffic", "ModelName": NAME, "InstanceType": "ml.g5.2xlarge",
            "InitialInstanceCount": 2, "InitialVariantWeight": 1.0}],
        "DataCaptureConfig": {"EnableCapture": True, "InitialSamplingPercentage": 100,
                              "DestinationS3Uri": "s3://bucket/capture",
                              "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                              "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
                              "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc"}})


def _fleet_alarm(name: str, metric: str, threshold: float) -> dict:
    return {"AlarmName": f"{NAME}-{name}", "AlarmDescription": ANY, "Namespace": "AWS/SageMaker",
            "MetricName": metric, "Statistic": "Average", "Threshold": threshold, "Period": 60, "EvaluationPeriods": 2,
            "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
            "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "AllTraffic"},
                           {"Name": "EndpointConfigName", "Value": NAME}]}


def test_blue_green_update_creates_fleet_alarms_and_keeps_auto_scaling() -> None:
    sagemaker, cloudwatch, autoscaling = _client("sagemaker"), _client("cloudwatch"), _client("application-autoscaling")
    with Stubber(sagemaker) as sm, Stubber(cloudwatch) as cw, Stubber(autoscaling) as aas:
        _stub_package_model_config(sm)
        sm.add_response("describe_endpoint", _endpoint("InService", OLD), {"EndpointName": ENDPOINT})
        cw.add_response("put_metric_alarm", {}, _fleet_alarm("5xx-rate", "Invocation5XXErrors", 0.02))
        cw.add_response("put_metric_alarm", {}, _fleet_alarm("model-latency", "ModelLatency", 1_500_000.0))
        aas.add_response("describe_scalable_targets", {"ScalableTargets": [{
            "ServiceNamespace": "sagemaker", "ResourceId": RESOURCE, "ScalableDimension": DIMENSION, "MinCapacity": 1,
            "MaxCapacity": 4, "RoleARN": "arn:r", "CreationTime": NOW}]},
            {"ServiceNamespace": "sagemaker", "ResourceIds": [RESOURCE], "ScalableDimension": DIMENSION})
        aas.add_response("deregister_scalable_target", {}, {"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE,
                                                            "ScalableDimension": DIMENSION})
        sm.add_response("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"}, {
            "EndpointName": ENDPOINT, "EndpointConfigName": NAME, "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
                    "Type": "LINEAR", "WaitIntervalInSeconds": 600,
                    "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}}, "TerminationWaitInSeconds": 0},
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "team-wide-5xx"},
                                                         {"AlarmName": f"{NAME}-5xx-rate"},
                                                         {"AlarmName": f"{NAME}-model-latency"}]}}})
        sm.add_response("describe_endpoint", _endpoint("InService", NAME), {"EndpointName": ENDPOINT})
        aas.add_response("register_scalable_target", {}, {"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE,
                                                          "ScalableDimension": DIMENSION, "MinCapacity": 2,
                                                          "MaxCapacity": 6})
        aas.add_response("put_scaling_policy", {"PolicyARN": "arn:p", "Alarms": []}, {
            "PolicyName": f"{ENDPOINT}-invocations-per-instance", "ServiceNamespace": "sagemaker",
            "ResourceId": RESOURCE, "ScalableDimension": DIMENSION, "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 80.0, "ScaleInCooldown": 300, "ScaleOutCooldown": 60,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}})
        cw.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": f"{OLD}-5xx-rate"}]},
                        {"AlarmNames": [f"{OLD}-5xx-rate", f"{OLD}-model-latency"]})
        cw.add_response("delete_alarms", {}, {"AlarmNames": [f"{OLD}-5xx-rate"]})
        record = deploy.deploy(sagemaker, _settings(), now=NOW, sleep=lambda _: None, cloudwatch=cloudwatch,
                               autoscaling=autoscaling)
        for stub in (sm, cw, aas):
            stub.assert_no_pending_responses()
    assert record["status"] == "InService" and record["alarms"] == [f"{NAME}-5xx-rate", f"{NAME}-model-latency"]
    assert record["autoscaling"]["max_instances"] == 6 and record["deleted_alarms"] == [f"{OLD}-5xx-rate"]


def test_rolled_back_update_still_scales_and_reports_the_reason() -> None:
    sagemaker, cloudwatch, autoscaling = _client("sagemaker"), _client("cloudwatch"), _client("application-autoscaling")
    with Stubber(sagemaker) as sm, Stubber(cloudwatch) as cw, Stubber(autoscaling) as aas:
        _stub_package_model_config(sm)
        sm.add_response("describe_endpoint", _endpoint("InService", OLD), {"EndpointName": ENDPOINT})
        cw.add_response("put_metric_alarm", {}, None)
        cw.add_response("put_metric_alarm", {}, None)
        aas.add_response("describe_scalable_targets", {"ScalableTargets": []}, None)
        sm.add_response("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"}, None)
        sm.add_response("describe_endpoint", _endpoint("InService", OLD, reason="alarm continuum-prod-5xx in ALARM"),
                        {"EndpointName": ENDPOINT})
        aas.add_response("register_scalable_target", {}, None)
        aas.add_response("put_scaling_policy", {"PolicyARN": "arn:p", "Alarms": []}, None)
        with pytest.raises(deploy.DeployError, match=r"rolled back \(alarm continuum-prod-5xx in ALARM\)") as raised:
            deploy.deploy(sagemaker, _settings(), now=NOW, sleep=lambda _: None, cloudwatch=cloudwatch,
                          autoscaling=autoscaling)
        for stub in (sm, cw, aas):
            stub.assert_no_pending_responses()
    assert raised.value.record["status"] == "RolledBack" and raised.value.record["autoscaling"]["min_instances"] == 2


@pytest.mark.parametrize("flags, message", [
    (["--alarm-max-error-rate", "1.5"], "--alarm-max-error-rate must be within"),
    (["--alarm-period-seconds", "45"], "--alarm-period-seconds must be 10, 30 or a multiple of 60"),
    (["--autoscaling-min", "3", "--autoscaling-max", "2"], "--autoscaling-min (3)"),
])
def test_bad_guardrail_flags_fail_before_any_call(flags: list[str], message: str, tmp_path,
                                                  capsys: pytest.CaptureFixture) -> None:
    code = deploy.main(["--model-package-arn", ARN, "--endpoint-name", ENDPOINT, "--instance-type", "ml.g5.xlarge",
                        "--role-arn", "arn:aws:iam::1:role/r", "--output-dir", str(tmp_path), *flags])
    assert code == 1 and message in capsys.readouterr().err


def test_negative_thresholds_mean_no_alarm() -> None:
    args = deploy.parse_args(["--model-package-arn", ARN, "--endpoint-name", ENDPOINT, "--instance-type", "t",
                              "--role-arn", "r", "--alarm-max-error-rate", "-1", "--alarm-max-latency-ms", "250"])
    settings = deploy.settings_from_args(args)
    assert settings.alarms.max_error_rate is None and settings.alarms.max_latency_ms == 250.0
    assert not deploy.settings_from_args(deploy.parse_args(
        ["--model-package-arn", ARN, "--endpoint-name", ENDPOINT, "--instance-type", "t", "--role-arn", "r"])).scaling.enabled


# ------------------------------------------------------------------------------------------ local stand-ins
def test_traffic_steps_follow_the_routing_configuration() -> None:
    assert traffic_steps({"Type": "ALL_AT_ONCE"}) == [1.0]
    assert traffic_steps({"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}) == [0.1, 1.0]
    assert traffic_steps({"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40}}) == [
        0.4, 0.8, 1.0]
    assert traffic_steps({"Type": "CANARY", "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}, 4) == [0.25, 1.0]
    with pytest.raises(ValueError, match="CanarySize is required"):
        traffic_steps({"Type": "CANARY"})
    shift = TrafficShift.from_deployment_config({"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 30},
        "TerminationWaitInSeconds": 5}, "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]}}, 1,
        lambda names: names)
    assert shift is not None and (shift.wait_seconds, shift.termination_wait_seconds, shift.rollback_alarms) == (
        30.0, 5.0, ["a"])
    assert shift.bake(sleep=lambda _: None) == ["a"]  # a tripped alarm ends the bake at once
    assert TrafficShift.from_deployment_config(None, 1, lambda names: []) is None


def test_local_alarm_states_follow_cloudwatch_semantics(tmp_path) -> None:
    cloudwatch = LocalCloudWatch(tmp_path)
    dims = [{"Name": "EndpointName", "Value": "e"}, {"Name": "VariantName", "Value": "AllTraffic"},
            {"Name": "EndpointConfigName", "Value": "c2"}]
    alarm = {"AlarmName": "c2-5xx", "Namespace": "AWS/SageMaker", "MetricName": "Invocation5XXErrors",
             "Dimensions": dims, "Statistic": "Average", "Period": 60, "EvaluationPeriods": 1, "Threshold": 0.1,
             "ComparisonOperator": "GreaterThanThreshold"}
    cloudwatch.put_metric_alarm(alarm)
    assert cloudwatch.describe_alarms({})["MetricAlarms"][0]["StateValue"] == "INSUFFICIENT_DATA"
    cloudwatch.record("AWS/SageMaker", [("Invocation5XXErrors", list(reversed(dims)), 0.0, "None")] * 9)
    assert cloudwatch.alarms_in_alarm(["c2-5xx"]) == []
    cloudwatch.record("AWS/SageMaker", [("Invocation5XXErrors", dims, 1.0, "None")] * 2)  # 2 of 11 fail: 18%
    (state,) = cloudwatch.alarms_in_alarm(["c2-5xx", "unknown-alarm"])
    assert state["AlarmName"] == "c2-5xx" and "GreaterThanThreshold 0.1" in state["StateReason"]
    cloudwatch.record("AWS/SageMaker", [("Invocation5XXErrors", dims[:2], 1.0, "None")])  # another metric
    other_fleet = {**alarm, "AlarmName": "c3-5xx", "Dimensions": [*dims[:2], {"Name": "EndpointConfigName",
                                                                            "Value": "c3"}],
                   "TreatMissingData": "notBreaching"}
    cloudwatch.put_metric_alarm(other_fleet)
    assert cloudwatch.describe_alarms({"AlarmNames": ["c3-5xx"]})["MetricAlarms"][0]["StateValue"] == "OK"


class RecordingEndpoints:
    """An endpoint backend that records what the local API asks it to deploy."""

    def __init__(self) -> None:
        self.deployed: list[tuple[str, str, TrafficShift | None]] = []

    def deploy(self, endpoint_name: str, variants: list[dict], data_capture: dict | None,
               shift: TrafficShift | None = None) -> None:
        self.deployed.append((endpoint_name, variants[0]["EndpointConfigName"], shift))

    def invoke(self, *args: object) -> tuple[bytes, str, str]:
        raise LookupError("not used")

    def delete(self, endpoint_name: str) -> None:
        """Nothing runs, nothing to stop."""


def test_local_update_endpoint_turns_the_deployment_config_into_a_traffic_shift(tmp_path) -> None:
    from pipelines.local.registry import ApiError
    from pipelines.local.sagemaker_api import SageMakerAPI

    backend = RecordingEndpoints()
    api = SageMakerAPI(tmp_path, endpoints=backend)
    api.handle("CreateModel", {"ModelName": "m", "ExecutionRoleArn": "arn:aws:iam::1:role/r",
                               "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": MODEL_URL}})
    for config in ("c1", "c2"):
        api.handle("CreateEndpointConfig", {"EndpointConfigName": config, "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 4}]})
    api.handle("CreateEndpoint", {"EndpointName": "ep", "EndpointConfigName": "c1"})
    routing = {"Type": "CANARY", "WaitIntervalInSeconds": 5, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}
    with pytest.raises(ApiError, match="DeploymentConfig: TrafficRoutingConfiguration.CanarySize is required"):
        api.handle("UpdateEndpoint", {"EndpointName": "ep", "EndpointConfigName": "c2", "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 5}}}})
    assert api.handle("DescribeEndpoint", {"EndpointName": "ep"})["EndpointStatus"] == "InService"
    api.handle("UpdateEndpoint", {"EndpointName": "ep", "EndpointConfigName": "c2", "DeploymentConfig": {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "c2-5xx-rate"}]}}})
    api.wait_for_deployments(timeout_s=10)
    (_, first, no_shift), (_, second, shift) = backend.deployed
    assert (first, no_shift, second) == ("c1", None, "c2")
    assert shift is not None and shift.steps == [0.25, 1.0] and shift.rollback_alarms == ["c2-5xx-rate"]
    described = api.handle("DescribeEndpoint", {"EndpointName": "ep"})
    assert described["EndpointConfigName"] == "c2" and described["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]


def test_only_an_identical_live_standby_is_reused() -> None:
    from pipelines.local.fleets import all_variants, reusable_standby

    spec = {"name": "AllTraffic", "model_dir": "/m/v1", "environment": {"A": "1"}, "weight": 1.0}
    running = {**spec, "pid": 42, "port": 9000, "log": "l", "started_at": "t"}
    state = {"variants": [{**spec, "model_dir": "/m/v2", "pid": 7, "port": 1, "log": "l", "started_at": "t"}],
             "standby": {"config_name": "c1", "variants": [running], "until": 0}}
    assert reusable_standby(state, [spec], lambda v: True) == [running]
    assert reusable_standby(state, [{**spec, "environment": {"A": "2"}}], lambda v: True) is None
    assert reusable_standby(state, [{**spec, "model_dir": "/m/v3"}], lambda v: True) is None
    assert reusable_standby(state, [spec], lambda v: False) is None  # its process died
    assert reusable_standby({"variants": []}, [spec], lambda v: True) is None
    assert [v["pid"] for v in all_variants(state)] == [7, 42]
