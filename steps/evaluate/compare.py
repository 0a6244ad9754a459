"""Candidate vs previous version: the metrics, suites, forgetting and gate sections of evaluation.json.

Every metric carries value, baseline, delta = value - baseline, regression (how much worse than
the baseline, direction-aware, never negative: what the pipeline's regression condition reads),
higher_is_better, the suite and metric it belongs to, and the suite's threshold when it has one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluate.tasks import CaseOutcome, SuiteRun
from common.bounds import meets, worse_by
from common.metrics import perplexity

EXAMPLES_PER_SUITE = 5
REGRESSIONS_PER_SUITE = 5
VALIDATION = "validation"


@dataclass(frozen=True)
class SuiteInfo:
    """What the comparison needs to know about an evaluated suite."""

    name: str
    task: str
    version: str
    origin: str  # built-in | custom | retention | lm-eval
    metrics: tuple[str, ...]
    directions: dict[str, bool]
    threshold: float | None = None
    description: str = ""

    @property
    def primary_metric(self) -> str | None:
        return self.metrics[0] if self.metrics else None


@dataclass
class ModelResults:
    """Everything measured for one model."""

    validation_loss: float | None
    runs: dict[str, SuiteRun] = field(default_factory=dict)
    coverage: SuiteRun | None = None  # the inventory's coverage check (candidate only; not compared)


def metric_entry(
    value: float,
    baseline: float | None,
    higher_is_better: bool,
    suite: str = "",
    metric: str = "",
    threshold: float | None = None,
) -> dict[str, Any]:
    """{value, baseline, delta, regression >= 0, higher_is_better, suite, metric, threshold, passed}."""
    if baseline is None:
        delta, regression = None, 0.0
    else:
        delta = value - baseline
        regression = max(0.0, worse_by(value, baseline, higher_is_better))
    passed = None if threshold is None else meets(value, threshold, higher_is_better)
    return {
        "value": value,
        "baseline": baseline,
        "delta": delta,
        "regression": regression,
        "higher_is_better": higher_is_better,
        "suite": suite,
        "metric": metric,
        "threshold": threshold,
        "passed": passed,
    }


def metric_directions(infos: Sequence[SuiteInfo], with_validation: bool = True) -> dict[str, bool]:
    """Every metric this evaluation reports, mapped to whether higher is better."""
    directions = {"validation_loss": False, "validation_perplexity": False} if with_validation else {}
    for info in infos:
        for metric in info.metrics:
            directions[f"{info.name}_{metric}"] = info.directions[metric]
        directions[f"{info.name}_latency_ms"] = False
    return directions


def build_metrics(
    infos: Sequence[SuiteInfo], candidate: ModelResults, baseline: ModelResults | None
) -> dict[str, dict[str, Any]]:
    """The metrics section: validation loss/perplexity, every suite metric and every suite's latency."""
    metrics: dict[str, dict[str, Any]] = {}
    if candidate.validation_loss is not None:
        base_loss = baseline.validation_loss if baseline else None
        metrics["validation_loss"] = metric_entry(candidate.validation_loss, base_loss, False, VALIDATION, "loss")
        metrics["validation_perplexity"] = metric_entry(
            perplexity(candidate.validation_loss), None if base_loss is None else perplexity(base_loss),
            False, VALIDATION, "perplexity",
        )
    for info in infos:
        run = candidate.runs[info.name]
        base_run = baseline.runs[info.name] if baseline else None
        for metric in info.metrics:
            metrics[f"{info.name}_{metric}"] = metric_entry(
                run.metrics[metric], base_run.metrics[metric] if base_run else None, info.directions[metric],
                info.name, metric, info.threshold if metric == info.primary_metric else None,
            )
        metrics[f"{info.name}_latency_ms"] = metric_entry(
            run.latency_ms, base_run.latency_ms if base_run else None, False, info.name, "latency_ms"
        )
    return metrics


def _ranking_score(outcome: CaseOutcome, info: SuiteInfo) -> tuple[str, bool] | None:
    """The per-case score that ranks regressions, and its direction."""
    if info.task in ("classification", "multiple_choice"):
        return "target_logprob", True
    if info.task == "perplexity":
        return "loss", False
    primary = info.primary_metric
    if primary in outcome.scores:
        return primary, info.directions[primary]
    raw = next(iter(outcome.scores), None)
    return (raw, True) if raw else None


