"""What `continuum status` shows per stage: serving version, traffic split, recent latency and errors, drift."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from pipelines import s3_layout
from pipelines.backend import Backend
from pipelines.config import Config
from pipelines.deploy.stages import Stage, config_version, describe_endpoint

VARIANT = "AllTraffic"


def traffic_split(backend: Backend, endpoint: dict[str, Any]) -> str:
    """``100% v3`` or, during a blue/green update, ``canary: 10% v4 / 90% v3``."""
    serving = config_version(endpoint.get("EndpointConfigName"))
    pending = endpoint.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
    label = f"v{serving}" if serving is not None else endpoint.get("EndpointConfigName", "?")
    if not pending:
        return f"100% {label}"
    new = f"v{config_version(pending)}" if config_version(pending) is not None else pending
    shift = backend.traffic_shift(endpoint["EndpointName"])
    if shift is None:
        return f"updating {label} → {new} (blue/green)"
    share = shift["candidate_share"]
    if share is not None:
        return f"{share:.0%} {new} / {1 - share:.0%} {label} (blue/green)"
    return f"100% {label}, {new} warming up"


def recent_metrics(cloudwatch: Any, endpoint_name: str, minutes: int,
                   now: datetime | None = None) -> dict[str, float | None]:
    """Invocations, error rate (4XX + 5XX) and model latency (average, p90, ms) over the last ``minutes``."""
    now = now or datetime.now(timezone.utc)
    query = {"Namespace": "AWS/SageMaker", "StartTime": now - timedelta(minutes=minutes), "EndTime": now,
             "Period": minutes * 60, "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name},
                                                    {"Name": "VariantName", "Value": VARIANT}]}

    def total(metric: str) -> float:
        points = cloudwatch.get_metric_statistics(MetricName=metric, Statistics=["Sum"], **query)["Datapoints"]
        return float(sum(p["Sum"] for p in points))

    invocations = total("Invocations")
    if not invocations:
        return {"invocations": 0.0, "error_rate": None, "latency_ms": None, "latency_p90_ms": None}
    latency = cloudwatch.get_metric_statistics(MetricName="ModelLatency", Statistics=["Average", "SampleCount"],
                                               ExtendedStatistics=["p90"], **query)["Datapoints"]
    count = sum(p["SampleCount"] for p in latency)
    average = sum(p["Average"] * p["SampleCount"] for p in latency) / count if count else None
    p90 = max((p["ExtendedStatistics"]["p90"] for p in latency), default=None)
    return {"invocations": invocations,
            "error_rate": (total("Invocation4XXErrors") + total("Invocation5XXErrors")) / invocations,
            "latency_ms": None if average is None else average / 1000, "latency_p90_ms": None if p90 is None else p90 / 1000}


def latest_drift_report(s3: Any, uri: str) -> dict[str, Any] | None:
    """The newest report.json under ``uri`` (None when the endpoint was never monitored); reports written in the
    same second (S3's LastModified resolution) are ordered by their ``generated_at``."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    found = [item for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
             for item in page.get("Contents", []) if item["Key"].endswith("/report.json")]
    if not found:
        return None
    newest = max(item["LastModified"] for item in found)
    reports = [json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
               for item in found if item["LastModified"] == newest]
    return max(reports, key=lambda report: str(report.get("generated_at", "")))


def stage_status(backend: Backend, config: Config, stage: Stage, minutes: int = 15) -> dict[str, Any]:
    """``{"stage", "endpoint", "status", "version", "traffic", "metrics", "drift"}`` for one stage."""
    endpoint = describe_endpoint(backend.client("sagemaker"), stage.endpoint_name)
    row: dict[str, Any] = {"stage": stage.name, "endpoint": stage.endpoint_name}
    if endpoint is None:
        return {**row, "status": "not deployed", "version": None, "traffic": "-", "metrics": None, "drift": None}
    report = None
    try:
        report = latest_drift_report(backend.client("s3"), s3_layout.monitoring_reports_uri(config, stage.endpoint_name))
    except backend.client("s3").exceptions.NoSuchBucket:
        report = None
    drift = None if report is None else {"verdict": report["verdict"], "at": report["generated_at"],
                                         "violations": report.get("violations", [])}
    return {**row, "status": endpoint["EndpointStatus"], "failure_reason": endpoint.get("FailureReason"),
            "version": config_version(endpoint.get("EndpointConfigName")), "traffic": traffic_split(backend, endpoint),
            "metrics": recent_metrics(backend.client("cloudwatch"), stage.endpoint_name, minutes), "drift": drift}


def format_stage(row: dict[str, Any], minutes: int) -> str:
    """One stage as two lines for the terminal."""
    version = f"v{row['version']}" if row.get("version") is not None else "-"
    lines = [f"{row['stage']:<11} {row['endpoint']:<30} {row['status']:<12} serving {version:<5} traffic {row['traffic']}"]
    metrics = row.get("metrics")
    if metrics is not None:
        if metrics["invocations"]:
            lines.append(f"{'':<11} last {minutes} min: {metrics['invocations']:.0f} calls, errors "
                         f"{metrics['error_rate']:.1%}, latency avg {metrics['latency_ms']:.0f} ms / p90 "
                         f"{metrics['latency_p90_ms']:.0f} ms")
        else:
            lines.append(f"{'':<11} last {minutes} min: no calls")
    drift = row.get("drift")
    if row["status"] != "not deployed":
        lines.append(f"{'':<11} drift: " + (f"{drift['verdict']} at {drift['at']}" + (
            f" ({', '.join(drift['violations'])})" if drift["violations"] else "") if drift else "never monitored"))
    if row.get("failure_reason"):
        lines.append(f"{'':<11} last update: {row['failure_reason']}")
    return "\n".join(lines)
