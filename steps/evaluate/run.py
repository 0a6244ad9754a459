"""The evaluate step's run: plan, measure both models, compare, gate and write the outputs (entry: steps/evaluate.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.benchmarks import BenchmarkError, BenchmarkSuite, find_suite_dirs, load_suites
from common.contract import build_parser
from evaluate.contract import ARGUMENTS
from evaluate.compare import (
    ModelResults,
    SuiteInfo,
    build_metrics,
    forgetting_summary,
    metric_directions,
    metric_entry,
    suite_section,
)
from evaluate.generation import generate_greedy
from evaluate.gate import GateError, check_gate_metric, compute_gate, format_table
from evaluate.lineage import BaselineIdentity, LineageError, build_lineage, model_lineage, read_data_report
from evaluate.lm_harness import LmEvalTask, run_lm_eval
from common.inventory import Item, merge, read_inventory, summarize, write_inventory
from evaluate.model import LoadedModel, ModelLoadError, load_model
from evaluate.remote import RemoteModel, check_suites, open_remote, sized
from evaluate.retention import (
    CHECK_METRICS,
    COVERAGE_SUITE,
    FORGETTING_METRIC,
    KNOWN_METRIC,
    MAX_ANSWER_TOKENS,
    RETENTION_SUITE,
    Retention,
    RoundPlan,
    check_suite,
    compare_retention,
    inventory_section,
    judge,
    next_items,
    plan_round,
    sized_for,
)
from evaluate.tasks import BatchSettings, SuiteRun, ValidationExample, run_suite, validation_loss
from common.examples import ExampleError, read_examples
from common.jsonl import write_jsonl
from evaluate.report_html import REPORT_FILE, write_report_html
from common.suite_targets import refresh_targets

DESCRIPTION = "Evaluate step: the candidate model against the previous version on held-out data and benchmark suites."
REPORT_JSON = "evaluation.json"
CASES_FILE = "cases.jsonl"


class EvaluationError(ValueError):
    """The evaluation cannot run as asked; the message says what to fix."""


@dataclass(frozen=True)
class EvaluationSettings:
    """What to evaluate, where to write it and how to gate (the parsed command line)."""

    model_dir: Path
    baseline_dir: Path | None
    validation_dir: Path | None
    train_dir: Path | None
    benchmarks_dir: Path
    custom_benchmarks_dir: Path | None
    suites: list[str] | None
    inventory_dir: Path | None
    inventory_output_dir: Path | None
    retention_max_cases: int
    retention_max_new_cases: int
    lm_eval_tasks: list[str]
    lm_eval_limit: int | None
    data_report_dir: Path | None
    baseline: BaselineIdentity
    batch: BatchSettings
    max_seq_length: int
    output_dir: Path
    gate_metric: str | None
    gate_threshold: float | None
    gate_max_regression: float | None
    gate_higher_is_better: bool
    gate_max_forgetting: float | None
    check_suites_only: bool = False
    candidate_model_id: str = ""  # a Bedrock model asked instead of model_dir (evaluate/remote.py)
    baseline_model_id: str = ""


@dataclass(frozen=True)
class Plan:
    """Everything that will be run, decided before any model is loaded."""

    suites: list[BenchmarkSuite]  # run by our scorer
    lm_eval: list[LmEvalTask]
    infos: dict[str, SuiteInfo]  # every suite in report order (lm-eval task directions filled after the run)
    validation: list[ValidationExample]
    round: RoundPlan | None  # the knowledge inventory's work this round (none without inventory folders)
    retention: BenchmarkSuite | None  # the previous version's known items, re-asked to both models
    coverage: BenchmarkSuite | None  # more inventory items, asked to the candidate only
    data_report: dict[str, Any] | None
    target_updates: list[dict[str, str]]  # suite cases the data answers differently (common/suite_targets.py)


# ---------------------------------------------------------------- planning


def read_validation_examples(validation_dir: Path) -> list[ValidationExample]:
    """(prompt, completion, messages) of every example in validation_dir/**/*.jsonl; errors name file:line.
    Empty files are a split of none (data.validation_fraction 0): no validation loss then."""
    if not Path(validation_dir).is_dir() or not any(Path(validation_dir).rglob("*.jsonl")):
        raise EvaluationError(f"{validation_dir}: no *.jsonl validation files found")
    try:
        records = read_examples(validation_dir)
    except ExampleError as exc:
        raise EvaluationError(str(exc)) from exc
    return [(record["prompt"], record["completion"], record.get("messages")) for record in records]


def _info(suite: BenchmarkSuite, origin: str) -> SuiteInfo:
    spec = suite.spec
    return SuiteInfo(spec.name, spec.task, spec.version, origin, tuple(spec.metrics),
                     {m: spec.metric_higher_is_better(m) for m in spec.metrics}, spec.threshold, spec.description)


def read_train(settings: EvaluationSettings) -> list[dict[str, Any]]:
    """This version's train split (none when the step is run without one, e.g. by `continuum compare`)."""
    if settings.train_dir is None or not Path(settings.train_dir).is_dir():
        return []
    try:
        return read_examples(settings.train_dir)
    except ExampleError as exc:
        raise EvaluationError(f"train split: {exc}") from exc


