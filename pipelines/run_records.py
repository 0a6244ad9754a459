"""What the control plane adds around a pipeline run it starts: the cost estimate (and the budget parameters) before
a training run; after it, its actual cost and MLflow run on the model version it registered, and the endpoints'
monthly cost after a deploy."""
from __future__ import annotations

from typing import Any, Callable

from pipelines.backend import Backend, RunOutcome
from pipelines.config import Config
from pipelines.cost import (
    ESTIMATE_PARAMETER, MONTH_PARAMETER, Estimate, RunCost, data_bytes, endpoint_costs, endpoint_warning, estimate_run,
    month_to_date, price_table, run_cost)
from pipelines.execution_jobs import execution_jobs, recent_executions

Echo = Callable[[str], None]


def training_history(backend: Backend, config: Config, count: int = 20) -> list[tuple[RunCost, int]]:
    """Earlier training executions with their cost and data size (bytes under their InputDataUri), oldest first."""
    table = price_table(config)
    history = []
    for execution in recent_executions(backend, config.training_pipeline_name, count):
        uri = execution.parameters.get("InputDataUri")
        size = data_bytes(backend, str(uri)) if uri else 0
        history.append((run_cost(execution, table, config), size))
    return history


def estimate_training(backend: Backend, config: Config, parameters: dict[str, Any]) -> tuple[Estimate, float]:
    """(this run's estimate, this month's runs so far)."""
    history = training_history(backend, config)
    size = data_bytes(backend, str(parameters["InputDataUri"])) if parameters.get("InputDataUri") else 0
    succeeded = [(run, run_size) for run, run_size in history if run.execution.status == "Succeeded"]
    return (estimate_run(config, price_table(config), parameters, size, succeeded),
            month_to_date([run for run, _ in history]))


def before_run(kind: str, config: Config, backend: Backend, parameters: dict[str, Any], echo: Echo) -> dict[str, Any]:
    """The parameters to start with: a training run under a budget gets CostEstimateUsd and MonthProjectedUsd."""
    budget = config.cost.budget
    if kind != "training" or not (budget.per_run_usd or budget.per_month_usd):
        return parameters
    estimate, spent = estimate_training(backend, config, parameters)
    echo(f"cost estimate: {estimate.describe()}; this month so far ${spent:,.4f}")
    return {ESTIMATE_PARAMETER: estimate.usd, MONTH_PARAMETER: round(spent + estimate.usd, 4), **parameters}


def after_run(kind: str, config: Config, backend: Backend, outcome: RunOutcome, echo: Echo) -> None:
    """Cost and MLflow run of an ended execution (recorded on the model version it registered); after a deploy, the
    endpoints' monthly cost against its warning threshold."""
    if outcome.status not in ("Succeeded", "Failed", "Stopped"):
        return  # --no-wait: `continuum cost` reads it once it ended
    try:
        _record(kind, config, backend, outcome, echo)
    except Exception as exc:  # noqa: BLE001 (the run itself ended as it did; say what was not recorded)
        from pipelines.cli_support import describe_error

        echo(f"warning: the run's cost/MLflow record was not written: {describe_error(exc)}")


def _record(kind: str, config: Config, backend: Backend, outcome: RunOutcome, echo: Echo) -> None:
    if kind == "deploy":
        if config.cost.budget.endpoints_monthly_warn_usd is None:
            return
        warning = endpoint_warning(endpoint_costs(backend, config, price_table(config)), config)
        if warning:
            echo(warning)
        return
    if kind != "training":
        return
    execution = execution_jobs(backend, outcome.pipeline_name, outcome.execution_id)
    cost = run_cost(execution, price_table(config), config)
    echo(f"cost: ${cost.usd:.4f} ({cost.basis})" + (f"; no price for {', '.join(cost.unpriced)}" if cost.unpriced else ""))
    from pipelines.tracking import METADATA_KEY, track_execution

    run_id = track_execution(backend, config, execution, cost, echo)
    if execution.model_package_arn:
        metadata = {**cost.as_metadata(), **({METADATA_KEY: run_id} if run_id else {})}
        backend.client("sagemaker").update_model_package(ModelPackageArn=execution.model_package_arn,
                                                         CustomerMetadataProperties=metadata)
