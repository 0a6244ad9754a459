"""The gate's checks, each decided once here and written to evaluation.json's gate.checks.

Four checks, in the pipeline's order: forgetting (the candidate answers wrong at most MaxForgetting,
a share, of the re-asked known inventory items, those the previous version answered right:
evaluate.retention; passes when nothing was re-asked), threshold (the gate metric meets
GateThreshold), regression (the gate metric is at most MaxRegression worse than the previous
version) and suite_thresholds (every suite meets its own suite.yaml threshold). Each is
{passed, value, bound, message}; the pipeline's ConditionSteps read `passed` and their FailSteps
`message`, so the verdict and its words come from here. A bound that is not given passes.
"""
from __future__ import annotations

from typing import Any

from common.bounds import check, meets, relation
from evaluate.retention import Retention

class GateError(ValueError):
    """The gate asks for something this evaluation does not produce."""


def check_gate_metric(metric: str, higher_is_better: bool, directions: dict[str, bool]) -> None:
    """Fail early when the gate metric is not produced or the gate's direction contradicts it."""
    if metric not in directions:
        raise GateError(f"gate metric {metric!r} is not produced by this evaluation; available: {', '.join(directions)}")
    if directions[metric] != higher_is_better:
        wanted = "higher" if directions[metric] else "lower"
        flag = "drop --gate-lower-is-better" if directions[metric] else "pass --gate-lower-is-better"
        raise GateError(f"gate metric {metric!r} is {wanted}-is-better: {flag}")


def _against(entry: dict[str, Any], threshold: float, origin: str, passed: bool, higher_is_better: bool) -> str:
    sign = relation(higher_is_better)
    return (f"benchmark {entry['suite']} metric {entry['metric']} = {entry['value']:.6g} "
            f"{'' if passed else 'is not '}{sign} threshold {threshold:.6g} ({origin})")


def forgetting_check(retention: Retention | None, max_forgetting: float | None) -> dict[str, Any]:
    """Passed when the candidate forgot at most `max_forgetting` of the known items re-asked (none re-asked: 0)."""
    share = retention.share if retention else 0.0
    forgotten, known = (len(retention.forgotten), retention.known) if retention else (0, 0)
    if max_forgetting is None:
        return check(True, share, None, "forgetting not checked (no MaxForgetting)")
    passed = meets(share, max_forgetting, higher_is_better=False)
    if passed:
        return check(True, share, max_forgetting, f"forgetting {share:.4g} <= MaxForgetting {max_forgetting:.6g} "
                                                  f"({forgotten} of {known} known items forgotten)")
    versions = sorted({item["data_version"][:12] for item in retention.forgotten}) if retention else []
    return check(False, share, max_forgetting,
                 f"the candidate forgot {forgotten} of {known} items the previous version knew: forgetting "
                 f"{share:.4g} > MaxForgetting {max_forgetting:.6g} (data version(s) {', '.join(versions)}) "
                 "- report.html lists the forgotten items; to keep more, train again with a larger ReplayBudget "
                 "(training.continual.replay_budget; 1 replays the whole history)")


def threshold_check(metric: str | None, entry: dict[str, Any] | None, threshold: float | None,
                    higher_is_better: bool) -> dict[str, Any]:
    """Passed when the gate metric's value meets `threshold` in the gate's direction."""
    if entry is None or threshold is None:
        return check(True, None if entry is None else entry["value"], threshold,
                     "threshold not checked (" + ("no gate metric)" if entry is None else "no GateThreshold)"))
    passed = meets(entry["value"], threshold, higher_is_better)
    return check(passed, entry["value"], threshold,
                 f"gate metric {metric}: {_against(entry, threshold, 'GateThreshold', passed, higher_is_better)}")


def regression_check(metric: str | None, entry: dict[str, Any] | None, max_regression: float | None) -> dict[str, Any]:
    """Passed when the gate metric is at most `max_regression` worse than the previous version."""
    if entry is None or max_regression is None:
        return check(True, None if entry is None else entry["regression"], max_regression,
                     "regression not checked (" + ("no gate metric)" if entry is None else "no MaxRegression)"))
    passed = meets(entry["regression"], max_regression, higher_is_better=False)
    baseline = "no baseline" if entry["baseline"] is None else f"baseline {entry['baseline']:.6g}"
    verb = "regressed by" if not passed else "regression"
    bound = f"(MaxRegression {max_regression:.6g})" if not passed else f"<= MaxRegression {max_regression:.6g}"
    return check(passed, entry["regression"], max_regression,
                 f"gate metric {metric}: benchmark {entry['suite']} metric {entry['metric']} = {entry['value']:.6g} {verb} "
                 f"{entry['regression']:.6g} vs {baseline} {bound}")


