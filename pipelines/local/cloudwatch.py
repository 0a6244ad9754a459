"""CloudWatch, locally: metric datapoints and metric alarms on SQLite, with CloudWatch's semantics.

Datapoints come from ``PutMetricData`` and from the local endpoints, which publish SageMaker's
invocation metrics (namespace ``AWS/SageMaker``: ``Invocations``, ``Invocation4XXErrors``,
``Invocation5XXErrors`` (0 or 1 per request, so ``Average`` is the error rate), ``ModelLatency`` and
``OverheadLatency`` in microseconds) under two dimension sets: ``EndpointName, VariantName`` and
``EndpointName, VariantName, EndpointConfigName`` (one fleet: what deployment alarms watch).
As on CloudWatch, a metric is the exact combination of namespace, name and dimensions.

Metric alarms (``PutMetricAlarm``, one metric, ``Statistic`` or ``ExtendedStatistic`` such as
``p90``) are evaluated when read: the last ``EvaluationPeriods`` periods ending now, ALARM when
``DatapointsToAlarm`` of them breach; periods without data follow ``TreatMissingData``
(``missing``/``ignore`` → no datapoint, ``breaching``, ``notBreaching``); no datapoint at all is
``INSUFFICIENT_DATA``. Datapoints older than 15 days are dropped.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.local.registry import ACCOUNT_ID, ApiError, to_epoch

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
BASIC_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
COMPARISONS = {
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}
MISSING_DATA = ("missing", "ignore", "breaching", "notBreaching")
RETENTION_SECONDS = 15 * 24 * 3600  # older datapoints are dropped when the store is opened
_SCHEMA = """
CREATE TABLE IF NOT EXISTS datapoints (
    namespace TEXT NOT NULL, metric TEXT NOT NULL, dimensions TEXT NOT NULL, ts REAL NOT NULL,
    value REAL NOT NULL, unit TEXT);
