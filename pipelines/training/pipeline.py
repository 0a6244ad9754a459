"""Assemble the training pipeline from its step builders."""
from __future__ import annotations

from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession

from pipelines.common_steps import resolve_model_step
from pipelines.config import Config
from pipelines.training.bedrock_steps import bedrock_steps
from pipelines.training.budget_step import budget_guard
from pipelines.training.evaluate_step import evaluate_step
from pipelines.training.gate_steps import gate_steps
from pipelines.training.parameters import training_parameters
from pipelines.training.prepare_step import (
    data_changed_step,
    input_data_step,
    prepare_step,
    retrain_min_change_parameter,
)
from pipelines.training.register_step import register_step
from pipelines.training.train_step import train_step


def training_pipeline(config: Config, session: PipelineSession) -> Pipeline:
    params = training_parameters(config)
    resolve, resolved = resolve_model_step(
        config, session, "ResolveBaseline", fallback_model_uri=params.base_model_uri, require_approved=False
    )
    retrain_min_change = retrain_min_change_parameter(config)
    prepare, report = prepare_step(config, session, params, resolve, resolved, retrain_min_change)
    if config.training.backend == "bedrock":  # same steps, Bedrock as the executor (training/bedrock_steps.py)
        train, evaluate, evaluation, register = bedrock_steps(config, session, params, prepare, report, resolve,
                                                              resolved)
    else:
        train = train_step(config, session, params, prepare, resolve, resolved)
        evaluate, evaluation = evaluate_step(config, session, params, prepare, train, resolve, resolved)
        register = register_step(config, session, params, train, evaluate, report, prepare, resolved, resolve)
    gate = gate_steps(evaluate, evaluation, on_pass=[register])
    budget = budget_guard(config)  # CheckRunBudget / CheckMonthBudget before training, when cost.budget sets limits
    data_changed = data_changed_step(prepare, report, retrain_min_change, if_steps=budget.guard([train, evaluate, gate]))
    input_data = input_data_step(prepare, report, params, if_steps=[data_changed])
    return Pipeline(
        name=config.training_pipeline_name,
        parameters=[*params.as_list(), retrain_min_change, *budget.parameters],
        steps=[resolve, prepare, input_data],
        sagemaker_session=session,
    )
