"""Benchmark suites as data: a folder with suite.yaml and a data file.

suite.yaml fields: name, version, task (qa | generation | classification | multiple_choice |
perplexity | lm_eval), description, prompt_template (with "{prompt}" once; default "{prompt}"),
data (a file in the folder: JSONL cases, or for lm_eval an lm-evaluation-harness task YAML),
metrics (the first is the suite's primary metric), threshold (an absolute bar on the primary
metric), higher_is_better (optional; must agree with the primary metric), labels
(classification), max_new_tokens (qa, generation). The case formats are in common.cases.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.cases import BenchmarkCase, CaseError, load_cases
from common.metrics import TASK_METRICS, higher_is_better
from common.prompting import format_prompt, validate_template

SUITE_FILE = "suite.yaml"
MAX_SUITE_FILE_BYTES = 1024 * 1024  # a suite file is a page of YAML; its cases are in the data file
MAX_SUITE_DATA_BYTES = 256 * 1024 * 1024  # a suite is asked case by case on every round: bigger is a mistake
TaskType = Literal["qa", "generation", "classification", "multiple_choice", "perplexity", "lm_eval"]


class BenchmarkError(ValueError):
    """A benchmark suite that cannot be loaded; the message names the file and field or line."""


class SuiteSpec(BaseModel):
    """The validated contents of suite.yaml."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
    version: str = "1"
    task: TaskType = "qa"
    description: str = ""
    prompt_template: str = "{prompt}"
    data: str
    metrics: list[str] = Field(min_length=1)
    threshold: float | None = None
    higher_is_better: bool | None = None
    labels: list[str] | None = None
    max_new_tokens: int | None = Field(default=None, ge=1)

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
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"metrics listed twice: {value}")
        return value

    @model_validator(mode="after")
    def _fits_the_task(self) -> SuiteSpec:
        allowed = TASK_METRICS.get(self.task)
        if allowed is not None:
            unknown = [name for name in self.metrics if name not in allowed]
            if unknown:
                raise ValueError(f"metrics: unknown metric(s) {unknown} for task {self.task}; known: {', '.join(allowed)}")
        if self.task == "lm_eval":
            if self.higher_is_better is None:
                raise ValueError("higher_is_better: required for lm_eval suites (lm-eval decides per metric)")
        elif self.higher_is_better is not None and self.higher_is_better != higher_is_better(self.primary_metric):
            direction = "higher" if higher_is_better(self.primary_metric) else "lower"
            raise ValueError(f"higher_is_better: {self.primary_metric} is {direction}-is-better")
        if self.labels is not None and (self.task != "classification" or len(set(self.labels)) < 2):
            raise ValueError("labels: only for classification suites, with at least two distinct labels")
        if self.max_new_tokens is not None and self.task not in ("qa", "generation"):
            raise ValueError("max_new_tokens: only for qa and generation suites")
        return self

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    def metric_higher_is_better(self, metric: str) -> bool:
        """Direction of one of this suite's metrics (lm_eval suites: the suite's higher_is_better)."""
        if self.task == "lm_eval":
            return bool(self.higher_is_better)
        return higher_is_better(metric)


@dataclass(frozen=True)
class BenchmarkSuite:
    """A loaded suite: its spec, its cases (none for lm_eval) and where it came from."""

    spec: SuiteSpec
    cases: tuple[BenchmarkCase, ...]
    path: Path
    lm_eval_config: dict[str, Any] = field(default_factory=dict)

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
    if data_path.stat().st_size > MAX_SUITE_DATA_BYTES:
        raise BenchmarkError(f"{data_path}: {data_path.stat().st_size:,} bytes, over the {MAX_SUITE_DATA_BYTES:,}-byte "
                             "limit of a suite's data file; split the suite")
    if spec.task == "lm_eval":
        try:
            return BenchmarkSuite(spec=spec, cases=(), path=suite_dir, lm_eval_config=read_task_config(data_path, spec.name))
        except ValueError as exc:
            raise BenchmarkError(str(exc)) from exc
    try:
        cases = load_cases(data_path, spec.task, spec.labels)
    except CaseError as exc:
        raise BenchmarkError(str(exc)) from exc
    return BenchmarkSuite(spec=spec, cases=cases, path=suite_dir)


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


def _suite_text(path: Path) -> str:
    """suite.yaml's text, checked before parsing: at most MAX_SUITE_FILE_BYTES of UTF-8."""
    size = path.stat().st_size
    if size > MAX_SUITE_FILE_BYTES:
        raise BenchmarkError(f"{path}: {size:,} bytes, over the {MAX_SUITE_FILE_BYTES:,}-byte limit of a suite file "
                             "(the cases belong in its data file)")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BenchmarkError(f"{path}: not UTF-8 text (offset {exc.start}): a suite file is YAML") from None


def _load_spec(path: Path) -> SuiteSpec:
    if not path.is_file():
        raise BenchmarkError(f"{path}: suite file not found")
    try:
        raw = yaml.safe_load(_suite_text(path))
    except yaml.YAMLError as exc:
        raise BenchmarkError(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError:
        raise BenchmarkError(f"{path}: YAML nested too deeply to be a suite file") from None
    if not isinstance(raw, dict):
        raise BenchmarkError(f"{path}: expected a mapping of fields, got {type(raw).__name__}")
    try:
        return SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        raise BenchmarkError(f"{path}: {'; '.join(_describe(err) for err in exc.errors())}") from exc


def _describe(error: Any) -> str:
    """One pydantic error as "field 'x': message"; model-level checks name their field first."""
    location = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if not location and ": " in message:
        location, message = message.split(": ", 1)
    return f"field '{location}': {message}"


def require_lm_eval() -> None:
    """lm-eval is an optional dependency (the `eval` extra); say how to get it."""
    try:
        import lm_eval  # noqa: F401
    except ImportError as exc:
        raise ValueError("lm-eval suites and tasks need lm-evaluation-harness: pip install 'continuum[ml]' "
                         "(or pip install lm-eval)") from exc


def read_task_config(path: Path, name: str) -> dict[str, Any]:
    """An lm-eval task YAML (with its `include`s and `!function`s) as a config named `name`, local data made absolute."""
    require_lm_eval()
    from lm_eval.tasks._yaml_loader import load_yaml  # the loader lm-eval itself uses for task files

    try:
        config = load_yaml(path, resolve_func=True, recursive=True)
    except (OSError, ValueError, ImportError, AttributeError) as exc:
        raise ValueError(f"{path}: not a loadable lm-eval task YAML: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - yaml and user !function code raise anything; name the file
        raise ValueError(f"{path}: not a loadable lm-eval task YAML: {exc.__class__.__name__}: {exc}") from exc
    for field in ("dataset_path", "output_type"):
        if field not in config:
            raise ValueError(f"{path}: field '{field}' missing (an lm-eval task needs a dataset and an output type)")
    config["task"] = name
    data_files = config.get("dataset_kwargs", {}).get("data_files")
    if data_files is not None:
        config["dataset_kwargs"] = {**config["dataset_kwargs"], "data_files": _absolute(data_files, path)}
    return config


def _absolute(data_files: Any, task_file: Path) -> Any:
    if isinstance(data_files, dict):
        return {split: _absolute(files, task_file) for split, files in data_files.items()}
    if isinstance(data_files, list):
        return [_absolute(item, task_file) for item in data_files]
    path = Path(str(data_files))
    resolved = path if path.is_absolute() else task_file.parent / path
    if not resolved.is_file():
        raise ValueError(f"{task_file}: field 'dataset_kwargs.data_files': file {resolved} not found")
    return str(resolved)
