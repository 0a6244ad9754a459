"""Feedback closes the loop: a captured answer a person marked wrong, with the right answer they wrote.

Each item is stored under ``<s3 prefix>/feedback/items/<id>.json`` with its provenance (endpoint, capture event,
the file it was captured in, the wrong answer, who marked it and when). From then on every training run
(`pipelines/staging.py`) adds:
- the items as rows of the next data version: ``feedback/feedback.jsonl`` in the staged data (prompt, completion
  and the provenance fields), read by the same prepare step as the company's own files (its ``source`` is that
  file and line);
- the items as cases of the ``feedback`` benchmark suite, staged beside evaluation.suites, which the training
  gate and the deploy smoke test run from then on.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines import s3_layout
from pipelines.backend import Backend
from pipelines.config import Config

FEEDBACK_SUITE = "feedback"
DATA_FILE = "feedback/feedback.jsonl"  # inside the staged data folder
SUITE_YAML = """# Answers people marked wrong on captured traffic, with the answer they wrote (pipelines/feedback.py).
name: feedback
version: "1"
task: qa
prompt_template: "{prompt}"
data: cases.jsonl
metrics: [token_f1, exact_match]
higher_is_better: true
"""


@dataclass(frozen=True)
class Feedback:
    id: str
    prompt: str
    wrong_answer: str
    right_answer: str
    endpoint: str
    event_id: str
    index: int
    inference_time: str
    capture_uri: str
    marked_by: str
    marked_at: str
    comment: str = ""

    def data_row(self) -> dict[str, Any]:
        """The row the prepare step reads (prompt/completion; the rest is provenance it keeps in the source file)."""
        return {"prompt": self.prompt, "completion": self.right_answer, "feedback_id": self.id,
                "endpoint": self.endpoint, "event_id": self.event_id, "captured_answer": self.wrong_answer,
                "marked_by": self.marked_by, "marked_at": self.marked_at}

    def case(self) -> dict[str, str]:
        return {"id": f"feedback.{self.id}", "prompt": self.prompt, "target": self.right_answer}


def feedback_uri(config: Config) -> str:
    return f"{config.s3_prefix}/feedback/items"


def _key(config: Config, item_id: str) -> tuple[str, str]:
    bucket, _, prefix = feedback_uri(config).removeprefix("s3://").partition("/")
    return bucket, f"{prefix}/{item_id}.json"


def record_feedback(backend: Backend, config: Config, exchange: dict[str, Any], right_answer: str, marked_by: str,
                    comment: str = "") -> Feedback:
    """Store one correction of a captured exchange ({"prompt", "answer", "endpoint", "event_id", "index", "at",
    "capture_uri"}); marking the same exchange again replaces the earlier correction."""
    right = right_answer.strip()
    if not right:
        raise ValueError("feedback: write the right answer (it is empty)")
    if right == str(exchange.get("answer", "")).strip():
        raise ValueError("feedback: the right answer is the captured answer itself")
    if not str(exchange.get("prompt", "")).strip():
        raise ValueError("feedback: the captured exchange has no prompt")
    item_id = hashlib.sha256(f"{exchange['endpoint']}/{exchange['event_id']}#{exchange.get('index', 0)}".encode()
                             ).hexdigest()[:16]
    item = Feedback(item_id, str(exchange["prompt"]).strip(), str(exchange.get("answer", "")), right,
                    str(exchange["endpoint"]), str(exchange["event_id"]), int(exchange.get("index", 0)),
                    str(exchange.get("at", "")), str(exchange.get("capture_uri", "")), marked_by,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"), comment.strip())
    bucket, key = _key(config, item_id)
    backend.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(asdict(item), indent=1).encode("utf-8"))
    return item


def list_feedback(backend: Backend, config: Config) -> list[Feedback]:
    """Every stored correction, oldest first (none before the bucket exists)."""
    s3 = backend.client("s3")
    bucket, _, prefix = feedback_uri(config).removeprefix("s3://").partition("/")
    try:
        keys = [item for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
                for item in page.get("Contents", []) if item["Key"].endswith(".json")]
    except s3.exceptions.NoSuchBucket:
        return []
    items = [Feedback(**json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())) for item in keys]
    return sorted(items, key=lambda item: (item.marked_at, item.id))


def write_data_file(items: list[Feedback], folder: Path) -> Path:
    path = folder / DATA_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(item.data_row(), ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    return path


def write_suite(items: list[Feedback], folder: Path, threshold: float | None = None) -> Path:
    """suite.yaml (with the gate's bar on token_f1 when ``threshold`` is set) and one case per correction."""
    folder.mkdir(parents=True, exist_ok=True)
    bar = f"threshold: {threshold}  # feedback.threshold: the gate's suite_thresholds check\n" if threshold is not None else ""
    (folder / "suite.yaml").write_text(SUITE_YAML + bar, encoding="utf-8")
    (folder / "cases.jsonl").write_text("".join(json.dumps(item.case(), ensure_ascii=False) + "\n" for item in items),
                                        encoding="utf-8")
    return folder


def with_feedback(backend: Backend, config: Config, input_data_uri: str) -> str:
    """The staged data plus the feedback rows, staged under its own content hash (the URI itself when there is
    no feedback). Called by staging for every training run."""
    from pipelines.s3_transfer import download_prefix, stage_directory

    items = list_feedback(backend, config)
    if not items:
        return input_data_uri
    with tempfile.TemporaryDirectory(prefix="continuum-feedback-") as tmp:
        folder = download_prefix(backend.client("s3"), input_data_uri.rstrip("/") + "/", Path(tmp) / "data")
        if (folder / DATA_FILE).exists():
            raise ValueError(f"data.source already has a {DATA_FILE}: that path is where feedback rows go")
        write_data_file(items, folder)
        return stage_directory(backend, folder, s3_layout.data_uri(config))


def stage_feedback_suite(backend: Backend, config: Config, staged: dict[str, str]) -> str | None:
    """Put the ``feedback`` suite beside the staged suites (None when nobody gave feedback yet)."""
    from pipelines.s3_transfer import upload_directory

    items = list_feedback(backend, config)
    if not items:
        return None
    if FEEDBACK_SUITE in staged:
        raise ValueError(f"evaluation.suites: the suite name {FEEDBACK_SUITE!r} is reserved for feedback cases")
    with tempfile.TemporaryDirectory(prefix="continuum-feedback-suite-") as tmp:
        folder = write_suite(items, Path(tmp) / FEEDBACK_SUITE, config.feedback.threshold)
        return upload_directory(backend, folder, f"{s3_layout.benchmarks_uri(config)}/{FEEDBACK_SUITE}")
