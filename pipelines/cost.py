"""What runs and endpoints cost: the price table (pipelines/prices.yaml, config overrides), a training run's
estimate before it starts, its actual cost after (billable seconds of each job), endpoint hours, and the budgets.

Every number is instance-hours x list price: managed spot bills only BillableTimeInSeconds (its savings show as
run seconds minus billable seconds); Savings Plans, storage and data transfer are not counted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from statistics import mean
from typing import Any

import yaml

from pipelines.backend import Backend
from pipelines.config import Config
from pipelines.execution_jobs import TRAINING, ExecutionJobs, job_instances, job_seconds, now

PRICES_PATH = Path(__file__).with_name("prices.yaml")
USAGES = ("training", "processing", "hosting")
HOURS_PER_MONTH = 730  # AWS's monthly convention
HISTORY_RUNS = 5  # earlier runs the estimate learns from
# The training pipeline's budget parameters (pipelines/training/budget_step.py), set by pipelines/run_records.py.
ESTIMATE_PARAMETER, MONTH_PARAMETER = "CostEstimateUsd", "MonthProjectedUsd"


@dataclass(frozen=True)
class PriceTable:
    date: str
    region: str
    source: str
    prices: dict[str, dict[str, float]]  # usage -> instance type -> USD/instance-hour

    def price(self, usage: str, instance_type: str) -> float | None:
        return self.prices.get(usage, {}).get(instance_type)

    def basis(self, config_region: str) -> str:
        where = self.region if config_region == self.region else f"{self.region} (the project runs in {config_region})"
        return f"on-demand list prices of {self.date}, {where}"


@lru_cache(maxsize=4)
def _table_file(path: Path) -> dict[str, Any]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in ("date", "region", "source", *USAGES):
        if key not in raw:
            raise ValueError(f"{path}: missing {key!r}")
    for usage in USAGES:
        for instance, price in raw[usage].items():
            if not isinstance(price, (int, float)) or price < 0:
                raise ValueError(f"{path}: {usage}.{instance}: a price is a non-negative number, got {price!r}")
    return raw


def price_table(config: Config, path: Path = PRICES_PATH) -> PriceTable:
    """The repository's table with the config's cost.prices on top."""
    raw = _table_file(path)
    prices = {usage: {**raw[usage], **config.cost.prices.get(usage, {})} for usage in USAGES}  # type: ignore[call-overload]
    date = raw["date"] + (" + config overrides" if config.cost.prices else "")
    return PriceTable(str(date), raw["region"], str(raw["source"]).strip(), prices)


def _usd(price: float | None, count: int, seconds: float) -> float | None:
    return None if price is None else round(price * count * seconds / 3600.0, 4)


@dataclass(frozen=True)
class JobCost:
    step: str
    kind: str
    instance_type: str
    instance_count: int
    billable_seconds: int
    run_seconds: int
    usd: float | None  # None: no price for this instance type

    @property
    def spot_savings(self) -> float:
        """Share of the run seconds not billed (managed spot)."""
        return 0.0 if not self.run_seconds else round(1 - self.billable_seconds / self.run_seconds, 4)


@dataclass(frozen=True)
class RunCost:
    execution: ExecutionJobs
    jobs: list[JobCost]
    basis: str

    @property
    def usd(self) -> float:
        return round(sum(job.usd or 0.0 for job in self.jobs), 4)

    @property
    def unpriced(self) -> list[str]:
        return sorted({job.instance_type for job in self.jobs if job.usd is None})

    @property
    def training_seconds(self) -> int:
        return sum(job.billable_seconds for job in self.jobs if job.kind == TRAINING)

    def as_metadata(self) -> dict[str, str]:
        """CustomerMetadataProperties of the model version it made."""
        return {"cost_usd": f"{self.usd:.4f}", "cost_training_billable_seconds": str(self.training_seconds),
                "cost_basis": re.sub(r"[^\w .:/=+@-]", "", self.basis)[:256]}  # SageMaker's metadata characters


def run_cost(execution: ExecutionJobs, table: PriceTable, config: Config) -> RunCost:
    """The actual cost of one execution's jobs (locally: what the same jobs would cost on AWS, not billed)."""
    jobs = []
    for step, description in sorted(execution.jobs.items()):
        instance_type, count = job_instances(description)
        billable, run = job_seconds(description)
        usage = "training" if description["kind"] == TRAINING else "processing"
        jobs.append(JobCost(step, description["kind"], instance_type, count, billable, run,
                            _usd(table.price(usage, instance_type), count, billable)))
    basis = table.basis(config.project.region)
    if execution.backend == "local":
        basis = "local run, not billed: its jobs' seconds at " + basis
    return RunCost(execution, jobs, basis)


# --- the estimate before a run ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    usd: float
    training_seconds: float
    lines: list[str] = field(default_factory=list)  # how it was made, for people

    def describe(self) -> str:
        return f"${self.usd:,.4f} (" + "; ".join(self.lines) + ")"


