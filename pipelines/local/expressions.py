"""Evaluate the expressions of a pipeline definition as SageMaker does.

Handles `{"Get": "Parameters.X" | "Execution.X" | "Steps.S.<property path>"}`, `Std:Join`,
`Std:JsonGet` (a step's PropertyFile, or any JSON object by `S3Uri`, read through a JsonPath) and the
condition types. An execution variable may be a callable, read each time it is referenced (CurrentDateTime).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
# JsonPath as JsonGet takes it: `$.`-prefixed or not, `.name`, `['key']`, `[n]` (negative from the end), `[*]`/`.*`.
_JSON_PATH_TOKEN = re.compile(
    r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(-?\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]|(\[\*\]|\.\*)")
_WILDCARD = object()


class ExpressionError(ValueError):
    """An expression that cannot be evaluated (unknown reference, bad path, wrong type)."""


@dataclass
class EvaluationScope:
    """What expressions can see: parameters, execution variables, finished steps' properties."""

    parameters: dict[str, Any]
    execution: dict[str, Any]
    step_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    property_files: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    read_s3_text: Callable[[str], str] | None = None


def property_path_get(root: Any, path: str, where: str) -> Any:
    """Follow `A.B['key'][0].C` through dicts and lists; a string key on a list selects by *Name."""
    position = 0
    node = root
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if not match or match.end() == position:
            raise ExpressionError(f"{where}: cannot parse property path {path!r} at offset {position}")
        position = match.end()
        attribute, index, key_single, key_double = match.groups()
        key = key_single if key_single is not None else key_double
        if attribute is not None:
            if not isinstance(node, dict) or attribute not in node:
                raise ExpressionError(f"{where}: property {attribute!r} not found in {path!r}")
            node = node[attribute]
        elif index is not None:
            if not isinstance(node, list) or int(index) >= len(node):
                raise ExpressionError(f"{where}: index [{index}] out of range in {path!r}")
            node = node[int(index)]
        else:
            node = _select_by_name(node, key, path, where)
    return node


def _select_by_name(node: Any, key: str | None, path: str, where: str) -> Any:
    if isinstance(node, dict):
        if key not in node:
            raise ExpressionError(f"{where}: key {key!r} not found in {path!r}")
        return node[key]
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and any(
                name.endswith("Name") and value == key for name, value in item.items()
            ):
                return item
    raise ExpressionError(f"{where}: no element named {key!r} in {path!r}")


def json_path_get(document: Any, path: str, where: str) -> Any:
    """A JsonPath into a JSON document: `$.a.b[0]`, `a.b[-1]` (from the end), `a[*].b` (every element, a list).

    SageMaker's JsonGet documents `json_path` as a JSON path expression; the examples use the form without `$.`,
    which stays valid (`$` alone is the whole document)."""
    text = path[1:] if path.startswith("$") else path
    tokens: list[Any] = []
    position = 0
    while position < len(text):
        match = _JSON_PATH_TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ExpressionError(f"{where}: cannot parse JsonPath {path!r} at offset {position + len(path) - len(text)}")
        position = match.end()
        name, index, key_single, key_double, wildcard = match.groups()
        if wildcard:
            tokens.append(_WILDCARD)
        elif index is not None:
            tokens.append(int(index))
        else:
            tokens.append(name if name is not None else key_single if key_single is not None else key_double)
    return _follow(document, tokens, path, where)


def _follow(node: Any, tokens: list[Any], path: str, where: str) -> Any:
    for position, token in enumerate(tokens):
        if token is _WILDCARD:
            if not isinstance(node, (list, dict)):
                raise ExpressionError(f"{where}: wildcard in {path!r} applied to a {type(node).__name__}")
            items = node if isinstance(node, list) else list(node.values())
            return [_follow(item, tokens[position + 1:], path, where) for item in items]
        if isinstance(token, int):
            if not isinstance(node, list) or not -len(node) <= token < len(node):
                raise ExpressionError(f"{where}: index [{token}] out of range in {path!r}")
            node = node[token]
        else:
            if not isinstance(node, dict) or token not in node:
                raise ExpressionError(f"{where}: property {token!r} not found in {path!r}")
            node = node[token]
    return node


