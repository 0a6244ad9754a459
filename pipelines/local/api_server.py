"""The local SageMaker API over HTTP, speaking the wire protocols botocore uses.

- SageMaker (JSON 1.1): ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>`` and an
  ``application/x-amz-json-1.1`` body; errors are HTTP 400 ``{"__type": code, "message": ...}``.
- sagemaker-runtime (REST): ``POST /endpoints/{name}/invocations`` with the body as-is and
  ``Content-Type`` / ``Accept`` / ``X-Amzn-SageMaker-Custom-Attributes`` headers; the answer carries
  ``x-Amzn-Invoked-Production-Variant``.
- CloudWatch and Application Auto Scaling: see :mod:`pipelines.local.aws_wire`.

Step subprocesses reach it with plain ``boto3.client("sagemaker")`` given :func:`subprocess_env`.
``handle_wire`` is shared with the in-process transport, so both paths serialise identically.

With ``$CONTINUUM_RECORD_AWS_CALLS`` set, every call either path answers is appended to
``<home>/aws-calls.jsonl`` (:func:`record_call`): what the least-privilege tests check against the IAM policies.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from pipelines.local.aws_wire import handle_service_wire, request_params
from pipelines.local.registry import ApiError
from pipelines.local.sagemaker_api import SageMakerAPI

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."
INVOKE_PREFIX, INVOKE_SUFFIX = "/endpoints/", "/invocations"
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
VARIANT_HEADER = "x-Amzn-Invoked-Production-Variant"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "continuum-local", "AWS_SECRET_ACCESS_KEY": "continuum-local"}
RECORD_CALLS_ENV = "CONTINUUM_RECORD_AWS_CALLS"
CALL_LOG_NAME = "aws-calls.jsonl"
_WIRE_SERVICES = {TARGET_PREFIX: "sagemaker", "GraniteServiceVersion20100801.": "cloudwatch",
                  "AnyScaleFrontendService.": "application-autoscaling"}
_record_lock = threading.Lock()


def record_call(api: SageMakerAPI, service: str, operation: str, caller: str) -> None:
    """Append ``{"service", "operation", "caller"}`` to ``<home>/aws-calls.jsonl`` when $CONTINUUM_RECORD_AWS_CALLS is
    set (caller: ``job`` for step processes over HTTP, ``control-plane`` for the in-process clients)."""
    if os.environ.get(RECORD_CALLS_ENV):
        line = json.dumps({"service": service, "operation": operation, "caller": caller}) + "\n"
        with _record_lock, (api.home / CALL_LOG_NAME).open("a", encoding="utf-8") as out:
            out.write(line)


def wire_operation(method: str, path: str, headers: Mapping[str, str]) -> tuple[str, str]:
    """(service, operation) of a request to the local API: the X-Amz-Target's, or sagemaker-runtime InvokeEndpoint."""
    route = urlsplit(path).path
    if method == "POST" and route.startswith(INVOKE_PREFIX) and route.endswith(INVOKE_SUFFIX):
        return "sagemaker-runtime", "InvokeEndpoint"
    target = {k.lower(): v for k, v in headers.items()}.get("x-amz-target", "")
    prefix = next((p for p in _WIRE_SERVICES if target.startswith(p)), None)
    return (_WIRE_SERVICES[prefix], target[len(prefix):]) if prefix else ("unknown", f"{method} {route}")


