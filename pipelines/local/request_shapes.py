"""A job-like step's `Arguments` checked against the request SageMaker Pipelines makes from them.

A Processing step's Arguments are a CreateProcessingJob request without its ProcessingJobName, a Training step's a
CreateTrainingJob request without TrainingJobName, a Model step's CreateModel without ModelName, a RegisterModel
step's a CreateModelPackage request (https://aws-sagemaker-mlops.github.io/sagemaker-model-building-pipeline-definition-JSON-schema/).
botocore's service model is the truth for those shapes: unknown fields, missing required ones and literal values of
the wrong type are refused. Values that are expressions (Get, Std:Join, Std:JsonGet) are checked when they run.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

OPERATIONS = {
    "Processing": ("CreateProcessingJob", {"ProcessingJobName"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName"}),
    "Model": ("CreateModel", {"ModelName"}),
    "RegisterModel": ("CreateModelPackage", set()),
}
_EXPRESSIONS = ({"Get"}, {"Std:Join"}, {"Std:JsonGet"})
_PYTHON_TYPES = {"string": (str,), "integer": (int,), "long": (int,), "boolean": (bool,), "float": (int, float),
                 "double": (int, float), "timestamp": (str, int, float), "blob": (str, bytes)}


@lru_cache(maxsize=1)
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def argument_problems(step_type: str, arguments: Any, where: str) -> list[str]:
    """What the request built from a step's Arguments would be refused for (empty for other step types)."""
    if step_type not in OPERATIONS or not isinstance(arguments, dict):
        return []
    operation, filled_in = OPERATIONS[step_type]
    shape = _model().operation_model(operation).input_shape
    return _check(shape, arguments, f"{where}.Arguments", skip_required=filled_in)


def _check(shape: Any, value: Any, where: str, skip_required: set[str] = frozenset()) -> list[str]:
    if isinstance(value, dict) and set(value) in _EXPRESSIONS:
        return []
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({shape.name}), got {type(value).__name__}"]
        problems = [f"{where}: unknown field {key!r} ({shape.name} has {sorted(shape.members)})"
                    for key in value if key not in shape.members]
        problems += [f"{where}: required field {key!r} is missing" for key in shape.required_members
                     if key not in value and key not in skip_required]
        for key, item in value.items():
            if key in shape.members:
                problems += _check(shape.members[key], item, f"{where}.{key}")
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [problem for index, item in enumerate(value) for problem in _check(shape.member, item, f"{where}[{index}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        return [problem for key, item in value.items() for problem in _check(shape.value, item, f"{where}[{key!r}]")]
    expected = _PYTHON_TYPES.get(kind)
    if expected and (not isinstance(value, expected) or (kind != "boolean" and isinstance(value, bool))):
        return [f"{where}: expected {'an' if kind[0] in 'aeiou' else 'a'} {kind}, got {value!r}"]
    if kind == "string" and shape.enum and value not in shape.enum:
        return [f"{where}: {value!r} is not one of {shape.enum}"]
    return []
