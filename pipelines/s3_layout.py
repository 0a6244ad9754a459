"""The project's S3 layout: every prefix the pipelines, the CLI and the local runtime agree on, in one place.

Everything lives under ``s3://<project.bucket>/<project.name>`` (``Config.s3_prefix``):

    data/<content hash>/            a round's raw data, staged (``data/latest``: InputDataUri's default)
    base-model/<content hash>/      the base model, staged (a local folder or a hub snapshot)
    benchmarks/<suite>/             evaluation.suites, staged; the training gate and the deploy smoke test read them
    replay/empty/_EMPTY             what a first version replays (S3 inputs cannot be empty prefixes)
    models/                         training jobs' output (model.tar.gz per job)
    checkpoints/<execution id>/     spot training's checkpoints (unless training.checkpoint_s3_uri says otherwise)
    data-capture/<endpoint>/        endpoints' data capture (SageMaker's capture JSONL)
    monitoring/baseline/            the drift baseline the deploy pipeline computes
    monitoring/reports/<endpoint>/<execution id>/report.json    the monitor pipeline's verdicts
"""
from __future__ import annotations

from pipelines.config import Config


def data_uri(config: Config) -> str:
    return f"{config.s3_prefix}/data"


def latest_data_uri(config: Config) -> str:
    return f"{data_uri(config)}/latest"


def base_model_uri(config: Config) -> str:
    return f"{config.s3_prefix}/base-model"


def benchmarks_uri(config: Config) -> str:
    """Where the CLI stages evaluation.suites; the training gate and the deploy smoke test read every suite there."""
    return f"{config.s3_prefix}/benchmarks"


def empty_replay_uri(config: Config) -> str:
    """What a first version replays: a prefix holding only a `_EMPTY` marker (S3 inputs cannot be empty)."""
    return f"{config.s3_prefix}/replay/empty"


def models_uri(config: Config) -> str:
    return f"{config.s3_prefix}/models"


def checkpoints_uri(config: Config) -> str:
    return config.training.checkpoint_s3_uri or f"{config.s3_prefix}/checkpoints"


def data_capture_uri(config: Config) -> str:
    return f"{config.s3_prefix}/data-capture"


def monitoring_baseline_uri(config: Config) -> str:
    """Where the deploy pipeline leaves the baseline of the version it deployed (the monitor reads it)."""
    return f"{config.s3_prefix}/monitoring/baseline"


def monitoring_reports_uri(config: Config, endpoint_name: str | None = None) -> str:
    """Where the monitor pipeline writes a run's report.json (one folder per endpoint, then per execution)."""
    root = f"{config.s3_prefix}/monitoring/reports"
    return f"{root}/{endpoint_name}" if endpoint_name else root
