"""Continuous deployment: an EventBridge rule that starts the deploy pipeline when a version is Approved.

SageMaker emits "SageMaker Model Package State Change" events (source ``aws.sagemaker``) whose
``detail`` carries the package's ``ModelPackageGroupName`` and ``ModelApprovalStatus``; the rule
matches the project's group turning ``Approved`` and targets the deploy pipeline, which deploys the
latest Approved version.
"""
from __future__ import annotations

import json
from typing import Any

from pipelines.backend import aws_tags
from pipelines.config import Config

DETAIL_TYPE = "SageMaker Model Package State Change"


def deploy_pipeline_arn(config: Config, account_id: str) -> str:
    return f"arn:aws:sagemaker:{config.project.region}:{account_id}:pipeline/{config.deploy_pipeline_name}"


def trigger_rule_name(config: Config) -> str:
    return f"{config.deploy_pipeline_name}-on-approval"


def approval_event_pattern(config: Config) -> dict[str, Any]:
    return {"source": ["aws.sagemaker"], "detail-type": [DETAIL_TYPE],
            "detail": {"ModelPackageGroupName": [config.model.model_package_group], "ModelApprovalStatus": ["Approved"]}}


def put_deploy_trigger(events: Any, config: Config, account_id: str, events_role_arn: str,
                       parameters: dict[str, str] | None = None, enabled: bool = True) -> dict[str, Any]:
    """Create or update the rule and its single target (PutRule / PutTargets upsert)."""
    name = trigger_rule_name(config)
    rule = events.put_rule(
        Name=name, EventPattern=json.dumps(approval_event_pattern(config)), State="ENABLED" if enabled else "DISABLED",
        Description=f"Deploy {config.model.model_package_group} versions when they are Approved",
        Tags=aws_tags(config))
    target: dict[str, Any] = {"Id": "deploy-pipeline", "Arn": deploy_pipeline_arn(config, account_id),
                              "RoleArn": events_role_arn}
    if parameters:
        target["SageMakerPipelineParameters"] = {
            "PipelineParameterList": [{"Name": key, "Value": str(value)} for key, value in sorted(parameters.items())]}
    events.put_targets(Rule=name, Targets=[target])
    return {"rule_arn": rule["RuleArn"], "rule_name": name, "event_pattern": approval_event_pattern(config),
            "target": target}