def evaluate(value: Any, scope: EvaluationScope, where: str = "definition") -> Any:
    """Resolve every expression inside `value` (recursively), leaving literals as they are."""
    if isinstance(value, list):
        return [evaluate(item, scope, where) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return _get(value["Get"], scope, where)
    if set(value) == {"Std:Join"}:
        spec = value["Std:Join"]
        parts = [evaluate(part, scope, where) for part in spec["Values"]]
        return str(spec["On"]).join(_join_text(part) for part in parts)
    if set(value) == {"Std:JsonGet"}:
        return _json_get(value["Std:JsonGet"], scope, where)
    return {key: evaluate(item, scope, f"{where}.{key}") for key, item in value.items()}


def _join_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _get(reference: str, scope: EvaluationScope, where: str) -> Any:
    namespace, _, rest = reference.partition(".")
    if namespace == "Parameters":
        if rest not in scope.parameters:
            raise ExpressionError(f"{where}: unknown parameter {rest!r}")
        return scope.parameters[rest]
    if namespace == "Execution":
        if rest not in scope.execution:
            raise ExpressionError(f"{where}: unknown execution variable {rest!r}")
        value = scope.execution[rest]
        return value() if callable(value) else value
    if namespace == "Steps":
        step_name, _, path = rest.partition(".")
        if step_name not in scope.step_properties:
            raise ExpressionError(f"{where}: step {step_name!r} has not run, so {reference!r} has no value")
        if path.startswith("PropertyFiles."):
            raise ExpressionError(f"{where}: a PropertyFile can only be read through Std:JsonGet ({reference!r})")
        return property_path_get(scope.step_properties[step_name], path, where)
    raise ExpressionError(f"{where}: unsupported reference {reference!r}")


def _json_get(spec: dict, scope: EvaluationScope, where: str) -> Any:
    """`{"PropertyFile": ..., "Path": ...}` reads a step's declared PropertyFile; the SDK's other form,
    `{"S3Uri": <expression>, "Path": ...}`, reads the JSON object at that URI."""
    if "S3Uri" in spec:
        uri = evaluate(spec["S3Uri"], scope, where)
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise ExpressionError(f"{where}: Std:JsonGet S3Uri must be an s3:// URI, got {uri!r}")
        label = uri
    else:
        if "PropertyFile" not in spec:
            raise ExpressionError(f"{where}: Std:JsonGet needs a PropertyFile or an S3Uri")
        uri, label = _property_file_uri(spec, scope, where)
    if "Path" not in spec:
        raise ExpressionError(f"{where}: Std:JsonGet needs a Path")
    if scope.read_s3_text is None:
        raise ExpressionError(f"{where}: no S3 reader to load {uri}")
    try:
        document = json.loads(scope.read_s3_text(uri))
    except FileNotFoundError as exc:
        raise ExpressionError(f"{where}: {label} not found at {uri}" if label != uri else f"{where}: {uri} not found") from exc
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"{where}: {label} at {uri} is not JSON: {exc}" if label != uri
                              else f"{where}: {uri} is not JSON: {exc}") from exc
    return json_path_get(document, spec["Path"], f"{where} (JsonGet {spec['Path']!r} in {uri})")


def _property_file_uri(spec: dict, scope: EvaluationScope, where: str) -> tuple[str, str]:
    reference = spec["PropertyFile"]["Get"] if isinstance(spec["PropertyFile"], dict) else spec["PropertyFile"]
    match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", str(reference))
    if not match:
        raise ExpressionError(f"{where}: Std:JsonGet needs Steps.<step>.PropertyFiles.<name>, got {reference!r}")
    step_name, file_name = match.groups()
    declared = scope.property_files.get(step_name, {}).get(file_name)
    if declared is None:
        raise ExpressionError(f"{where}: step {step_name!r} declares no PropertyFile {file_name!r}")
    if step_name not in scope.step_properties:
        raise ExpressionError(f"{where}: step {step_name!r} has not run, so its PropertyFile {file_name!r} is unknown")
    outputs = scope.step_properties[step_name].get("ProcessingOutputConfig", {}).get("Outputs", [])
    output = _select_by_name(outputs, declared["OutputName"], declared["OutputName"], where)
    uri = output["S3Output"]["S3Uri"].rstrip("/") + "/" + declared["FilePath"].lstrip("/")
    return uri, f"PropertyFile {file_name!r}"


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda left, right: left == right,
    "GreaterThan": lambda left, right: left > right,
    "GreaterThanOrEqualTo": lambda left, right: left >= right,
    "LessThan": lambda left, right: left < right,
    "LessThanOrEqualTo": lambda left, right: left <= right,
}


def evaluate_condition(condition: dict, scope: EvaluationScope, where: str) -> bool:
    """One condition of a ConditionStep (the step's outcome is the AND of all of them)."""
    kind = condition["Type"]
    if kind in _COMPARISONS:
        left = evaluate(condition["LeftValue"], scope, where)
        right = evaluate(condition["RightValue"], scope, where)
        left, right = _comparable(left, right, kind, where)
        return _COMPARISONS[kind](left, right)
    if kind == "In":  # membership is Equals against each value (a numeric string equals its number, as in Equals)
        query = evaluate(condition["QueryValue"], scope, where)
        values = [evaluate(item, scope, where) for item in condition["Values"]]
        return any(_equals(query, value, where) for value in values)
    if kind == "Not":
        return not evaluate_condition(condition["Expression"], scope, where)
    if kind == "Or":
        return any(evaluate_condition(item, scope, where) for item in condition["Conditions"])
    raise ExpressionError(f"{where}: unsupported condition type {kind!r}")


def _equals(left: Any, right: Any, where: str) -> bool:
    if left is None or right is None:
        return left is right
    return _COMPARISONS["Equals"](*_comparable(left, right, "Equals", where))


def _comparable(left: Any, right: Any, kind: str, where: str) -> tuple[Any, Any]:
    """Numbers compare as numbers (a numeric string from JsonGet/Join too); else both must be strings."""
    if left is None or right is None:
        raise ExpressionError(f"{where}: {kind} cannot compare a null value ({left!r} vs {right!r})")
    left_number, right_number = _as_number(left), _as_number(right)
    if left_number is not None and right_number is not None:
        return left_number, right_number
    if kind == "Equals":
        return left, right
    raise ExpressionError(f"{where}: {kind} needs two numbers, got {left!r} and {right!r}")


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def references_in(value: Any) -> set[str]:
    """Names of the steps an expression tree reads (its data dependencies)."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Get" and isinstance(item, str) and item.startswith("Steps."):
                found.add(item.split(".")[1])
            else:
                found |= references_in(item)
    return found
