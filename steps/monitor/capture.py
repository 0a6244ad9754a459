"""Read SageMaker data capture: the JSONL records an endpoint writes, and the LLM rows inside them.

A record (one line)::

    {"captureData": {"endpointInput": {"observedContentType", "mode": "INPUT", "data", "encoding"},
                     "endpointOutput": {...}},                  # absent when only Input is captured
     "eventMetadata": {"eventId", "inferenceTime", "customAttributes"?}, "eventVersion": "0"}

``encoding`` is ``JSON`` (data is the JSON text), ``CSV`` (the text) or ``BASE64`` (the bytes,
base64). Files live under ``{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/*.jsonl``. Standard library
only: the local runtime loads this module by path to read captures back (one parser for both sides).
"""
from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENCODINGS = ("JSON", "CSV", "BASE64")
_decode_json = json.JSONDecoder().decode  # json.loads minus its per-call checks: ~100k records a run


class CaptureFormatError(ValueError):
    """A line that is not a SageMaker data capture record; the message starts with ``file:line``."""


def decode_capture_data(section: dict[str, Any]) -> bytes:
    """The original body bytes of an ``endpointInput`` / ``endpointOutput`` section."""
    encoding = section.get("encoding")
    data = section.get("data", "")
    if not isinstance(data, str):
        raise ValueError(f"'data' must be a string, got {type(data).__name__}")
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"BASE64 data does not decode: {exc}") from exc
    if encoding in ("JSON", "CSV"):
        return data.encode("utf-8")
    raise ValueError(f"unknown capture encoding {encoding!r} (expected one of {', '.join(ENCODINGS)})")


