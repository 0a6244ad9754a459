"""The monitor pipeline: one processing step that checks an endpoint's captured traffic for drift.

``{project}-monitor`` runs ``steps/monitor.py check`` over ``{DataCaptureS3Uri}/{endpoint}`` against
the baseline the deploy pipeline wrote, and writes statistics.json, constraint_violations.json and
report.json to ``monitoring/reports/{endpoint}/{execution id}/`` (pipelines/s3_layout.py). It is scheduled with an
EventBridge rule (``continuum monitor schedule``) and runs locally like any pipeline.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join
from sagemaker.workflow.parameters import Parameter, ParameterFloat, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import ProcessingStep

from pipelines import s3_layout
from pipelines.backend import aws_tags
from pipelines.config import Config
from pipelines.paths import STEPS_DIR
from pipelines.processors import step_processor
from pipelines.schedule import validate_schedule_expression
from pipelines.step_contracts import config_argv


def monitor_pipeline_name(config: Config) -> str:
    return f"{config.project.name}-monitor"


@dataclass(frozen=True)
class MonitorParameters:
    endpoint_name: ParameterString
    capture_s3_uri: ParameterString
    baseline_uri: ParameterString
    since_hours: ParameterFloat

    def as_list(self) -> list[Parameter]:
        return [getattr(self, field.name) for field in fields(self)]


def monitor_parameters(config: Config) -> MonitorParameters:
    return MonitorParameters(
        endpoint_name=ParameterString("MonitoredEndpointName", default_value=config.deploy.monitored_endpoint),
        capture_s3_uri=ParameterString("DataCaptureS3Uri", default_value=s3_layout.data_capture_uri(config)),
        baseline_uri=ParameterString("MonitoringBaselineUri", default_value=s3_layout.monitoring_baseline_uri(config)),
        since_hours=ParameterFloat("SinceHours", default_value=config.deploy.monitoring.since_hours),
    )


def monitor_pipeline(config: Config, session: PipelineSession) -> Pipeline:
    params = monitor_parameters(config)
    processor = step_processor(config, session, "monitor", config.processing.instance_type)
    reports = Join(on="/", values=[s3_layout.monitoring_reports_uri(config), params.endpoint_name,
                                   ExecutionVariables.PIPELINE_EXECUTION_ID])
    step_args = processor.run(
        code="monitor.py",
        source_dir=str(STEPS_DIR),
        inputs=[ProcessingInput(input_name="baseline", source=params.baseline_uri,
                                destination="/opt/ml/processing/input/baseline"),
                ProcessingInput(input_name="capture", source=Join(on="/", values=[params.capture_s3_uri,
                                                                                   params.endpoint_name]),
                                destination="/opt/ml/processing/input/capture")],
        outputs=[ProcessingOutput(output_name="monitoring", source="/opt/ml/processing/output/monitoring",
                                  destination=reports)],
        arguments=["check", *config_argv("monitor:check", config, {
            "baseline_dir": "/opt/ml/processing/input/baseline", "capture_dir": "/opt/ml/processing/input/capture",
            "endpoint_name": params.endpoint_name, "since_hours": params.since_hours.to_string(),
            "create_alarm": True, "output_dir": "/opt/ml/processing/output/monitoring"})],
    )
    return Pipeline(name=monitor_pipeline_name(config), parameters=params.as_list(),
                    steps=[ProcessingStep(name="MonitorTraffic", step_args=step_args)], sagemaker_session=session)


def put_monitor_schedule(events: Any, config: Config, account_id: str, expression: str, events_role_arn: str,
                         retrain_on_violation: bool = False, enabled: bool = True) -> dict[str, Any]:
    """EventBridge: run the monitor pipeline on a schedule; optionally retrain when its violation alarm fires."""
    region, tags = config.project.region, aws_tags(config)
    state = "ENABLED" if enabled else "DISABLED"
    name = f"{monitor_pipeline_name(config)}-schedule"
    rule = events.put_rule(Name=name, ScheduleExpression=validate_schedule_expression(expression), State=state,
                           Description=f"Drift monitoring of {config.deploy.monitored_endpoint}", Tags=tags)
    events.put_targets(Rule=name, Targets=[{
        "Id": "monitor-pipeline", "RoleArn": events_role_arn,
        "Arn": f"arn:aws:sagemaker:{region}:{account_id}:pipeline/{monitor_pipeline_name(config)}"}])
    result: dict[str, Any] = {"schedule_rule": rule["RuleArn"], "schedule": expression}
    if retrain_on_violation:
        alarm = f"{config.deploy.monitored_endpoint}-monitoring-violations"
        retrain = f"{monitor_pipeline_name(config)}-retrain-on-violation"
        pattern = {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
                   "resources": [f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{alarm}"],
                   "detail": {"state": {"value": ["ALARM"]}}}
        retrain_rule = events.put_rule(Name=retrain, EventPattern=json.dumps(pattern), State=state, Tags=tags,
                                       Description=f"Retrain {config.training_pipeline_name} when {alarm} fires")
        events.put_targets(Rule=retrain, Targets=[{
            "Id": "training-pipeline", "RoleArn": events_role_arn,
            "Arn": f"arn:aws:sagemaker:{region}:{account_id}:pipeline/{config.training_pipeline_name}"}])
        result.update({"retrain_rule": retrain_rule["RuleArn"], "retrain_event_pattern": pattern})
    return result
