"""The gate's verdict in evaluation.json, and the console table.

The pipeline's ConditionSteps decide (they read metrics.<gate metric>.value / .regression,
gate.forgetting and gate.suite_threshold_failures); this section says the same in words so the
FailStep message can name the benchmark, the metric, the value and the threshold that failed.
The forgetting check bounds the share of re-asked known inventory items (what the previous version
answered right) that the candidate answers wrong (evaluate.retention); it passes when nothing
was re-asked (a first version, or an inventory with no known item).
"""
from __future__ import annotations

from typing import Any

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


def _below(entry: dict[str, Any], threshold: float, origin: str) -> str:
    sign = ">=" if entry["higher_is_better"] else "<="
    return (f"benchmark {entry['suite']} metric {entry['metric']} = {entry['value']:.6g} "
            f"is not {sign} threshold {threshold:.6g} ({origin})")


def _forgetting(retention: Retention | None, max_forgetting: float | None) -> list[str]:
    """The forgetting reason, if the candidate forgot more than `max_forgetting` of the known items re-asked."""
    if retention is None or max_forgetting is None or retention.share <= max_forgetting:
        return []
    versions = sorted({item["data_version"][:12] for item in retention.forgotten})
    return [f"forgetting {retention.share:.4g} > MaxForgetting {max_forgetting:.6g}: the candidate answers "
            f"{len(retention.forgotten)} of {retention.known} items the previous version knew wrong "
            f"(data version(s) {', '.join(versions)})"]


def compute_gate(
    metrics: dict[str, dict[str, Any]],
    metric: str | None,
    threshold: float | None,
    max_regression: float | None,
    higher_is_better: bool,
    retention: Retention | None = None,
    max_forgetting: float | None = None,
) -> dict[str, Any]:
    """Passed when the gate metric meets its threshold and regression bound, every suite meets its own threshold
    and the candidate forgot at most `max_forgetting` of the re-asked known items (`retention`, when any)."""
    reasons: list[str] = []
    if metric is not None:
        entry = metrics[metric]
        if threshold is not None:
            ok = entry["value"] >= threshold if higher_is_better else entry["value"] <= threshold
            if not ok:
                reasons.append(_below(entry, threshold, "GateThreshold"))
        if max_regression is not None and entry["regression"] > max_regression:
            reasons.append(
                f"benchmark {entry['suite']} metric {entry['metric']} = {entry['value']:.6g} regressed by "
                f"{entry['regression']:.6g} vs baseline {entry['baseline']:.6g} (MaxRegression {max_regression:.6g})"
            )
    suite_failures = [_below(entry, entry["threshold"], "suite.yaml threshold")
                      for entry in metrics.values() if entry.get("passed") is False]
    forgetting_failures = _forgetting(retention, max_forgetting)
    reasons += suite_failures + forgetting_failures
    return {
        "metric": metric,
        "threshold": threshold,
        "max_regression": max_regression,
        "higher_is_better": higher_is_better,
        "forgetting": retention.share if retention else 0.0,  # read by the pipeline's CheckForgetting
        "forgotten_items": len(retention.forgotten) if retention else 0,
        "known_items_asked": retention.known if retention else 0,
        "max_forgetting": max_forgetting,
        "passed": not reasons,
        "reasons": reasons,
        "suite_threshold_failures": len(suite_failures),
        "forgetting_failures": len(forgetting_failures),
        "summary": "; ".join(reasons) if reasons else "all checks passed",
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
    sign = ">=" if gate["higher_is_better"] else "<="
    threshold = "not checked" if gate["threshold"] is None else f"{sign} {gate['threshold']}"
    regression = "not checked" if gate["max_regression"] is None else f"<= {gate['max_regression']}"
    lines.append(f"gate {gate['metric']} (threshold {threshold}, regression {regression}): {verdict}")
    return "\n".join(lines)