def decode_section(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"content_type", "encoding", "body": bytes, "value"}``; ``value`` is the parsed JSON (JSON), the
    text (CSV) or the bytes (BASE64). None for a section that was not captured."""
    if section is None:
        return None
    body = decode_capture_data(section)
    encoding = section["encoding"]
    value: Any = body
    if encoding == "JSON":
        value = _decode_json(section["data"])  # the text itself: no byte-encoding detection
    elif encoding == "CSV":
        value = section["data"]
    return {"content_type": section.get("observedContentType", ""), "encoding": encoding, "body": body, "value": value}


def parse_capture_line(line: str, source: str) -> dict[str, Any]:
    """One record plus ``event_id``, ``inference_time``, ``custom_attributes``, ``source`` and decoded
    ``input`` / ``output`` (None when not captured); CaptureFormatError naming ``source`` otherwise."""
    try:
        record = _decode_json(line)
        capture = record["captureData"]
        metadata = record["eventMetadata"]
        return {
            **record,
            "event_id": metadata["eventId"],
            "inference_time": metadata["inferenceTime"],
            "custom_attributes": metadata.get("customAttributes"),
            "source": source,
            "input": decode_section(capture.get("endpointInput")),
            "output": decode_section(capture.get("endpointOutput")),
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CaptureFormatError(f"{source}: not a SageMaker data capture record ({exc!r})") from exc


def capture_files(root: Path) -> list[Path]:
    """The ``*.jsonl`` files under ``root`` (an endpoint's prefix: ``{variant}/yyyy/mm/dd/hh/``), oldest hour
    first, then by variant and name."""
    root = Path(root)
    if not root.is_dir():
        return []

    def order(path: Path) -> tuple[str, ...]:
        parts = path.relative_to(root).parts
        return parts[1:] + parts[:1] if len(parts) > 1 else parts

    return sorted(root.rglob("*.jsonl"), key=order)


def capture_lines(root: Path, since_hour: str = "") -> Iterator[tuple[str, str, str]]:
    """``(variant, "file:line", line)`` of every non-blank line under an endpoint's capture prefix, in order.
    ``since_hour`` (``yyyy/mm/dd/hh``) skips files of earlier hours."""
    root = Path(root)
    for path in capture_files(root):
        parts = path.relative_to(root).parts
        if since_hour and len(parts) >= 6 and "/".join(parts[1:5]) < since_hour:
            continue
        variant = parts[0] if len(parts) > 1 else ""
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    yield variant, f"{path}:{line_no}", line


def read_capture_tree(root: Path, since_hour: str = "") -> Iterator[dict[str, Any]]:
    """Every record under an endpoint's capture prefix (see :func:`capture_lines`), each with ``variant``
    (the first folder under ``root``); CaptureFormatError at the first unreadable line."""
    for variant, source, line in capture_lines(root, since_hour):
        yield {**parse_capture_line(line, source), "variant": variant}


@dataclass(frozen=True)
class CapturedRow:
    """One prompt seen by the endpoint (a batch request gives one row per input) and its answer."""

    prompt: str
    response: str | None  # None: the output was not captured (or has no text for this input)
    max_new_tokens: int | None
    inference_time: str
    source: str


def _chat_prompt(item: Any) -> str:
    """A chat input's prompt, as the training data has it: the last user message's text."""
    messages = item.get("messages") if isinstance(item, dict) else None
    users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"] \
        if isinstance(messages, list) else []
    if not users or not isinstance(users[-1], str):
        raise ValueError('a chat input must be {"messages": [...]} with a user message whose content is a string')
    return users[-1]


def request_prompts(value: Any, encoding: str) -> tuple[list[str], dict[str, Any]]:
    """(prompts, parameters) of a captured request: HF-toolkit JSON ``{"inputs", "parameters"}`` (inputs: a
    string, a chat ``{"messages": [...]}`` whose last user message is the prompt, or a list of those), CSV
    (first column of each line) or raw text."""
    if encoding == "BASE64":
        value = _json_or_text(value)
    if isinstance(value, dict) and "inputs" in value:
        inputs = value["inputs"]
        items = inputs if isinstance(inputs, list) else [inputs]
        if not items or not all(isinstance(item, (str, dict)) for item in items):
            raise ValueError('"inputs" must be a string, a {"messages": [...]} chat or a list of those')
        prompts = [item if isinstance(item, str) else _chat_prompt(item) for item in items]
        parameters = value.get("parameters") or {}
        return prompts, parameters if isinstance(parameters, dict) else {}
    if isinstance(value, str):
        if encoding == "CSV":
            return [row[0] for row in csv.reader(io.StringIO(value)) if row], {}
        return [value], {}
    raise ValueError(f"request is neither text nor a JSON object with \"inputs\": {str(value)[:120]!r}")


def response_texts(value: Any, encoding: str, count: int) -> list[str | None]:
    """The generated text per input (None where the response has none)."""
    if encoding == "BASE64":
        value = _json_or_text(value)
    if isinstance(value, str):
        if encoding == "CSV":
            texts: list[str | None] = [row[0] if row else "" for row in csv.reader(io.StringIO(value))]
        else:
            texts = [value]
    elif isinstance(value, dict):
        texts = [value.get("generated_text")]
    elif isinstance(value, list):
        texts = [_generated(item) for item in value]
    else:
        texts = []
    texts = [t if isinstance(t, str) else None for t in texts]
    return (texts + [None] * count)[:count]


def llm_rows(record: dict[str, Any]) -> list[CapturedRow]:
    """The rows of one parsed record; CaptureFormatError naming the record's source when the request is
    not an LLM request."""
    if record["input"] is None:
        raise CaptureFormatError(f"{record['source']}: the record has no endpointInput (capture Input to monitor)")
    try:
        prompts, parameters = request_prompts(record["input"]["value"], record["input"]["encoding"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise CaptureFormatError(f"{record['source']}: endpointInput: {exc}") from exc
    output = record["output"]
    try:
        responses = response_texts(output["value"], output["encoding"], len(prompts)) if output else [None] * len(prompts)
    except UnicodeDecodeError as exc:
        raise CaptureFormatError(f"{record['source']}: endpointOutput: {exc}") from exc
    max_new_tokens = parameters.get("max_new_tokens")
    tokens = max_new_tokens if isinstance(max_new_tokens, int) and not isinstance(max_new_tokens, bool) else None
    return [CapturedRow(prompt, response, tokens, record["inference_time"], record["source"])
            for prompt, response in zip(prompts, responses)]


def _generated(item: Any) -> str | None:
    if isinstance(item, dict):
        return item.get("generated_text")
    if isinstance(item, list) and item:  # pipelines may nest one list per input
        return _generated(item[0])
    return item if isinstance(item, str) else None


def _json_or_text(value: Any) -> Any:
    text = value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value
    try:
        return json.loads(text)
    except ValueError:
        return text
