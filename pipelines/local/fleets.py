"""The fleets recorded in a local endpoint's state.json: serving, candidate (blue/green) and standby.

The standby is the last fleet an update retired, kept running without traffic for a while so that
going back to it (``continuum rollback``) swaps processes instead of starting new ones.
"""
from __future__ import annotations

import json
from collections.abc import Callable


def all_variants(state: dict | None) -> list[dict]:
    """Every variant process an endpoint's state records, whichever fleet it belongs to."""
    if not state:
        return []
    return [*state["variants"], *state.get("candidate", {}).get("variants", []),
            *state.get("standby", {}).get("variants", [])]


def _identity(variant: dict) -> tuple[str, str, str, float]:
    return variant["name"], variant["model_dir"], json.dumps(variant["environment"], sort_keys=True), variant["weight"]


def reusable_standby(state: dict | None, specs: list[dict], alive: Callable[[dict], bool]) -> list[dict] | None:
    """The standby's running variants when they serve exactly ``specs`` (same names, models, environments and
    weights), in the order of ``specs``; None when there is no such standby."""
    standby = (state or {}).get("standby")
    if not standby or sorted(map(_identity, standby["variants"])) != sorted(map(_identity, specs)):
        return None
    if not all(alive(variant) for variant in standby["variants"]):
        return None
    by_name = {variant["name"]: variant for variant in standby["variants"]}
    return [{**spec, **{key: by_name[spec["name"]][key] for key in ("pid", "port", "log", "started_at")}}
            for spec in specs]
