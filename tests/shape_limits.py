"""botocore's request validation, completed: what the service enforces and botocore's ParamValidator does not.

botocore checks types, required members and minimums. The service models also give maximum lengths and
counts (strings, lists, maps), value ranges (integers, longs, floats), patterns and enum values; AWS
rejects a request that breaks any of them (a pattern must match the whole value, as AWS's validation does).
`StrictValidator` checks all of them, counts every check by kind, and skips values only known at run time (`UNKNOWN`: pipeline properties, JsonGet).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import botocore.session
import regex
from botocore.model import Shape
from botocore.validate import ParamValidator, ValidationErrors


class _Unknown:
    """A value only known when the pipeline runs (a step property, a JsonGet); valid for any shape."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
_SESSION = botocore.session.get_session()
_MODELS: dict[str, Any] = {}
_PATTERNS: dict[str, Any] = {}


def operation_input(service: str, operation: str) -> Shape:
    """The input shape of `operation` (API name, e.g. CreateProcessingJob) in `service`."""
    if service not in _MODELS:
        _MODELS[service] = _SESSION.get_service_model(service)
    return _MODELS[service].operation_model(operation).input_shape


def api_name(service: str, method: str) -> str:
    """A client method's API name (`create_model` → `CreateModel`)."""
    if service not in _MODELS:
        _MODELS[service] = _SESSION.get_service_model(service)
    for name in _MODELS[service].operation_names:
        if botocore.xform_name(name) == method:
            return name
    raise KeyError(f"{service} has no operation {method}")


_SURROGATE_PAIR = regex.compile(r"\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", regex.IGNORECASE)


def _code_point(pair: Any) -> str:
    high, low = int(pair.group(1), 16), int(pair.group(2), 16)
    return f"\\U{0x10000 + (high - 0xD800) * 0x400 + (low - 0xDC00):08X}"


def _pattern(text: str) -> Any:
    """The service model's (Java) pattern for Python: UTF-16 surrogate pairs become the code points they encode."""
    if text not in _PATTERNS:
        _PATTERNS[text] = regex.compile(_SURROGATE_PAIR.sub(_code_point, text))
    return _PATTERNS[text]


class StrictValidator(ParamValidator):
    """ParamValidator plus maximum length/count, numeric range, pattern and enum checks."""

    VALIDATED_METADATA_ATTRS = ParamValidator.VALIDATED_METADATA_ATTRS | {"max", "pattern"}

    def __init__(self) -> None:
        self.checks: Counter[str] = Counter()
        self.unknown = 0

    def _shape_has_constraints(self, shape: Shape) -> bool:
        return super()._shape_has_constraints(shape) or bool(getattr(shape, "enum", None))

    def _validate(self, params: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        if params is UNKNOWN:
            self.unknown += 1
            return
        super()._validate(params, shape, errors, name)

    def _at_most(self, kind: str, value: float, shape: Shape, errors: ValidationErrors, name: str, what: str) -> None:
        if "max" in shape.metadata:
            self.checks[kind] += 1
            if value > shape.metadata["max"]:
                errors.report(name, "invalid length" if kind != "max value" else "invalid range",
                              param=f"{what} {value} > maximum {shape.metadata['max']}", min_allowed="(see maximum)")

    def _validate_string(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        before = len(errors._errors)
        super()._validate_string(param, shape, errors, name)
        if len(errors._errors) > before or not isinstance(param, str):
            return
        self._at_most("max length", len(param), shape, errors, name, "length")
        if shape.enum:
            self.checks["enum"] += 1
            if param not in shape.enum:
                shown = ", ".join(shape.enum[:8]) + (f", ... ({len(shape.enum)} values)" if len(shape.enum) > 8 else "")
                errors.report(name, "invalid enum", param=param, valid_values=shown)
        if "pattern" in shape.metadata:
            self.checks["pattern"] += 1
            if not _pattern(shape.metadata["pattern"]).fullmatch(param):  # AWS matches the whole value
                errors.report(name, "invalid pattern", param=param, pattern=shape.metadata["pattern"])

    def _validate_list(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_list(param, shape, errors, name)
        if isinstance(param, (list, tuple)):
            self._at_most("max count", len(param), shape, errors, name, "items")

    def _validate_map(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_map(param, shape, errors, name)
        if isinstance(param, dict):
            if "min" in shape.metadata and len(param) < shape.metadata["min"]:
                errors.report(name, "invalid length", param=len(param), min_allowed=shape.metadata["min"])
            self._at_most("max count", len(param), shape, errors, name, "entries")

    def _number(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        if isinstance(param, (int, float)) and not isinstance(param, bool):
            self._at_most("max value", param, shape, errors, name, "value")

    def _validate_integer(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_integer(param, shape, errors, name)
        self._number(param, shape, errors, name)

    def _validate_long(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_long(param, shape, errors, name)
        self._number(param, shape, errors, name)

    def _validate_double(self, param: Any, shape: Shape, errors: ValidationErrors, name: str) -> None:
        super()._validate_double(param, shape, errors, name)
        self._number(param, shape, errors, name)

    _validate_float = _validate_double


def _describe(error: tuple) -> str:
    kind, name, details = error
    return f"{name or '(request)'}: {kind} {details}"


def request_problems(validator: StrictValidator, service: str, operation: str, params: dict) -> list[str]:
    """Every way `params` breaks `service`'s `operation` input shape (empty: AWS accepts it)."""
    errors = validator.validate(params, operation_input(service, operation))
    return [f"{service}:{operation} {_describe(error)}" for error in errors._errors]
