"""Run a pipeline: upsert + start on SageMaker, or execute the same definition locally."""
from __future__ import annotations

from typing import Any, Callable

from pipelines.backend import Backend, RunOutcome, aws_tags
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
    """Build the pipeline and run it on the backend (locally: its definition JSON on the embedded runtime)."""
    return backend.execute(build_pipeline(kind, config, backend), config, parameters, echo, wait)


def upsert(kind: PipelineKind, config: Config, backend: Backend) -> Any:
    """Create or update the pipeline on SageMaker with the project's role and tags."""
    pipeline = build_pipeline(kind, config, backend)
    pipeline.upsert(role_arn=config.project.role_arn, tags=aws_tags(config))
    return pipeline
