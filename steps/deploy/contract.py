"""The deploy step's contract: every deploy.py argument, declared once (common/contract.py explains the fields).

deploy.py's parser is built from ARGUMENTS (flags `--capture-percent`, also `--capture_percent`); the deploy
pipeline's DeployEndpoint and DeployProduction steps pass theirs in this order, with these flags
(pipelines/deploy/pipeline.py: step_contracts.config_argv).
Not mechanical, so kept by hand: the pipeline parameters' names (one argument feeds two endpoints:
`instance_type` → EndpointInstanceType and ProductionInstanceType, `wait_interval_seconds` → BakeSeconds) and
the config's defaults (deploy.*, deploy.production.*: tests/test_contracts.py checks the ones that agree; the
production endpoint's traffic routing, bake time and alarm thresholds differ on purpose: a hand run does not
shift traffic or create alarms unless asked).

Standard library and common/contract.py only.
"""
from __future__ import annotations

from pathlib import Path

from common.contract import Argument

FLAG_SEPARATOR = "-"  # the pipeline passes --capture-percent (the parser takes both spellings)
OUTPUT_DIR = Path("/opt/ml/processing/output/deployment")
TRAFFIC_ROUTING_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")


def threshold(text: str) -> float | None:
    """An alarm threshold flag: a number, where a negative one means no alarm."""
    value = float(text)
    return None if value < 0 else value


ARGUMENTS = (
    Argument("model_package_arn", required=True, help="the package to deploy (empty or none → error)"),
    Argument("endpoint_name", required=True),
    Argument("instance_type", required=True, help="e.g. ml.g5.xlarge"),
    Argument("instance_count", int, 1),
    Argument("capture_percent", int, 100, help="data capture sampling %% (0 = no capture)"),
    Argument("capture_s3_uri", str, "", help="DataCaptureConfig.DestinationS3Uri"),
    Argument("capture_kms_key_id", str, "", help="KMS key for the captured data (default: S3's)"),
    Argument("traffic_routing", str, "", choices=("", *TRAFFIC_ROUTING_TYPES),
             help="blue/green update of an existing endpoint (default: SageMaker's standard update)"),
    Argument("canary_percent", int, 10, help="CANARY: capacity %% shifted first"),
    Argument("linear_step_percent", int, 25, help="LINEAR: capacity %% per step"),
    Argument("wait_interval_seconds", int, 300, help="bake time between traffic shifts"),
    Argument("termination_wait_seconds", int, 0, help="keep the old fleet this long"),
    Argument("rollback_alarms", str, "", help="comma-separated CloudWatch alarm names"),
    Argument("alarm_max_error_rate", threshold,
             help="create an alarm on the new fleet's 5XX error rate above this (0..1; negative = none)"),
    Argument("alarm_max_latency_ms", threshold,
             help="create an alarm on the new fleet's average model latency above this (negative = none)"),
    Argument("alarm_period_seconds", int, 60),
    Argument("alarm_evaluation_periods", int, 1),
    Argument("autoscaling_min", int, 1, help="auto scaling: fewest instances"),
    Argument("autoscaling_max", int, 0, help="auto scaling: most instances (0 = no scaling)"),
    Argument("invocations_per_instance", float, 100.0, help="auto scaling target: invocations per instance per minute"),
    Argument("allow_unapproved", default=False, action="store_true", help="deploy a package that is not Approved"),
    Argument("wait_timeout", float, 3600.0, help="seconds to wait for InService"),
    Argument("poll_seconds", float, 15.0),
    Argument("role_arn", required=True, help="execution role of the SageMaker model"),
    Argument("output_dir", Path, OUTPUT_DIR),
)