@dataclass
class WireResponse:
    """An HTTP answer: status, headers, body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot serialise {type(value).__name__} in a SageMaker response")


def _json_response(status: int, payload: dict[str, Any], extra_headers: Mapping[str, str] | None = None) -> WireResponse:
    body = json.dumps(payload, default=_json_default).encode("utf-8")
    return WireResponse(status, {"Content-Type": JSON_CONTENT_TYPE, **(extra_headers or {})}, body)


def _error_response(error: ApiError) -> WireResponse:
    payload = {"__type": error.code, "message": error.message, **error.extra}
    return _json_response(error.status, payload, {"x-amzn-ErrorType": error.code})


def handle_wire(api: SageMakerAPI, method: str, path: str, headers: Mapping[str, str], body: bytes) -> WireResponse:
    """Answer one HTTP request to the SageMaker or sagemaker-runtime API."""
    lower = {k.lower(): v for k, v in headers.items()}
    route = urlsplit(path).path
    try:
        if route.startswith(INVOKE_PREFIX) and route.endswith(INVOKE_SUFFIX) and method == "POST":
            return _invoke(api, unquote(route[len(INVOKE_PREFIX):-len(INVOKE_SUFFIX)]), lower, body)
        other_service = handle_service_wire(api.handle, method, route, lower, body)  # CloudWatch, auto scaling
        if other_service is not None:
            return WireResponse(*other_service)
        target = lower.get("x-amz-target", "")
        if method != "POST" or not target.startswith(TARGET_PREFIX):
            raise ApiError("UnknownOperationException",
                           f"{method} {route} is not a SageMaker API request (expected POST / with "
                           f"X-Amz-Target: {TARGET_PREFIX}<Operation>, or POST /endpoints/<name>/invocations)")
        return _json_response(200, api.handle(target[len(TARGET_PREFIX):], request_params(body)))
    except ApiError as error:
        return _error_response(error)
    except Exception as exc:  # a bug here must reach the client as an error, not a dropped connection
        log.exception("local SageMaker API failed on %s %s", method, route)
        return _error_response(ApiError("InternalFailure", f"{type(exc).__name__}: {exc}", status=500))


def _invoke(api: SageMakerAPI, endpoint: str, headers: dict[str, str], body: bytes) -> WireResponse:
    result = api.handle("InvokeEndpoint", {
        "EndpointName": endpoint, "Body": body,
        "ContentType": headers.get("content-type"), "Accept": headers.get("accept"),
        "CustomAttributes": headers.get(CUSTOM_ATTRIBUTES_HEADER.lower()),
    })
    out_headers = {"Content-Type": result.get("ContentType") or "application/octet-stream",
                   VARIANT_HEADER: result.get("InvokedProductionVariant", "")}
    if result.get("CustomAttributes"):
        out_headers[CUSTOM_ATTRIBUTES_HEADER] = result["CustomAttributes"]
    return WireResponse(200, out_headers, result["Body"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _respond(self) -> None:
        headers = dict(self.headers.items())
        record_call(self.server.api, *wire_operation(self.command, self.path, headers), caller="job")
        response = handle_wire(self.server.api, self.command, self.path, headers, self._read_body())
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_POST = do_GET = do_PUT = do_DELETE = _respond

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        log.debug("local SageMaker API: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: SageMakerAPI, host: str, port: int) -> None:
        super().__init__((host, port), _Handler)
        self.api = api


class LocalApiServer:
    """The local SageMaker API on ``http://127.0.0.1:<free port>``, served from a background thread.

    ``with LocalApiServer(api) as url: ...`` starts and stops it; :meth:`start` / :meth:`stop` do the same.
    """

    def __init__(self, api: SageMakerAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local SageMaker API server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        if self._server is None:
            self._server = _Server(self.api, self._host, self._port)
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="local-sagemaker-api",
                                            daemon=True)
            self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def serve_local_api(api: SageMakerAPI, region: str, base: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Serve the local SageMaker API while the block runs; yields the environment (:func:`subprocess_env`) of a
    step process that calls it. The one way the control plane starts the local API server."""
    with LocalApiServer(api) as url:
        yield subprocess_env(url, region=region, base=base)


def subprocess_env(url: str, region: str = "us-east-1", base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a step subprocess: boto3's sagemaker clients go to ``url``, dummy credentials.

    Without ``base``: just these variables, to merge over a copy of ``os.environ``. With ``base``
    (e.g. ``os.environ``): a complete environment, ``base`` minus every ``AWS_*`` variable (profiles,
    real credentials) plus these.
    """
    env = {k: v for k, v in base.items() if not k.startswith("AWS_")} if base is not None else {}
    env.update({
        "AWS_ENDPOINT_URL_SAGEMAKER": url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url,
        "AWS_ENDPOINT_URL_CLOUDWATCH": url,
        "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING": url,
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        **DUMMY_CREDENTIALS,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    return env
