"""The knowledge-retention suite, built automatically from earlier data versions.

Input: the prepared examples of earlier data versions that the lineage hands over (the pipeline
passes the previous approved version's training split, which through replay carries examples of
every version before it). Each earlier example whose prompt the current data answers
differently is dropped as superseded (the new answer is what the candidate should say); the rest,
one per prompt, capped at `max_cases` by a stable hash, become a QA suite grouped by source file.
Candidate and previous version are scored on it like any suite, so forgetting shows as regression.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common.benchmarks import SUITE_FILE, BenchmarkSuite, SuiteSpec
from common.eval_cases import BenchmarkCase
from common.examples import read_examples
from common.jsonl import write_jsonl
from common.metrics import normalize_answer

RETENTION_SUITE = "retention"
REPLAY_PREFIX = "replay:"
_LINE_SUFFIX = re.compile(r":\d+$")
RETENTION_METRICS = ["token_f1", "exact_match", "rouge_l"]


@dataclass(frozen=True)
class RetentionCounts:
    """How the suite was built: examples read, superseded by new answers, repeated prompts, used."""

    available: int
    superseded: int
    duplicates: int
    capped: int
    used: int

    def as_dict(self) -> dict[str, int]:
        return {"available": self.available, "superseded": self.superseded, "duplicates": self.duplicates,
                "capped": self.capped, "used": self.used}


def source_group(source: str) -> str:
    """The source file an example came from (no `replay:` prefix, no `:line` suffix)."""
    return _LINE_SUFFIX.sub("", source.removeprefix(REPLAY_PREFIX)) or "unknown"


def _stable_rank(example_id: str) -> str:
    return hashlib.sha256(f"retention:{example_id}".encode("utf-8")).hexdigest()


def build_retention_suite(
    earlier: list[dict[str, Any]], current: list[dict[str, Any]], max_cases: int, folder: Path
) -> tuple[BenchmarkSuite | None, RetentionCounts]:
    """The retention suite over `earlier` examples given the `current` data; None when nothing is left."""
    new_answers: dict[str, set[str]] = {}
    for example in current:
        if not str(example.get("source", "")).startswith(REPLAY_PREFIX):
            new_answers.setdefault(normalize_answer(example["prompt"]), set()).add(normalize_answer(example["completion"]))
    kept: dict[str, dict[str, Any]] = {}
    superseded = duplicates = 0
    for example in sorted(earlier, key=lambda item: str(item.get("id", ""))):
        prompt = normalize_answer(example["prompt"])
        answers = new_answers.get(prompt)
        if answers is not None and normalize_answer(example["completion"]) not in answers:
            superseded += 1
        elif prompt in kept:
            duplicates += 1
        else:
            kept[prompt] = example
    chosen = sorted(kept.values(), key=lambda item: _stable_rank(str(item.get("id", item["prompt"]))))[:max_cases]
    counts = RetentionCounts(len(earlier), superseded, duplicates, len(kept) - len(chosen), len(chosen))
    if not chosen:
        return None, counts
    cases = tuple(sorted(
        (BenchmarkCase(id=str(item.get("id", f"case-{number}")), prompt=item["prompt"], target=item["completion"],
                       group=source_group(str(item.get("source", "")))) for number, item in enumerate(chosen)),
        key=lambda case: (case.group, case.id),
    ))
    spec = SuiteSpec(
        name=RETENTION_SUITE,
        version=hashlib.sha256("".join(case.id for case in cases).encode("utf-8")).hexdigest()[:12],
        task="qa",
        description="Earlier data versions' examples that the current data does not supersede",
        data="cases.jsonl",
        metrics=RETENTION_METRICS,
    )
    _write_suite(folder, spec, cases)
    return BenchmarkSuite(spec=spec, cases=cases, path=folder), counts


def _write_suite(folder: Path, spec: SuiteSpec, cases: tuple[BenchmarkCase, ...]) -> None:
    """The suite as files (suite.yaml + cases.jsonl): `continuum benchmarks validate` can check it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUITE_FILE).write_text(yaml.safe_dump(spec.model_dump(exclude_none=True), sort_keys=False), encoding="utf-8")
    write_jsonl(folder / spec.data, ({"id": c.id, "prompt": c.prompt, "target": c.target, "group": c.group} for c in cases))


def retention_from_dirs(
    earlier_dir: Path | None, current_dirs: list[Path], max_cases: int, folder: Path
) -> tuple[BenchmarkSuite | None, RetentionCounts]:
    """build_retention_suite over the prepared-example folders (JSONL; markers such as `_EMPTY` ignored)."""
    earlier = read_examples(earlier_dir) if max_cases > 0 else []
    current = [example for directory in current_dirs for example in read_examples(directory)]
    return build_retention_suite(earlier, current, max_cases, folder)
