"""Waiting on a SageMaker execution (moto lacks list_pipeline_execution_steps: botocore Stubber)."""
from __future__ import annotations

import boto3
from botocore.stub import Stubber

from pipelines.backend import wait_for_execution

ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc123def456"


def _steps(*pairs: tuple[str, str]) -> dict:
    return {"PipelineExecutionSteps": [{"StepName": name, "StepStatus": status} for name, status in pairs]}


def test_wait_reports_each_step_change_until_the_execution_ends() -> None:
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    stubber = Stubber(client)
    request = {"PipelineExecutionArn": ARN}
    stubber.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Executing"}, request)
    stubber.add_response("list_pipeline_execution_steps", _steps(("PrepareData", "Executing")), request)
    stubber.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Executing"}, request)
    stubber.add_response("list_pipeline_execution_steps", _steps(("TrainModel", "Executing"), ("PrepareData", "Succeeded")), request)
    stubber.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Failed"}, request)
    stubber.add_response(
        "list_pipeline_execution_steps",
        _steps(("FailQualityThreshold", "Failed"), ("TrainModel", "Succeeded"), ("PrepareData", "Succeeded")),
        request,
    )
    lines: list[str] = []
    with stubber:
        assert wait_for_execution(client, ARN, lines.append, poll_seconds=0) == "Failed"
    stubber.assert_no_pending_responses()
    assert lines == [
        "  PrepareData: Executing",
        "  TrainModel: Executing",
        "  PrepareData: Succeeded",
        "  FailQualityThreshold: Failed",
        "  TrainModel: Succeeded",
    ]