def plan_inventory(settings: EvaluationSettings, data_report: dict[str, Any] | None,
                   train: list[dict[str, Any]]) -> RoundPlan | None:
    """Merge the previous inventory with this version's train split and choose the items to ask this round."""
    if settings.inventory_dir is None and settings.inventory_output_dir is None:
        return None
    try:
        previous = read_inventory(settings.inventory_dir)
    except ExampleError as exc:
        raise EvaluationError(f"knowledge inventory: {exc}") from exc
    data_version = str((data_report or {}).get("data_version") or "unknown")
    return plan_round(previous, merge(previous, train, data_version), data_version, settings.retention_max_cases,
                      settings.retention_max_new_cases)


def _retention_info(suite: BenchmarkSuite) -> SuiteInfo:
    metrics = (KNOWN_METRIC, *CHECK_METRICS)
    return SuiteInfo(suite.name, "qa", suite.spec.version, "retention", metrics, {m: True for m in metrics},
                     None, suite.spec.description)


def plan_evaluation(settings: EvaluationSettings) -> Plan:
    """Load and check every suite, plan the inventory checks, read the validation split."""
    loaded: list[tuple[BenchmarkSuite, str]] = [(s, "built-in") for s in load_suites(settings.benchmarks_dir, settings.suites)]
    if settings.custom_benchmarks_dir is not None:
        if not find_suite_dirs(settings.custom_benchmarks_dir):
            raise EvaluationError(f"{settings.custom_benchmarks_dir}: no suite.yaml found (custom benchmarks)")
        loaded += [(s, "custom") for s in load_suites(settings.custom_benchmarks_dir)]
    data_report = read_data_report(settings.data_report_dir)
    train = read_train(settings)
    suites, target_updates = refresh_targets([suite for suite, _ in loaded], train)
    loaded = [(suite, origin) for suite, (_, origin) in zip(suites, loaded)]
    inventory = plan_inventory(settings, data_report, train)
    retention = coverage = None
    if inventory is not None:
        retention = check_suite(RETENTION_SUITE, inventory.retention,
                                "Items of the previous version's knowledge inventory that it answered right, re-asked")
        coverage = check_suite(COVERAGE_SUITE, inventory.coverage,
                               "Inventory items without a verdict (or last answered wrong), asked to the candidate")
    names = [suite.name for suite, _ in loaded] + settings.lm_eval_tasks
    names += [RETENTION_SUITE, COVERAGE_SUITE] if inventory is not None else []
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise EvaluationError(f"suite name(s) {repeated} used twice (built-in, custom and lm-eval names share one space "
                              f"with {RETENTION_SUITE!r} and {COVERAGE_SUITE!r})")
    infos = {suite.name: _info(suite, origin) for suite, origin in loaded}
    if retention is not None:
        infos[RETENTION_SUITE] = _retention_info(retention)
    lm_eval = [LmEvalTask(s.name, s.lm_eval_config, tuple(s.spec.metrics)) for s, _ in loaded if s.spec.task == "lm_eval"]
    lm_eval += [LmEvalTask(name, None, None) for name in settings.lm_eval_tasks]
    for name in settings.lm_eval_tasks:
        infos[name] = SuiteInfo(name, "lm_eval", "lm-eval", "lm-eval", (), {})
    validation = read_validation_examples(settings.validation_dir) if settings.validation_dir else []
    return Plan([s for s, _ in loaded if s.spec.task != "lm_eval"], lm_eval, infos, validation, inventory, retention,
                coverage, data_report, target_updates)


