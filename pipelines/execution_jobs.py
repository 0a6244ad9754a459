"""What an execution ran: its parameters and each job step's description, as DescribeTrainingJob /
DescribeProcessingJob report it (on AWS from those calls, locally from the run folder's properties.json, which
holds the same descriptions). Read by the cost (pipelines/cost.py) and the MLflow log (pipelines/tracking.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pipelines.backend import Backend

TRAINING, PROCESSING = "training", "processing"


@dataclass(frozen=True)
class ExecutionJobs:
    pipeline_name: str
    execution_id: str  # local id, or the execution ARN on AWS
    execution_arn: str
    status: str
    started: datetime | None
    parameters: dict[str, Any]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # step name -> job description, with "kind"
    model_package_arn: str | None = None
    backend: str = "local"


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _kind(description: dict[str, Any]) -> str | None:
    return TRAINING if "TrainingJobName" in description else PROCESSING if "ProcessingJobName" in description else None


def local_execution_ids(backend: Backend, pipeline_name: str) -> list[str]:
    """The local executions of a pipeline, oldest first."""
    assert backend.home is not None
    folders = [p.parent for p in (backend.home / "executions" / pipeline_name).glob("*/execution.json")]
    return [p.name for p in sorted(folders, key=lambda p: (p / "execution.json").stat().st_mtime)]


def _local(backend: Backend, pipeline_name: str, execution_id: str) -> ExecutionJobs:
    assert backend.home is not None
    folder = backend.home / "executions" / pipeline_name / execution_id
    if not (folder / "execution.json").is_file():
        raise FileNotFoundError(f"no local execution {execution_id} of {pipeline_name} under {folder.parent}")
    record = json.loads((folder / "execution.json").read_text(encoding="utf-8"))
    path = folder / "properties.json"
    properties = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    jobs = {name: {**value, "kind": _kind(value)} for name, value in properties.items()
            if isinstance(value, dict) and _kind(value)}
    package = next((value["ModelPackageArn"] for value in properties.values()
                    if isinstance(value, dict) and "ModelPackageArn" in value), None)
    starts = [_time(step["started"]) for step in record.get("steps", []) if step.get("started")]
    return ExecutionJobs(pipeline_name, execution_id,
                         f"arn:aws:sagemaker:local:000000000000:pipeline/{pipeline_name}/execution/{execution_id}",
                         record.get("status", "Unknown"), min(starts) if starts else None,
                         dict(record.get("parameters") or {}), jobs, package, "local")


def _aws(backend: Backend, execution_arn: str) -> ExecutionJobs:
    client = backend.client("sagemaker")
    execution = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
    parameters: dict[str, Any] = {}
    for page in client.get_paginator("list_pipeline_parameters_for_execution").paginate(
            PipelineExecutionArn=execution_arn):
        parameters.update({item["Name"]: item["Value"] for item in page["PipelineParameters"]})
    jobs: dict[str, dict[str, Any]] = {}
    package = None
    for page in client.get_paginator("list_pipeline_execution_steps").paginate(PipelineExecutionArn=execution_arn):
        for step in page["PipelineExecutionSteps"]:
            metadata = step.get("Metadata") or {}
            if "TrainingJob" in metadata:
                name = metadata["TrainingJob"]["Arn"].split("/")[-1]
                jobs[step["StepName"]] = {**client.describe_training_job(TrainingJobName=name), "kind": TRAINING}
            elif "ProcessingJob" in metadata:
                name = metadata["ProcessingJob"]["Arn"].split("/")[-1]
                jobs[step["StepName"]] = {**client.describe_processing_job(ProcessingJobName=name), "kind": PROCESSING}
            elif "RegisterModel" in metadata:
                package = metadata["RegisterModel"]["Arn"]
    name = execution_arn.split("/")[1] if "/" in execution_arn else execution.get("PipelineArn", "").split("/")[-1]
    return ExecutionJobs(name, execution_arn, execution_arn, execution["PipelineExecutionStatus"],
                         _time(execution.get("CreationTime")), parameters, jobs, package, "aws")


def execution_jobs(backend: Backend, pipeline_name: str, execution_id: str) -> ExecutionJobs:
    """One execution: `execution_id` a local id, or an execution ARN on AWS."""
    return _local(backend, pipeline_name, execution_id) if backend.is_local else _aws(backend, execution_id)


def recent_executions(backend: Backend, pipeline_name: str, count: int = 20) -> list[ExecutionJobs]:
    """The last `count` executions of a pipeline, oldest first."""
    if backend.is_local:
        return [_local(backend, pipeline_name, eid) for eid in local_execution_ids(backend, pipeline_name)[-count:]]
    client = backend.client("sagemaker")
    try:
        summaries = client.list_pipeline_executions(PipelineName=pipeline_name, SortBy="CreationTime",
                                                    SortOrder="Descending", MaxResults=min(count, 100))
    except client.exceptions.ResourceNotFound:
        return []
    arns = [item["PipelineExecutionArn"] for item in summaries["PipelineExecutionSummaries"]]
    return [_aws(backend, arn) for arn in reversed(arns)]


def job_seconds(description: dict[str, Any]) -> tuple[int, int]:
    """(billable seconds per instance, run seconds): a training job's BillableTimeInSeconds and
    TrainingTimeInSeconds (less billable than run: managed spot's savings); a processing job's start to end."""
    if description["kind"] == TRAINING:
        run = int(description.get("TrainingTimeInSeconds") or 0)
        return int(description.get("BillableTimeInSeconds") or run), run
    start, end = _time(description.get("ProcessingStartTime")), _time(description.get("ProcessingEndTime"))
    seconds = max(0, round((end - start).total_seconds())) if start and end else 0
    return seconds, seconds


def job_instances(description: dict[str, Any]) -> tuple[str, int]:
    resources = (description.get("ResourceConfig") if description["kind"] == TRAINING
                 else description.get("ProcessingResources", {}).get("ClusterConfig")) or {}
    return resources.get("InstanceType", "unknown"), int(resources.get("InstanceCount") or 1)


def now() -> datetime:
    return datetime.now(timezone.utc)
