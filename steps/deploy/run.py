"""The deploy step's calls and command line (entry script: steps/deploy.py, which says what the step does)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3

from common.contract import build_parser
from deploy.contract import ARGUMENTS, FLAG_SEPARATOR, TRAFFIC_ROUTING_TYPES
from deploy.guardrails import (AlarmSettings, GuardrailError, ScalingSettings, create_fleet_alarms,
                                      delete_fleet_alarms, deregister_scaling, register_scaling)

DESCRIPTION = "Deploy step: a registered model package → a SageMaker real-time endpoint with data capture, InService."
VARIANT_NAME = "AllTraffic"
MAX_NAME_LENGTH = 63
SETTLING_STATUSES = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed"}
JSON_CONTENT_TYPES = ["application/json"]
NO_PACKAGE = ("", "none")  # resolve.py writes "none" when the group has no approved version


class DeployError(Exception):
    """The deployment cannot be done or did not reach InService; the message says why."""

    def __init__(self, message: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.record = record


@dataclass(frozen=True)
class DeploySettings:
    model_package_arn: str
    endpoint_name: str
    instance_type: str
    instance_count: int
    role_arn: str
    capture_percent: int = 100
    capture_s3_uri: str = ""
    capture_kms_key_id: str = ""
    traffic_routing: str = ""
    canary_percent: int = 10
    linear_step_percent: int = 25
    wait_interval_seconds: int = 300
    termination_wait_seconds: int = 0
    rollback_alarms: list[str] = field(default_factory=list)
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    allow_unapproved: bool = False
    wait_timeout_seconds: float = 3600.0
    poll_seconds: float = 15.0


def resource_name(endpoint_name: str, version: int | str, now: datetime) -> str:
    """``<endpoint>-v<version>-<yyyymmddHHMMSSmmm>``, the endpoint part shortened to stay within 63 chars."""
    suffix = f"-v{version}-{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}"
    return endpoint_name[: MAX_NAME_LENGTH - len(suffix)].rstrip("-") + suffix


def package_containers(package: dict[str, Any]) -> list[dict[str, Any]]:
    """The model containers (Image, ModelDataUrl / ModelDataSource, Environment) of a package."""
    arn = package.get("ModelPackageArn", "?")
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if not containers:
        raise DeployError(f"model package {arn} has no InferenceSpecification.Containers to deploy")
    keys = ("Image", "ModelDataUrl", "ModelDataSource", "Environment")
    out = [{k: c[k] for k in keys if c.get(k)} for c in containers]
    for index, container in enumerate(out):
        if "Image" not in container:
            raise DeployError(f"model package {arn}: InferenceSpecification.Containers[{index}].Image is missing")
    return out


def data_capture_config(percent: int, destination_s3_uri: str, kms_key_id: str = "") -> dict[str, Any] | None:
    """Capture Input and Output at ``percent``% (JSON bodies kept as JSON); None when percent is 0."""
    if not 0 <= percent <= 100:
        raise DeployError(f"--capture-percent must be within 0..100, got {percent}")
    if percent == 0:
        return None
    if not destination_s3_uri.startswith("s3://"):
        raise DeployError(f"--capture-s3-uri must be an s3:// URI when capturing, got {destination_s3_uri!r}")
    config: dict[str, Any] = {
        "EnableCapture": True,
        "InitialSamplingPercentage": percent,
        "DestinationS3Uri": destination_s3_uri,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": JSON_CONTENT_TYPES},
    }
    if kms_key_id:
        config["KmsKeyId"] = kms_key_id
    return config


def deployment_config(settings: DeploySettings) -> dict[str, Any] | None:
    """Blue/green DeploymentConfig for endpoint updates, or None for SageMaker's default update."""
    routing_type = settings.traffic_routing.upper()
    if not routing_type:
        if settings.rollback_alarms:
            raise DeployError("--rollback-alarms needs --traffic-routing (blue/green) to roll back")
        return None
    if routing_type not in TRAFFIC_ROUTING_TYPES:
        raise DeployError(f"--traffic-routing must be one of {', '.join(TRAFFIC_ROUTING_TYPES)}, got {routing_type!r}")
    routing: dict[str, Any] = {"Type": routing_type, "WaitIntervalInSeconds": settings.wait_interval_seconds}
    if routing_type == "CANARY":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percent}
    elif routing_type == "LINEAR":
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": settings.linear_step_percent}
    config: dict[str, Any] = {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": settings.termination_wait_seconds,
    }}
    if settings.rollback_alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in settings.rollback_alarms]}
    return config


