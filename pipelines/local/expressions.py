"""Evaluate the expressions of a pipeline definition as SageMaker does.

Handles `{"Get": "Parameters.X" | "Execution.X" | "Steps.S.<property path>"}`, `Std:Join`,
`Std:JsonGet` (reading a step's PropertyFile from its output in S3) and the condition types.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


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


def _json_path_get(document: Any, path: str, where: str) -> Any:
    """JsonGet paths are JsonPath without the leading `$.`: `a.b[0].c`."""
    return property_path_get(document, path, where)


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
        return scope.execution[rest]
    if namespace == "Steps":
        step_name, _, path = rest.partition(".")
        if step_name not in scope.step_properties:
            raise ExpressionError(f"{where}: step {step_name!r} has not run, so {reference!r} has no value")
        if path.startswith("PropertyFiles."):
            raise ExpressionError(f"{where}: a PropertyFile can only be read through Std:JsonGet ({reference!r})")
        return property_path_get(scope.step_properties[step_name], path, where)
    raise ExpressionError(f"{where}: unsupported reference {reference!r}")


def _json_get(spec: dict, scope: EvaluationScope, where: str) -> Any:
    reference = spec["PropertyFile"]["Get"] if isinstance(spec["PropertyFile"], dict) else spec["PropertyFile"]
    match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", reference)
    if not match:
        raise ExpressionError(f"{where}: Std:JsonGet needs Steps.<step>.PropertyFiles.<name>, got {reference!r}")
    step_name, file_name = match.groups()
    declared = scope.property_files.get(step_name, {}).get(file_name)
    if declared is None:
        raise ExpressionError(f"{where}: step {step_name!r} declares no PropertyFile {file_name!r}")
    if step_name not in scope.step_properties:
        raise ExpressionError(f"{where}: step {step_name!r} has not run, so its PropertyFile {file_name!r} is unknown")
    outputs = scope.step_properties[step_name]["ProcessingOutputConfig"]["Outputs"]
    output = _select_by_name(outputs, declared["OutputName"], declared["OutputName"], where)
    uri = output["S3Output"]["S3Uri"].rstrip("/") + "/" + declared["FilePath"].lstrip("/")
    if scope.read_s3_text is None:
        raise ExpressionError(f"{where}: no S3 reader to load {uri}")
    try:
        document = json.loads(scope.read_s3_text(uri))
    except FileNotFoundError as exc:
        raise ExpressionError(f"{where}: PropertyFile {file_name!r} not found at {uri}") from exc
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"{where}: PropertyFile {file_name!r} at {uri} is not JSON: {exc}") from exc
    return _json_path_get(document, spec["Path"], f"{where} (JsonGet {spec['Path']!r} in {uri})")


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
    if kind == "In":
        query = evaluate(condition["QueryValue"], scope, where)
        return query in [evaluate(item, scope, where) for item in condition["Values"]]
    if kind == "Not":
        return not evaluate_condition(condition["Expression"], scope, where)
    if kind == "Or":
        return any(evaluate_condition(item, scope, where) for item in condition["Conditions"])
    raise ExpressionError(f"{where}: unsupported condition type {kind!r}")


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
