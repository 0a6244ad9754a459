"""The wire protocol of the local CloudWatch and Application Auto Scaling stand-ins, as botocore speaks it.

Both are AWS JSON services: ``POST /`` with ``X-Amz-Target: <prefix>.<Operation>`` and a JSON body —
CloudWatch (``GraniteServiceVersion20100801``, JSON 1.0, query-compatible errors through the
``x-amzn-query-error`` header) and Application Auto Scaling (``AnyScaleFrontendService``, JSON 1.1).
:func:`handle_service_wire` answers such a request (or returns None for anything else); the HTTP
server and the in-process transport both reach it through ``api_server.handle_wire``.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pipelines.local.registry import ApiError

TARGETS = {"GraniteServiceVersion20100801.": "application/x-amz-json-1.0",
           "AnyScaleFrontendService.": "application/x-amz-json-1.1"}

# (status, headers, body): the api_server's WireResponse fields, without importing it (no cycle).
Answer = tuple[int, dict[str, str], bytes]


def request_params(body: bytes) -> dict[str, Any]:
    """The JSON object of an AWS JSON request body (SerializationException otherwise)."""
    try:
        params = json.loads(body or b"{}")
    except json.JSONDecodeError as exc:
        raise ApiError("SerializationException", f"request body is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise ApiError("SerializationException", "request body must be a JSON object")
    return params


def handle_service_wire(handle: Callable[[str, dict[str, Any]], dict[str, Any]], method: str, route: str,
                        headers: Mapping[str, str], body: bytes) -> Answer | None:
    """Answer a CloudWatch or Application Auto Scaling request; None when the request is neither."""
    target = {k.lower(): v for k, v in headers.items()}.get("x-amz-target", "")
    prefix = next((p for p in TARGETS if target.startswith(p)), None)
    if method != "POST" or prefix is None:
        return None
    content_type = TARGETS[prefix]
    try:
        result = handle(target[len(prefix):], request_params(body))
        return 200, {"Content-Type": content_type}, json.dumps(result, default=_epoch).encode("utf-8")
    except ApiError as error:
        payload = {"__type": error.code, "message": error.message}
        headers_out = {"Content-Type": content_type, "x-amzn-ErrorType": error.code,
                       "x-amzn-query-error": f"{error.code};Sender"}
        return error.status, headers_out, json.dumps(payload).encode("utf-8")


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"cannot serialise {type(value).__name__} in a response")
