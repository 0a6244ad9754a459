"""Notifications: gate failures, versions waiting for approval, alarms, drift verdicts and rollbacks.

Each one is recorded under ``<s3 prefix>/notifications/`` (the Home screen of `continuum ui` lists the recent
ones, on the local stand-in and on AWS alike), published to ``notifications.sns_topic_arn`` on AWS and posted to
``notifications.webhook_url`` (Slack-compatible JSON ``{"text": ...}``) when configured. A channel that fails
is noted on the record (``delivery``); it never stops the action that notified.
"""
from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from pipelines.backend import Backend
from pipelines.config import Config

KINDS = ("gate_failed", "approval_waiting", "alarm", "drift", "rollback", "approval", "feedback")
PREFIX = "notifications"


@dataclass(frozen=True)
class Notification:
    kind: str
    title: str
    detail: str = ""
    at: str = ""
    id: str = ""
    delivery: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The one-message form a chat channel shows."""
        return f"[continuum] {self.title}" + (f"\n{self.detail}" if self.detail else "")


def notifications_uri(config: Config) -> str:
    return f"{config.s3_prefix}/{PREFIX}"


def _post_webhook(url: str, text: str, timeout: float) -> str:
    request = urllib.request.Request(url, data=json.dumps({"text": text}).encode("utf-8"),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the configured URL)
        return f"sent ({response.status})"


def _deliver(backend: Backend, config: Config, note: Notification) -> dict[str, str]:
    delivery: dict[str, str] = {}
    settings = config.notifications
    if settings.sns_topic_arn and not backend.is_local:
        try:
            backend.client("sns").publish(TopicArn=settings.sns_topic_arn, Subject=note.title[:100],
                                          Message=note.text())
            delivery["sns"] = "sent"
        except Exception as exc:  # noqa: BLE001 - a channel that fails is reported, never raised
            delivery["sns"] = f"failed: {exc}"
    if settings.webhook_url:
        try:
            delivery["webhook"] = _post_webhook(settings.webhook_url, note.text(), settings.timeout_seconds)
        except Exception as exc:  # noqa: BLE001
            delivery["webhook"] = f"failed: {exc}"
    return delivery


def _once_key(prefix: str, once: str) -> str:
    import hashlib

    return f"{prefix}/once/{hashlib.sha256(once.encode()).hexdigest()[:24]}"


def _first_time(backend: Backend, config: Config, once: str) -> bool:
    """Whether the event named ``once`` was not notified before (and mark it notified)."""
    bucket, _, prefix = notifications_uri(config).removeprefix("s3://").partition("/")
    key = _once_key(prefix, once)
    s3 = backend.client("s3")
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except Exception:  # noqa: BLE001 - not there (or no bucket yet): first time
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=once.encode("utf-8"))
        except Exception:  # noqa: BLE001
            pass
        return True


def notify(backend: Backend, config: Config, kind: str, title: str, detail: str = "",
           once: str | None = None) -> Notification | None:
    """Send one notification to the configured channels and record it (with how each delivery went). With
    ``once`` (an event's identity) an event already notified is not sent again (None)."""
    if kind not in KINDS:
        raise ValueError(f"notification kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if once is not None and not _first_time(backend, config, once):
        return None
    now = datetime.now(timezone.utc)
    note = Notification(kind, title, detail, now.isoformat(timespec="seconds"),
                        f"{now.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}")
    note = Notification(**{**asdict(note), "delivery": _deliver(backend, config, note)})
    bucket, _, prefix = notifications_uri(config).removeprefix("s3://").partition("/")
    try:
        backend.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{note.id}.json",
                                        Body=json.dumps(asdict(note)).encode("utf-8"))
    except Exception:  # noqa: BLE001 - no bucket yet: sent, not recorded
        pass
    return note


def recent(backend: Backend, config: Config, count: int = 20) -> list[Notification]:
    """The newest ``count`` recorded notifications, newest first (none before the bucket exists)."""
    s3 = backend.client("s3")
    bucket, _, prefix = notifications_uri(config).removeprefix("s3://").partition("/")
    try:
        keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
                for item in page.get("Contents", []) if item["Key"].endswith(".json")]
    except s3.exceptions.NoSuchBucket:
        return []
    notes = []
    for key in sorted(keys, reverse=True)[:count]:  # ids start with the UTC time
        record: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        notes.append(Notification(**record))
    return notes


def notify_run_outcome(backend: Backend, config: Config, outcome: Any) -> list[Notification]:
    """After a training run: a gate that stopped it (its FailStep's message), or the version now waiting for
    approval. A run still going on SageMaker (no steps known yet) notifies nothing."""
    sent: list[Notification | None] = []
    failed_gates = [step for step in outcome.steps if step.get("type") == "Fail" and step.get("status") == "Failed"]
    if failed_gates:
        sent.append(notify(backend, config, "gate_failed", f"{outcome.pipeline_name}: the gate stopped "
                           f"{failed_gates[0]['name']}", outcome.failure_reason or ""))
    for step in outcome.steps:
        if step.get("model_package_arn") and outcome.succeeded:
            from pipelines.registry_ops import describe_version

            version = describe_version(backend.client("sagemaker"), step["model_package_arn"])
            if version.approval_status == "PendingManualApproval":
                sent.append(notify(backend, config, "approval_waiting",
                                   f"version {version.version} of {config.model.model_package_group} waits for approval",
                                   f"data version {version.metadata.get('data_version', '?')}"))
    return [note for note in sent if note is not None]


def notify_drift(backend: Backend, config: Config, report: dict[str, Any]) -> Notification | None:
    """A monitor verdict other than ok (drift, degraded), with its violations; once per report."""
    if report.get("verdict") == "ok":
        return None
    endpoint = report.get("endpoint_name", "?")
    return notify(backend, config, "drift", f"{endpoint}: {report.get('verdict')} over {report.get('rows')} prompts",
                  f"violations: {', '.join(report.get('violations', [])) or 'none'}",
                  once=f"drift/{endpoint}/{report.get('generated_at')}")


def notify_alarms(backend: Backend, config: Config) -> list[Notification]:
    """Each alarm of the project's endpoints (or of the monitor's namespace) that went into ALARM since the last
    look, once per time it fires (an alarm back to OK may notify again when it fires again)."""
    from pipelines.deploy.stages import stages

    names = [stage.endpoint_name for stage in stages(config)]
    bucket, _, prefix = notifications_uri(config).removeprefix("s3://").partition("/")
    s3, sent = backend.client("s3"), []
    for page in backend.client("cloudwatch").get_paginator("describe_alarms").paginate():
        for alarm in page.get("MetricAlarms", []):
            text = alarm["AlarmName"] + " " + " ".join(d["Value"] for d in alarm.get("Dimensions", []))
            if not any(name in text for name in names) and alarm.get("Namespace") != config.deploy.monitoring.namespace:
                continue
            once = f"alarm/{alarm['AlarmName']}"
            if alarm.get("StateValue") == "ALARM":
                note = notify(backend, config, "alarm", f"alarm {alarm['AlarmName']} is in ALARM",
                              alarm.get("StateReason", ""), once=once)
                sent += [note] if note is not None else []
            else:  # quiet again: the next time it fires is news
                try:
                    s3.delete_object(Bucket=bucket, Key=_once_key(prefix, once))
                except Exception:  # noqa: BLE001 - nothing to forget
                    pass
    return sent
