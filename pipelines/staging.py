"""Put what the pipelines read where their parameter defaults point (pipelines/s3_layout.py).

`stage_pipeline_inputs` is what every start needs and the CLI, `run-pipeline` (buildspec.yml) and
`continuum schedule` stage before they upsert: the bucket, the benchmark suites, the empty-replay and incoming
markers and the base model. A run's data is the pipeline's own input: InputDataUri defaults to the incoming/
prefix; `continuum run` also stages data.source under a content-addressed prefix and passes it.
Local paths are uploaded under content-addressed prefixes (the same content → the same URI); `s3://` URIs
are used as they are, except benchmark suites: every entry of evaluation.suites (a local folder, an s3://
prefix or a repository suite name) is copied under the one prefix both pipelines read. Locally "S3" is the
folder stand-in; the code is the same.
"""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipelines import s3_layout
from pipelines.backend import Backend
from pipelines.config import Config
from pipelines.paths import BENCHMARKS_DIR
from pipelines.s3_transfer import download_prefix, stage_directory, upload_directory

# data.source schemes other than s3:// and local paths: scheme → write(source, folder) puts its files there.
# The demo registers its sample company data, sample://round-N (pipelines/demo/__init__.py).
DATA_SOURCE_WRITERS: dict[str, Callable[[str, Path], object]] = {}
SUITE_FILE = "suite.yaml"


@dataclass(frozen=True)
class StagedInputs:
    input_data_uri: str
    base_model_uri: str

    def parameters(self) -> dict[str, str]:
        return {"InputDataUri": self.input_data_uri, "BaseModelUri": self.base_model_uri}


def ensure_bucket(backend: Backend, bucket: str) -> None:
    from botocore.exceptions import ClientError

    s3 = backend.client("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        region = s3.meta.region_name
        # Without a LocationConstraint S3 puts the bucket in us-east-1, whatever the client's region.
        placement = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **placement)


def stage_data(backend: Backend, config: Config, source: str) -> str:
    if source.startswith("s3://"):
        return source
    write = next((writer for scheme, writer in DATA_SOURCE_WRITERS.items() if source.startswith(scheme)), None)
    if write is not None:
        with tempfile.TemporaryDirectory(prefix="continuum-source-") as tmp:
            write(source, Path(tmp))
            return stage_directory(backend, Path(tmp), s3_layout.data_uri(config))
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data.source: {source} does not exist (expected a local path, s3:// URI or sample://round-N)")
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="continuum-data-") as tmp:
            (Path(tmp) / path.name).write_bytes(path.read_bytes())
            return stage_directory(backend, Path(tmp), s3_layout.data_uri(config))
    return stage_directory(backend, path, s3_layout.data_uri(config))


def object_exists(backend: Backend, uri: str) -> bool:
    from botocore.exceptions import ClientError

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        backend.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def stage_base_model(
    backend: Backend, config: Config, build_demo_model: Callable[[], Path] | None = None
) -> str:
    """The base model at BaseModelUri's default (s3_layout.base_model_uri): an s3:// URI as it is; a local folder
    uploaded under its content hash; a hub snapshot downloaded and uploaded once (its config.json goes last: once
    there, the snapshot is complete); unset: the local stand-in that `build_demo_model` builds, replacing what
    the stand-in folder held."""
    base, uri = config.model.base_model, s3_layout.base_model_uri(config)
    if base is None:
        if build_demo_model is None:
            raise ValueError("model.base_model is not set: give an HF model id, a local path or an s3:// URI")
        folder = build_demo_model()
        staged = upload_directory(backend, folder, uri)
        _remove_others(backend, uri, {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()})
        return staged
    if base.startswith("s3://"):
        return uri
    path = Path(base).expanduser()
    if path.is_dir():
        return upload_directory(backend, path, uri)
    if not object_exists(backend, f"{uri}/config.json"):
        upload_directory(backend, _hub_snapshot(base), uri, last="config.json")
    return uri


