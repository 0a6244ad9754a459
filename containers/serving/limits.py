"""The serving limits: what a request may hold, checked before any work, and how the limits are set.

Every limit has a default and an environment variable (the model's `Environment` on SageMaker, the
variant's environment locally; `deploy.serving` in the project config sets them):

| variable | default | what |
|---|---|---|
| CONTINUUM_MAX_REQUEST_BYTES | 6 MiB (SageMaker's real-time payload limit) | request body bytes (413) |
| CONTINUUM_MAX_INPUT_TOKENS | 0: the model's max length − max_new_tokens | prompt tokens per input (400) |
| CONTINUUM_MAX_JSON_DEPTH | 32 | nesting of the request JSON (400) |
| CONTINUUM_MAX_QUEUE | 64 | requests waiting for the model (503 beyond) |
| CONTINUUM_REQUEST_TIMEOUT_SECONDS | 50 | how long a request may wait and run (504 beyond) |
| CONTINUUM_MAX_BATCH_INPUTS | 8 | inputs of concurrent requests generated in one call |

Standard library only: it ships beside serve.py in the image.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from http import HTTPStatus
from typing import Any

TRUNCATE_PARAMETER = "truncate"
UNBOUNDED_MODEL_LENGTH = 1_000_000  # tokenizers without a limit report int(1e30)
NORMALIZER_SLACK = 4  # a normalizer (NFKC...) shrinks text by less than this
ENVIRONMENT = {
    "max_request_bytes": "CONTINUUM_MAX_REQUEST_BYTES",
    "max_input_tokens": "CONTINUUM_MAX_INPUT_TOKENS",
    "max_json_depth": "CONTINUUM_MAX_JSON_DEPTH",
    "max_queue": "CONTINUUM_MAX_QUEUE",
    "request_timeout_seconds": "CONTINUUM_REQUEST_TIMEOUT_SECONDS",
    "max_batch_inputs": "CONTINUUM_MAX_BATCH_INPUTS",
}


class LimitError(ValueError):
    """A request outside the limits or malformed before the handler sees it: answered with `status`."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ServingLimits:
    max_request_bytes: int = 6 * 1024 * 1024
    max_input_tokens: int = 0
    max_json_depth: int = 32
    max_queue: int = 64
    request_timeout_seconds: float = 50.0
    max_batch_inputs: int = 8

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value < 0 or (value == 0 and item.name != "max_input_tokens"):
                raise ValueError(f"{ENVIRONMENT[item.name]} must be positive, got {value}")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServingLimits:
        """The limits set in the environment, the defaults for the rest; ValueError names a bad variable."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = environ.get(ENVIRONMENT[item.name], "").strip()
            if not raw:
                continue
            kind = float if item.type in ("float", float) else int
            try:
                values[item.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{ENVIRONMENT[item.name]}={raw!r} is not a number") from None
        return cls(**values)


def content_length(header: str | None, limits: ServingLimits) -> int:
    """The body size a request announces, checked before reading it: 411 without one, 400 when it is not a
    number, 413 over `max_request_bytes`."""
    if header is None:
        raise LimitError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required (a JSON body)")
    text = header.strip()
    if not text.isdigit():
        raise LimitError(HTTPStatus.BAD_REQUEST, f"Content-Length must be a non-negative integer, got {header[:40]!r}")
    size = int(text)
    if size > limits.max_request_bytes:
        raise LimitError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"request body is {size:,} bytes, over the limit of {limits.max_request_bytes:,} bytes "
                         f"({ENVIRONMENT['max_request_bytes']}); send fewer or shorter inputs")
    return size


def _walk(value: Any, where: str, depth: int) -> Iterator[tuple[str, Any, int]]:
    """(path, value, depth) of every value in a parsed JSON document, without recursion."""
    stack = [(where, value, depth)]
    while stack:
        path, item, level = stack.pop()
        yield path, item, level
        if isinstance(item, dict):
            stack.extend((f"{path}.{key}" if path else str(key), child, level + 1) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child, level + 1) for index, child in enumerate(item))


def _lone_surrogate(text: str) -> int | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return None


def parse_body(body: bytes, limits: ServingLimits) -> dict[str, Any]:
    """The request as a JSON object, or LimitError 400 naming what is wrong: not UTF-8, not JSON, nested deeper
    than `max_json_depth`, a string holding a lone surrogate (not text; the tokenizer would fail)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LimitError(HTTPStatus.BAD_REQUEST, f"request body is not UTF-8 (byte {err.start + 1})") from err
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as err:
        raise LimitError(HTTPStatus.BAD_REQUEST, f"request body is not valid JSON: {err}") from err
    except RecursionError:
        raise LimitError(HTTPStatus.BAD_REQUEST, f"request JSON is nested too deeply (limit "
                                                 f"{limits.max_json_depth} levels, {ENVIRONMENT['max_json_depth']})"
                         ) from None
    if not isinstance(payload, dict):
        raise LimitError(HTTPStatus.BAD_REQUEST, 'request must be a JSON object with "inputs"')
    for path, value, depth in _walk(payload, "", 0):
        if depth > limits.max_json_depth:
            raise LimitError(HTTPStatus.BAD_REQUEST, f"{path} is nested {depth} levels deep, over the limit of "
                                                     f"{limits.max_json_depth} ({ENVIRONMENT['max_json_depth']})")
        if isinstance(value, str):
            at = _lone_surrogate(value)
            if at is not None:
                raise LimitError(HTTPStatus.BAD_REQUEST,
                                 f"{path} holds a lone surrogate (U+{ord(value[at]):04X} at character {at}): not valid "
                                 "Unicode text; send UTF-8 text")
    for key in payload:
        at = _lone_surrogate(key)
        if at is not None:
            raise LimitError(HTTPStatus.BAD_REQUEST, "a key of the request holds a lone surrogate: not valid Unicode")
    return payload


