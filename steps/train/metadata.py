"""continuum.json of a trained version: lineage, strategy, hyperparameters, metrics, data, run facts, cost."""
from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from typing import Any

from train.args import recorded_hyperparameters
from train.cost import cost_estimate, current_instance

REPORT_FILE = "report.json"


def data_version(report_dir: Path | None) -> str | None:
    """The prepare step's data_version from the `report` channel, when it is there."""
    path = Path(report_dir) / REPORT_FILE if report_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("data_version")
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err


def strategy_record(args: Namespace, start_generation: int, previous_adapters: int, had_fisher: bool,
                    penalised: bool) -> dict[str, Any]:
    """What the continual-learning strategy did in this run."""
    names = args.strategy.names
    return {
        "names": list(names) or ["naive"],
        "replay_weight": args.replay_weight if "replay" in names else None,
        "replay_budget": {"budget": args.replay_budget, "unit": args.replay_budget_unit,
                          "selection": args.replay_selection} if "replay" in names else None,
        "ewc": {"lambda": args.ewc_lambda, "fisher_from_starting_model": had_fisher} if "ewc" in names else None,
        "l2sp": {"lambda": args.l2sp_lambda} if "l2sp" in names else None,
        "modular": {"lambda": args.orthogonal_lambda, "previous_adapters": previous_adapters} if "modular" in names else None,
        "distill": {"lambda": args.distill_lambda, "budget": args.distill_budget} if "distill" in names else None,
        "penalty_applied": penalised,
        "started_from_generation": start_generation,
    }


def version_metadata(args: Namespace, *, start_metadata: dict[str, Any], source: str, template: str,
                     strategy: dict[str, Any], metrics: dict[str, float], data: dict[str, Any],
                     training: dict[str, Any], fisher: dict[str, Any] | None, adapter_history: list[dict[str, Any]],
                     seconds: float, replay: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole continuum.json (docs/contracts.md, model directories)."""
    instance_type, instance_count = current_instance()
    return {
        "base_model": start_metadata.get("base_model") or args.base_model or source,
        "initialized_from": source,
        "generation": int(start_metadata.get("generation", 0)) + 1,
        "prompt_template": template,
        "hyperparameters": recorded_hyperparameters(args),
        "strategy": strategy,
        "metrics": metrics,
        "data": {"data_version": data_version(args.report_dir), **data},
        "training": training,
        "continual": {"fisher": fisher},
        "replay": replay,
        "adapter_history": adapter_history,
        "duration_seconds": round(seconds, 3),
        "cost": cost_estimate(instance_type, instance_count, seconds, args.instance_price_per_hour),
    }
