"""Run a pipeline: upsert + start on SageMaker, or execute the same definition locally."""
from __future__ import annotations

from typing import Any, Callable

from pipelines.backend import Backend, RunOutcome, aws_tags, wait_for_execution
from pipelines.config import Config
from pipelines.definitions import PipelineKind, build_pipeline


def run_staged(kind: PipelineKind, config: Config, backend: Backend, parameters: dict[str, Any] | None = None,
               **options: Any) -> RunOutcome:
    """Stage what the pipeline reads, then run it (`options`: run_pipeline's echo, wait): the training pipeline's
    data, base model and suites (the staged URIs become parameters, `parameters` override them); the suites the
    deploy pipeline's smoke test reads."""
    from pipelines.staging import ensure_bucket, stage_benchmarks, stage_training_inputs

    if kind == "training":
        staged = stage_training_inputs(backend, config, backend.stand_in_base_model(config))
        parameters = {**staged.parameters(), **(parameters or {})}
    else:
        ensure_bucket(backend, config.project.bucket)
        stage_benchmarks(backend, config)
    return run_pipeline(kind, config, backend, parameters, **options)


def run_pipeline(
    kind: PipelineKind,
    config: Config,
    backend: Backend,
    parameters: dict[str, Any] | None = None,
    echo: Callable[[str], None] = print,
    wait: bool = True,
) -> RunOutcome:
    """Build the pipeline and run it on the backend (locally: its definition JSON on the embedded runtime); the cost
    estimate before, the cost and MLflow run after (pipelines/run_records.py)."""
    from pipelines.run_records import after_run, before_run

    parameters = before_run(kind, config, backend, dict(parameters or {}), echo)
    outcome = backend.execute(build_pipeline(kind, config, backend), config, parameters, echo, wait)
    after_run(kind, config, backend, outcome, echo)
    return outcome


def upsert(kind: PipelineKind, config: Config, backend: Backend) -> Any:
    """Create or update the pipeline on SageMaker with the project's role and tags."""
    pipeline = build_pipeline(kind, config, backend)
    pipeline.upsert(role_arn=config.project.role_arn, tags=aws_tags(config))
    return pipeline


def resume(config: Config, backend: Backend, execution: str, echo: Callable[[str], None] = print,
           wait: bool = True) -> RunOutcome:
    """SageMaker's RetryPipelineExecution: run a Failed execution again from its failed steps, keeping the steps
    that succeeded (`execution`: a local execution id, or an execution ARN)."""
    if backend.is_local:
        return _run_locally(backend, config, echo, lambda runtime: runtime.retry(execution))
    import uuid

    if not execution.startswith("arn:"):
        raise ValueError(f"--resume with --aws needs the execution ARN, got {execution!r}")
    client = backend.client("sagemaker")
    client.retry_pipeline_execution(PipelineExecutionArn=execution, ClientRequestToken=uuid.uuid4().hex)
    echo(f"retrying {execution}")
    status = wait_for_execution(client, execution, echo) if wait else "Executing"
    return RunOutcome(pipeline_name=execution.split("/")[1], execution_id=execution, status=status)


def run_selected(kind: PipelineKind, config: Config, backend: Backend, steps: list[str], reference: str | None,
                 parameters: dict[str, Any] | None = None, echo: Callable[[str], None] = print,
                 wait: bool = True) -> RunOutcome:
    """Selective execution: run only `steps`; what they depend on comes from the `reference` execution (a local id
    or an execution ARN), as SageMaker's SelectiveExecutionConfig does."""
    pipeline = build_pipeline(kind, config, backend)
    if backend.is_local:
        arn = reference if reference is None or reference.startswith("arn:") else \
            f"arn:aws:sagemaker:local:000000000000:pipeline/{pipeline.name}/execution/{reference}"
        selective = {"SelectedSteps": [{"StepName": step} for step in steps],
                     **({"SourcePipelineExecutionArn": arn} if arn else {})}
        definition = pipeline.definition()
        return _run_locally(backend, config, echo,
                            lambda runtime: runtime.execute(definition, pipeline.name, parameters, selective=selective))
    from sagemaker.workflow.selective_execution_config import SelectiveExecutionConfig

    pipeline.upsert(role_arn=config.project.role_arn, tags=aws_tags(config))
    execution = pipeline.start(parameters=parameters or {}, selective_execution_config=SelectiveExecutionConfig(
        selected_steps=steps, source_pipeline_execution_arn=reference))
    echo(f"started {pipeline.name} (steps {', '.join(steps)}): {execution.arn}")
    status = wait_for_execution(backend.client("sagemaker"), execution.arn, echo) if wait else "Executing"
    return RunOutcome(pipeline_name=pipeline.name, execution_id=execution.arn, status=status)


def _run_locally(backend: Backend, config: Config, echo: Callable[[str], None], call: Callable[[Any], Any]) -> RunOutcome:
    from pipelines.local.api_server import serve_local_api
    from pipelines.local.runtime import LocalPipelineRuntime

    assert backend.home is not None
    with serve_local_api(backend.local_api, config.project.region) as env:
        result = call(LocalPipelineRuntime(backend.home, backend.client("sagemaker"), env, echo))
    return RunOutcome(pipeline_name=result.pipeline_name, execution_id=result.execution_id, status=result.status,
                      failure_reason=result.failure_reason, directory=result.directory,
                      steps=tuple({"name": s.name, "type": s.type, "status": s.status, "seconds": s.seconds,
                                   **s.metadata} for s in result.steps))