def _hub_snapshot(model_id: str) -> Path:
    """Download an HF hub model (needs network and `huggingface_hub`; never used by the demo or tests)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=model_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))


def suite_folders(root: Path) -> dict[str, Path]:
    """Suite folders at or under `root`, keyed by the name their suite.yaml declares (else the folder's)."""
    import yaml

    found: dict[str, Path] = {}
    for suite_file in sorted(root.rglob(SUITE_FILE)):
        try:
            declared = yaml.safe_load(suite_file.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{suite_file}: not valid YAML: {exc}") from exc
        name = declared.get("name") if isinstance(declared, dict) and isinstance(declared.get("name"), str) else None
        name = name or suite_file.parent.name
        if name in found:
            raise ValueError(f"evaluation.suites: suite name {name!r} declared by both {found[name]} and {suite_file.parent}")
        found[name] = suite_file.parent
    return found


def _entry_folder(backend: Backend, entry: str, scratch: Path) -> Path:
    """One evaluation.suites entry as a local folder: an s3:// prefix is downloaded, a bare name is a repo suite."""
    if entry.startswith("s3://"):
        return download_prefix(backend.client("s3"), entry, scratch / hashlib.sha256(entry.encode()).hexdigest()[:12])
    path = Path(entry).expanduser() if ("/" in entry or entry.startswith(".")) else BENCHMARKS_DIR / entry
    if not path.exists():
        raise FileNotFoundError(f"evaluation.suites: {entry!r} is neither a suite folder nor a suite in "
                                f"{BENCHMARKS_DIR} ({path} does not exist)")
    return path


def stage_benchmarks(backend: Backend, config: Config) -> dict[str, str]:
    """Put every suite of evaluation.suites under the prefix both pipelines read (s3_layout.benchmarks_uri), and
    remove what an earlier run left there: the prefix holds exactly this list. Returns suite name → URI."""
    uri = s3_layout.benchmarks_uri(config)
    staged: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="continuum-suites-") as tmp:
        for entry in config.evaluation.suites:
            folders = suite_folders(_entry_folder(backend, entry, Path(tmp)))
            if not folders:
                raise FileNotFoundError(f"evaluation.suites: {entry!r} holds no {SUITE_FILE}")
            for name, folder in folders.items():
                if name in staged:
                    raise ValueError(f"evaluation.suites: two suites are named {name!r} ({entry!r} repeats one)")
                staged[name] = upload_directory(backend, folder, f"{uri}/{name}")
    from pipelines.feedback import FEEDBACK_SUITE, stage_feedback_suite  # corrections people made: a suite too

    feedback = stage_feedback_suite(backend, config, staged)
    if feedback:
        staged[FEEDBACK_SUITE] = feedback
    _remove_other_suites(backend, uri, set(staged))
    return staged


def _remove_other_suites(backend: Backend, uri: str, keep: set[str]) -> None:
    _remove_others(backend, uri, keep, lambda relative: relative.split("/", 1)[0])


def _remove_others(backend: Backend, uri: str, keep: set[str], name: Callable[[str], str] = str) -> None:
    """Delete the objects under `uri/` whose `name` (of the key relative to the prefix) is not in `keep`."""
    bucket, _, prefix = f"{uri}/".removeprefix("s3://").partition("/")
    s3 = backend.client("s3")
    stale = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
             for item in page.get("Contents", []) if name(item["Key"][len(prefix):]) not in keep]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in stale[start:start + 1000]]})


def stage_empty_replay(backend: Backend, config: Config) -> str:
    """The marker-only prefix a first version replays from (S3 inputs cannot be empty prefixes)."""
    uri = s3_layout.empty_replay_uri(config)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    backend.client("s3").put_object(Bucket=bucket, Key=f"{key}/_EMPTY", Body=b"no previous training data\n")
    return uri


def stage_incoming_marker(backend: Backend, config: Config) -> str:
    """The incoming/ prefix with its marker: a SageMaker input cannot be an empty prefix, so with the marker alone
    there the prepare step starts, finds no data and the run ends in the FailStep NoInputData (not a failed job)."""
    uri = s3_layout.incoming_uri(config)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    text = (f"Drop each round's raw data files (JSONL, JSON, CSV, TSV, text, Markdown, Parquet) under {uri}/ and "
            f"start {config.training_pipeline_name}: its InputDataUri defaults to this prefix. The prepare step "
            f"skips this file; keep it.\n")
    backend.client("s3").put_object(Bucket=bucket, Key=f"{key}/{s3_layout.INCOMING_MARKER}", Body=text.encode())
    return uri


def stage_pipeline_inputs(
    backend: Backend, config: Config, build_demo_model: Callable[[], Path] | None = None
) -> str:
    """What every execution reads at its parameters' defaults, except this round's data: the bucket, the suites,
    the empty-replay and incoming markers and the base model (its URI is returned)."""
    ensure_bucket(backend, config.project.bucket)
    stage_benchmarks(backend, config)
    stage_empty_replay(backend, config)
    stage_incoming_marker(backend, config)
    return stage_base_model(backend, config, build_demo_model)


def stage_training_inputs(
    backend: Backend, config: Config, build_demo_model: Callable[[], Path] | None = None
) -> StagedInputs:
    """stage_pipeline_inputs, and data.source (content-addressed under data/, with the feedback corrections) as
    this run's InputDataUri."""
    from pipelines.feedback import with_feedback  # corrections people made become rows of the next data version

    base_model_uri = stage_pipeline_inputs(backend, config, build_demo_model)
    return StagedInputs(
        input_data_uri=with_feedback(backend, config, stage_data(backend, config, config.data.source)),
        base_model_uri=base_model_uri,
    )

