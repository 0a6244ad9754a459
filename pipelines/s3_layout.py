"""The project's S3 layout: every prefix the pipelines, the CLI and the local runtime agree on, in one place.

Everything lives under ``s3://<project.bucket>/<project.name>`` (``Config.s3_prefix``):

    incoming/                       where a round's raw data is dropped (InputDataUri's default); `_CONTINUUM_INCOMING`
                                    marks it (prepare skips that file; with nothing else there the run ends in
                                    the FailStep NoInputData)
    data/<content hash>/            a round's raw data staged by `continuum run` from data.source
    base-model/...                  the base model (BaseModelUri's default, ``base_model_uri``): hub/<id>/ (a hub
                                    snapshot), local/<content hash>/ (a local folder), stand-in/ (the local stand-in
                                    when model.base_model is unset); an s3:// model.base_model is used where it is
    benchmarks/<suite>/             evaluation.suites, staged; the training gate and the deploy smoke test read them
    replay/empty/_EMPTY             what a first version replays (S3 inputs cannot be empty prefixes)
    models/                         training jobs' output (model.tar.gz per job)
    checkpoints/<execution id>/     spot training's checkpoints (unless training.checkpoint_s3_uri says otherwise)
    data-capture/<endpoint>/        endpoints' data capture (SageMaker's capture JSONL)
    monitoring/baseline/            the drift baseline the deploy pipeline computes
    monitoring/reports/<endpoint>/<execution id>/report.json    the monitor pipeline's verdicts
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from pipelines.config import Config

INCOMING_MARKER = "_CONTINUUM_INCOMING"  # steps/prepare/contract.py skips the same name


def content_digest(directory: Path) -> str:
    """A short content hash of every file (relative path + bytes) under `directory`: the same content, the same URI."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def data_uri(config: Config) -> str:
    return f"{config.s3_prefix}/data"


def incoming_uri(config: Config) -> str:
    """Where each round's raw data is dropped: the InputDataUri default of every execution that names none (the
    schedule, buildspec.yml's run-pipeline)."""
    return f"{config.s3_prefix}/incoming"


def base_model_root(config: Config) -> str:
    return f"{config.s3_prefix}/base-model"


def base_model_uri(config: Config) -> str:
    """The BaseModelUri default, decided by model.base_model alone: an s3:// URI as it is; a local folder under its
    content hash; a hub id under its name (its snapshot is staged once, where the CLI runs: training jobs need no
    hub access and every round starts from the same weights); unset: the local stand-in's folder."""
    base, root = config.model.base_model, base_model_root(config)
    if base is None:
        return f"{root}/stand-in"
    if base.startswith("s3://"):
        return base.rstrip("/")
    path = Path(base).expanduser()
    if path.is_dir():
        return f"{root}/local/{content_digest(path)}"
    return f"{root}/hub/{base.strip('/')}"


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
