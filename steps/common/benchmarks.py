"""Benchmark suites as data: a folder with suite.yaml and a JSONL file of cases.

suite.yaml: name, version, task, prompt_template (with "{prompt}" once), data (file in the folder),
metrics (names from common.metrics.SUITE_METRICS), higher_is_better.
Each case line: {"id": str, "prompt": str, "target": str}.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from common.metrics import SUITE_METRICS
from common.prompting import format_prompt, validate_template

SUITE_FILE = "suite.yaml"


class BenchmarkError(ValueError):
    """A benchmark suite that cannot be loaded; the message names the file and field or line."""


class SuiteSpec(BaseModel):
    """The validated contents of suite.yaml."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
    version: str = "1"
    task: Literal["qa", "classification", "generation"] = "qa"
    description: str = ""
    prompt_template: str
    data: str
    metrics: list[str] = Field(min_length=1)
    higher_is_better: bool = True

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("prompt_template")
    @classmethod
    def _has_prompt_slot(cls, value: str) -> str:
        return validate_template(value)

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in SUITE_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(SUITE_METRICS)}")
        if len(set(value)) != len(value):
            raise ValueError(f"metrics listed twice: {value}")
        return value


@dataclass(frozen=True)
class BenchmarkCase:
    """One benchmark question and its reference answer."""

    id: str
    prompt: str
    target: str


@dataclass(frozen=True)
class BenchmarkSuite:
    """A loaded suite: its spec, its cases and where it came from."""

    spec: SuiteSpec
    cases: tuple[BenchmarkCase, ...]
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name

    def render_prompt(self, case: BenchmarkCase) -> str:
        """The case's prompt put into the suite's prompt template (before the model's template)."""
        return format_prompt(self.spec.prompt_template, case.prompt)


def load_suite(suite_dir: Path) -> BenchmarkSuite:
    """Load and validate the suite in suite_dir (suite.yaml + its data file)."""
    suite_dir = Path(suite_dir)
    spec = _load_spec(suite_dir / SUITE_FILE)
    data_path = suite_dir / spec.data
    if not data_path.is_file():
        raise BenchmarkError(f"{suite_dir / SUITE_FILE}: field 'data': file {data_path} not found")
    return BenchmarkSuite(spec=spec, cases=_load_cases(data_path), path=suite_dir)


def find_suite_dirs(benchmarks_dir: Path) -> dict[str, Path]:
    """Suite folders under benchmarks_dir (itself included), keyed by the suite's declared name.

    A suite.yaml whose name cannot be read is keyed by its folder name; load_suite reports why.
    """
    benchmarks_dir = Path(benchmarks_dir)
    found: dict[str, Path] = {}
    if not benchmarks_dir.is_dir():
        return found
    for suite_file in sorted(benchmarks_dir.rglob(SUITE_FILE)):
        name = _declared_name(suite_file) or suite_file.parent.name
        if name in found:
            raise BenchmarkError(f"suite name {name!r} declared by both {found[name]} and {suite_file.parent}")
        found[name] = suite_file.parent
    return found


def load_suites(benchmarks_dir: Path, names: list[str] | None = None) -> list[BenchmarkSuite]:
    """Load the named suites (all found when names is None) from benchmarks_dir, in order."""
    available = find_suite_dirs(benchmarks_dir)
    wanted = sorted(available) if names is None else names
    missing = [name for name in wanted if name not in available]
    if missing:
        raise BenchmarkError(
            f"suite(s) {missing} not found under {benchmarks_dir}; "
            f"available: {', '.join(sorted(available)) or '(none)'}"
        )
    return [load_suite(available[name]) for name in wanted]


def _declared_name(suite_file: Path) -> str | None:
    try:
        raw = yaml.safe_load(suite_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) and name else None


def _load_spec(path: Path) -> SuiteSpec:
    if not path.is_file():
        raise BenchmarkError(f"{path}: suite file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BenchmarkError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise BenchmarkError(f"{path}: expected a mapping of fields, got {type(raw).__name__}")
    try:
        return SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(part) for part in err['loc'])}': {err['msg']}" for err in exc.errors()
        )
        raise BenchmarkError(f"{path}: {problems}") from exc


def _load_cases(path: Path) -> tuple[BenchmarkCase, ...]:
    cases: list[BenchmarkCase] = []
    seen_ids: dict[str, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        case = _parse_case(path, line_no, line)
        if case.id in seen_ids:
            raise BenchmarkError(f"{path}:{line_no}: id {case.id!r} already used on line {seen_ids[case.id]}")
        seen_ids[case.id] = line_no
        cases.append(case)
    if not cases:
        raise BenchmarkError(f"{path}: no cases")
    return tuple(cases)


def _parse_case(path: Path, line_no: int, line: str) -> BenchmarkCase:
    where = f"{path}:{line_no}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{where}: not valid JSON: {exc.msg}") from exc
    if not isinstance(record, dict):
        raise BenchmarkError(f"{where}: expected a JSON object")
    for field in ("prompt", "target"):
        if not isinstance(record.get(field), str) or not record[field].strip():
            raise BenchmarkError(f"{where}: field '{field}' missing or not a non-empty string")
    case_id = record.get("id", f"line-{line_no}")
    if not isinstance(case_id, (str, int)):
        raise BenchmarkError(f"{where}: field 'id' must be a string")
    return BenchmarkCase(id=str(case_id), prompt=record["prompt"], target=record["target"])
