"""`continuum cost`: what each training run and model version cost, the endpoints per stage, the month, the budgets."""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


def _version(arn: str | None) -> str:
    return arn.rsplit("/", 1)[-1] if arn else "-"


def cost_summary(args: argparse.Namespace) -> dict[str, Any]:
    from pipelines.cost import endpoint_costs, endpoint_warning, month_to_date, price_table
    from pipelines.run_records import training_history

    config = load_config(args.config)
    backend = backend_for(args, config)
    table = price_table(config)
    history = training_history(backend, config, args.last)
    runs = [{
        "execution": run.execution.execution_id, "started": run.execution.started.isoformat(timespec="seconds")
        if run.execution.started else None, "status": run.execution.status, "backend": run.execution.backend,
        "model_version": _version(run.execution.model_package_arn), "data_bytes": size, "usd": run.usd,
        "unpriced": run.unpriced,
        "jobs": [{"step": job.step, "instance_type": job.instance_type, "instance_count": job.instance_count,
                  "billable_seconds": job.billable_seconds, "run_seconds": job.run_seconds,
                  "spot_savings": job.spot_savings, "usd": job.usd} for job in run.jobs],
    } for run, size in history]
    endpoints = endpoint_costs(backend, config, table)
    budget = config.cost.budget
    return {
        "prices": {"basis": table.basis(config.project.region), "source": table.source},
        "runs": runs,
        "month_to_date_usd": month_to_date([run for run, _ in history]),
        "endpoints": [{"stage": e.stage, "endpoint": e.name, "instances": [f"{t} x{n}" for t, n in e.variants],
                       "hours": e.hours, "usd_so_far": e.usd_so_far, "usd_per_month": e.usd_per_month}
                      for e in endpoints],
        "budget": {"per_run_usd": budget.per_run_usd, "per_month_usd": budget.per_month_usd,
                   "endpoints_monthly_warn_usd": budget.endpoints_monthly_warn_usd},
        "warning": endpoint_warning(endpoints, config),
    }


def _money(value: float | None) -> str:
    return "?" if value is None else f"${value:,.4f}"


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"prices: {summary['prices']['basis']}"]
    if any(run["backend"] == "local" for run in summary["runs"]):
        lines.append("local runs are not billed: their jobs' seconds are priced as the configured instances")
    lines.append(f"{'execution':<14}{'started':<21}{'status':<11}{'version':>8}{'train s':>9}{'all jobs s':>11}"
                 f"{'USD':>12}")
    for run in summary["runs"]:
        train = sum(j["billable_seconds"] for j in run["jobs"] if j["step"] == "TrainModel")
        total = sum(j["billable_seconds"] for j in run["jobs"])
        lines.append(f"{run['execution'].rsplit('/', 1)[-1][:13]:<14}{(run['started'] or '-')[:19]:<21}"
                     f"{run['status']:<11}{run['model_version']:>8}{train:>9}{total:>11}{_money(run['usd']):>12}")
        for job in run["jobs"]:
            spot = f", spot saved {job['spot_savings']:.0%}" if job["spot_savings"] > 0 else ""
            lines.append(f"    {job['step']:<18}{job['instance_type']} x{job['instance_count']}: "
                         f"{job['billable_seconds']} s billable{spot} {_money(job['usd'])}")
    if not summary["runs"]:
        lines.append("  (no training runs yet)")
    versions = [(run["model_version"], run["usd"]) for run in summary["runs"] if run["model_version"] != "-"]
    if versions:
        lines.append("per model version: " + ", ".join(f"v{v} {_money(usd)}" for v, usd in versions))
    lines.append(f"this month's runs: {_money(summary['month_to_date_usd'])}")
    for item in summary["endpoints"]:
        lines.append(f"endpoint {item['stage']} {item['endpoint']} ({', '.join(item['instances'])}): "
                     f"{item['hours']:.2f} h so far {_money(item['usd_so_far'])}, "
                     + ("?" if item["usd_per_month"] is None else f"${item['usd_per_month']:,.2f}") + "/month")
    budget = summary["budget"]
    limits = [f"{name} ${value:g}" for name, value in budget.items() if value]
    lines.append("budget: " + (", ".join(limits) if limits else "none (cost.budget in the config)"))
    if summary["warning"]:
        lines.append(summary["warning"])
    return "\n".join(lines)


def cmd_cost(args: argparse.Namespace) -> int:
    summary = cost_summary(args)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    cost = add_command("cost", cmd_cost, "cost per training run and model version (billable seconds x list price), "
                                         "endpoints per stage, this month, the budgets")
    add_target(cost)
    cost.add_argument("--last", type=int, default=10, metavar="N", help="the last N training runs (default 10)")
    cost.add_argument("--json", action="store_true", help="print JSON")
