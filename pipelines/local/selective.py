"""Which steps a selective execution runs, and what it takes from its reference execution.

https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-selective-ex.html and
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_SelectiveExecutionConfig.html: `SelectedSteps` (1..50)
run; every step on a path between two selected steps must be selected too; the steps they depend on are not run
but their outputs are copied from `SourcePipelineExecutionArn` (a Failed or Succeeded execution of the same
pipeline), which is required when such dependencies exist.
"""
from __future__ import annotations

from typing import Any, Mapping

from pipelines.local.validation import DefinitionError, PlannedStep

MAX_SELECTED_STEPS = 50


def selected_steps(config: dict[str, Any], plan: Mapping[str, PlannedStep]) -> set[str]:
    """The validated selection (DefinitionError listing every problem)."""
    names = [item.get("StepName") if isinstance(item, dict) else item for item in config.get("SelectedSteps", [])]
    problems = []
    if not 1 <= len(names) <= MAX_SELECTED_STEPS:
        problems.append(f"SelectedSteps must name 1 to {MAX_SELECTED_STEPS} steps, got {len(names)}")
    problems += [f"SelectedSteps names unknown step {name!r}" for name in names if name not in plan]
    selected = {name for name in names if name in plan}
    ancestors = {name: _ancestors(name, plan) for name in plan}
    between = sorted(name for name in set(plan) - selected
                     if any(s in ancestors[name] for s in selected) and any(name in ancestors[s] for s in selected))
    if between:
        problems.append(f"steps {between} lie on a path between selected steps and must be selected too")
    if problems:
        raise DefinitionError("; ".join(problems))
    return selected


def needed_from_reference(selected: set[str], plan: Mapping[str, PlannedStep]) -> set[str]:
    """The steps outside the selection that selected steps read or wait for (their outputs come from the reference)."""
    return {dep for name in selected for dep in plan[name].depends_on} - selected


def check_reference(selected: set[str], needed: set[str], reference: dict[str, Any] | None) -> None:
    if not needed:
        return
    if reference is None:
        raise DefinitionError(f"Invalid SourcePipelineExecutionArn: null. The selected steps {sorted(selected)} have "
                              f"dependencies on {sorted(needed)}")
    if reference.get("status") not in ("Succeeded", "Failed"):
        raise DefinitionError(f"the reference execution {reference.get('execution_id')} is {reference.get('status')}, "
                              "not Failed or Succeeded")
    succeeded = {step["name"] for step in reference.get("steps", []) if step.get("status") == "Succeeded"}
    missing = sorted(needed - succeeded)
    if missing:
        raise DefinitionError(f"the reference execution {reference.get('execution_id')} has no successful run of "
                              f"{missing}, which the selected steps depend on")


def _ancestors(name: str, plan: Mapping[str, PlannedStep]) -> set[str]:
    found: set[str] = set()
    stack = list(plan[name].depends_on)
    while stack:
        current = stack.pop()
        if current not in found:
            found.add(current)
            stack += plan[current].depends_on
    return found
