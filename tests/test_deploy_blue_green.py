"""Blue/green deploys of local endpoints under a steady request load, automatic rollback of a broken candidate,
`continuum rollback` and `continuum status` — the real serving code on the tiny model, through the local API."""
from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

import deploy
from deploy.guardrails import AlarmSettings
from pipelines.backend import Backend, local_backend
from pipelines.cli import main as cli_main
from pipelines.config import load_config
from pipelines.local.api_server import LocalApiServer, subprocess_env
from waiting import Tally

CONFIG = load_config()
GROUP = CONFIG.model.model_package_group
ENDPOINT = CONFIG.deploy.endpoint_name
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.1-gpu-py310"
BROKEN_HANDLER = (b"from inference import input_fn, model_fn, output_fn  # noqa: F401\n\n\n"
                  b"def predict_fn(data, model):\n    raise RuntimeError('deliberately broken candidate')\n")


@dataclass
class Live:
    backend: Backend
    url: str
    arns: dict[str, str]
    clients: dict[str, object] = field(default_factory=dict)


def _register(live_api, sagemaker, tiny_model_dir: Path, workdir: Path, tag: str, broken: bool = False) -> str:
    archive = workdir / f"{tag}.tar.gz"
    files = {"continuum.json": json.dumps({"base_model": "tiny", "prompt_template": "Question: {prompt}\nAnswer:",
                                           "hyperparameters": {}, "metrics": {}, "data": {}}).encode()}
    if broken:
        files["code/inference.py"] = BROKEN_HANDLER
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(tiny_model_dir.iterdir()):
            tar.add(path, arcname=path.name)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    uri = f"s3://{CONFIG.project.bucket}/models/{tag}/model.tar.gz"
    live_api.s3.put_file(uri, archive)
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": IMAGE, "ModelDataUrl": uri}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]


