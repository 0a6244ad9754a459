"""The quality gate: three ConditionSteps on evaluation.json, each with a FailStep that says what failed.

The evaluate step decides every check once (steps/evaluate/gate.py, with the pipeline's
GateThreshold, MaxRegression and MaxForgetting passed to it as arguments) and writes each
verdict to evaluation.json's gate.checks.<check> = {passed, value, bound, message}. Here each
ConditionStep reads the `passed` of its checks and its FailStep the same checks' `message`:
CheckForgetting (first: a round that forgot what the model knew fails as forgetting, whatever
else it broke) → CheckQualityThreshold → CheckNoRegression (regression and suite thresholds).
"""
from __future__ import annotations

from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.step_collections import StepCollection
from sagemaker.workflow.steps import ProcessingStep, Step


def gate_steps(
    evaluate: ProcessingStep,
    evaluation: PropertyFile,
    on_pass: list[Step | StepCollection],
) -> ConditionStep:
    """Forgetting check → threshold check → regression and suite-threshold check → `on_pass`; each failure ends in
    its own FailStep."""

    def read(check: str, field: str) -> JsonGet:
        return JsonGet(step_name=evaluate.name, property_file=evaluation, json_path=f"gate.checks.{check}.{field}")

    def condition_step(name: str, checks: list[str], if_steps: list[Step | StepCollection], fail: str) -> ConditionStep:
        messages: list = []
        for check in checks:
            messages += [*(["|"] if messages else []), read(check, "message")]
        return ConditionStep(
            name=name,
            conditions=[ConditionEquals(left=read(check, "passed"), right=True) for check in checks],
            if_steps=if_steps,
            else_steps=[FailStep(name=fail, error_message=Join(on=" ", values=["Gate failed:", *messages]))],
        )

    check_regression = condition_step("CheckNoRegression", ["regression", "suite_thresholds"], on_pass, "FailRegression")
    check_threshold = condition_step("CheckQualityThreshold", ["threshold"], [check_regression], "FailQualityThreshold")
    return condition_step("CheckForgetting", ["forgetting"], [check_threshold], "FailForgetting")
