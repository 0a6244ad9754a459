"""Answers this export changes: the previous version's examples whose prompt the new data answers otherwise.

The replay input is the previous version's train split. A replayed example (the first of each id)
is contradicted when a kept new example asks the same prompt (normalized, records.prompt_key)
and no kept new example asking it gives the same answer (normalized, case-folded, end punctuation
ignored: records.answer_key; "30 days" → "30 days." is no change). Those old answers are the
ones replay supersedes. When more than `max_changed_fraction` of the previous examples are
contradicted, prepare fails unless the run allows the changes (`allow_changes`): a wholesale rewrite
of what the model knows is more often a broken or wrong export than an update.

Decided a prompt-key range at a time over the new units' and the replay scans' `answers` spills;
the first LISTED contradictions (by the new example's place in the input: file, line) are read back
for the report.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from prepare.dedup import mix64
from prepare.merge import Pool
from prepare.output import read_records
from prepare.replay import REPLAY_ANSWER_ROW, ReplayScan
from prepare.spill import ANSWER_ROW, Bitmap, SpillSource, loaded, partition_totals, plan_groups, read_group
from prepare.units import Unit

LISTED = 100
FOUND = np.dtype([("new", "<i8"), ("old", "<i8"), ("offset", "<u8"), ("length", "<u4"), ("scan", "<i8")])


@dataclass(frozen=True)
class Contradictions:
    """How many previous examples were contradicted, of how many, and the first LISTED as report items."""

    previous: int
    count: int
    items: list[dict[str, Any]]

    @property
    def share(self) -> float:
        return self.count / max(self.previous, 1)


def _pairs(keys: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """(prompt key, answer key) pairs as one 64-bit hash."""
    return mix64(keys ^ mix64(answers))


def _group(new: list[SpillSource], old: list[SpillSource], scan_bases: np.ndarray, lo: int, hi: int, kept_path: Path,
           size: int, available_path: Path, replay_size: int) -> tuple[int, np.ndarray]:
    """(contradicted previous examples, the first LISTED as FOUND rows) of a prompt-key range."""
    new_rows, new_indices = read_group(new, ANSWER_ROW, lo, hi)
    chosen = Bitmap.load(kept_path, size).get(new_indices)
    new_rows, new_indices = new_rows[chosen], new_indices[chosen]
    old_rows, old_indices = read_group(old, REPLAY_ANSWER_ROW, lo, hi)
    chosen = Bitmap.load(available_path, replay_size).get(old_indices)
    old_rows, old_indices = old_rows[chosen], old_indices[chosen]
    asked = np.isin(old_rows["key"], new_rows["key"])
    same = np.isin(_pairs(old_rows["key"], old_rows["answer"]), _pairs(new_rows["key"], new_rows["answer"]))
    contradicted = np.flatnonzero(asked & ~same)
    found = np.empty(contradicted.size, FOUND)
    if contradicted.size:
        order = np.argsort(new_rows["key"], kind="stable")  # equal keys stay in input order: the first asks first
        first = np.searchsorted(new_rows["key"][order], old_rows["key"][contradicted])
        found["new"] = new_indices[order][first]
        found["old"] = old_indices[contradicted]
        found["offset"], found["length"] = old_rows["offset"][contradicted], old_rows["length"][contradicted]
        found["scan"] = np.searchsorted(scan_bases, found["old"], side="right") - 1
        found = np.sort(found, order=["new", "old"])[:LISTED]
    return int(contradicted.size), found


def _old_record(scans: list[ReplayScan], row: np.void) -> dict[str, Any]:
    handle = os.open(scans[int(row["scan"])].path("train.jsonl"), os.O_RDONLY)
    try:
        return json.loads(os.pread(handle, int(row["length"]), int(row["offset"])))
    finally:
        os.close(handle)


def find_contradictions(units: list[Unit], kept_path: Path, size: int, scans: list[ReplayScan], available_path: Path,
                        previous: int, pool: Pool) -> Contradictions:
    """The previous (replayed) examples the kept new examples contradict; `previous`: how many are available."""
    bases = np.cumsum([0] + [scan.size for scan in scans])
    new = loaded([unit.spill("answers") for unit in units])
    old = loaded([scan.spill("answers", int(base)) for scan, base in zip(scans, bases[:-1].tolist())])
    groups = plan_groups(partition_totals([*new, *old]), REPLAY_ANSWER_ROW)
    count, parts = 0, []
    for found, rows in pool.map(_group, repeat(new), repeat(old), repeat(bases[:-1]), *zip(*groups),
                                repeat(kept_path), repeat(size), repeat(available_path), repeat(int(bases[-1]))):
        count += found
        parts.append(rows)
    listed = np.sort(np.concatenate(parts), order=["new", "old"])[:LISTED] if parts else np.empty(0, FOUND)
    records = read_records(units, listed["new"].tolist())
    items = []
    for row in listed:
        record, old = records[int(row["new"])], _old_record(scans, row)
        items.append({"prompt": record["prompt"], "old_answer": old["completion"], "new_answer": record["completion"],
                      "source": record["source"], "previous_source": old["source"]})
    return Contradictions(previous, count, items)


def contradictions_report(found: Contradictions | None, max_changed_fraction: float,
                          allow_changes: bool) -> dict[str, Any] | None:
    """report.json's `contradictions` (None without a previous version's train split to compare with)."""
    if found is None:
        return None
    over = found.share > max_changed_fraction
    return {"previous_examples": found.previous, "contradicted": found.count, "share": round(found.share, 6),
            "max_changed_fraction": max_changed_fraction, "allow_changes": allow_changes,
            "over_limit": over, "blocked": over and not allow_changes, "listed": len(found.items),
            "items": found.items}


def contradiction_problem(report: dict[str, Any] | None) -> str | None:
    """The failure message when the export changes too many previous answers and the run does not allow it."""
    if not report or not report["blocked"]:
        return None
    first = report["items"][0] if report["items"] else None
    example = (f"; e.g. {first['source']}: {first['prompt']!r} was {first['old_answer']!r}, now "
               f"{first['new_answer']!r}" if first else "")
    return (f"this export changes the answers of {report['contradicted']} of the previous version's "
            f"{report['previous_examples']} examples ({report['share']:.1%}), over --max-changed-fraction "
            f"{report['max_changed_fraction']:.0%}{example}; report.json 'contradictions' lists "
            f"{report['listed']} of them (prompt, old and new answer, file:line). If the changes are intended, "
            "rerun with --allow-changes (pipeline parameter AllowDataChanges=true, config data.allow_changes)")
