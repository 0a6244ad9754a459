"""Notifications: recorded for the Home screen, posted to a Slack-compatible webhook, published to SNS on AWS."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from pipelines.backend import Backend, RunOutcome, local_backend
from pipelines.config import load_config
from pipelines.notify import notify, notify_run_outcome, recent
from pipelines.staging import ensure_bucket

CONFIG = load_config()


@pytest.fixture()
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A local HTTP server that keeps the JSON bodies posted to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


@pytest.fixture()
def backend(tmp_path: Path) -> Backend:
    backend = local_backend(CONFIG, tmp_path / "home")
    ensure_bucket(backend, CONFIG.project.bucket)
    return backend


def test_recorded_newest_first_and_posted_to_the_webhook(backend: Backend, webhook: tuple[str, list[dict]]) -> None:
    url, received = webhook
    config = CONFIG.model_copy(update={"notifications": CONFIG.notifications.model_copy(update={"webhook_url": url})})
    first = notify(backend, config, "drift", "drift on continuum-demo-prod", "oov_rate 0.4 > 0.2")
    second = notify(backend, config, "rollback", "rolled back from 3 to 2")
    assert [note.id for note in recent(backend, config)] == [second.id, first.id]
    assert received == [{"text": "[continuum] drift on continuum-demo-prod\noov_rate 0.4 > 0.2"},
                        {"text": "[continuum] rolled back from 3 to 2"}]
    assert recent(backend, config)[0].delivery == {"webhook": "sent (200)"}
    with pytest.raises(ValueError, match="notification kind must be one of"):
        notify(backend, config, "party", "no")


def test_a_failing_webhook_is_noted_not_raised(backend: Backend) -> None:
    config = CONFIG.model_copy(update={"notifications": CONFIG.notifications.model_copy(
        update={"webhook_url": "http://127.0.0.1:9/nothing-listens", "timeout_seconds": 1.0})})
    note = notify(backend, config, "alarm", "5xx alarm")
    assert note.delivery["webhook"].startswith("failed:")
    assert recent(backend, config)[0].delivery == note.delivery


def test_published_to_the_sns_topic_on_aws() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        topic = session.client("sns").create_topic(Name="continuum-notifications")["TopicArn"]
        queue = session.client("sqs").create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = session.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        session.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        session.client("s3").create_bucket(Bucket=CONFIG.project.bucket)
        config = CONFIG.model_copy(update={"notifications": CONFIG.notifications.model_copy(
            update={"sns_topic_arn": topic})})
        note = notify(Backend("aws", session), config, "gate_failed", "the gate stopped FailRegression", "regression 0.2")
        assert note.delivery == {"sns": "sent"}
        messages = session.client("sqs").receive_message(QueueUrl=queue)["Messages"]
        assert json.loads(messages[0]["Body"])["Message"] == "[continuum] the gate stopped FailRegression\nregression 0.2"
        assert [n.title for n in recent(Backend("aws", session), config)] == ["the gate stopped FailRegression"]


def test_a_run_notifies_its_failed_gate_or_its_version_waiting(backend: Backend) -> None:
    sagemaker = backend.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=CONFIG.model.model_package_group)
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=CONFIG.model.model_package_group, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "img", "ModelDataUrl": "s3://b/m.tar.gz"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        CustomerMetadataProperties={"data_version": "abc123"})["ModelPackageArn"]
    gate = RunOutcome("continuum-demo-training", "e1", "Failed", "regression 0.2 > 0.05", steps=(
        {"name": "FailRegression", "type": "Fail", "status": "Failed"}, {"name": "FailForgetting", "type": "Fail",
                                                                         "status": "NotExecuted"}))
    registered = RunOutcome("continuum-demo-training", "e2", "Succeeded", steps=(
        {"name": "RegisterModel-RegisterModel", "type": "RegisterModel", "status": "Succeeded", "model_package_arn": arn},))
    assert [(n.kind, n.title, n.detail) for n in notify_run_outcome(backend, CONFIG, gate)] == [
        ("gate_failed", "continuum-demo-training: the gate stopped FailRegression", "regression 0.2 > 0.05")]
    assert [(n.kind, n.title) for n in notify_run_outcome(backend, CONFIG, registered)] == [
        ("approval_waiting", f"version 1 of {CONFIG.model.model_package_group} waits for approval")]
    assert notify_run_outcome(backend, CONFIG, RunOutcome("p", "arn:exec", "Executing")) == []


def test_alarms_and_drift_verdicts_notify_once_each(backend: Backend) -> None:
    from pipelines.notify import notify_alarms, notify_drift

    cloudwatch = backend.client("cloudwatch")
    for name, endpoint in (("staging-5xx", CONFIG.deploy.endpoint_name), ("someone-elses", "other-endpoint")):
        cloudwatch.put_metric_alarm(AlarmName=name, Namespace="Custom/Serving", MetricName="Invocation5XXErrors",
                                    Dimensions=[{"Name": "EndpointName", "Value": endpoint}], Statistic="Sum",
                                    Period=60, EvaluationPeriods=1, Threshold=0.0, ComparisonOperator="GreaterThanThreshold")
        cloudwatch.put_metric_data(Namespace="Custom/Serving", MetricData=[{
            "MetricName": "Invocation5XXErrors", "Value": 3.0,
            "Dimensions": [{"Name": "EndpointName", "Value": endpoint}]}])
    assert [note.title for note in notify_alarms(backend, CONFIG)] == ["alarm staging-5xx is in ALARM"]
    assert notify_alarms(backend, CONFIG) == []  # still the same firing
    report = {"endpoint_name": "continuum-demo-prod", "verdict": "drift", "rows": 120, "violations": ["oov_rate"],
              "generated_at": "2026-12-05T10:00:00+00:00"}
    assert notify_drift(backend, CONFIG, {**report, "verdict": "ok"}) is None
    note = notify_drift(backend, CONFIG, report)
    assert note is not None and (note.title, note.detail) == ("continuum-demo-prod: drift over 120 prompts",
                                                              "violations: oov_rate")
    assert notify_drift(backend, CONFIG, report) is None
    assert [n.kind for n in recent(backend, CONFIG)] == ["drift", "alarm"]