def worst_regressions(info: SuiteInfo, candidate: SuiteRun, baseline: SuiteRun, limit: int) -> list[dict[str, Any]]:
    """The cases where the candidate got worse than the baseline by the most (flips from right to wrong first)."""
    found = []
    for new, old in zip(candidate.outcomes, baseline.outcomes):
        ranking = _ranking_score(new, info)
        if ranking is None or ranking[0] not in old.scores or ranking[0] not in new.scores:
            continue
        key, higher = ranking
        worse = worse_by(new.scores[key], old.scores[key], higher)
        flipped = old.correct is True and new.correct is False
        if worse > 1e-9 or flipped:
            found.append((flipped, worse, {
                "id": new.id, "group": new.group, "prompt": new.prompt, "target": new.target,
                "candidate": new.prediction, "baseline": old.prediction, "score": key,
                "candidate_score": new.scores[key], "baseline_score": old.scores[key], "worse_by": worse,
                "flipped": flipped,
            }))
    found.sort(key=lambda item: (not item[0], -item[1]))
    return [entry for _, _, entry in found[:limit]]


def forgetting(candidate: SuiteRun, baseline: SuiteRun) -> dict[str, int] | None:
    """Right/wrong flips between baseline and candidate, for suites that mark answers right or wrong."""
    pairs = [(old.correct, new.correct) for new, old in zip(candidate.outcomes, baseline.outcomes)
             if old.correct is not None and new.correct is not None]
    if not pairs:
        return None
    return {
        "kept": sum(old and new for old, new in pairs),
        "forgotten": sum(old and not new for old, new in pairs),
        "learned": sum(new and not old for old, new in pairs),
        "still_wrong": sum(not old and not new for old, new in pairs),
    }


def group_breakdown(info: SuiteInfo, candidate: SuiteRun, baseline: SuiteRun | None) -> dict[str, Any]:
    """Per case group (e.g. a retention case's source file): cases and mean primary score for both models."""
    groups: dict[str, dict[str, Any]] = {}
    for index, new in enumerate(candidate.outcomes):
        ranking = _ranking_score(new, info)
        if not new.group or ranking is None:
            continue
        entry = groups.setdefault(new.group, {"cases": 0, "score": ranking[0], "candidate": 0.0, "baseline": 0.0})
        entry["cases"] += 1
        entry["candidate"] += new.scores.get(ranking[0], 0.0)
        if baseline is not None:
            entry["baseline"] += baseline.outcomes[index].scores.get(ranking[0], 0.0)
    for entry in groups.values():
        entry["candidate"] /= entry["cases"]
        entry["baseline"] = entry["baseline"] / entry["cases"] if baseline is not None else None
    return groups


def suite_section(info: SuiteInfo, candidate: SuiteRun, baseline: SuiteRun | None) -> dict[str, Any]:
    """One suite in evaluation.json: scores of both models, examples, worst regressions, flips."""
    examples = [
        {"id": new.id, "prompt": new.prompt, "target": new.target, "candidate": new.prediction,
         "baseline": baseline.outcomes[index].prediction if baseline else None}
        for index, new in enumerate(candidate.outcomes[:EXAMPLES_PER_SUITE])
    ]
    return {
        "task": info.task,
        "version": info.version,
        "origin": info.origin,
        "description": info.description,
        "cases": len(candidate.outcomes),
        "primary_metric": info.primary_metric,
        "threshold": info.threshold,
        "truncated_cases": candidate.truncated,
        "metrics": {"candidate": candidate.metrics, "baseline": baseline.metrics if baseline else None},
        "latency_ms_per_example": {"candidate": candidate.latency_ms, "baseline": baseline.latency_ms if baseline else None},
        "examples": examples,
        "worst_regressions": worst_regressions(info, candidate, baseline, REGRESSIONS_PER_SUITE) if baseline else [],
        "forgetting": forgetting(candidate, baseline) if baseline else None,
        "groups": group_breakdown(info, candidate, baseline),
    }


def forgetting_summary(suites: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Right→wrong and wrong→right flips over every suite that has them."""
    totals = {"kept": 0, "forgotten": 0, "learned": 0, "still_wrong": 0}
    by_suite = {name: section["forgetting"] for name, section in suites.items() if section["forgetting"]}
    for counts in by_suite.values():
        for key in totals:
            totals[key] += counts[key]
    return {**totals, "by_suite": by_suite}
