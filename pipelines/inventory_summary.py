"""A registered version's knowledge inventory as the CLI shows it: size and coverage, from its summary.json.

The evaluate step writes `inventory.jsonl` and `summary.json` (items, checked, known, per data
version) to the prefix the register step records as the version's `inventory_uri` metadata.
"""
from __future__ import annotations

import json
from typing import Any

INVENTORY_KEY = "inventory_uri"
SUMMARY_FILE = "summary.json"  # written by steps/evaluate.py beside inventory.jsonl


def read_inventory_summary(s3: Any, inventory_uri: str | None) -> dict[str, Any] | None:
    """The summary stored with an inventory, or None when there is none (a version registered before inventories)."""
    from botocore.exceptions import ClientError

    if not inventory_uri or not inventory_uri.startswith("s3://"):
        return None
    bucket, _, prefix = inventory_uri.removeprefix("s3://").partition("/")
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{SUMMARY_FILE}")["Body"].read()
    except ClientError:
        return None
    return json.loads(body)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def describe_inventory(summary: dict[str, Any] | None, uri: str | None, indent: str = "  ") -> list[str]:
    """Lines for a terminal: the inventory's size, how much of it was checked and is known, per data version."""
    if summary is None:
        return [f"{indent}knowledge inventory: {'not recorded' if not uri else f'no summary at {uri}'}"]
    lines = [f"{indent}knowledge inventory: {summary['items']} items from {summary['data_versions']} data version(s), "
             f"{summary['checked']} checked ({_share(summary['checked'], summary['items'])}), {summary['known']} known "
             f"({_share(summary['known'], summary['checked'])} of checked) — {uri}"]
    for version, counts in summary["by_data_version"].items():
        lines.append(f"{indent}  data version {version[:12]}: {counts['items']} items, {counts['checked']} checked, "
                     f"{counts['known']} known")
    return lines
