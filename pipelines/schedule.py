"""Scheduled retraining: an EventBridge rule that starts the training pipeline with parameters."""
from __future__ import annotations

import re
from typing import Any

from pipelines.backend import aws_tags
from pipelines.config import Config

_RATE = re.compile(r"^rate\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\)$")
_CRON = re.compile(r"^cron\(\S+( \S+){5}\)$")


def validate_schedule_expression(expression: str) -> str:
    """EventBridge's two forms: `rate(7 days)` or `cron(0 3 ? * MON *)` (six fields)."""
    if _RATE.match(expression) or _CRON.match(expression):
        return expression
    raise ValueError(
        f"schedule expression {expression!r} is not valid: use rate(N minutes|hours|days) "
        "(singular unit for 1) or cron(minutes hours day-of-month month day-of-week year)"
    )


def pipeline_arn(config: Config, account_id: str) -> str:
    return f"arn:aws:sagemaker:{config.project.region}:{account_id}:pipeline/{config.training_pipeline_name}"


def rule_name(config: Config) -> str:
    return f"{config.training_pipeline_name}-schedule"


def put_training_schedule(
    events: Any,
    config: Config,
    account_id: str,
    expression: str,
    events_role_arn: str,
    parameters: dict[str, str] | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """Create or update the rule and its single target (idempotent: PutRule/PutTargets upsert)."""
    name = rule_name(config)
    rule = events.put_rule(
        Name=name,
        ScheduleExpression=validate_schedule_expression(expression),
        State="ENABLED" if enabled else "DISABLED",
        Description=f"Scheduled retraining of {config.training_pipeline_name}",
        Tags=aws_tags(config),
    )
    target: dict[str, Any] = {
        "Id": "training-pipeline",
        "Arn": pipeline_arn(config, account_id),
        "RoleArn": events_role_arn,
    }
    if parameters:
        target["SageMakerPipelineParameters"] = {
            "PipelineParameterList": [{"Name": key, "Value": str(value)} for key, value in sorted(parameters.items())]
        }
    events.put_targets(Rule=name, Targets=[target])
    return {"rule_arn": rule["RuleArn"], "rule_name": name, "target": target, "schedule": expression}
