"""Where the compared models and the data came from, for evaluation.json and the report."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.benchmarks import BenchmarkSuite

MODEL_FIELDS = ("base_model", "initialized_from", "generation", "hyperparameters", "metrics", "data", "prompt_template",
                "strategy", "replay")  # replay: what the budget replayed, why, what it cost
DATA_REPORT_FIELDS = ("data_version", "rows", "splits", "replay", "quarantine_reasons", "parameters")


class LineageError(ValueError):
    """A lineage input that cannot be read; the message names the file."""


@dataclass(frozen=True)
class BaselineIdentity:
    """Which registered version the baseline is (version 0 / arn "none": the base model)."""

    version: int | None = None
    model_package_arn: str | None = None

    def describe(self) -> str:
        if self.version:
            return f"version {self.version}"
        if self.version == 0:
            return "the base model"
        return "the baseline"


def model_lineage(metadata: dict[str, Any], path: Path) -> dict[str, Any]:
    """The parts of a model's continuum.json that say what it is and how it was trained."""
    return {"path": str(path), **{key: metadata[key] for key in MODEL_FIELDS if key in metadata}}


def read_data_report(report_dir: Path | None) -> dict[str, Any] | None:
    """The prepare step's report.json (data version, row counts, replay) if the folder has one."""
    if report_dir is None or not (Path(report_dir) / "report.json").is_file():
        return None
    path = Path(report_dir) / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LineageError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(report, dict):
        raise LineageError(f"{path}: expected a JSON object")
    return {key: report[key] for key in DATA_REPORT_FIELDS if key in report}


def suite_fingerprint(suite: BenchmarkSuite) -> str:
    """A short hash of a suite's cases: the same fingerprint means the same questions and answers."""
    digest = hashlib.sha256()
    for case in suite.cases:
        digest.update(json.dumps([case.id, case.prompt, case.target, list(case.choices)]).encode("utf-8"))
    for key, value in sorted(suite.lm_eval_config.items()):
        digest.update(f"{key}={value!r}".encode("utf-8"))
    return digest.hexdigest()[:16]


def build_lineage(
    candidate: dict[str, Any],
    baseline: dict[str, Any] | None,
    identity: BaselineIdentity,
    data_report: dict[str, Any] | None,
    suites: list[BenchmarkSuite],
) -> dict[str, Any]:
    """The lineage section of evaluation.json."""
    return {
        "candidate": candidate,
        "baseline": None if baseline is None else {
            **baseline, "version": identity.version, "model_package_arn": identity.model_package_arn,
            "described_as": identity.describe(),
        },
        "data": data_report,
        "benchmarks": {
            suite.name: {"version": suite.spec.version, "task": suite.spec.task, "cases": len(suite.cases),
                         "fingerprint": suite_fingerprint(suite)}
            for suite in suites
        },
    }