def find_endpoint(client: Any, endpoint_name: str) -> dict[str, Any] | None:
    """describe_endpoint, or None when the endpoint does not exist."""
    try:
        return client.describe_endpoint(EndpointName=endpoint_name)
    except client.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "").lower()
        if code in ("ResourceNotFound", "ResourceNotFoundException") or (
                code == "ValidationException" and ("could not find" in message or "not found" in message)):
            return None
        raise


def wait_for_endpoint(client: Any, endpoint_name: str, timeout: float, poll_seconds: float,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll until InService (returned) or Failed / OutOfService / timeout (DeployError with the reason)."""
    deadline = clock() + timeout
    while True:
        description = client.describe_endpoint(EndpointName=endpoint_name)
        status = description["EndpointStatus"]
        if status == "InService":
            return description
        if status not in SETTLING_STATUSES:
            reason = description.get("FailureReason") or "no FailureReason given"
            raise DeployError(f"endpoint {endpoint_name} is {status}: {reason}")
        if clock() >= deadline:
            raise DeployError(f"endpoint {endpoint_name} still {status} after {timeout:.0f}s; raise --wait-timeout "
                              f"or look at the endpoint's CloudWatch logs")
        print(f"deploy: endpoint {endpoint_name} is {status}; waiting", flush=True)
        sleep(poll_seconds)


def wait_until_deleted(client: Any, endpoint_name: str, timeout: float, poll_seconds: float,
                       sleep: Callable[[float], None] = time.sleep,
                       clock: Callable[[], float] = time.monotonic) -> None:
    deadline = clock() + timeout
    while find_endpoint(client, endpoint_name) is not None:
        if clock() >= deadline:
            raise DeployError(f"endpoint {endpoint_name} was not deleted within {timeout:.0f}s")
        sleep(poll_seconds)


def check_settings(settings: DeploySettings) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Validate the settings before any AWS call; returns (DataCaptureConfig, DeploymentConfig)."""
    if settings.model_package_arn.strip().lower() in NO_PACKAGE:
        given = repr(settings.model_package_arn.strip()) if settings.model_package_arn.strip() else "empty"
        raise DeployError(f"--model-package-arn is {given}: there is no "
                          f"approved model package to deploy. Register and approve a model first "
                          f"(continuum models approve ...) or pass its ARN.")
    if not settings.endpoint_name.strip():
        raise DeployError("--endpoint-name is empty")
    if settings.instance_count < 1:
        raise DeployError(f"--instance-count must be ≥ 1, got {settings.instance_count}")
    try:
        settings.alarms.check()
        settings.scaling.check()
    except GuardrailError as error:
        raise DeployError(str(error)) from error
    capture = data_capture_config(settings.capture_percent, settings.capture_s3_uri, settings.capture_kms_key_id)
    return capture, deployment_config(settings)


def deploy(client: Any, settings: DeploySettings, now: datetime | None = None,
           sleep: Callable[[float], None] = time.sleep, cloudwatch: Any = None, autoscaling: Any = None) -> dict[str, Any]:
    """Run the deployment; returns the deployment record (what deployment.json holds).

    ``cloudwatch`` / ``autoscaling`` clients are needed when alarm thresholds / auto scaling are set.
    """
    capture, blue_green = check_settings(settings)
    if (settings.alarms.enabled and cloudwatch is None) or (settings.scaling.enabled and autoscaling is None):
        raise DeployError("alarm thresholds need a CloudWatch client and auto scaling an Application Auto Scaling "
                          "client")
    now = now or datetime.now(timezone.utc)

    package = client.describe_model_package(ModelPackageName=settings.model_package_arn)
    approval = package.get("ModelApprovalStatus", "")
    if approval != "Approved" and not settings.allow_unapproved:
        raise DeployError(f"model package {settings.model_package_arn} is {approval or 'without approval status'}, "
                          f"not Approved; approve it first (or pass --allow-unapproved)")
    containers = package_containers(package)
    version = package.get("ModelPackageVersion") or settings.model_package_arn.rsplit("/", 1)[-1]
    name = resource_name(settings.endpoint_name, version, now)

    model_args: dict[str, Any] = {"ModelName": name, "ExecutionRoleArn": settings.role_arn}
    if len(containers) == 1:
        model_args["PrimaryContainer"] = containers[0]
    else:
        model_args["Containers"] = containers
    client.create_model(**model_args)
    print(f"deploy: created model {name} from {settings.model_package_arn}", flush=True)

    config_args: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": [{
        "VariantName": VARIANT_NAME, "ModelName": name, "InstanceType": settings.instance_type,
        "InitialInstanceCount": settings.instance_count, "InitialVariantWeight": 1.0}]}
    if capture:
        config_args["DataCaptureConfig"] = capture
    client.create_endpoint_config(**config_args)
    print(f"deploy: created endpoint config {name}", flush=True)

    existing = find_endpoint(client, settings.endpoint_name)
    if existing and existing["EndpointStatus"] in SETTLING_STATUSES - {"Deleting"}:
        print(f"deploy: endpoint {settings.endpoint_name} is {existing['EndpointStatus']}; waiting before updating")
        try:
            existing = wait_for_endpoint(client, settings.endpoint_name, settings.wait_timeout_seconds,
                                         settings.poll_seconds, sleep)
        except DeployError:
            existing = client.describe_endpoint(EndpointName=settings.endpoint_name)
            if existing["EndpointStatus"] in SETTLING_STATUSES - {"Deleting"}:
                raise
    if existing and existing["EndpointStatus"] in ("Failed", "Deleting"):
        if existing["EndpointStatus"] == "Failed":
            print(f"deploy: endpoint {settings.endpoint_name} is Failed ({existing.get('FailureReason', '')}); "
                  f"deleting it to recreate", flush=True)
            client.delete_endpoint(EndpointName=settings.endpoint_name)
        wait_until_deleted(client, settings.endpoint_name, settings.wait_timeout_seconds, settings.poll_seconds, sleep)
        action, previous_config = "recreated", existing.get("EndpointConfigName")
        existing = None
    elif existing:
        action, previous_config = "updated", existing.get("EndpointConfigName")
    else:
        action, previous_config = "created", None

    fleet_alarms = guard_new_fleet(cloudwatch, settings, name)
    if existing and blue_green and fleet_alarms:
        alarms = [*settings.rollback_alarms, *fleet_alarms]
        blue_green = {**blue_green, "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms]}}
    if existing and settings.scaling.enabled and deregister_scaling(autoscaling, settings.endpoint_name, VARIANT_NAME):
        print(f"deploy: deregistered auto scaling of {settings.endpoint_name} for the update", flush=True)
    if existing:
        update_args: dict[str, Any] = {"EndpointName": settings.endpoint_name, "EndpointConfigName": name}
        if blue_green:
            update_args["DeploymentConfig"] = blue_green
        client.update_endpoint(**update_args)
    else:
        client.create_endpoint(EndpointName=settings.endpoint_name, EndpointConfigName=name)
    print(f"deploy: {'updating' if existing else 'creating'} endpoint {settings.endpoint_name} → {name}", flush=True)

    container = containers[0]
    record: dict[str, Any] = {
        "endpoint_name": settings.endpoint_name, "endpoint_config_name": name, "model_name": name,
        "model_package_arn": settings.model_package_arn, "model_package_version": version,
        "model_data_url": container.get("ModelDataUrl", ""), "image": container["Image"],
        "instance_type": settings.instance_type, "instance_count": settings.instance_count,
        "action": action, "previous_endpoint_config_name": previous_config,
        "data_capture": capture, "deployment_config": blue_green if existing else None,
        "alarms": fleet_alarms, "autoscaling": None,
        "deployed_at": now.isoformat(timespec="seconds"), "status": "Creating" if not existing else "Updating",
    }
    try:
        final = wait_for_endpoint(client, settings.endpoint_name, settings.wait_timeout_seconds,
                                  settings.poll_seconds, sleep)
    except DeployError as error:
        raise DeployError(str(error), {**record, "status": "Failed", "failure_reason": str(error)}) from error
    if settings.scaling.enabled:  # the serving fleet scales, whether the update went through or was rolled back
        record["autoscaling"] = register_scaling(autoscaling, settings.endpoint_name, VARIANT_NAME, settings.scaling)
    if final.get("EndpointConfigName") != name:
        reason = final.get("FailureReason") or "check the rollback alarms"
        message = (f"endpoint {settings.endpoint_name} is InService on {final.get('EndpointConfigName')}, not on "
                   f"{name}: the update was rolled back ({reason})")
        raise DeployError(message, {**record, "status": "RolledBack", "failure_reason": message})
    if previous_config and settings.alarms.enabled:
        record["deleted_alarms"] = delete_fleet_alarms(cloudwatch, previous_config)
    return {**record, "status": final["EndpointStatus"], "endpoint_arn": final.get("EndpointArn", "")}


def guard_new_fleet(cloudwatch: Any, settings: DeploySettings, config_name: str) -> list[str]:
    """Create the new fleet's alarms (error rate, latency) when thresholds are set; their names."""
    if not settings.alarms.enabled:
        return []
    names = create_fleet_alarms(cloudwatch, settings.endpoint_name, VARIANT_NAME, config_name, settings.alarms)
    print(f"deploy: created alarms {', '.join(names)} on the {config_name} fleet", flush=True)
    return names


def write_record(output_dir: Path, record: dict[str, Any]) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "deployment.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser(ARGUMENTS, DESCRIPTION, separator=FLAG_SEPARATOR).parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> DeploySettings:
    return DeploySettings(
        model_package_arn=args.model_package_arn, endpoint_name=args.endpoint_name,
        instance_type=args.instance_type, instance_count=args.instance_count, role_arn=args.role_arn,
        capture_percent=args.capture_percent, capture_s3_uri=args.capture_s3_uri,
        traffic_routing=args.traffic_routing, canary_percent=args.canary_percent,
        linear_step_percent=args.linear_step_percent, wait_interval_seconds=args.wait_interval_seconds,
        termination_wait_seconds=args.termination_wait_seconds,
        rollback_alarms=[a.strip() for a in args.rollback_alarms.split(",") if a.strip()],
        capture_kms_key_id=args.capture_kms_key_id,
        alarms=AlarmSettings(args.alarm_max_error_rate, args.alarm_max_latency_ms, args.alarm_period_seconds,
                             args.alarm_evaluation_periods),
        scaling=ScalingSettings(args.autoscaling_min, args.autoscaling_max, args.invocations_per_instance),
        allow_unapproved=args.allow_unapproved, wait_timeout_seconds=args.wait_timeout, poll_seconds=args.poll_seconds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from_args(args)
    try:
        check_settings(settings)  # bad arguments fail before any AWS client exists
        record = deploy(boto3.client("sagemaker"), settings,
                        cloudwatch=boto3.client("cloudwatch") if settings.alarms.enabled else None,
                        autoscaling=boto3.client("application-autoscaling") if settings.scaling.enabled else None)
    except DeployError as error:
        if error.record is not None:
            write_record(args.output_dir, error.record)
        print(f"deploy: error: {error}", file=sys.stderr)
        return 1
    path = write_record(args.output_dir, record)
    print(f"deploy: endpoint {record['endpoint_name']} InService on {record['endpoint_config_name']}; wrote {path}")
    return 0

