"""A definition checked as SageMaker's CreatePipeline checks it, before anything runs; every problem listed.

Structure (the 2020-12-01 schema:
https://aws-sagemaker-mlops.github.io/sagemaker-model-building-pipeline-definition-JSON-schema/), step
names and types, references to parameters, execution variables, steps and PropertyFiles, DependsOn (never on a
FailStep or a ConditionStep), dependency cycles, parameter declarations and default types, CacheConfig and
RetryPolicies, job steps' Arguments against their API request (request_shapes.py). Also the step graph
(`plan_steps`) and typed parameter values (`resolve_parameters`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

from pipelines.local.caching import cache_config_problems
from pipelines.local.request_shapes import argument_problems
from pipelines.local.retries import policy_problems

SCHEMA_VERSION = "2020-12-01"
TOP_LEVEL_KEYS = {"Version", "Metadata", "Parameters", "PipelineExperimentConfig", "Steps"}
SAGEMAKER_STEP_TYPES = frozenset({
    "Condition", "Model", "Processing", "RegisterModel", "Training", "Transform", "Callback", "Tuning", "Lambda",
    "QualityCheck", "ClarifyCheck", "EMR", "Fail", "AutoML", "EndpointConfig", "Endpoint", "InferenceComponent",
    "Lineage"})
LOCAL_STEP_TYPES = frozenset({"Processing", "Training", "Condition", "Fail", "RegisterModel", "Model"})
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
EXECUTION_VARIABLES = frozenset({"PipelineArn", "PipelineExecutionId", "PipelineExecutionArn", "PipelineName",
                                 "StartDateTime", "CurrentDateTime", "TrainingJobName", "ProcessingJobName"})
CONDITION_TYPES = frozenset({"Equals", "GreaterThan", "GreaterThanOrEqualTo", "LessThan", "LessThanOrEqualTo",
                             "In", "Not", "Or"})
_STEP_NAME = re.compile(r"[A-Za-z0-9\-_]{1,64}")
_INTEGER = re.compile(r"[+-]?\d+")


class DefinitionError(ValueError):
    """A definition (or an execution's parameters) that SageMaker would refuse, or this runtime cannot execute."""


@dataclass
class PlannedStep:
    spec: dict[str, Any]
    depends_on: set[str]
    guard: tuple[str, bool] | None  # (condition step, branch) that must be taken for this step to run


def walk_steps(document: dict[str, Any]) -> Iterator[tuple[dict[str, Any], tuple[str, bool] | None]]:
    """Every step, condition branches included, with the (condition, branch) guarding it."""
    def visit(steps: Any, guard: tuple[str, bool] | None) -> Iterator[tuple[dict[str, Any], tuple[str, bool] | None]]:
        for step in steps if isinstance(steps, list) else []:
            if not isinstance(step, dict):
                continue
            yield step, guard
            if step.get("Type") == "Condition" and isinstance(step.get("Arguments"), dict):
                yield from visit(step["Arguments"].get("IfSteps", []), (step.get("Name"), True))
                yield from visit(step["Arguments"].get("ElseSteps", []), (step.get("Name"), False))
    yield from visit(document.get("Steps", []), None)


def _data_arguments(step: dict[str, Any]) -> Any:
    arguments = step.get("Arguments", {})
    if step.get("Type") == "Condition" and isinstance(arguments, dict):  # its branches depend on it, not it on them
        return {"Conditions": arguments.get("Conditions", [])}
    return arguments


def plan_steps(definition: dict[str, Any]) -> dict[str, PlannedStep]:
    """Flatten condition branches and compute each step's dependencies (explicit, by reference, by guard)."""
    from pipelines.local.expressions import references_in

    planned: dict[str, PlannedStep] = {}
    for step, guard in walk_steps(definition):
        name = step["Name"]
        if name in planned:
            raise DefinitionError(f"step name {name!r} appears twice in the definition")
        depends = set(step.get("DependsOn", [])) | references_in(_data_arguments(step))
        if guard is not None:
            depends.add(guard[0])
        planned[name] = PlannedStep(step, depends, guard)
    for name, item in planned.items():
        unknown = item.depends_on - set(planned)
        if unknown:
            raise DefinitionError(f"step {name!r} depends on unknown step(s) {sorted(unknown)}")
    return planned


def definition_problems(document: Any) -> list[str]:
    """Every reason CreatePipeline (or this runtime) would refuse `document`; empty when it is valid."""
    if not isinstance(document, dict):
        return [f"a definition is a JSON object, got {type(document).__name__}"]
    problems = [f"unknown top-level field {key!r}" for key in sorted(set(document) - TOP_LEVEL_KEYS)]
    if document.get("Version") != SCHEMA_VERSION:
        problems.append(f"Version must be {SCHEMA_VERSION!r}, got {document.get('Version')!r}")
    if not isinstance(document.get("Steps"), list) or not document["Steps"]:
        problems.append("Steps must be a non-empty list")
    parameters = document.get("Parameters", [])
    problems += _parameter_problems(parameters)
    declared = {item.get("Name") for item in parameters if isinstance(item, dict)} if isinstance(parameters, list) else set()
    steps = list(walk_steps(document))
    types: dict[str, str] = {}
    for step, _guard in steps:
        name = step.get("Name")
        if not isinstance(name, str) or not _STEP_NAME.fullmatch(name):
            problems.append(f"step name {name!r} must be 1-64 characters of letters, digits, '-' and '_'")
            continue
        if name in types:
            problems.append(f"step name {name!r} appears twice in the definition")
        types[name] = str(step.get("Type"))
    for step, _guard in steps:
        problems += _step_problems(step, types, declared, steps)
    if not problems:
        problems += _cycle_problems(document)
    return problems


def validate_definition(document: Any) -> None:
    """Raise DefinitionError listing every problem of `document` (see definition_problems)."""
    problems = definition_problems(document)
    if problems:
        raise DefinitionError("the pipeline definition is invalid:\n  - " + "\n  - ".join(problems))


def _parameter_problems(parameters: Any) -> list[str]:
    if not isinstance(parameters, list):
        return ["Parameters must be a list"]
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(parameters):
        where = f"Parameters[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str) or not item["Name"]:
            problems.append(f"{where}: a parameter needs a Name")
            continue
        name, kind = item["Name"], item.get("Type")
        where = f"parameter {name!r}"
        if name in seen:
            problems.append(f"{where} is declared twice")
        seen.add(name)
        if kind not in PARAMETER_TYPES:
            problems.append(f"{where}: Type {kind!r} is not one of {list(PARAMETER_TYPES)}")
            continue
        if item.get("DefaultValue") is not None:
            try:
                typed_value(name, kind, item["DefaultValue"])
            except DefinitionError as exc:
                problems.append(f"{where}: default {exc}")
        if "EnumValues" in item and (kind != "String" or not isinstance(item["EnumValues"], list)):
            problems.append(f"{where}: EnumValues must be a list, on a String parameter")
    return problems


def _step_problems(step: dict[str, Any], types: dict[str, str], parameters: set[str],
                   steps: list[tuple[dict[str, Any], Any]]) -> list[str]:
    name, kind = step.get("Name"), step.get("Type")
    where = f"step {name!r}"
    if not isinstance(name, str) or not _STEP_NAME.fullmatch(name):
        return []
    if kind not in SAGEMAKER_STEP_TYPES:
        return [f"{where}: Type {kind!r} is not a SageMaker Pipelines step type"]
    problems: list[str] = []
    if kind not in LOCAL_STEP_TYPES:
        problems.append(f"{where}: step type {kind!r} is not supported by the local runtime "
                        f"(it runs {', '.join(sorted(LOCAL_STEP_TYPES))})")
    arguments = step.get("Arguments", {} if kind == "Fail" else None)
    if not isinstance(arguments, dict):
        problems.append(f"{where}: Arguments must be an object")
        arguments = {}
    depends_on = step.get("DependsOn", [])
    if not isinstance(depends_on, list) or not all(isinstance(item, str) for item in depends_on):
        problems.append(f"{where}: DependsOn must be a list of step names")
        depends_on = []
    for other in depends_on:
        if other == name:
            problems.append(f"{where}: DependsOn names the step itself")
        elif other not in types:
            problems.append(f"{where}: DependsOn names unknown step {other!r}")
        elif types[other] in ("Fail", "Condition"):
            problems.append(f"{where}: DependsOn cannot name {types[other]} step {other!r}")
    problems += _reference_problems(_data_arguments(step), where, types, parameters, steps)
    problems += argument_problems(kind, arguments, where)
    if kind == "Condition":
        for index, condition in enumerate(arguments.get("Conditions", []) or []):
            problems += _condition_problems(condition, f"{where}.Conditions[{index}]")
        if not arguments.get("Conditions"):
            problems.append(f"{where}: a ConditionStep needs Conditions")
    property_files = step.get("PropertyFiles", [])
    if property_files and kind != "Processing":
        problems.append(f"{where}: only Processing steps declare PropertyFiles")
    for index, item in enumerate(property_files if isinstance(property_files, list) else []):
        missing = [key for key in ("PropertyFileName", "OutputName", "FilePath") if not isinstance(item, dict)
                   or not isinstance(item.get(key), str)]
        if missing:
            problems.append(f"{where}.PropertyFiles[{index}]: missing {missing}")
    if "CacheConfig" in step:
        problems += cache_config_problems(step["CacheConfig"], kind, f"{where}.CacheConfig")
    if "RetryPolicies" in step:
        problems += policy_problems(step["RetryPolicies"], kind, f"{where}.RetryPolicies")
    return problems


def _condition_problems(condition: Any, where: str) -> list[str]:
    if not isinstance(condition, dict) or condition.get("Type") not in CONDITION_TYPES:
        kind = condition.get("Type") if isinstance(condition, dict) else condition
        return [f"{where}: condition type {kind!r} is not one of {sorted(CONDITION_TYPES)}"]
    if condition["Type"] == "Not":
        return _condition_problems(condition.get("Expression"), f"{where}.Expression")
    if condition["Type"] == "Or":
        return [problem for index, item in enumerate(condition.get("Conditions", []))
                for problem in _condition_problems(item, f"{where}.Conditions[{index}]")]
    return []


def _reference_problems(value: Any, where: str, types: dict[str, str], parameters: set[str],
                        steps: list[tuple[dict[str, Any], Any]]) -> list[str]:
    problems: list[str] = []
    if isinstance(value, list):
        for item in value:
            problems += _reference_problems(item, where, types, parameters, steps)
    elif isinstance(value, dict):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            return _get_problem(value["Get"], where, types, parameters)
        if set(value) == {"Std:JsonGet"} and isinstance(value["Std:JsonGet"], dict):
            problems += _json_get_problems(value["Std:JsonGet"], where, types, steps)
        for item in value.values():
            problems += _reference_problems(item, where, types, parameters, steps)
    return problems


def _get_problem(reference: str, where: str, types: dict[str, str], parameters: set[str]) -> list[str]:
    namespace, _, rest = reference.partition(".")
    if namespace == "Parameters" and rest not in parameters:
        return [f"{where}: reads undeclared parameter {rest!r}"]
    if namespace == "Execution" and rest not in EXECUTION_VARIABLES:
        return [f"{where}: {rest!r} is not an execution variable (one of {sorted(EXECUTION_VARIABLES)})"]
    if namespace == "Steps":
        step = rest.split(".")[0]
        if step not in types:
            return [f"{where}: reads unknown step {step!r} ({reference!r})"]
        if types[step] == "Fail":
            return [f"{where}: a FailStep has no properties to read ({reference!r})"]
    if namespace not in ("Parameters", "Execution", "Steps"):
        return [f"{where}: unsupported reference {reference!r}"]
    return []


def _json_get_problems(spec: dict[str, Any], where: str, types: dict[str, str],
                       steps: list[tuple[dict[str, Any], Any]]) -> list[str]:
    if "Path" not in spec or ("PropertyFile" in spec) == ("S3Uri" in spec):
        return [f"{where}: Std:JsonGet needs a Path and exactly one of PropertyFile and S3Uri"]
    if "PropertyFile" not in spec:
        return []
    reference = spec["PropertyFile"].get("Get") if isinstance(spec["PropertyFile"], dict) else spec["PropertyFile"]
    match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", str(reference))
    if not match:
        return [f"{where}: Std:JsonGet needs Steps.<step>.PropertyFiles.<name>, got {reference!r}"]
    step_name, file_name = match.groups()
    if step_name not in types:
        return [f"{where}: JsonGet reads unknown step {step_name!r}"]
    declared = {item.get("PropertyFileName") for step, _ in steps if step.get("Name") == step_name
                for item in step.get("PropertyFiles", []) if isinstance(item, dict)}
    if file_name not in declared:
        return [f"{where}: step {step_name!r} declares no PropertyFile {file_name!r}"]
    return []


def _cycle_problems(document: dict[str, Any]) -> list[str]:
    plan = plan_steps(document)
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dependency in sorted(plan[name].depends_on):
            if state.get(dependency) == 1:
                return stack[stack.index(dependency):] + [dependency]
            if dependency not in state:
                found = visit(dependency)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in plan:
        if name not in state:
            cycle = visit(name)
            if cycle:
                return [f"dependency cycle: {' -> '.join(reversed(cycle))}"]
    return []


def typed_value(name: str, kind: str, raw: Any) -> Any:
    """`raw` as a value of parameter type `kind`, as StartPipelineExecution accepts it; DefinitionError if not."""
    def refuse() -> DefinitionError:
        return DefinitionError(f"pipeline parameter {name!r}: {raw!r} is not a valid {kind}")

    if kind == "Integer":
        if isinstance(raw, bool) or not (isinstance(raw, int) or (isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()))):
            raise refuse()
        return int(raw)
    if kind == "Float":
        if isinstance(raw, bool):
            raise refuse()
        try:
            value = float(raw)
        except (TypeError, ValueError) as exc:
            raise refuse() from exc
        if not math.isfinite(value):
            raise refuse()
        return value
    if kind == "Boolean":
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() not in {"true", "false"}:
            raise refuse()
        return str(raw).lower() == "true"
    if kind == "String":
        if isinstance(raw, (dict, list)):
            raise refuse()
        return str(raw)
    raise DefinitionError(f"pipeline parameter {name!r}: Type {kind!r} is not one of {list(PARAMETER_TYPES)}")


def resolve_parameters(definition: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Typed parameter values: the definition's defaults, then the execution's overrides (all problems listed)."""
    declared = {item["Name"]: item for item in definition.get("Parameters", [])}
    problems: list[str] = []
    unknown = set(overrides or {}) - set(declared)
    if unknown:
        problems.append(f"unknown pipeline parameter(s) {sorted(unknown)}; declared: {sorted(declared)}")
    values: dict[str, Any] = {}
    for name, item in declared.items():
        raw = (overrides or {}).get(name, item.get("DefaultValue"))
        if raw is None:
            problems.append(f"pipeline parameter {name!r} has no default and no value was given")
            continue
        try:
            values[name] = typed_value(name, item.get("Type"), raw)
        except DefinitionError as exc:
            problems.append(str(exc))
            continue
        allowed = item.get("EnumValues")
        if allowed and values[name] not in allowed:
            problems.append(f"pipeline parameter {name!r}={values[name]!r} is not one of {allowed}")
    if problems:
        raise DefinitionError("; ".join(problems))
    return values
