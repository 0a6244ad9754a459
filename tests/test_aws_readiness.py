"""pipelines/deploy/aws_readiness.py: the production defaults can act on AWS; values SageMaker cannot act on are
refused with the fields named; the demo's local values are refused on AWS and kept locally."""
from __future__ import annotations

from typing import Any

import pytest

from pipelines.config import ConfigError, ProductionConfig, load_config
from pipelines.deploy.aws_readiness import aws_problems, blue_green_problems, check_for_aws

AWS_READY = {"model.base_model": "s3://continuum-demo-artifacts/models/base"}


def _production(**values: Any) -> ProductionConfig:
    return ProductionConfig(endpoint_name="prod", **values)


def test_the_production_defaults_act_on_aws() -> None:
    production = _production()
    assert (production.instance_count, production.canary_percent, production.bake_seconds) == (2, 50, 600)
    assert production.bake_seconds >= production.alarms.period_seconds * production.alarms.evaluation_periods
    assert blue_green_problems(production) == []


@pytest.mark.parametrize(("values", "named"), [
    ({"instance_count": 1}, "deploy.production.traffic_routing CANARY needs deploy.production.instance_count >= 2"),
    ({"canary_percent": 60, "instance_count": 4}, "deploy.production.canary_percent must be at most 50"),
    ({"traffic_routing": "LINEAR", "linear_step_percent": 5}, "deploy.production.linear_step_percent must be 10 to 50"),
    ({"traffic_routing": "LINEAR", "instance_count": 1}, "LINEAR needs deploy.production.instance_count >= 2"),
    ({"alarms": {"period_seconds": 30}}, "deploy.production.alarms.period_seconds must be a multiple of 60"),
    ({"bake_seconds": 119, "alarms": {"evaluation_periods": 2}},
     "deploy.production.bake_seconds (119) is shorter than deploy.production.alarms.period_seconds x "
     "deploy.production.alarms.evaluation_periods (60 x 2 = 120)"),
    ({"autoscaling": {"min_instances": 1, "max_instances": 4}}, "deploy.production.autoscaling.min_instances must be >= 2"),
])
def test_values_sagemaker_cannot_act_on_are_named(values: dict[str, Any], named: str) -> None:
    problems = blue_green_problems(_production(**values))
    assert len(problems) == 1 and named in problems[0], problems


def test_what_does_not_apply_is_not_refused() -> None:
    assert blue_green_problems(_production(traffic_routing="ALL_AT_ONCE", instance_count=1, bake_seconds=0)) == []
    assert blue_green_problems(_production(bake_seconds=30, alarms={"max_error_rate": -1, "max_latency_ms": -1})) == []
    assert blue_green_problems(_production(bake_seconds=120, alarms={"evaluation_periods": 2})) == []


def test_the_demo_keeps_its_local_values_and_is_refused_on_aws() -> None:
    demo = load_config()
    assert (demo.deploy.production.instance_count, demo.deploy.production.bake_seconds) == (1, 2)
    with pytest.raises(ConfigError) as refused:
        check_for_aws(demo, "demo.yaml")
    message = str(refused.value)
    assert message.startswith("demo.yaml: cannot run on AWS as configured:")
    assert "model.base_model is not set" in message and "deploy.production.instance_count >= 2 (got 1)" in message
    ready = load_config(None, {**AWS_READY, "deploy.production.instance_count": 2, "deploy.production.bake_seconds": 60,
                               "deploy.production.autoscaling.min_instances": 2})
    assert aws_problems(ready) == []
    assert aws_problems(load_config(None, {"deploy.production.enabled": False}), training=False) == []