# ---------------------------------------------------------------- measuring


def run_check(loaded: LoadedModel | RemoteModel, suite: BenchmarkSuite, settings: BatchSettings) -> SuiteRun:
    """An inventory check, with room for its longest trained answer, every answer judged (answered_right)."""
    room = sized(suite, MAX_ANSWER_TOKENS) if isinstance(loaded, RemoteModel) else sized_for(suite, loaded.tokenizer)
    return judge(run_suite(loaded, room, settings))


def measure(settings: EvaluationSettings, plan: Plan, path: Path, role: str) -> tuple[ModelResults, dict[str, Any]]:
    """Every suite, the retention check and the validation loss for the model at path (the candidate also answers
    the coverage check); the model is freed on return."""
    model_id = settings.candidate_model_id if role == "candidate" else settings.baseline_model_id
    if model_id:  # served by Bedrock (training.backend bedrock): answers only
        try:
            check_suites(plan.suites, plan.lm_eval, bool(plan.validation), role)
        except ValueError as exc:
            raise EvaluationError(str(exc)) from exc
        loaded: LoadedModel | RemoteModel = open_remote(model_id, role)
    else:
        loaded = load_model(path, role, settings.max_seq_length)
        generate_greedy(loaded, ["warm-up"], 2)  # first-call costs would otherwise land in the first suite's latency
    try:
        results = ModelResults(validation_loss(loaded, plan.validation, settings.batch) if plan.validation else None)
        for suite in plan.suites:
            results.runs[suite.name] = run_suite(loaded, suite, settings.batch)
        results.runs.update(run_lm_eval(loaded, plan.lm_eval, settings.batch.max_batch_size, settings.lm_eval_limit))
        if plan.retention is not None:
            results.runs[RETENTION_SUITE] = run_check(loaded, plan.retention, settings.batch)
        if role == "candidate" and plan.coverage is not None:
            results.coverage = run_check(loaded, plan.coverage, settings.batch)
    except ValueError as exc:
        raise EvaluationError(f"{role} model: {exc}") from exc
    return results, loaded.lineage() if isinstance(loaded, RemoteModel) else model_lineage(loaded.metadata, loaded.path)


def settle_lm_eval_infos(plan: Plan, candidate: ModelResults) -> dict[str, SuiteInfo]:
    """lm-eval reports each metric's direction: named tasks take it, suites must agree with their suite.yaml."""
    infos = dict(plan.infos)
    for task in plan.lm_eval:
        run, info = candidate.runs[task.name], infos[task.name]
        if task.config is None:
            infos[task.name] = replace(info, metrics=tuple(run.metrics), directions=dict(run.directions))
            continue
        for metric, higher in run.directions.items():
            if info.directions[metric] != higher:
                raise EvaluationError(
                    f"suite {task.name}: lm-eval says {metric} is {'higher' if higher else 'lower'}-is-better; "
                    "fix higher_is_better in its suite.yaml"
                )
    return infos


def retention_outcome(plan: Plan, candidate: ModelResults, baseline: ModelResults | None) -> Retention | None:
    """What the candidate forgot of the items the previous version knew (None when nothing was re-asked)."""
    if plan.round is None or plan.retention is None:
        return None
    return compare_retention(plan.round.retention, candidate.runs[RETENTION_SUITE],
                             baseline.runs[RETENTION_SUITE] if baseline else None)


