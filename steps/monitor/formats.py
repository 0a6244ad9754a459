"""SageMaker Model Monitor's file formats: statistics.json, constraints.json, constraint_violations.json.

statistics.json (data-quality format): ``{"version": 0.0, "dataset": {"item_count"}, "features": [...]}``,
a numerical feature with ``numerical_statistics`` (``common``, mean, sum, std_dev, min, max and
``distribution.kll.buckets`` of ``{lower_bound, upper_bound, count}``). constraints.json: per-feature
constraints and ``monitoring_config`` as Model Monitor writes them (its own distribution comparison
disabled), plus ``continuum_constraints``: the thresholds of the LLM checks and how each was derived.
constraint_violations.json: ``{"violations": [{"feature_name" | "metric_name", "constraint_check_type",
"description"}]}`` — ``baseline_drift_check`` for input drift, Model Quality's ``GreaterThanThreshold``
/ ``LessThanThreshold`` for output signals.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

VERSION = 0.0


class MonitorFormatError(ValueError):
    """A statistics / constraints file that is not what the monitor wrote; the message names file and field."""


def quantile_edges(values: np.ndarray, bins: int = 10) -> list[float]:
    """Inner bin edges at the values' quantiles (distinct values only): the baseline's histogram bins."""
    if len(values) == 0:
        return []
    return [float(e) for e in np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))]


def numerical_feature(name: str, values: np.ndarray, edges: list[float], missing: int = 0,
                      inferred_type: str = "Integral") -> dict[str, Any]:
    """A numerical feature; the histogram uses ``edges`` (inner bin edges, e.g. the baseline's)."""
    present = int(len(values))
    stats: dict[str, Any] = {"common": {"num_present": present, "num_missing": int(missing)}}
    if present:
        counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=float), values, side="left"),
                             minlength=len(edges) + 1)
        bounds = [float(values.min()), *edges, float(values.max())]
        stats.update({"mean": float(values.mean()), "sum": float(values.sum()), "std_dev": float(values.std()),
                      "min": float(values.min()), "max": float(values.max()), "distribution": {"kll": {"buckets": [
                          {"lower_bound": bounds[i], "upper_bound": max(bounds[i], bounds[i + 1]), "count": float(c)}
                          for i, c in enumerate(counts)]}}})
    return {"name": name, "inferred_type": inferred_type, "numerical_statistics": stats}


def statistics_document(item_count: int, features: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    """statistics.json; ``summary`` (rates and counts over the whole dataset) goes under ``continuum``."""
    return {"version": VERSION, "dataset": {"item_count": int(item_count)}, "features": features,
            "continuum": summary}


def constraints_document(statistics: dict[str, Any], thresholds: dict[str, Any]) -> dict[str, Any]:
    """constraints.json suggested from baseline statistics, with the LLM checks' thresholds."""
    features = []
    for feature in statistics["features"]:
        features.append({"name": feature["name"], "inferred_type": feature["inferred_type"], "completeness": 1.0,
                         "num_constraints": {"is_non_negative": True}})
    return {"version": VERSION, "features": features, "monitoring_config": {
        "evaluate_constraints": "Enabled", "emit_metrics": "Enabled", "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0, "distribution_constraints": {
            "perform_comparison": "Disabled"}},  # continuum's own checks: continuum_constraints
        "continuum_constraints": thresholds}


def violations_document(violations: list[dict[str, str]]) -> dict[str, Any]:
    return {"violations": violations}


def write_json(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MonitorFormatError(f"{path}: not found (run `monitor.py baseline` first)") from exc
    except json.JSONDecodeError as exc:
        raise MonitorFormatError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MonitorFormatError(f"{path}: expected a JSON object")
    return document


def feature(statistics: dict[str, Any], name: str, source: Path) -> dict[str, Any]:
    for item in statistics.get("features", []):
        if item.get("name") == name:
            return item
    raise MonitorFormatError(f"{source}: features has no {name!r}")


def histogram(item: dict[str, Any], source: Path) -> tuple[list[float], np.ndarray]:
    """(inner edges, counts) of a numerical feature's buckets."""
    try:
        buckets = item["numerical_statistics"]["distribution"]["kll"]["buckets"]
    except KeyError as exc:
        raise MonitorFormatError(f"{source}: feature {item.get('name')!r} has no distribution.kll.buckets") from exc
    return [float(b["upper_bound"]) for b in buckets[:-1]], np.array([b["count"] for b in buckets], dtype=float)
