"""Scheduled retraining: the EventBridge rule and its pipeline target, against moto."""
from __future__ import annotations

from typing import Iterator

import boto3
import pytest
from moto import mock_aws

from pipelines.config import load_config
from pipelines.schedule import put_training_schedule, rule_name, validate_schedule_expression

CONFIG = load_config()
ROLE = "arn:aws:iam::123456789012:role/events-start-pipeline"


@pytest.fixture()
def events() -> Iterator[object]:
    with mock_aws():
        yield boto3.client("events", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")


def test_creates_rule_with_pipeline_target_and_parameters(events) -> None:
    result = put_training_schedule(events, CONFIG, "123456789012", "rate(7 days)", ROLE, {"Epochs": "2", "LoraR": "8"})
    rule = events.describe_rule(Name=rule_name(CONFIG))
    assert rule["ScheduleExpression"] == "rate(7 days)"
    assert rule["State"] == "ENABLED"
    assert result["rule_arn"] == rule["Arn"]
    (target,) = events.list_targets_by_rule(Rule=rule_name(CONFIG))["Targets"]
    assert target["Arn"] == f"arn:aws:sagemaker:us-east-1:123456789012:pipeline/{CONFIG.training_pipeline_name}"
    assert target["RoleArn"] == ROLE
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [
        {"Name": "Epochs", "Value": "2"},
        {"Name": "LoraR", "Value": "8"},
    ]


def test_updating_replaces_schedule_and_keeps_one_target(events) -> None:
    put_training_schedule(events, CONFIG, "123456789012", "rate(7 days)", ROLE)
    put_training_schedule(events, CONFIG, "123456789012", "cron(0 3 ? * MON *)", ROLE, enabled=False)
    rule = events.describe_rule(Name=rule_name(CONFIG))
    assert rule["ScheduleExpression"] == "cron(0 3 ? * MON *)"
    assert rule["State"] == "DISABLED"
    targets = events.list_targets_by_rule(Rule=rule_name(CONFIG))["Targets"]
    assert len(targets) == 1 and "SageMakerPipelineParameters" not in targets[0]


@pytest.mark.parametrize("expression", ["rate(1 day)", "rate(12 hours)", "cron(0 3 ? * MON *)", "cron(15 10 * * ? *)"])
def test_valid_expressions(expression: str) -> None:
    assert validate_schedule_expression(expression) == expression


@pytest.mark.parametrize("expression", ["rate(1 days)", "rate(0 hours)", "every day", "cron(0 3 * *)", "rate(7 weeks)"])
def test_invalid_expressions_are_rejected_with_the_forms(expression: str) -> None:
    with pytest.raises(ValueError, match="rate\\(N minutes"):
        validate_schedule_expression(expression)