def build_report(settings: EvaluationSettings, plan: Plan, candidate: ModelResults, baseline: ModelResults | None,
                 lineage: dict[str, Any], inventory: list[Item] | None) -> dict[str, Any]:
    """The whole evaluation.json document (`inventory`: the next inventory's items, when one is kept)."""
    infos = settle_lm_eval_infos(plan, candidate)
    directions = metric_directions(list(infos.values()), with_validation=candidate.validation_loss is not None)
    if settings.gate_metric is not None:
        try:
            check_gate_metric(settings.gate_metric, settings.gate_higher_is_better, directions)
        except GateError as exc:
            raise EvaluationError(str(exc)) from exc
    metrics = build_metrics(list(infos.values()), candidate, baseline)
    retention = retention_outcome(plan, candidate, baseline)
    if retention is not None:  # the previous version knew every item it counts (baseline 0)
        metrics[FORGETTING_METRIC] = metric_entry(retention.share, 0.0 if baseline else None, False, RETENTION_SUITE,
                                                  FORGETTING_METRIC)
    suites = {name: suite_section(info, candidate.runs[name], baseline.runs[name] if baseline else None)
              for name, info in infos.items()}
    report: dict[str, Any] = {
        "metrics": metrics,
        "suites": suites,
        "inventory": None if plan.round is None or inventory is None else inventory_section(
            plan.round, retention, inventory, settings.gate_max_forgetting),
        "forgetting": forgetting_summary(suites),
        "suite_targets_updated": plan.target_updates,
        "lineage": lineage,
        "gate": compute_gate(metrics, settings.gate_metric, settings.gate_threshold, settings.gate_max_regression,
                             settings.gate_higher_is_better, retention, settings.gate_max_forgetting),
        "report": REPORT_FILE,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return report


def run_evaluation(settings: EvaluationSettings) -> tuple[dict[str, Any], list[dict[str, Any]], list[Item] | None]:
    """Evaluate candidate and baseline: the evaluation.json document, one record per case, the next inventory."""
    plan = plan_evaluation(settings)
    if settings.gate_metric is not None and not settings.lm_eval_tasks:
        try:
            check_gate_metric(settings.gate_metric, settings.gate_higher_is_better,
                              metric_directions(list(plan.infos.values()), with_validation=bool(plan.validation)))
        except GateError as exc:
            raise EvaluationError(str(exc)) from exc
    candidate, candidate_lineage = measure(settings, plan, settings.model_dir, "candidate")
    baseline, baseline_lineage = (measure(settings, plan, settings.baseline_dir, "baseline")
                                  if settings.baseline_dir or settings.baseline_model_id else (None, None))
    lineage = build_lineage(candidate_lineage, baseline_lineage, settings.baseline, plan.data_report, plan.suites)
    inventory = (next_items(plan.round, candidate.runs.get(RETENTION_SUITE), candidate.coverage)
                 if plan.round is not None else None)
    report = build_report(settings, plan, candidate, baseline, lineage, inventory)
    return report, case_records(candidate, baseline), inventory


def case_records(candidate: ModelResults, baseline: ModelResults | None) -> list[dict[str, Any]]:
    """Every case of every suite and inventory check with both models' answers and scores (cases.jsonl)."""
    records = []
    runs = {**candidate.runs, **({COVERAGE_SUITE: candidate.coverage} if candidate.coverage else {})}
    for name, run in runs.items():
        old_outcomes = (baseline.runs[name].outcomes if baseline and name in baseline.runs
                        else [None] * len(run.outcomes))
        for new, old in zip(run.outcomes, old_outcomes):
            records.append({"suite": name, "id": new.id, "group": new.group, "prompt": new.prompt, "target": new.target,
                            "candidate": new.prediction, "baseline": old.prediction if old else None,
                            "candidate_scores": new.scores, "baseline_scores": old.scores if old else None})
    return records


def write_outputs(report: dict[str, Any], cases: list[dict[str, Any]], output_dir: Path) -> Path:
    """evaluation.json, cases.jsonl and report.html into output_dir; returns evaluation.json's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / REPORT_JSON
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_jsonl(output_dir / CASES_FILE, cases)
    write_report_html(report, output_dir)
    return path


# ---------------------------------------------------------------- command line


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _parser() -> argparse.ArgumentParser:
    """Every flag from the contract (evaluate/contract.py), spelled --name-with-dashes or --name_with_underscores."""
    return build_parser(ARGUMENTS, DESCRIPTION)


def parse_args(argv: list[str] | None) -> EvaluationSettings:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("max_new_tokens", "batch_size", "max_batch_tokens", "max_seq_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("retention_max_cases", "retention_max_new_cases"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    if args.gate_metric is None and (args.gate_threshold is not None or args.gate_max_regression is not None):
        parser.error("--gate-threshold and --gate-max-regression need --gate-metric")
    return EvaluationSettings(
        model_dir=args.model_dir,
        baseline_dir=args.baseline_dir,
        validation_dir=args.validation_dir,
        train_dir=args.train_dir,
        benchmarks_dir=args.benchmarks_dir,
        custom_benchmarks_dir=args.custom_benchmarks_dir,
        suites=_names(args.suites) or None,
        inventory_dir=args.inventory_dir,
        inventory_output_dir=args.inventory_output_dir,
        retention_max_cases=args.retention_max_cases,
        retention_max_new_cases=args.retention_max_new_cases,
        lm_eval_tasks=_names(args.lm_eval_tasks),
        lm_eval_limit=args.lm_eval_limit,
        data_report_dir=args.data_report_dir,
        baseline=BaselineIdentity(args.baseline_version,
                                  args.baseline_model_package_arn),
        batch=BatchSettings(args.max_new_tokens, args.batch_size, args.max_batch_tokens),
        max_seq_length=args.max_seq_length,
        output_dir=args.output_dir,
        gate_metric=args.gate_metric,
        gate_threshold=args.gate_threshold,
        gate_max_regression=args.gate_max_regression,
        gate_higher_is_better=not args.gate_lower_is_better,
        gate_max_forgetting=args.gate_max_forgetting,
        check_suites_only=args.check_suites_only,
        candidate_model_id=args.candidate_model_id,
        baseline_model_id=args.baseline_model_id,
    )


def describe_suites(settings: EvaluationSettings) -> str:
    """One line per suite that would run: name, task, cases, metrics, threshold."""
    plan = plan_evaluation(settings)
    cases = {suite.name: len(suite.cases) for suite in [*plan.suites, *filter(None, [plan.retention])]}
    lines = []
    for name, info in plan.infos.items():
        count = f"{cases[name]} cases" if name in cases else "cases read by lm-eval"
        bar = "" if info.threshold is None else f", threshold {info.primary_metric} {info.threshold:g}"
        metrics = ", ".join(info.metrics) or "as lm-eval reports them"
        lines.append(f"{name}: {info.task} ({info.origin}), {count}, metrics {metrics}{bar}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is first imported: no progress bars in job logs
    try:
        if settings.check_suites_only:
            print(describe_suites(settings))
            return 0
        report, cases, inventory = run_evaluation(settings)
    except (EvaluationError, BenchmarkError, ModelLoadError, LineageError) as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    path = write_outputs(report, cases, settings.output_dir)
    if settings.inventory_output_dir is not None and inventory is not None:
        write_inventory(settings.inventory_output_dir, inventory, summarize(inventory))
    print(format_table(report))
    for suite in sorted({update["suite"] for update in report["suite_targets_updated"]}):
        count = sum(update["suite"] == suite for update in report["suite_targets_updated"])
        print(f"suite {suite}: {count} case(s) the data now answers differently, scored against the data's answer "
              "(evaluation.json suite_targets_updated: update the suite)")
    print(f"wrote {path} and {settings.output_dir / REPORT_FILE}")
    return 0

