"""steps/deploy.py: the exact SageMaker calls (botocore Stubber), and deploy + smoke test against the local API."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

import deploy

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/continuum-demo-models/3"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.1-transformers4.37-gpu-py310"
MODEL_URL = "s3://bucket/models/run-7/model.tar.gz"
ENV = {"HF_TASK": "text-generation"}
CAPTURE_URI = "s3://bucket/data-capture"
NOW = datetime(2026, 11, 23, 10, 4, 5, 123000, tzinfo=timezone.utc)
NAME = "continuum-staging-v3-20261123100405123"
OLD_CONFIG = "continuum-staging-v2-20261101090000000"
ENDPOINT_ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/continuum-staging"
CAPTURE_CONFIG = {
    "EnableCapture": True,
    "InitialSamplingPercentage": 50,
    "DestinationS3Uri": CAPTURE_URI,
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
}


@pytest.fixture()
def client():
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def settings(**overrides) -> deploy.DeploySettings:
    values = dict(model_package_arn=ARN, endpoint_name="continuum-staging", instance_type="ml.g5.xlarge",
                  instance_count=2, role_arn="arn:aws:iam::123456789012:role/sm", capture_percent=50,
                  capture_s3_uri=CAPTURE_URI, poll_seconds=7.0, wait_timeout_seconds=600.0)
    values.update(overrides)
    return deploy.DeploySettings(**values)


def package_response(approval: str = "Approved") -> dict:
    return {
        "ModelPackageGroupName": "continuum-demo-models", "ModelPackageVersion": 3, "ModelPackageName": "continuum-demo-models",
        "ModelPackageArn": ARN, "CreationTime": NOW, "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "ModelApprovalStatus": approval,
        "InferenceSpecification": {
            "Containers": [{"Image": IMAGE, "ModelDataUrl": MODEL_URL, "Environment": ENV}],
            "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"],
        },
    }


def endpoint_response(status: str, config: str = NAME, reason: str | None = None) -> dict:
    response = {"EndpointName": "continuum-staging", "EndpointArn": ENDPOINT_ARN, "EndpointConfigName": config,
                "EndpointStatus": status, "CreationTime": NOW, "LastModifiedTime": NOW}
    if reason:
        response["FailureReason"] = reason
    return response


def stub_model_and_config(stub: Stubber, capture: dict | None = CAPTURE_CONFIG) -> None:
    stub.add_response("describe_model_package", package_response(), {"ModelPackageName": ARN})
    stub.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{NAME}"}, {
        "ModelName": NAME, "ExecutionRoleArn": "arn:aws:iam::123456789012:role/sm",
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": MODEL_URL, "Environment": ENV}})
    config_params = {"EndpointConfigName": NAME, "ProductionVariants": [{
        "VariantName": "AllTraffic", "ModelName": NAME, "InstanceType": "ml.g5.xlarge",
        "InitialInstanceCount": 2, "InitialVariantWeight": 1.0}]}
    if capture:
        config_params["DataCaptureConfig"] = capture
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": f"arn:x:{NAME}"}, config_params)


def not_found(stub: Stubber) -> None:
    stub.add_client_error("describe_endpoint", service_error_code="ValidationException",
                          service_message='Could not find endpoint "continuum-staging".',
                          expected_params={"EndpointName": "continuum-staging"})


def test_create_new_endpoint_with_data_capture(client) -> None:
    sleeps: list[float] = []
    with Stubber(client) as stub:
        stub_model_and_config(stub)
        not_found(stub)
        stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": "continuum-staging", "EndpointConfigName": NAME})
        stub.add_response("describe_endpoint", endpoint_response("Creating"), {"EndpointName": "continuum-staging"})
        stub.add_response("describe_endpoint", endpoint_response("InService"), {"EndpointName": "continuum-staging"})
        record = deploy.deploy(client, settings(), now=NOW, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert sleeps == [7.0]
    assert record["status"] == "InService"
    assert record["action"] == "created" and record["previous_endpoint_config_name"] is None
    assert (record["endpoint_name"], record["endpoint_config_name"], record["model_name"]) == (
        "continuum-staging", NAME, NAME)
    assert record["model_package_arn"] == ARN and record["model_package_version"] == 3
    assert record["data_capture"] == CAPTURE_CONFIG and record["endpoint_arn"] == ENDPOINT_ARN


def test_update_existing_endpoint_blue_green_canary(client) -> None:
    canary = settings(traffic_routing="CANARY", canary_percent=20, wait_interval_seconds=120,
                      rollback_alarms=["staging-5xx", "staging-latency"])
    expected_config = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 120,
                                            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}},
            "TerminationWaitInSeconds": 0},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "staging-5xx"}, {"AlarmName": "staging-latency"}]},
    }
    with Stubber(client) as stub:
        stub_model_and_config(stub)
        stub.add_response("describe_endpoint", endpoint_response("InService", OLD_CONFIG),
                          {"EndpointName": "continuum-staging"})
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, {
            "EndpointName": "continuum-staging", "EndpointConfigName": NAME, "DeploymentConfig": expected_config})
        stub.add_response("describe_endpoint", endpoint_response("Updating"), {"EndpointName": "continuum-staging"})
        stub.add_response("describe_endpoint", endpoint_response("InService"), {"EndpointName": "continuum-staging"})
        record = deploy.deploy(client, canary, now=NOW, sleep=lambda _: None)
        stub.assert_no_pending_responses()
    assert record["action"] == "updated" and record["previous_endpoint_config_name"] == OLD_CONFIG
    assert record["deployment_config"] == expected_config and record["status"] == "InService"


def test_failed_endpoint_raises_with_failure_reason(client) -> None:
    with Stubber(client) as stub:
        stub_model_and_config(stub, capture=None)
        not_found(stub)
        stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": "continuum-staging", "EndpointConfigName": NAME})
        stub.add_response("describe_endpoint", endpoint_response("Failed", reason="CUDA out of memory on ml.g5.xlarge"),
                          {"EndpointName": "continuum-staging"})
        with pytest.raises(deploy.DeployError, match="is Failed: CUDA out of memory") as raised:
            deploy.deploy(client, settings(capture_percent=0), now=NOW, sleep=lambda _: None)
        stub.assert_no_pending_responses()
    assert raised.value.record["status"] == "Failed"
    assert raised.value.record["data_capture"] is None


def test_existing_failed_endpoint_is_deleted_and_recreated(client) -> None:
    with Stubber(client) as stub:
        stub_model_and_config(stub)
        stub.add_response("describe_endpoint", endpoint_response("Failed", OLD_CONFIG, reason="bad image"),
                          {"EndpointName": "continuum-staging"})
        stub.add_response("delete_endpoint", {}, {"EndpointName": "continuum-staging"})
        stub.add_response("describe_endpoint", endpoint_response("Deleting", OLD_CONFIG),
                          {"EndpointName": "continuum-staging"})
        not_found(stub)
        stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": "continuum-staging", "EndpointConfigName": NAME})
        stub.add_response("describe_endpoint", endpoint_response("InService"), {"EndpointName": "continuum-staging"})
        record = deploy.deploy(client, settings(), now=NOW, sleep=lambda _: None)
        stub.assert_no_pending_responses()
    assert record["action"] == "recreated" and record["previous_endpoint_config_name"] == OLD_CONFIG


def test_rolled_back_update_is_an_error(client) -> None:
    with Stubber(client) as stub:
        stub_model_and_config(stub)
        stub.add_response("describe_endpoint", endpoint_response("InService", OLD_CONFIG),
                          {"EndpointName": "continuum-staging"})
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": "continuum-staging", "EndpointConfigName": NAME})
        stub.add_response("describe_endpoint", endpoint_response("InService", OLD_CONFIG),
                          {"EndpointName": "continuum-staging"})
        with pytest.raises(deploy.DeployError, match="rolled back") as raised:
            deploy.deploy(client, settings(), now=NOW, sleep=lambda _: None)
    assert raised.value.record["status"] == "RolledBack"


def test_unapproved_package_is_refused_before_creating_anything(client) -> None:
    with Stubber(client) as stub:
        stub.add_response("describe_model_package", package_response("PendingManualApproval"),
                          {"ModelPackageName": ARN})
        with pytest.raises(deploy.DeployError, match="PendingManualApproval, not Approved"):
            deploy.deploy(client, settings(), now=NOW)
        stub.assert_no_pending_responses()


def test_wait_times_out_with_clear_error(client) -> None:
    ticks = iter(range(0, 10_000, 100))
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_response("describe_endpoint", endpoint_response("Creating"), {"EndpointName": "continuum-staging"})
        with pytest.raises(deploy.DeployError, match="still Creating after 250s"):
            deploy.wait_for_endpoint(client, "continuum-staging", 250, 1, sleep=lambda _: None,
                                     clock=lambda: next(ticks))


def test_resource_names_are_unique_valid_and_short() -> None:
    long_endpoint = "a" * 60 + "-b"
    name = deploy.resource_name(long_endpoint, 12, NOW)
    assert len(name) <= 63 and name.endswith("-v12-20261123100405123")
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)
    assert deploy.resource_name("e", 1, NOW) != deploy.resource_name("e", 1, NOW.replace(microsecond=124000))


def test_bad_arguments_fail_before_any_call(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    base = ["--endpoint-name", "e", "--instance-type", "ml.m5.large", "--role-arn", "r", "--output-dir", str(out)]
    assert deploy.main(["--model-package-arn", "", *base]) == 1
    assert "--model-package-arn is empty: there is no approved model package" in capsys.readouterr().err
    assert deploy.main(["--model-package-arn", "none", *base]) == 1  # what resolve.py writes when there is none
    assert "--model-package-arn is 'none': there is no approved model package" in capsys.readouterr().err
    assert deploy.main(["--model-package-arn", ARN, "--capture-s3-uri", "/tmp/x", *base]) == 1
    assert "--capture-s3-uri must be an s3:// URI" in capsys.readouterr().err
    assert deploy.main(["--model-package-arn", ARN, "--capture-percent", "0", "--rollback-alarms", "a", *base]) == 1
    assert "needs --traffic-routing" in capsys.readouterr().err
    assert not out.exists()


def test_help_works(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        deploy.main(["--help"])
    assert exited.value.code == 0
    assert "--model-package-arn" in capsys.readouterr().out


def test_main_writes_deployment_json(client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deploy.run.boto3, "client", lambda service: client)
    monkeypatch.setattr(deploy.run, "resource_name", lambda endpoint, version, now: NAME)
    with Stubber(client) as stub:
        stub_model_and_config(stub, capture={**CAPTURE_CONFIG, "InitialSamplingPercentage": 100})
        not_found(stub)
        stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": "continuum-staging", "EndpointConfigName": NAME})
        stub.add_response("describe_endpoint", endpoint_response("InService"), {"EndpointName": "continuum-staging"})
        code = deploy.main(["--model-package-arn", ARN, "--endpoint-name", "continuum-staging",
                            "--instance-type", "ml.g5.xlarge", "--instance-count", "2",
                            "--role-arn", "arn:aws:iam::123456789012:role/sm", "--capture-percent", "100",
                            "--capture-s3-uri", CAPTURE_URI, "--output-dir", str(tmp_path)])
        stub.assert_no_pending_responses()
    assert code == 0
    record = json.loads((tmp_path / "deployment.json").read_text())
    assert {k: record[k] for k in ("endpoint_name", "endpoint_config_name", "model_name", "model_package_arn",
                                   "status")} == {"endpoint_name": "continuum-staging", "endpoint_config_name": NAME,
                                                  "model_name": NAME, "model_package_arn": ARN, "status": "InService"}


# ------------------------------------------------------------------------------------------ end to end, locally
STEPS_DIR = Path(__file__).resolve().parents[1] / "steps"


@pytest.fixture()
def local_api(continuum_home: Path):
    """The local SageMaker API on a free port; its endpoints are stopped afterwards."""
    from pipelines.local.api_server import LocalApiServer
    from pipelines.local.sagemaker_api import SageMakerAPI

    api = SageMakerAPI(continuum_home)
    server = LocalApiServer(api)
    url = server.start()
    try:
        yield api, url
    finally:
        server.stop()
        api.wait_for_deployments(timeout_s=120)
        for name in api.endpoints.list_endpoints():
            api.endpoints.delete(name)


def _register(client, api, tiny_model_dir: Path, tmp_path: Path, version: int) -> str:
    archive = tmp_path / f"model-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(tiny_model_dir.iterdir()):
            tar.add(path, arcname=path.name)
        data = json.dumps({"base_model": "tiny", "prompt_template": "Question: {prompt}\nAnswer:",
                           "hyperparameters": {}, "metrics": {}, "data": {}}).encode()
        info = tarfile.TarInfo("continuum.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    uri = f"s3://continuum-e2e/models/v{version}/model.tar.gz"
    api.s3.put_file(uri, archive)
    return client.create_model_package(
        ModelPackageGroupName="e2e-models", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": IMAGE, "ModelDataUrl": uri}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]


def _run_step(script: str, args: list[str], url: str) -> subprocess.CompletedProcess:
    from pipelines.local.api_server import subprocess_env

    return subprocess.run([sys.executable, script, *args], cwd=STEPS_DIR, env={**os.environ, **subprocess_env(url)},
                          capture_output=True, text=True, timeout=300)


def test_deploy_and_smoke_test_against_the_local_api(local_api, tiny_model_dir: Path, tmp_path: Path) -> None:
    from pipelines.local.api_server import subprocess_env
    from pipelines.local.capture import read_capture_records

    api, url = local_api
    env = subprocess_env(url)
    client = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    client.create_model_package_group(ModelPackageGroupName="e2e-models")
    capture_uri = "s3://continuum-e2e/data-capture"
    deploy_args = ["--endpoint-name", "e2e-staging", "--instance-type", "ml.g5.xlarge", "--instance-count", "1",
                   "--capture-percent", "100", "--capture-s3-uri", capture_uri, "--role-arn",
                   "arn:aws:iam::000000000000:role/continuum", "--poll-seconds", "1"]

    first_arn = _register(client, api, tiny_model_dir, tmp_path, 1)
    created = _run_step("deploy.py", ["--model-package-arn", first_arn, *deploy_args,
                                      "--output-dir", str(tmp_path / "deploy1")], url)
    assert created.returncode == 0, created.stderr
    first = json.loads((tmp_path / "deploy1" / "deployment.json").read_text())
    assert first["status"] == "InService" and first["action"] == "created"
    described = client.describe_endpoint(EndpointName="e2e-staging")
    assert described["EndpointConfigName"] == first["endpoint_config_name"]
    assert described["DataCaptureConfig"]["CurrentSamplingPercentage"] == 100

    smoke = _run_step("smoke_test.py", ["--endpoint-name", "e2e-staging", "--prompt", "What is the warranty?",
                                        "--prompt", "Opening hours?", "--max-new-tokens", "4",
                                        "--output-dir", str(tmp_path / "smoke")], url)
    assert smoke.returncode == 0, smoke.stderr
    report = json.loads((tmp_path / "smoke" / "smoke.json").read_text())
    assert report["passed"] and all(r["generated_text"] for r in report["responses"])
    captured = [r["input"]["value"]["inputs"] for r in read_capture_records(api.s3, capture_uri, "e2e-staging")]
    assert captured == ["What is the warranty?", "Opening hours?"]

    first_pid = api.endpoints.status("e2e-staging")["pid"]
    second_arn = _register(client, api, tiny_model_dir, tmp_path, 2)
    updated = _run_step("deploy.py", ["--model-package-arn", second_arn, *deploy_args,
                                      "--output-dir", str(tmp_path / "deploy2")], url)
    assert updated.returncode == 0, updated.stderr
    second = json.loads((tmp_path / "deploy2" / "deployment.json").read_text())
    assert second["action"] == "updated" and second["previous_endpoint_config_name"] == first["endpoint_config_name"]
    status = api.endpoints.status("e2e-staging")
    assert status["model"].endswith("/v2/model.tar.gz") and status["pid"] != first_pid and status["alive"]

    missing = _run_step("smoke_test.py", ["--endpoint-name", "no-such-endpoint", "--prompt", "hi",
                                          "--output-dir", str(tmp_path / "smoke-missing")], url)
    assert missing.returncode == 1 and "1 of 1 prompts failed" in missing.stderr
