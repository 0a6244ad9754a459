"""Issue 14, items 1 and 3: the endpoint bounds every request before work, answers malformed ones with a 4xx
naming the problem, and keeps short requests moving under a mixed load (serve.py on the tiny model)."""
from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVING = REPO_ROOT / "containers" / "serving"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"hardening_{name}", SERVING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


batching = _load("batching")
limits = _load("limits")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(port: int, body: bytes | None, method: str = "POST") -> tuple[int, dict, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, "/invocations" if method == "POST" else "/ping", body=body,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null"), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def _raw(port: int, request: bytes) -> bytes:
    """What the server answers to raw request bytes (the client then stops sending)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(port, pid) of serve.py on the tiny base model (256 positions) with the default limits."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_MAX")}
    process = subprocess.Popen([sys.executable, str(SERVING / "serve.py"), "--model-dir", str(tiny_model_dir),
                                "--port", str(port)], cwd=tmp_path_factory.mktemp("serve"), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "serve.py exited"
            try:
                if _post(port, None, method="GET")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.parametrize(("body", "status", "message"), [
    (b'{"inputs": "\\udcff"}', 400, "inputs holds a lone surrogate (U+DCFF"),
    (b'{"inputs": ["ok", {"messages": [{"role": "user", "content": "a\\ud800b"}]}]}', 400,
     "inputs[1].messages[0].content holds a lone surrogate (U+D800 at character 1)"),
    (b"[" * 200_000 + b"]" * 200_000, 400, "nested too deeply"),
    (b'{"inputs": ' + b"[" * 40 + b'"x"' + b"]" * 40 + b"}", 400, "over the limit of 32 (CONTINUUM_MAX_JSON_DEPTH)"),
    (b'\xff{"inputs": "x"}', 400, "request body is not UTF-8"),
    (b'{"inputs": "x", "parameters": {"max_new_tokens": 256}}', 400, "max_new_tokens 256 leaves no room"),
    (b'{"inputs": "x", "parameters": {"truncate": "yes"}}', 400, "parameter 'truncate' must be true or false"),
    (b"x" * (7 * 1024 * 1024), 413, "over the limit of 6,291,456 bytes (CONTINUUM_MAX_REQUEST_BYTES)"),
])
def test_malformed_and_oversized_requests_get_4xx(server: tuple[int, int], body: bytes, status: int,
                                                  message: str) -> None:
    got, payload, _ = _post(server[0], body)
    assert got == status and message in payload["error"], payload


@pytest.mark.parametrize(("head", "answer"), [
    (b"Content-Length: abc\r\n\r\n", b"Content-Length must be a non-negative integer, got 'abc'"),
    (b"Content-Length: -5\r\n\r\n", b"Content-Length must be a non-negative integer"),
    (b"Content-Length: 10\r\n\r\nabc", b"request body ended after 3 of the 10 bytes"),
    (b"\r\n", b"Content-Length is required"),
])
def test_bad_content_length_is_answered(server: tuple[int, int], head: bytes, answer: bytes) -> None:
    reply = _raw(server[0], b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + head)
    assert reply.startswith((b"HTTP/1.1 400", b"HTTP/1.1 411")) and answer in reply, reply[:300]
    assert _post(server[0], None, method="GET")[0] == 200  # the server is still up


def test_a_million_word_prompt_is_refused_before_work(server: tuple[int, int]) -> None:
    """The issue's case: 400 naming the limit, answered without tokenizing or generating (memory stays small)."""
    port, pid = server
    before = _peak_rss_mb(pid)
    status, payload, _ = _post(port, json.dumps({"inputs": "word " * 1_000_000,
                                                 "parameters": {"max_new_tokens": 1}}).encode())
    assert status == 400, payload
    assert "over the limit of 255 (the model's 256 tokens minus max_new_tokens 1)" in payload["error"]
    assert '"truncate": true' in payload["error"]
    assert _peak_rss_mb(pid) - before < 300  # parsing 5 MB of JSON, not 7.7 GB of attention
    status, payload, _ = _post(port, json.dumps({"inputs": "word " * 300, "parameters": {"max_new_tokens": 4}}).encode())
    assert status == 400 and re.match(r"inputs is \d+ tokens, over", payload["error"])  # exact when near the limit


def test_truncation_only_when_asked(server: tuple[int, int]) -> None:
    port = server[0]
    long_text = "alpha beta gamma " * 400
    status, payload, headers = _post(port, json.dumps({"inputs": long_text, "parameters": {
        "max_new_tokens": 4, "truncate": True}}).encode())
    assert status == 200 and len(payload) == 1, payload
    assert int(headers["x-continuum-cost"]) <= 256  # the prompt cut to the model's length minus max_new_tokens
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": long_text},
                         {"role": "assistant", "content": "ok"}, {"role": "user", "content": "And the price?"}]}
    status, payload, headers = _post(port, json.dumps({"inputs": chat, "parameters": {"max_new_tokens": 4,
                                                                                      "truncate": True}}).encode())
    assert status == 200 and int(headers["x-continuum-cost"]) <= 256, payload
    status, _, _ = _post(port, json.dumps({"inputs": chat, "parameters": {"max_new_tokens": 4}}).encode())
    assert status == 400


