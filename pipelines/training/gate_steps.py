"""The quality gate: two ConditionSteps on evaluation.json, each with a FailStep that names the metric."""
from __future__ import annotations

from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import (
    Condition,
    ConditionGreaterThanOrEqualTo,
    ConditionLessThanOrEqualTo,
)
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.step_collections import StepCollection
from sagemaker.workflow.steps import ProcessingStep, Step

from pipelines.config import GateConfig
from pipelines.training.parameters import TrainingParameters


def _metric_field(evaluate: ProcessingStep, evaluation: PropertyFile, metric: str, field: str) -> JsonGet:
    return JsonGet(step_name=evaluate.name, property_file=evaluation, json_path=f"metrics.{metric}.{field}")


def _at_least(left: PipelineVariable, right: PipelineVariable, higher_is_better: bool) -> Condition:
    if higher_is_better:
        return ConditionGreaterThanOrEqualTo(left=left, right=right)
    return ConditionLessThanOrEqualTo(left=left, right=right)


def gate_steps(
    gate: GateConfig,
    params: TrainingParameters,
    evaluate: ProcessingStep,
    evaluation: PropertyFile,
    on_pass: list[Step | StepCollection],
) -> ConditionStep:
    """Threshold check → regression check → `on_pass`; each failure ends in its own FailStep."""
    value = _metric_field(evaluate, evaluation, gate.metric, "value")
    delta = _metric_field(evaluate, evaluation, gate.metric, "delta")
    baseline = _metric_field(evaluate, evaluation, gate.metric, "baseline")
    comparison = ">=" if gate.higher_is_better else "<="

    fail_threshold = FailStep(
        name="FailQualityThreshold",
        error_message=Join(
            on=" ",
            values=[f"Gate failed: metric {gate.metric} =", value, f"is not {comparison} threshold", params.gate_threshold],
        ),
    )
    fail_regression = FailStep(
        name="FailRegression",
        error_message=Join(
            on=" ",
            values=[
                f"Gate failed: metric {gate.metric} =", value, "vs previous version", baseline,
                "(delta", delta, ") regresses by more than the allowed", params.max_regression,
            ],
        ),
    )
    # evaluation.json's "regression" is how much worse than the previous version (>= 0, direction-aware).
    check_regression = ConditionStep(
        name="CheckNoRegression",
        conditions=[
            ConditionLessThanOrEqualTo(
                left=_metric_field(evaluate, evaluation, gate.metric, "regression"), right=params.max_regression
            )
        ],
        if_steps=on_pass,
        else_steps=[fail_regression],
    )
    return ConditionStep(
        name="CheckQualityThreshold",
        conditions=[_at_least(value, params.gate_threshold, gate.higher_is_better)],
        if_steps=[check_regression],
        else_steps=[fail_threshold],
    )