def data_bytes(backend: Backend, uri: str) -> int:
    """Total size of the objects under an s3:// prefix (either backend's S3)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    total = 0
    pages = backend.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
    for page in pages:
        total += sum(item["Size"] for item in page.get("Contents", []))
    return total


def estimate_run(config: Config, table: PriceTable, parameters: dict[str, Any], size: int,
                 history: list[tuple[RunCost, int]]) -> Estimate:
    """Instance types x expected seconds: training seconds per data byte of the last HISTORY_RUNS succeeded runs
    (their billable seconds / their data size) x this run's `size`; each processing step at its mean seconds in
    those runs. Without history, training at its MaxRuntimeInSeconds (the most it can bill) and processing left out."""
    training_type = str(parameters.get("TrainingInstanceType", config.training.instance_type))
    count = int(parameters.get("TrainingInstanceCount", config.training.instance_count))
    price = table.price("training", training_type)
    if price is None:
        raise ValueError(f"no training price for {training_type} in {PRICES_PATH.name}; add "
                         f"cost.prices.training.{training_type} to the config")
    usable = [(run, run_size) for run, run_size in history[-HISTORY_RUNS:] if run.training_seconds and run_size]
    lines: list[str] = []
    if usable:
        per_byte = sum(run.training_seconds for run, _ in usable) / sum(run_size for _, run_size in usable)
        seconds = min(per_byte * size, float(config.training.max_run_seconds))
        lines.append(f"training {training_type} x{count} ~{seconds:,.0f} s: {size:,} data bytes at the "
                     f"{per_byte * 1e6:.1f} s/MB of the last {len(usable)} runs")
    else:
        seconds = float(config.training.max_run_seconds)
        lines.append(f"training {training_type} x{count} {seconds:,.0f} s: no earlier run to learn from, its "
                     "MaxRuntimeInSeconds (training.max_run_seconds)")
    usd = price * count * seconds / 3600.0
    steps: dict[str, list[JobCost]] = {}
    for run, _ in usable:
        for job in run.jobs:
            if job.kind != TRAINING:
                steps.setdefault(job.step, []).append(job)
    for step, jobs in sorted(steps.items()):
        step_usd = mean(job.usd or 0.0 for job in jobs)
        usd += step_usd
        lines.append(f"{step} {jobs[-1].instance_type} ~{mean(j.billable_seconds for j in jobs):,.0f} s")
    lines.append(table.basis(config.project.region))
    return Estimate(round(usd, 4), seconds, lines)


def month_to_date(runs: list[RunCost], when: datetime | None = None) -> float:
    """What the runs started this calendar month (UTC) cost."""
    when = when or now()
    return round(sum(run.usd for run in runs if run.execution.started and run.execution.started.year == when.year
                     and run.execution.started.month == when.month), 4)


# --- endpoints ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EndpointCost:
    stage: str
    name: str
    variants: list[tuple[str, int]]  # (instance type, count)
    hours: float
    usd_so_far: float | None
    usd_per_month: float | None


def endpoint_costs(backend: Backend, config: Config, table: PriceTable) -> list[EndpointCost]:
    """Each configured endpoint that exists: hours since it was created x its instances' hosting price."""
    stages = [("staging", config.deploy.endpoint_name)]
    if config.deploy.production and config.deploy.production.enabled:
        stages.append(("production", config.deploy.production.endpoint_name))
    client = backend.client("sagemaker")
    costs = []
    for stage, name in stages:
        try:
            endpoint = client.describe_endpoint(EndpointName=name)
        except client.exceptions.ClientError as exc:
            if "ValidationException" in str(exc) or "Could not find" in str(exc):
                continue
            raise
        if endpoint.get("EndpointStatus") in ("Deleting", "Failed"):
            continue
        endpoint_config = client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        types = {v["VariantName"]: v.get("InstanceType", "serverless") for v in endpoint_config["ProductionVariants"]}
        variants = [(types.get(v["VariantName"], "unknown"), int(v.get("CurrentInstanceCount") or 0))
                    for v in endpoint.get("ProductionVariants", [])]
        created = endpoint["CreationTime"]
        created = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
        hours = max(0.0, (now() - created).total_seconds() / 3600.0)
        hourly = [table.price("hosting", itype) for itype, _ in variants]
        per_hour = None if None in hourly else sum(p * n for p, (_, n) in zip(hourly, variants))  # type: ignore[operator]
        costs.append(EndpointCost(stage, name, variants, round(hours, 2),
                                  None if per_hour is None else round(per_hour * hours, 4),
                                  None if per_hour is None else round(per_hour * HOURS_PER_MONTH, 2)))
    return costs


def endpoint_warning(costs: list[EndpointCost], config: Config) -> str | None:
    """A warning when the endpoints' projected month passes cost.budget.endpoints_monthly_warn_usd."""
    limit = config.cost.budget.endpoints_monthly_warn_usd
    monthly = sum(cost.usd_per_month or 0.0 for cost in costs)
    if limit is None or monthly <= limit:
        return None
    names = ", ".join(f"{c.name} ${c.usd_per_month:,.2f}" for c in costs if c.usd_per_month)
    return (f"warning: the endpoints cost ${monthly:,.2f} a month at list prices ({names}), over "
            f"cost.budget.endpoints_monthly_warn_usd ${limit:,.2f}")