def test_limits_from_the_environment_name_a_bad_variable() -> None:
    assert limits.ServingLimits.from_environment({"CONTINUUM_MAX_QUEUE": "5"}).max_queue == 5
    with pytest.raises(ValueError, match="CONTINUUM_MAX_QUEUE='many' is not a number"):
        limits.ServingLimits.from_environment({"CONTINUUM_MAX_QUEUE": "many"})
    with pytest.raises(ValueError, match="CONTINUUM_MAX_REQUEST_BYTES must be positive"):
        limits.ServingLimits.from_environment({"CONTINUUM_MAX_REQUEST_BYTES": "0"})
    budget = limits.TokenBudget.for_request(limits.ServingLimits(max_input_tokens=100), 256, 32)
    assert (budget.limit, budget.reason) == (100, "CONTINUUM_MAX_INPUT_TOKENS=100")
    assert limits.TokenBudget.for_request(limits.ServingLimits(max_input_tokens=250), 256, 32).limit == 224


class _Gate:
    """A fake generation that blocks until released and records each call's inputs."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, inputs: list[str], parameters: dict) -> list[str]:
        self.calls.append(list(inputs))
        self.entered.set()
        self.release.wait(10)
        if "bad" in inputs:
            raise ValueError("bad input")
        return [text.upper() for text in inputs]


def test_queue_serves_short_requests_before_queued_long_ones_and_batches_them() -> None:
    gate = _Gate()
    queue = batching.GenerationQueue(gate, max_queue=5, max_batch_inputs=4, aging=4.0)
    running = queue.submit(["long-0"], {}, 300)
    assert gate.entered.wait(5)  # the worker is busy with it; everything below waits
    long_jobs = [queue.submit([f"long-{i}"], {}, 300) for i in (1, 2)]
    short_jobs = [queue.submit([f"short-{i}"], {}, 20) for i in range(3)]
    with pytest.raises(batching.QueueFull, match="5 requests are waiting"):
        queue.submit(["one too many"], {}, 20)
    gate.release.set()
    assert [queue.wait(job, 10) for job in short_jobs] == [["SHORT-0"], ["SHORT-1"], ["SHORT-2"]]
    assert [queue.wait(job, 10) for job in long_jobs] == [["LONG-1"], ["LONG-2"]]
    assert queue.wait(running, 10) == ["LONG-0"]
    # The three short ones went first, in one call, though queued after the long ones.
    assert gate.calls == [["long-0"], ["short-0", "short-1", "short-2"], ["long-1", "long-2"]]
    assert [job.ahead for job in short_jobs] == [0, 0, 0] and (long_jobs[0].ahead, long_jobs[0].cost_ahead) == (3, 60)


def test_queue_ages_long_jobs_isolates_failures_and_drops_abandoned_ones() -> None:
    gate = _Gate()
    queue = batching.GenerationQueue(gate, max_queue=20, max_batch_inputs=1, aging=1.0)
    queue.submit(["first"], {}, 10)
    assert gate.entered.wait(5)
    long_job = queue.submit(["long"], {}, 30)
    shorts = [queue.submit([f"s{i}"], {}, 10) for i in range(6)]
    gate.release.set()
    queue.wait(long_job, 10)
    # Overdue once 30 tokens of other work started after it was queued: after three short ones, not six.
    assert gate.calls.index(["long"]) == 4 and long_job.ahead == 3 and long_job.cost_ahead == 30
    for job in shorts:
        queue.wait(job, 10)
    bad, good = queue.submit(["bad"], {"k": 1}, 5), queue.submit(["good"], {"k": 1}, 5)
    with pytest.raises(ValueError, match="bad input"):
        queue.wait(bad, 10)
    assert queue.wait(good, 10) == ["GOOD"]
    stuck = threading.Event()
    slow = batching.GenerationQueue(lambda inputs, parameters: [stuck.wait(10)], max_queue=5, max_batch_inputs=1)
    slow.submit(["busy"], {}, 1)
    waiting = slow.submit(["waiting"], {}, 1)
    with pytest.raises(batching.WaitTimeout, match="behind 0 other") as raised:
        slow.wait(waiting, 0.2)
    assert not raised.value.started and waiting not in slow.waiting
    stuck.set()


def test_mixed_load_from_several_clients(server: tuple[int, int]) -> None:
    """Long prompts (truncated to the limit) and short ones at once: no errors, and the short requests are
    not queued behind the long ones (a long request starts ahead of a short one only when overdue)."""
    port = server[0]
    results: list[tuple[str, int, dict]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(5)

    def client(kind: str) -> None:
        barrier.wait()
        for number in range(6):
            text = "Tell me about the warehouse robots and their batteries. " * 60 if kind == "long" else f"Hi {number}?"
            parameters = {"max_new_tokens": 8, **({"truncate": True} if kind == "long" else {})}
            status, payload, headers = _post(port, json.dumps({"inputs": text, "parameters": parameters}).encode())
            with lock:
                results.append((kind, status, headers))

    threads = [threading.Thread(target=client, args=(kind,)) for kind in ("long", "long", "short", "short", "short")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 30 and all(status == 200 for _, status, _ in results), results
    long_cost = min(int(h["x-continuum-cost"]) for kind, _, h in results if kind == "long")
    short_ahead = sorted(int(h["x-continuum-cost-ahead"]) for kind, _, h in results if kind == "short")
    assert long_cost > 200
    assert short_ahead[len(short_ahead) // 2] < long_cost, short_ahead  # most waited for no long request


def test_serving_limits_come_from_the_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    """deploy.serving → the model package's Environment → the local endpoint's serve.py refuses over the limit."""
    import tarfile

    import boto3
    from moto import mock_aws

    from pipelines.backend import Backend
    from pipelines.config import DEMO_CONFIG_PATH, load_config
    from pipelines.definitions import definition_json
    from pipelines.local.endpoints import LocalEndpoints, ModelInvocationError
    from pipelines.local.s3 import LocalS3

    config = load_config(DEMO_CONFIG_PATH, {"deploy.serving": {"max_request_bytes": 2000, "max_queue": 3}})
    environment = config.deploy.serving.environment()
    assert environment["CONTINUUM_MAX_REQUEST_BYTES"] == "2000" and environment["CONTINUUM_MAX_QUEUE"] == "3"
    assert environment["CONTINUUM_MAX_INPUT_TOKENS"] == "0"  # the default: the model's length decides
    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=config.project.bucket)
        definition = definition_json("training", config, Backend("aws", session))
    [register] = [step for step in _all_steps(definition)
                  if step["Name"] == "RegisterModel-RegisterModel"]
    container_environment = register["Arguments"]["InferenceSpecification"]["Containers"][0]["Environment"]
    assert {name: container_environment.get(name) for name in environment} == environment

    s3 = LocalS3(tmp_path / "s3")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(tiny_model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    s3.put_file("s3://models/tiny/model.tar.gz", archive)
    endpoints = LocalEndpoints(tmp_path / "home", s3, startup_timeout=180, seed=0)
    endpoints.deploy("limited", [{"VariantName": "AllTraffic", "ModelDataUrl": "s3://models/tiny/model.tar.gz",
                                  "Environment": environment, "InitialInstanceCount": 1,
                                  "InitialVariantWeight": 1.0}], None)
    try:
        with pytest.raises(ModelInvocationError) as refused:
            endpoints.invoke("limited", json.dumps({"inputs": "x" * 3000}).encode(), "application/json",
                             "application/json", None)
        assert refused.value.status == 413 and "over the limit of 2,000 bytes" in str(refused.value)
        body, _, _ = endpoints.invoke("limited", json.dumps({"inputs": "Hi"}).encode(), "application/json",
                                      "application/json", None)
        assert len(json.loads(body)) == 1
    finally:
        endpoints.delete("limited")


def _all_steps(definition: dict) -> list[dict]:
    found: list[dict] = []

    def visit(step: dict) -> None:
        found.append(step)
        if step["Type"] == "Condition":
            for child in step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"]:
                visit(child)

    for step in definition["Steps"]:
        visit(step)
    return found