CREATE INDEX IF NOT EXISTS datapoints_metric ON datapoints (namespace, metric, dimensions, ts);
CREATE TABLE IF NOT EXISTS alarms (name TEXT PRIMARY KEY, spec TEXT NOT NULL, updated REAL NOT NULL);
"""


def invalid(message: str) -> ApiError:
    return ApiError("InvalidParameterValue", message)


def dimensions_key(dimensions: list[dict[str, str]] | None) -> str:
    """The canonical form of a dimension set (order does not matter on CloudWatch)."""
    pairs = sorted((d["Name"], d["Value"]) for d in dimensions or [])
    if len({name for name, _ in pairs}) != len(pairs):
        raise invalid(f"duplicate dimension names in {dimensions}")
    return json.dumps(pairs)


def statistic(values: list[float], name: str) -> float:
    """One CloudWatch statistic (``SampleCount``, ``Average``, ``Sum``, ``Minimum``, ``Maximum``, ``pNN``)."""
    if name == "SampleCount":
        return float(len(values))
    if name == "Average":
        return sum(values) / len(values)
    if name == "Sum":
        return float(sum(values))
    if name == "Minimum":
        return min(values)
    if name == "Maximum":
        return max(values)
    if name.startswith("p"):
        try:
            percent = float(name[1:])
        except ValueError:
            percent = -1.0
        if 0 <= percent <= 100:
            ordered = sorted(values)
            return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]
    raise invalid(f"unknown statistic {name!r}: use {', '.join(BASIC_STATISTICS)} or pNN (e.g. p90)")


class LocalCloudWatch:
    """The CloudWatch operations the project uses, on ``<home>/cloudwatch.sqlite``."""

    def __init__(self, home: Path, region: str = "us-east-1") -> None:
        self.db_path = Path(home) / "cloudwatch.sqlite"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.region = region
        with self._session() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            conn.execute("DELETE FROM datapoints WHERE ts < ?", (time.time() - RETENTION_SECONDS,))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    # -- metrics ------------------------------------------------------------------------------------
    def record(self, namespace: str, datapoints: list[tuple[str, list[dict[str, str]], float, str]],
               when: float | None = None) -> None:
        """Store ``(metric name, dimensions, value, unit)`` datapoints at ``when`` (default: now)."""
        ts = time.time() if when is None else when
        rows = [(namespace, name, dimensions_key(dims), ts, float(value), unit) for name, dims, value, unit in datapoints]
        with self._session() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO datapoints VALUES (?,?,?,?,?,?)", rows)
            conn.execute("COMMIT")

    def values(self, namespace: str, metric: str, dimensions: list[dict[str, str]] | None, start: float,
               end: float) -> list[tuple[float, float]]:
        """``(timestamp, value)`` of one metric with ``start <= timestamp < end``."""
        with self._session() as conn:
            return conn.execute(
                "SELECT ts, value FROM datapoints WHERE namespace=? AND metric=? AND dimensions=? AND ts>=? AND ts<? "
                "ORDER BY ts", (namespace, metric, dimensions_key(dimensions), start, end)).fetchall()

    def put_metric_data(self, p: dict[str, Any]) -> dict[str, Any]:
        namespace = p["Namespace"]
        if namespace.startswith("AWS/"):
            raise invalid(f"The value {namespace} for parameter Namespace is invalid: AWS/ is reserved")
        for index, datum in enumerate(p.get("MetricData") or []):
            if "MetricName" not in datum:
                raise ApiError("MissingParameter", f"MetricData.member.{index + 1}.MetricName is required")
            values = datum.get("Values") or ([datum["Value"]] if "Value" in datum else [])
            counts = datum.get("Counts") or [1] * len(values)
            if not values:
                raise ApiError("MissingParameter", f"MetricData.member.{index + 1}: give Value or Values")
            when = to_epoch(datum["Timestamp"]) if datum.get("Timestamp") else None
            expanded = [v for v, c in zip(values, counts) for _ in range(int(c))]
            self.record(namespace, [(datum["MetricName"], datum.get("Dimensions") or [], v, datum.get("Unit", "None"))
                                    for v in expanded], when)
        return {}

    def get_metric_statistics(self, p: dict[str, Any]) -> dict[str, Any]:
        start, end, period = to_epoch(p["StartTime"]), to_epoch(p["EndTime"]), int(p["Period"])
        if period < 1:
            raise invalid(f"Period must be at least 1 second, got {period}")
        names = list(p.get("Statistics") or []) + list(p.get("ExtendedStatistics") or [])
        if not names:
            raise ApiError("MissingParameter", "give Statistics or ExtendedStatistics")
        points = self.values(p["Namespace"], p["MetricName"], p.get("Dimensions"), start, end)
        buckets: dict[int, list[float]] = {}
        for ts, value in points:
            buckets.setdefault(int((ts - start) // period), []).append(value)
        datapoints = []
        for index, values in sorted(buckets.items()):
            point: dict[str, Any] = {"Timestamp": datetime.fromtimestamp(start + index * period, timezone.utc),
                                     "Unit": p.get("Unit") or "None"}
            for name in p.get("Statistics") or []:
                point[name] = statistic(values, name)
            if p.get("ExtendedStatistics"):
                point["ExtendedStatistics"] = {name: statistic(values, name) for name in p["ExtendedStatistics"]}
            datapoints.append(point)
        return {"Label": p["MetricName"], "Datapoints": datapoints}

    # -- alarms -------------------------------------------------------------------------------------
    def put_metric_alarm(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["AlarmName"]
        if p.get("Metrics"):
            raise invalid(f"alarm {name}: metric math alarms (Metrics) are not supported locally")
        for field in ("MetricName", "Namespace", "Period", "EvaluationPeriods", "Threshold", "ComparisonOperator"):
            if p.get(field) is None:
                raise ApiError("MissingParameter", f"alarm {name}: {field} is required")
        if bool(p.get("Statistic")) == bool(p.get("ExtendedStatistic")):
            raise invalid(f"alarm {name}: give exactly one of Statistic and ExtendedStatistic")
        statistic([1.0], p.get("Statistic") or p["ExtendedStatistic"])  # validates the name
        if p["ComparisonOperator"] not in COMPARISONS:
            raise invalid(f"alarm {name}: ComparisonOperator {p['ComparisonOperator']!r} is not one of "
                          f"{sorted(COMPARISONS)}")
        if p.get("TreatMissingData", "missing") not in MISSING_DATA:
            raise invalid(f"alarm {name}: TreatMissingData must be one of {MISSING_DATA}")
        if int(p.get("DatapointsToAlarm") or p["EvaluationPeriods"]) > int(p["EvaluationPeriods"]):
            raise invalid(f"alarm {name}: DatapointsToAlarm cannot exceed EvaluationPeriods")
        dimensions_key(p.get("Dimensions"))
        spec = {k: v for k, v in p.items() if k != "Tags"}
        with self._session() as conn:
            conn.execute("INSERT OR REPLACE INTO alarms VALUES (?,?,?)", (name, json.dumps(spec), time.time()))
        return {}

    def delete_alarms(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._session() as conn:
            missing = [n for n in p["AlarmNames"]
                       if not conn.execute("SELECT 1 FROM alarms WHERE name=?", (n,)).fetchone()]
            if missing:
                raise ApiError("ResourceNotFound", f"alarms not found: {missing}", status=404)
            conn.executemany("DELETE FROM alarms WHERE name=?", [(n,) for n in p["AlarmNames"]])
        return {}

    def describe_alarms(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._session() as conn:
            rows = conn.execute("SELECT name, spec, updated FROM alarms ORDER BY name").fetchall()
        wanted = set(p.get("AlarmNames") or [])
        alarms = []
        for name, spec, updated in rows:
            if (wanted and name not in wanted) or not name.startswith(p.get("AlarmNamePrefix") or ""):
                continue
            alarm = self._describe(json.loads(spec), updated)
            if p.get("StateValue") in (None, alarm["StateValue"]):
                alarms.append(alarm)
        return {"MetricAlarms": alarms, "CompositeAlarms": []}

    def alarms_in_alarm(self, names: list[str]) -> list[dict[str, Any]]:
        """The named alarms that are in ALARM now (unknown names count as not alarming, as on SageMaker)."""
        return [a for a in self.describe_alarms({"AlarmNames": names})["MetricAlarms"] if a["StateValue"] == "ALARM"]

    def _describe(self, spec: dict[str, Any], updated: float) -> dict[str, Any]:
        state, reason = self.evaluate(spec, time.time())
        return {**spec, "AlarmArn": f"arn:aws:cloudwatch:{self.region}:{ACCOUNT_ID}:alarm:{spec['AlarmName']}",
                "AlarmConfigurationUpdatedTimestamp": datetime.fromtimestamp(updated, timezone.utc),
                "StateValue": state, "StateReason": reason,
                "StateUpdatedTimestamp": datetime.now(timezone.utc), "ActionsEnabled": spec.get("ActionsEnabled", True)}

    def evaluate(self, spec: dict[str, Any], now: float) -> tuple[str, str]:
        """(state, reason) of one metric alarm at ``now``."""
        period, periods = int(spec["Period"]), int(spec["EvaluationPeriods"])
        needed = int(spec.get("DatapointsToAlarm") or periods)
        stat_name = spec.get("Statistic") or spec["ExtendedStatistic"]
        compare = COMPARISONS[spec["ComparisonOperator"]]
        points = self.values(spec["Namespace"], spec["MetricName"], spec.get("Dimensions"),
                             now - period * periods, now + 1e-6)
        stats: list[float | None] = []
        for index in range(periods):
            end = now - index * period
            window = [v for ts, v in points if end - period <= ts < end + 1e-6]
            stats.append(statistic(window, stat_name) if window else None)
        present = [s for s in stats if s is not None]
        treat = spec.get("TreatMissingData") or "missing"
        breaching = sum(compare(s, float(spec["Threshold"])) for s in present)
        if treat == "breaching":
            breaching += len(stats) - len(present)
        shown = ", ".join("no data" if s is None else f"{s:g}" for s in stats)
        if breaching >= needed:
            return "ALARM", (f"Threshold Crossed: {breaching} of the last {periods} datapoint(s) [{shown}] "
                             f"{spec['ComparisonOperator']} {spec['Threshold']}")
        if not present and treat in ("missing", "ignore"):
            return "INSUFFICIENT_DATA", f"no datapoints in the last {periods} period(s) of {period}s"
        return "OK", f"Threshold not crossed: [{shown}] vs {spec['Threshold']}"
