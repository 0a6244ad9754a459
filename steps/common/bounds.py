"""A metric against a bound, direction-aware: the one place "higher or lower is better" is decided.

Every gate check compares through these functions: the evaluate step's threshold, regression,
suite-threshold and forgetting checks (evaluate.gate, evaluate.compare) and the deploy smoke test's
live benchmark gate (smoke_test.py). A check is written as `check(...)`: what evaluation.json's
gate.checks.<name> holds and what the pipeline's ConditionSteps and FailSteps read.
"""
from __future__ import annotations

from typing import Any


def meets(value: float, bound: float, higher_is_better: bool) -> bool:
    """`value` is at least as good as `bound`: >= when higher is better, else <=."""
    return value >= bound if higher_is_better else value <= bound


def worse_by(value: float, reference: float, higher_is_better: bool) -> float:
    """How much worse `value` is than `reference` (negative when it is better)."""
    return reference - value if higher_is_better else value - reference


def relation(higher_is_better: bool, holds: bool = True) -> str:
    """The comparison sign of `meets`: ">=" / "<=" when it holds, "<" / ">" when it does not."""
    if holds:
        return ">=" if higher_is_better else "<="
    return "<" if higher_is_better else ">"


def check(passed: bool, value: float | None, bound: float | None, message: str) -> dict[str, Any]:
    """One gate check's verdict: {passed, value, bound, message} (the message says what passed or failed)."""
    return {"passed": passed, "value": value, "bound": bound, "message": message}
