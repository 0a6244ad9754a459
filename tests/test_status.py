"""`continuum status` figures: recent latency and errors from CloudWatch, the latest drift report, the layout."""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.config import load_config
from pipelines.deploy.stage_status import format_stage, latest_drift_report, recent_metrics
from pipelines.local.transport import local_boto3_session

CONFIG = load_config()


def test_recent_metrics_and_latest_drift_report(tmp_path: Path) -> None:
    session = local_boto3_session(tmp_path)
    api = session.local_transport.api
    dims = [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    cloudwatch = session.client("cloudwatch")
    assert recent_metrics(cloudwatch, "ep", 15)["invocations"] == 0.0
    for latency, failed in ((20_000, 0), (40_000, 0), (60_000, 0), (80_000, 1)):
        api.cloudwatch.record("AWS/SageMaker", [("Invocations", dims, 1.0, "None"),
                                                ("Invocation5XXErrors", dims, float(failed), "None"),
                                                ("Invocation4XXErrors", dims, 0.0, "None"),
                                                ("ModelLatency", dims, float(latency), "Microseconds")])
    metrics = recent_metrics(cloudwatch, "ep", 15)
    assert metrics == {"invocations": 4.0, "error_rate": 0.25, "latency_ms": 50.0, "latency_p90_ms": 80.0}

    s3 = session.client("s3")
    s3.create_bucket(Bucket="monitoring-bucket")
    assert latest_drift_report(s3, "s3://monitoring-bucket/reports/ep") is None
    for run, verdict in (("run-1", "ok"), ("run-2", "drift")):
        s3.put_object(Bucket="monitoring-bucket", Key=f"reports/ep/{run}/report.json",
                      Body=json.dumps({"verdict": verdict, "generated_at": run, "violations": ["oov_rate"]}).encode())
    assert latest_drift_report(s3, "s3://monitoring-bucket/reports/ep")["verdict"] == "drift"

    text = format_stage({"stage": "production", "endpoint": "ep", "status": "InService", "version": 3,
                         "traffic": "50% v4 / 50% v3 (blue/green)", "metrics": metrics,
                         "drift": {"verdict": "drift", "at": "2026-11-23T10:00:00", "violations": ["oov_rate"]}}, 15)
    assert text.splitlines() == [
        "production  ep                             InService    serving v3    traffic 50% v4 / 50% v3 (blue/green)",
        "            last 15 min: 4 calls, errors 25.0%, latency avg 50 ms / p90 80 ms",
        "            drift: drift at 2026-11-23T10:00:00 (oov_rate)"]
    missing = format_stage({"stage": "staging", "endpoint": "ep", "status": "not deployed", "version": None,
                            "traffic": "-", "metrics": None, "drift": None}, 15)
    assert missing.splitlines() == ["staging     ep                             not deployed serving -     traffic -"]
