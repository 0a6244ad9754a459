"""Run a pipeline: upsert + start on SageMaker, or execute the same definition locally."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipelines.backend import Backend
from pipelines.config import Config
from pipelines.definitions import PipelineKind, build_pipeline


@dataclass(frozen=True)
class RunOutcome:
    pipeline_name: str
    execution_id: str  # local id, or the execution ARN on AWS
    status: str
    failure_reason: str | None = None
    directory: Path | None = None
    steps: tuple[dict[str, Any], ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.status == "Succeeded"


def run_staged(
    kind: PipelineKind,
    config: Config,
    backend: Backend,
    parameters: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
    wait: bool = True,
) -> RunOutcome:
    """Stage what the pipeline reads, then run it: the training pipeline's data, base model and suites (the
    staged URIs become parameters, `parameters` override them); the suites the deploy pipeline's smoke test reads."""
    from pipelines.staging import ensure_bucket, stage_benchmarks, stage_training_inputs

    if kind == "training":
        staged = stage_training_inputs(backend, config, backend.stand_in_base_model(config))
        parameters = {**staged.parameters(), **(parameters or {})}
    else:
        ensure_bucket(backend, config.project.bucket)
        stage_benchmarks(backend, config)
    return run_pipeline(kind, config, backend, parameters, echo, wait)


def pipeline_name(kind: PipelineKind, config: Config) -> str:
    return config.training_pipeline_name if kind == "training" else config.deploy_pipeline_name


def aws_tags(config: Config) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(config.project.tags.items())]


def run_pipeline(
    kind: PipelineKind,
    config: Config,
    backend: Backend,
    parameters: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
    wait: bool = True,
) -> RunOutcome:
    if backend.is_local:
        return _run_local(kind, config, backend, parameters or {}, echo)
    return _run_aws(kind, config, backend, parameters or {}, echo, wait)


def _run_local(
    kind: PipelineKind, config: Config, backend: Backend, parameters: dict[str, Any], echo: Callable[[str], None]
) -> RunOutcome:
    from pipelines.local.api_server import LocalApiServer, subprocess_env
    from pipelines.local.runtime import LocalPipelineRuntime

    assert backend.home is not None
    definition = build_pipeline(kind, config, backend).definition()
    with LocalApiServer(backend.local_api) as url:
        runtime = LocalPipelineRuntime(
            backend.home, backend.client("sagemaker"), subprocess_env(url, region=config.project.region), echo
        )
        result = runtime.execute(definition, pipeline_name(kind, config), parameters)
    return RunOutcome(
        pipeline_name=result.pipeline_name,
        execution_id=result.execution_id,
        status=result.status,
        failure_reason=result.failure_reason,
        directory=result.directory,
        steps=tuple(
            {"name": s.name, "type": s.type, "status": s.status, "seconds": s.seconds, **s.metadata} for s in result.steps
        ),
    )


def upsert(kind: PipelineKind, config: Config, backend: Backend) -> Any:
    """Create or update the pipeline on SageMaker with the project's role and tags."""
    pipeline = build_pipeline(kind, config, backend)
    pipeline.upsert(role_arn=config.project.role_arn, tags=aws_tags(config))
    return pipeline


def _run_aws(
    kind: PipelineKind,
    config: Config,
    backend: Backend,
    parameters: dict[str, Any],
    echo: Callable[[str], None],
    wait: bool,
) -> RunOutcome:
    pipeline = upsert(kind, config, backend)
    execution = pipeline.start(parameters=parameters)
    arn = execution.arn
    echo(f"started {pipeline.name}: {arn}")
    status = "Executing"
    if wait:
        status = wait_for_execution(backend.client("sagemaker"), arn, echo)
    return RunOutcome(pipeline_name=pipeline.name, execution_id=arn, status=status)


def wait_for_execution(client: Any, arn: str, echo: Callable[[str], None], poll_seconds: float = 30) -> str:
    """Poll a SageMaker execution until it ends, echoing each step's status change."""
    seen: dict[str, str] = {}
    while True:
        status = client.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        for step in client.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]:
            if seen.get(step["StepName"]) != step["StepStatus"]:
                seen[step["StepName"]] = step["StepStatus"]
                echo(f"  {step['StepName']}: {step['StepStatus']}")
        if status in ("Succeeded", "Failed", "Stopped"):
            return status
        time.sleep(poll_seconds)
