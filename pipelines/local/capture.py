"""SageMaker endpoint data capture, locally: records in SageMaker's capture JSONL format.

A record, one per line, exactly as SageMaker writes it::

    {"captureData": {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                       "data": "{\"inputs\": ...}", "encoding": "JSON"},
                     "endpointOutput": {...  "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceTime": "2026-11-23T10:04:05Z",
                       "customAttributes": "..."},      # customAttributes only when the caller sent some
     "eventVersion": "0"}

Files: ``{DestinationS3Uri}/{endpoint}/{variant}/yyyy/mm/dd/hh/<MM-SS-mmm>-<uuid>.jsonl`` (SageMaker's
layout; the timestamp is minute-second-millisecond of the file's first record), one file per hour per
writer. The body encoding follows ``CaptureContentTypeHeader``: JSON content types → ``JSON``, CSV
content types → ``CSV``, anything else (and everything when no header config is given) → ``BASE64``.
Reading records back uses the monitoring step's parser, ``steps/monitor/capture.py``.
"""
from __future__ import annotations

import base64
import json
import math
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from pipelines.local.step_code import step_module

EVENT_VERSION = "0"
CAPTURE_MODES = {"Input": ("INPUT",), "Output": ("OUTPUT",), "InputAndOutput": ("INPUT", "OUTPUT")}


class S3PathResolver(Protocol):
    """The part of LocalS3 capture needs: an ``s3://`` URI's local path."""

    def path(self, uri: str) -> Path: ...


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` → ``"application/json"``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def encode_capture_data(body: bytes, content_type: str | None, content_type_header: dict | None) -> tuple[str, str]:
    """(data, encoding) for one captured body, as SageMaker encodes it."""
    header = content_type_header or {}
    observed = media_type(content_type)
    for encoding, key in (("JSON", "JsonContentTypes"), ("CSV", "CsvContentTypes")):
        if observed and observed in {media_type(t) for t in header.get(key, [])}:
            try:
                return body.decode("utf-8"), encoding
            except UnicodeDecodeError:
                break  # not text after all: fall back to BASE64 like any opaque payload
    return base64.b64encode(body).decode("ascii"), "BASE64"


def capture_modes(data_capture: dict) -> set[str]:
    """The record modes (``INPUT``/``OUTPUT``) a DataCaptureConfig asks for."""
    modes: set[str] = set()
    for option in data_capture.get("CaptureOptions", []):
        mode = option.get("CaptureMode")
        if mode not in CAPTURE_MODES:
            raise ValueError(f"DataCaptureConfig.CaptureOptions: unknown CaptureMode {mode!r} "
                             f"(expected one of {sorted(CAPTURE_MODES)})")
        modes.update(CAPTURE_MODES[mode])
    return modes


def capture_enabled(data_capture: dict | None) -> bool:
    """EnableCapture defaults to true in SageMaker; a config with no capture options captures nothing."""
    if not data_capture or not data_capture.get("EnableCapture", True):
        return False
    return bool(capture_modes(data_capture))


def format_inference_time(when: datetime) -> str:
    """SageMaker's ``inferenceTime``: UTC, second precision, ``Z`` suffix."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Exchange:
    """One invocation as the endpoint saw it."""

    request_body: bytes
    request_content_type: str
    response_body: bytes
    response_content_type: str
    custom_attributes: str | None = None


def build_capture_record(data_capture: dict, exchange: Exchange, event_id: str, when: datetime) -> dict[str, Any]:
    """The capture record SageMaker writes for one invocation under ``data_capture``."""
    header = data_capture.get("CaptureContentTypeHeader")
    modes = capture_modes(data_capture)
    capture_data: dict[str, Any] = {}
    sections = (("INPUT", "endpointInput", exchange.request_body, exchange.request_content_type),
                ("OUTPUT", "endpointOutput", exchange.response_body, exchange.response_content_type))
    for mode, key, body, content_type in sections:
        if mode in modes:
            data, encoding = encode_capture_data(body, content_type, header)
            capture_data[key] = {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}
    metadata: dict[str, Any] = {"eventId": event_id, "inferenceTime": format_inference_time(when)}
    if exchange.custom_attributes:
        metadata["customAttributes"] = exchange.custom_attributes
    return {"captureData": capture_data, "eventMetadata": metadata, "eventVersion": EVENT_VERSION}


class Sampler:
    """Deterministic InitialSamplingPercentage: of the first N requests exactly ceil(N * p / 100) are taken.

    The first request is always taken when p > 0 (so a single invocation shows up in the capture), then
    every request that moves ``ceil(n * p / 100)`` up by one.
    """

    def __init__(self, percent: float) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"InitialSamplingPercentage must be within 0..100, got {percent}")
        self.percent = percent
        self._seen = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            before = math.ceil(self._seen * self.percent / 100)
            self._seen += 1
            return math.ceil(self._seen * self.percent / 100) > before


def capture_prefix(destination_uri: str, endpoint: str, variant: str | None = None) -> str:
    """``{DestinationS3Uri}/{endpoint}[/{variant}]``."""
    prefix = f"{destination_uri.rstrip('/')}/{endpoint}"
    return f"{prefix}/{variant}" if variant else prefix


class CaptureWriter:
    """Appends capture records to local S3, one file per (destination, endpoint, variant, hour).

    Thread-safe: concurrent invocations of one process append whole lines under a lock; each writer
    (process) names its own files, so processes never share a file.
    """

    def __init__(self, s3: S3PathResolver) -> None:
        self._s3 = s3
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str, str, str], Path] = {}

    def write(self, destination_uri: str, endpoint: str, variant: str, record: dict, when: datetime) -> Path:
        """Append one record; returns the local path of the file it went to."""
        when = when.astimezone(timezone.utc)
        hour = when.strftime("%Y/%m/%d/%H")
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            key = (destination_uri, endpoint, variant, hour)
            path = self._files.get(key)
            if path is None:
                name = f"{when.strftime('%M-%S')}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
                path = self._s3.path(f"{capture_prefix(destination_uri, endpoint, variant)}/{hour}/{name}")
                path.parent.mkdir(parents=True, exist_ok=True)
                self._files[key] = path
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line)
        return path


def read_capture_records(local_s3: S3PathResolver, destination_uri: str, endpoint: str) -> Iterator[dict[str, Any]]:
    """Parse an endpoint's capture files back, oldest file first, lines in order.

    Yields each raw record (``captureData``, ``eventMetadata``, ``eventVersion``) plus decoded fields:
    ``event_id``, ``inference_time``, ``custom_attributes``, ``variant``, ``source`` (``"file:line"``),
    and ``input`` / ``output``: ``None`` when not captured, else ``{"content_type", "encoding",
    "body": bytes, "value"}`` with ``value`` the parsed JSON (JSON), the text (CSV) or the bytes (BASE64).
    The parser is the monitoring step's (``steps/monitor/capture.py``): one reader for both.
    """
    reader = step_module("monitor/capture.py")
    yield from reader.read_capture_tree(local_s3.path(capture_prefix(destination_uri, endpoint)))
