"""The quality gate: three ConditionSteps on evaluation.json, each with a FailStep that says what failed.

CheckForgetting (first: a round that forgot what the model knew fails as forgetting, whatever else
it broke): the candidate answers wrong at most MaxForgetting (a share) of the re-asked items the
previous version knew, from its knowledge inventory (evaluation.json's gate.forgetting; 0 when
nothing was re-asked). CheckQualityThreshold: the gate metric meets GateThreshold.
CheckNoRegression: the gate metric is at most MaxRegression worse than the previous version and
every suite meets its own suite.yaml threshold (gate.suite_threshold_failures is 0). The FailStep
messages name what failed, the value and the bound (read from evaluation.json with JsonGet).
"""
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
    """Forgetting check → threshold check → regression and suite-threshold check → `on_pass`; each failure ends in
    its own FailStep."""

    def read(path: str) -> JsonGet:
        return JsonGet(step_name=evaluate.name, property_file=evaluation, json_path=path)

    def field(name: str) -> JsonGet:
        return read(f"metrics.{gate.metric}.{name}")

    comparison = ">=" if gate.higher_is_better else "<="
    fail_threshold = FailStep(
        name="FailQualityThreshold",
        error_message=Join(on=" ", values=[
            "Gate failed: benchmark", field("suite"), "metric", field("metric"), "=", field("value"),
            f"is not {comparison} threshold", params.gate_threshold, f"(GateThreshold on {gate.metric})",
        ]),
    )
    fail_forgetting = FailStep(
        name="FailForgetting",
        error_message=Join(on=" ", values=[
            "Gate failed: the candidate forgot", read("gate.forgotten_items"), "of", read("gate.known_items_asked"),
            "items the previous version knew: forgetting", read("gate.forgetting"), "> MaxForgetting",
            params.max_forgetting, "- report.html lists the forgotten items",
        ]),
    )
    # gate.summary already names each failed check's benchmark, metric, value, baseline and bound, once.
    fail_regression = FailStep(
        name="FailRegression",
        error_message=Join(on=" ", values=["Gate failed:", read("gate.summary")]),
    )
    # evaluation.json's "regression" is how much worse than the previous version (>= 0, direction-aware).
    check_regression = ConditionStep(
        name="CheckNoRegression",
        conditions=[
            ConditionLessThanOrEqualTo(left=field("regression"), right=params.max_regression),
            ConditionLessThanOrEqualTo(left=read("gate.suite_threshold_failures"), right=0),
        ],
        if_steps=on_pass,
        else_steps=[fail_regression],
    )
    check_threshold = ConditionStep(
        name="CheckQualityThreshold",
        conditions=[_at_least(field("value"), params.gate_threshold, gate.higher_is_better)],
        if_steps=[check_regression],
        else_steps=[fail_threshold],
    )
    return ConditionStep(
        name="CheckForgetting",
        conditions=[ConditionLessThanOrEqualTo(left=read("gate.forgetting"), right=params.max_forgetting)],
        if_steps=[check_threshold],
        else_steps=[fail_forgetting],
    )