def suite_failures(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """One reason per suite whose primary metric misses its suite.yaml threshold (metric_entry's `passed`)."""
    return [_against(entry, entry["threshold"], "suite.yaml threshold", False, entry["higher_is_better"])
            for entry in metrics.values() if entry.get("passed") is False]


def suite_thresholds_check(metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Passed when every suite with a suite.yaml threshold meets it; value: how many do not."""
    failures = suite_failures(metrics)
    checked = sum(entry.get("passed") is not None for entry in metrics.values())
    message = "; ".join(failures) if failures else f"{checked} suite threshold(s) met"
    return check(not failures, len(failures), 0, message)


def compute_gate(
    metrics: dict[str, dict[str, Any]],
    metric: str | None,
    threshold: float | None,
    max_regression: float | None,
    higher_is_better: bool,
    retention: Retention | None = None,
    max_forgetting: float | None = None,
) -> dict[str, Any]:
    """Every gate check once (`checks`, in the pipeline's order) and the verdict: passed when all of them pass.
    `reasons` lists the failed checks' messages (each failing suite threshold on its own)."""
    entry = metrics[metric] if metric is not None else None
    checks = {
        "forgetting": forgetting_check(retention, max_forgetting),
        "threshold": threshold_check(metric, entry, threshold, higher_is_better),
        "regression": regression_check(metric, entry, max_regression),
        "suite_thresholds": suite_thresholds_check(metrics),
    }
    failures = suite_failures(metrics)
    reasons = [checks[name]["message"] for name in ("threshold", "regression") if not checks[name]["passed"]]
    reasons += failures
    if not checks["forgetting"]["passed"]:
        reasons.append(checks["forgetting"]["message"])
    return {
        "metric": metric,
        "threshold": threshold,
        "max_regression": max_regression,
        "higher_is_better": higher_is_better,
        "forgetting": checks["forgetting"]["value"],
        "forgotten_items": len(retention.forgotten) if retention else 0,
        "known_items_asked": retention.known if retention else 0,
        "max_forgetting": max_forgetting,
        "passed": not reasons,
        "reasons": reasons,
        "suite_threshold_failures": len(failures),
        "forgetting_failures": int(not checks["forgetting"]["passed"]),
        "summary": "; ".join(reasons) if reasons else "all checks passed",
        "checks": checks,
    }


def format_table(report: dict[str, Any]) -> str:
    """A short candidate-vs-baseline table plus the gate verdict."""

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    width = max(len("metric"), *(len(name) for name in report["metrics"]))
    lines = [f"{'metric':<{width}}  {'candidate':>10}  {'baseline':>10}  {'delta':>10}  better  threshold"]
    for name, entry in report["metrics"].items():
        delta = "-" if entry["delta"] is None else f"{entry['delta']:+.4f}"
        better = "higher" if entry["higher_is_better"] else "lower"
        bar = "" if entry.get("threshold") is None else f"{entry['threshold']:g} {'ok' if entry['passed'] else 'FAILED'}"
        lines.append(
            f"{name:<{width}}  {number(entry['value']):>10}  {number(entry['baseline']):>10}  {delta:>10}  {better:<6}  {bar}"
        )
    gate = report["gate"]
    verdict = "PASSED" if gate["passed"] else "FAILED: " + gate["summary"]
    if gate["metric"] is None:
        lines.append(f"gate: no --gate-metric; suite thresholds {verdict}")
        return "\n".join(lines)
    threshold = "not checked" if gate["threshold"] is None else f"{relation(gate['higher_is_better'])} {gate['threshold']}"
    regression = "not checked" if gate["max_regression"] is None else f"<= {gate['max_regression']}"
    lines.append(f"gate {gate['metric']} (threshold {threshold}, regression {regression}): {verdict}")
    return "\n".join(lines)
