"""Config values that validate but cannot act on AWS: refused before anything is upserted or started there.

The local runtime runs any of them (the demo bakes 2 s on a one-instance fleet); SageMaker does not. Its rules,
from the API reference (TrafficRoutingConfig, CapacitySize) and CloudWatch: a canary is at most half of the new
fleet and a linear step 10-50 % of it, so either needs two instances or more; endpoint metrics are per minute,
so an alarm period is a multiple of 60 s; an alarm only rolls a deployment back while the bake lasts, so the bake
must be at least period x evaluation periods; auto scaling may not shrink the fleet below what a shift needs.
"""
from __future__ import annotations

from pipelines.config import Config, ConfigError, ProductionConfig

METRIC_PERIOD_SECONDS = 60  # AWS/SageMaker endpoint metrics: one datapoint a minute
MAX_CANARY_PERCENT = 50
LINEAR_STEP_PERCENT = (10, 50)


def blue_green_problems(production: ProductionConfig) -> list[str]:
    """Why a production blue/green update with these values cannot work on SageMaker; each names its fields."""
    field = "deploy.production"
    problems: list[str] = []
    routing, count = production.traffic_routing, production.instance_count
    if routing == "CANARY":
        if count < 2:
            problems.append(f"{field}.traffic_routing CANARY needs {field}.instance_count >= 2 (got {count}): a canary "
                            f"is at most half of the new fleet, so one instance cannot hold one")
        if production.canary_percent > MAX_CANARY_PERCENT:
            problems.append(f"{field}.canary_percent must be at most {MAX_CANARY_PERCENT} on AWS (got "
                            f"{production.canary_percent}): SageMaker's CanarySize is at most half of the fleet")
    if routing == "LINEAR":
        low, high = LINEAR_STEP_PERCENT
        if count < 2:
            problems.append(f"{field}.traffic_routing LINEAR needs {field}.instance_count >= 2 (got {count})")
        if not low <= production.linear_step_percent <= high:
            problems.append(f"{field}.linear_step_percent must be {low} to {high} on AWS (got "
                            f"{production.linear_step_percent}): SageMaker's LinearStepSize")
    alarms = production.alarms
    if alarms.period_seconds % METRIC_PERIOD_SECONDS:
        problems.append(f"{field}.alarms.period_seconds must be a multiple of {METRIC_PERIOD_SECONDS} (got "
                        f"{alarms.period_seconds}): SageMaker publishes endpoint metrics once a minute")
    watching = alarms.max_error_rate >= 0 or alarms.max_latency_ms >= 0
    window = alarms.period_seconds * alarms.evaluation_periods
    if routing != "ALL_AT_ONCE" and watching and production.bake_seconds < window:
        problems.append(f"{field}.bake_seconds ({production.bake_seconds}) is shorter than {field}.alarms.period_seconds"
                        f" x {field}.alarms.evaluation_periods ({alarms.period_seconds} x {alarms.evaluation_periods} ="
                        f" {window}): the alarms could not fire before the traffic moves on; bake at least {window}")
    scaling = production.autoscaling
    if routing in ("CANARY", "LINEAR") and scaling.max_instances > 0 and scaling.min_instances < 2:
        problems.append(f"{field}.autoscaling.min_instances must be >= 2 with {field}.traffic_routing {routing} (got "
                        f"{scaling.min_instances}): a fleet scaled down to one instance cannot take a shift")
    return problems


def aws_problems(config: Config, training: bool = True) -> list[str]:
    """Everything in `config` that stops it from working on AWS (empty: nothing found); `training`: the training
    pipeline runs too (it needs a base model)."""
    problems: list[str] = []
    if training and config.model.base_model is None:
        problems.append("model.base_model is not set: on AWS give an HF model id (staged once to S3), an s3:// URI "
                        "or a local model folder")
    production = config.deploy.production
    if production is not None and production.enabled:
        problems += blue_green_problems(production)
    return problems


def check_for_aws(config: Config, source: str = "config", training: bool = True) -> None:
    """Raise ConfigError listing every problem `aws_problems` finds (`source`: the config file, for the message)."""
    problems = aws_problems(config, training)
    if problems:
        lines = "\n".join(f"  {problem}" for problem in problems)
        raise ConfigError(f"{source}: cannot run on AWS as configured:\n{lines}")
