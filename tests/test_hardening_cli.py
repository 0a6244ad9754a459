"""Issue 14, items 4 and 5 (status health): CLI errors are one or two lines naming the endpoint and what to do
(a traceback only with --verbose), `status --json` prints only JSON, and `status` says when a server is down."""
from __future__ import annotations

import json
import os
import signal
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber

from pipelines import cli
from pipelines.commands import invoke as invoke_command
from pipelines.commands.status import health_line, server_health
from pipelines.local.endpoints import LocalEndpoints
from pipelines.local.s3 import LocalS3


def _stubbed_runtime(error_code: str, message: str, http_status: int, **fields: object) -> tuple[object, Stubber]:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_client_error("invoke_endpoint", service_error_code=error_code, service_message=message,
                             http_status_code=http_status, modeled_fields=fields)
    stubber.activate()
    return client, stubber


def _use_client(monkeypatch: pytest.MonkeyPatch, client: object) -> None:
    monkeypatch.setattr(invoke_command, "backend_for", lambda args, config: SimpleNamespace(client=lambda name: client))


def test_invoke_without_an_endpoint_is_one_message(continuum_home: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["invoke", "hello", "--endpoint", "nowhere"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: endpoint 'nowhere' is not deployed: ")
    assert "`continuum deploy`" in lines[0] and "--endpoint NAME" in lines[0]


def test_a_model_4xx_names_the_endpoint_and_the_problem(continuum_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    error = '{"error": "inputs is 925 tokens, over the limit of 224"}'
    client, _ = _stubbed_runtime("ModelError", f'Received client error (400) from AllTraffic with message "{error}"',
                                 424, OriginalStatusCode=400, OriginalMessage=error)
    _use_client(monkeypatch, client)
    assert cli.main(["invoke", "x" * 10, "--endpoint", "shop-staging"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == ("error: endpoint 'shop-staging' answered 400: inputs is 925 tokens, over the "
                                    "limit of 224 (fix the request; see its log)")


def test_unexpected_errors_are_two_lines_and_verbose_shows_the_traceback(
        continuum_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    client, stubber = _stubbed_runtime("ThrottlingException", "Rate exceeded", 400)
    _use_client(monkeypatch, client)
    assert cli.main(["invoke", "hi", "--endpoint", "ep"]) == 1
    assert capsys.readouterr().err.strip() == "error: endpoint 'ep': ThrottlingException: Rate exceeded"

    def explode(args: object, config: object) -> object:
        raise RuntimeError("disk on fire\nsecond line\nthird line")

    monkeypatch.setattr(invoke_command, "backend_for", explode)
    assert cli.main(["invoke", "hi"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["error: RuntimeError: disk on fire", "(`continuum --verbose ...` shows the traceback)"]
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli.main(["--verbose", "invoke", "hi"])


def test_status_json_prints_only_json(continuum_home: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["status", "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)  # the whole of stdout
    assert [row["stage"] for row in rows][0] == "staging" and rows[0]["status"] == "not deployed"
    assert rows[0]["servers"] is None
    assert "model package group" in captured.err  # the text lines went to stderr


def test_status_pings_each_server_and_says_when_one_is_down(tiny_model_dir: Path, tmp_path: Path) -> None:
    s3 = LocalS3(tmp_path / "s3")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(tiny_model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    s3.put_file("s3://models/tiny/model.tar.gz", archive)
    endpoints = LocalEndpoints(tmp_path / "home", s3, startup_timeout=180, seed=0)
    variants = [{"VariantName": name, "ModelDataUrl": "s3://models/tiny/model.tar.gz", "InitialInstanceCount": 1,
                 "InitialVariantWeight": 1.0} for name in ("Blue", "Green")]
    backend = SimpleNamespace(is_local=True, local_api=SimpleNamespace(endpoints=endpoints))
    endpoints.deploy("tiny", variants, None)
    try:
        servers = server_health(backend, "tiny")
        assert [(s["variant"], s["alive"], s["ping"]) for s in servers] == [("Blue", True, True), ("Green", True, True)]
        assert health_line(servers) == "servers: 2 of 2 answering /ping"
        dead = servers[1]["pid"]
        os.killpg(dead, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and server_health(backend, "tiny")[1]["alive"]:
            time.sleep(0.05)
        line = health_line(server_health(backend, "tiny"))
        assert line.startswith(f"servers DOWN: 1 of 2: Green (serving, pid {dead}, port {servers[1]['port']}: "
                               "process gone)"), line
        assert server_health(SimpleNamespace(is_local=False), "tiny") is None
    finally:
        endpoints.delete("tiny")