def pop_truncate(payload: dict[str, Any]) -> bool:
    """Remove the `truncate` parameter (ours, not the handler's) and say whether the caller asked for it."""
    parameters = payload.get("parameters")
    if not isinstance(parameters, dict) or TRUNCATE_PARAMETER not in parameters:
        return False
    value = parameters.pop(TRUNCATE_PARAMETER)
    if not isinstance(value, bool):
        raise LimitError(HTTPStatus.BAD_REQUEST, f"parameter {TRUNCATE_PARAMETER!r} must be true or false")
    return value


def model_max_length(tokenizer: Any, model_config: Any) -> int | None:
    """The longest sequence the model takes: the smaller of the tokenizer's model_max_length and the config's
    max_position_embeddings (n_positions, max_sequence_length), ignoring unset ones; None when neither says."""
    candidates = [getattr(tokenizer, "model_max_length", None)]
    candidates += [getattr(model_config, name, None) for name in ("max_position_embeddings", "n_positions",
                                                                  "max_sequence_length")]
    sane = [int(value) for value in candidates if isinstance(value, int) and 0 < value < UNBOUNDED_MODEL_LENGTH]
    return min(sane) if sane else None


def longest_token_chars(tokenizer: Any) -> int:
    """The most characters one token of the vocabulary stands for (at least 1): any text has at least
    len(text) / this many tokens, so a text that long is over a limit without tokenizing it."""
    try:
        vocabulary = tokenizer.get_vocab()
    except Exception:  # noqa: BLE001 (a tokenizer without a vocabulary: no bound)
        return 0
    return max((len(piece) for piece in vocabulary), default=1) or 1


@dataclass(frozen=True)
class TokenBudget:
    """How many prompt tokens one input may have for a request: `limit`, and where the number comes from."""

    limit: int
    reason: str

    @classmethod
    def for_request(cls, limits: ServingLimits, max_length: int | None, max_new_tokens: int) -> TokenBudget:
        """`max_input_tokens` when set, else the model's length minus the tokens the request asks to generate."""
        if limits.max_input_tokens:
            budget = cls(limits.max_input_tokens, f"{ENVIRONMENT['max_input_tokens']}={limits.max_input_tokens}")
            if max_length is None or limits.max_input_tokens + max_new_tokens <= max_length:
                return budget
        if max_length is None:
            return cls(UNBOUNDED_MODEL_LENGTH, "no model length known")
        if max_new_tokens >= max_length:
            raise LimitError(HTTPStatus.BAD_REQUEST, f"max_new_tokens {max_new_tokens} leaves no room for the prompt: "
                                                     f"the model takes {max_length} tokens in all")
        return cls(max_length - max_new_tokens,
                   f"the model's {max_length} tokens minus max_new_tokens {max_new_tokens}")


def count_tokens(text: str, encode: Callable[[str], int], longest_chars: int, limit: int) -> tuple[int, bool]:
    """(the tokens of `text`, True), or (a lower bound over `limit`, False) found without tokenizing: a text
    longer than `limit` tokens of the vocabulary's longest piece cannot fit (NORMALIZER_SLACK covers
    normalizers that shrink text before tokenizing)."""
    per_token = longest_chars * NORMALIZER_SLACK
    if longest_chars and len(text) > (limit + 1) * per_token:
        return math.ceil(len(text) / per_token), False
    return encode(text), True


def over_limit_message(where: str, tokens: int, budget: TokenBudget, exact: bool) -> str:
    count = f"{tokens} tokens" if exact else f"at least {tokens} tokens"
    return (f"{where} is {count}, over the limit of {budget.limit} ({budget.reason}); shorten it, lower "
            f"max_new_tokens, or send \"parameters\": {{\"{TRUNCATE_PARAMETER}\": true}} to keep its last tokens")