@pytest.fixture(scope="module")
def live(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("blue-green")
    backend = local_backend(CONFIG, home)
    api = backend.local_api
    server = LocalApiServer(api)
    url = server.start()
    env = subprocess_env(url)
    clients = {service: boto3.client(service, endpoint_url=url, region_name="us-east-1",
                                     aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                     config=BotoConfig(retries={"max_attempts": 1}))
               for service in ("sagemaker", "cloudwatch", "application-autoscaling")}
    sagemaker = clients["sagemaker"]
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    arns = {tag: _register(api, sagemaker, tiny_model_dir, home, tag, broken=tag == "broken")
            for tag in ("v1", "v2", "broken")}
    try:
        yield Live(backend, url, arns, clients)
    finally:
        server.stop()
        api.wait_for_deployments(timeout_s=120)
        for name in api.endpoints.list_endpoints():
            api.endpoints.delete(name)


def _settings(arn: str, **blue_green) -> deploy.DeploySettings:
    return deploy.DeploySettings(model_package_arn=arn, endpoint_name=ENDPOINT, instance_type="ml.g5.xlarge",
                                 instance_count=1, role_arn=CONFIG.project.role_arn, capture_percent=100,
                                 capture_s3_uri=f"{CONFIG.s3_prefix}/data-capture", poll_seconds=0.2, **blue_green)


def _canary(arn: str, bake_seconds: int = 2) -> deploy.DeploySettings:
    return _settings(arn, traffic_routing="CANARY", canary_percent=50, wait_interval_seconds=bake_seconds,
                     alarms=AlarmSettings(max_error_rate=0.05, max_latency_ms=60_000, period_seconds=10))


class SteadyLoad:
    """Two callers invoking the endpoint back to back over the local API's HTTP wire."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok: Tally[float] = Tally()
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(2)]

    def _run(self) -> None:
        runtime = boto3.client("sagemaker-runtime", endpoint_url=self.url, region_name="us-east-1",
                               aws_access_key_id="x", aws_secret_access_key="x",
                               config=BotoConfig(retries={"max_attempts": 1}))
        body = json.dumps({"inputs": "How much does the Rover X1 cost?", "parameters": {"max_new_tokens": 4}})
        while not self._stop.is_set():
            try:
                runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=body)["Body"].read()
                self.ok.append(time.monotonic())
            except ClientError as error:
                self.failed.append(error.response["Error"]["Code"])
            except Exception as error:  # noqa: BLE001 - every failure counts
                self.failed.append(repr(error))

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _fleet_calls(cloudwatch, config_name: str) -> float:
    now = datetime.now(timezone.utc)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="Invocations", StartTime=now - timedelta(minutes=10), EndTime=now,
        Period=600, Statistics=["Sum"], Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT},
                                                    {"Name": "VariantName", "Value": "AllTraffic"},
                                                    {"Name": "EndpointConfigName", "Value": config_name}])["Datapoints"]
    return sum(p["Sum"] for p in points)


def test_first_version_is_created(live: Live) -> None:
    record = deploy.deploy(live.clients["sagemaker"], _settings(live.arns["v1"]), cloudwatch=live.clients["cloudwatch"])
    assert record["status"] == "InService" and record["action"] == "created" and record["model_package_version"] == 1


def test_canary_deploy_under_steady_load_fails_no_request(live: Live) -> None:
    first = live.clients["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    with SteadyLoad(live.url) as load:
        load.ok.wait_for(5)  # answered before the deploy,
        record = deploy.deploy(live.clients["sagemaker"], _canary(live.arns["v2"]), cloudwatch=live.clients["cloudwatch"])
        load.ok.wait_for(len(load.ok) + 6)  # and after it
    assert load.failed == [] and len(load.ok) > 10
    assert record["status"] == "InService" and record["action"] == "updated"
    assert record["deployment_config"]["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": f"{record['endpoint_config_name']}-5xx-rate"},
        {"AlarmName": f"{record['endpoint_config_name']}-model-latency"}]
    # both fleets served the load: the old one until the end, the new one from its canary step on
    assert _fleet_calls(live.clients["cloudwatch"], first) > 0
    assert _fleet_calls(live.clients["cloudwatch"], record["endpoint_config_name"]) > 0
    status = live.backend.local_api.endpoints.status(ENDPOINT)
    assert status["candidate"] is None and status["config_name"] == record["endpoint_config_name"]


def test_broken_candidate_is_rolled_back_automatically(live: Live) -> None:
    before = live.clients["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    with SteadyLoad(live.url) as load:
        with pytest.raises(deploy.DeployError, match="rolled back") as raised:
            deploy.deploy(live.clients["sagemaker"], _canary(live.arns["broken"], bake_seconds=5),
                          cloudwatch=live.clients["cloudwatch"])
        served_after = len(load.ok)
        load.ok.wait_for(served_after + 3)  # the old fleet keeps answering after the rollback
    assert raised.value.record["status"] == "RolledBack"
    described = live.clients["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == before
    assert "-5xx-rate went into ALARM" in described["FailureReason"]
    assert load.failed and set(load.failed) == {"ModelError"}  # only the canary's share ever failed
    assert len(load.ok) > served_after  # and the old fleet kept answering after the rollback
    status = live.backend.local_api.endpoints.status(ENDPOINT)
    assert status["candidate"] is None and [v["alive"] for v in status["variants"]] == [True]


def test_rollback_command_returns_to_the_previous_version(live: Live, capsys: pytest.CaptureFixture) -> None:
    before = live.backend.local_api.endpoints.status(ENDPOINT)
    assert "-v1-" in before["standby"]["config_name"]  # the fleet the v2 update retired is kept warm
    started = time.perf_counter()
    code = cli_main(["--home", str(live.backend.home), "rollback", "--stage", "staging"])
    seconds = time.perf_counter() - started
    output = capsys.readouterr().out
    assert code == 0, output
    assert "rolled back staging (InService) from version 2 to 1" in output
    with capsys.disabled():
        print(f"\ncontinuum rollback (staging, v2 → v1): {seconds:.1f}s")
    described = live.clients["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)
    assert "-v1-" in described["EndpointConfigName"]
    after = live.backend.local_api.endpoints.status(ENDPOINT)
    assert after["pid"] == before["standby"]["variants"][0]["pid"]  # swapped back in, not started again
    assert "-v2-" in after["standby"]["config_name"]
    status = {p["ModelPackageArn"]: p["ModelApprovalStatus"] for p in live.clients["sagemaker"].list_model_packages(
        ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]}
    assert status[live.arns["v2"]] == "Rejected" and status[live.arns["v1"]] == "Approved"
    assert cli_main(["--home", str(live.backend.home), "rollback", "--stage", "staging"]) == 1
    assert "no Approved version older than the serving version 1" in capsys.readouterr().out


def test_status_shows_each_stage(live: Live, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["--home", str(live.backend.home), "status", "--json"]) == 0
    output = capsys.readouterr().out
    rows = json.loads(output[output.index("["):output.rindex("]") + 1])
    staging, production = rows
    assert (staging["stage"], staging["status"], staging["version"], staging["traffic"]) == (
        "staging", "InService", 1, "100% v1")
    assert staging["metrics"]["invocations"] > 10 and 0 < staging["metrics"]["error_rate"] < 0.5
    assert staging["drift"] is None
    assert (production["stage"], production["status"]) == ("production", "not deployed")
