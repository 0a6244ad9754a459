"""The monitor's CloudWatch side: the endpoint's error rate and latency in, the check results out, an alarm.

Read: ``AWS/SageMaker`` ``Invocations``, ``Invocation4XXErrors``, ``Invocation5XXErrors`` (Sum) and
``ModelLatency`` (p90, microseconds) of ``EndpointName`` + ``VariantName`` over the window.
Written (namespace ``continuum/Monitoring``, dimension ``Endpoint``): ``feature_baseline_drift_<check>``
for input drift (the name Model Monitor uses), ``<check>`` for output signals,
``constraint_violations`` and ``drift_detected``. The alarm ``<endpoint>-monitoring-violations``
fires when a run reports violations; an EventBridge rule on it can start retraining.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from monitor.checks import INPUT_DRIFT, CheckResult

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
DEFAULT_NAMESPACE = "continuum/Monitoring"


def _sum(cloudwatch: Any, metric: str, dimensions: list[dict[str, str]], start: datetime, end: datetime,
         period: int) -> float:
    points = cloudwatch.get_metric_statistics(Namespace=SAGEMAKER_NAMESPACE, MetricName=metric, Dimensions=dimensions,
                                              StartTime=start, EndTime=end, Period=period,
                                              Statistics=["Sum"])["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def service_metrics(cloudwatch: Any, endpoint_name: str, variant: str, start: datetime,
                    end: datetime) -> dict[str, float | None]:
    """``{"invocations", "error_rate", "latency_p90_ms"}`` of the variant over [start, end) (None: no calls)."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant}]
    period = max(60, math.ceil((end - start).total_seconds() / 60) * 60)
    invocations = _sum(cloudwatch, "Invocations", dimensions, start, end, period)
    if invocations == 0:
        return {"invocations": 0.0, "error_rate": None, "latency_p90_ms": None}
    errors = sum(_sum(cloudwatch, name, dimensions, start, end, period)
                 for name in ("Invocation4XXErrors", "Invocation5XXErrors"))
    latency = cloudwatch.get_metric_statistics(Namespace=SAGEMAKER_NAMESPACE, MetricName="ModelLatency",
                                               Dimensions=dimensions, StartTime=start, EndTime=end, Period=period,
                                               ExtendedStatistics=["p90"])["Datapoints"]
    p90 = max((p["ExtendedStatistics"]["p90"] for p in latency), default=None)
    return {"invocations": invocations, "error_rate": errors / invocations,
            "latency_p90_ms": None if p90 is None else p90 / 1000.0}


def metric_name(result: CheckResult) -> str:
    return f"feature_baseline_drift_{result.name}" if result.kind == INPUT_DRIFT else result.name


def publish(cloudwatch: Any, namespace: str, endpoint_name: str, results: list[CheckResult], verdict: str,
            when: datetime) -> int:
    """PutMetricData for every evaluated check plus the violation count; how many datapoints were sent."""
    dimensions = [{"Name": "Endpoint", "Value": endpoint_name}]
    data = [{"MetricName": metric_name(r), "Dimensions": dimensions, "Timestamp": when, "Value": float(r.value),
             "Unit": "None"} for r in results if r.evaluated and r.value is not None]
    data.append({"MetricName": "constraint_violations", "Dimensions": dimensions, "Timestamp": when,
                 "Value": float(sum(r.violated for r in results)), "Unit": "Count"})
    data.append({"MetricName": "drift_detected", "Dimensions": dimensions, "Timestamp": when,
                 "Value": 1.0 if verdict == "drift" else 0.0, "Unit": "None"})
    for first in range(0, len(data), 20):  # keep each request small, as CloudWatch recommends
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[first:first + 20])
    return len(data)


def put_violation_alarm(cloudwatch: Any, namespace: str, endpoint_name: str, period_seconds: int) -> str:
    """The alarm on ``constraint_violations`` > 0 (one monitoring period); its name."""
    name = f"{endpoint_name}-monitoring-violations"
    cloudwatch.put_metric_alarm(
        AlarmName=name, AlarmDescription=f"drift or quality violations on {endpoint_name} (continuum monitor)",
        Namespace=namespace, MetricName="constraint_violations",
        Dimensions=[{"Name": "Endpoint", "Value": endpoint_name}], Statistic="Maximum", Period=period_seconds,
        EvaluationPeriods=1, Threshold=0.0, ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
    return name


def window(now: datetime, since_hours: float) -> tuple[datetime, datetime]:
    return now - timedelta(hours=since_hours), now + timedelta(seconds=1)
