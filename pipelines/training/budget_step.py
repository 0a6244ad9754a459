"""The budget check before training: ConditionSteps comparing the run's cost estimate with cost.budget's limits,
each with a FailStep naming the estimate and the limit.

The control plane estimates the run before starting it (pipelines/cost.py, `pipelines/execution.py`) and passes
CostEstimateUsd and MonthProjectedUsd (this month's runs so far + the estimate). A run started without the CLI
(the schedule, run-pipeline) keeps their defaults, 0: not estimated, not stopped. With no budget configured the
definition has neither the steps nor the parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionLessThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join
from sagemaker.workflow.parameters import ParameterFloat
from sagemaker.workflow.step_collections import StepCollection
from sagemaker.workflow.steps import Step

from pipelines.config import Config
from pipelines.cost import ESTIMATE_PARAMETER, MONTH_PARAMETER


@dataclass
class BudgetGuard:
    per_run_usd: float | None
    per_month_usd: float | None
    estimate: ParameterFloat = field(default_factory=lambda: ParameterFloat(name=ESTIMATE_PARAMETER, default_value=0.0))
    month: ParameterFloat = field(default_factory=lambda: ParameterFloat(name=MONTH_PARAMETER, default_value=0.0))

    @property
    def parameters(self) -> list[ParameterFloat]:
        return [self.estimate, self.month] if self.per_run_usd or self.per_month_usd else []

    def guard(self, if_steps: list[Step | StepCollection]) -> list[Step | StepCollection]:
        """`if_steps` behind CheckRunBudget and CheckMonthBudget (only those whose limit is set)."""
        steps = if_steps
        if self.per_month_usd:
            steps = [_check("CheckMonthBudget", "FailMonthBudget", self.month, self.per_month_usd, steps,
                            "this month's runs plus this run's estimate, $", "cost.budget.per_month_usd")]
        if self.per_run_usd:
            steps = [_check("CheckRunBudget", "FailRunBudget", self.estimate, self.per_run_usd, steps,
                            "the estimated cost of this run, $", "cost.budget.per_run_usd")]
        return steps


def _check(name: str, fail: str, value: ParameterFloat, limit: float, if_steps: list[Step | StepCollection],
           what: str, setting: str) -> ConditionStep:
    message = Join(on="", values=[f"Over budget before training: {what}", value, f", passes the limit of ${limit:g} "
                                  f"({setting}). Raise the limit, choose a smaller training instance or less data, "
                                  f"or see `continuum cost`."])
    return ConditionStep(name=name, conditions=[ConditionLessThanOrEqualTo(left=value, right=limit)],
                         if_steps=if_steps, else_steps=[FailStep(name=fail, error_message=message)])


def budget_guard(config: Config) -> BudgetGuard:
    return BudgetGuard(config.cost.budget.per_run_usd, config.cost.budget.per_month_usd)
