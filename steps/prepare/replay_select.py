"""Which staged replay examples are used, and in what order: decided a key range at a time.

1. Available: the first example of each id, in replay file order (repeated id texts are found
   like exact duplicates, on the `names` keys).
2. Sampled: each stratum's share (`stratum_sample_size` of its available count), lowest
   (replay score, id) first: score ranges are read in ascending order, each stratum taking from
   each range what it still needs.
3. Superseded: sampled examples whose prompt key or id a kept new example holds.
4. The used rest, in id order, restaged as units after the new examples, which the output steps
   read like any other unit. Ids that are not 16 lower-case hex digits (never written by this
   step) are kept in memory and merged in by their text.

Memory: a group of keys at a time, one bit per replayed example, the strata, the odd ids.
"""
from __future__ import annotations

import bisect
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np

from prepare.merge import Chosen, Pool, later_occurrences_group, matches
from prepare.replay import (
    REPLAY_ROW,
    SCORE_ROW,
    Replay,
    ReplayScan,
    stratum_sample_size,
)
from prepare.spill import (
    KEY_ROW,
    PARTITION_BITS,
    Bitmap,
    SpillSource,
    loaded,
    partition_totals,
    plan_groups,
    read_group,
)
from prepare.split import TRAIN
from prepare.units import COLUMNS, Unit, UnitWriter

BATCH_ROWS = 4096


SPILL_KINDS = (("names", KEY_ROW), ("prompt_keys", KEY_ROW), ("scores", SCORE_ROW), ("ids", REPLAY_ROW))


@dataclass(frozen=True)
class StagedReplay:
    """The staged replay scans, numbered on from each other (replayed examples' own index space), and their
    spilled keys by kind (row counts read once, passed along to the worker processes)."""

    scans: list[ReplayScan]
    bases: list[int]
    size: int
    spills: dict[str, list[SpillSource]]

    @classmethod
    def of(cls, scans: list[ReplayScan]) -> "StagedReplay":
        bases = np.cumsum([0] + [scan.size for scan in scans]).tolist()
        spills = {kind: loaded([scan.spill(kind, base) for scan, base in zip(scans, bases)]) for kind, _ in SPILL_KINDS}
        return cls(scans, bases[:-1], bases[-1], spills)

    def sources(self, kind: str) -> list[SpillSource]:
        return self.spills[kind]

    def line(self, index: int, offset: int, length: int, handles: dict[int, int]) -> bytes:
        """The staged line of replayed example `index` (at `offset`, `length` bytes in its scan's file)."""
        owner = bisect.bisect_right(self.bases, index) - 1  # an empty scan shares its base with the next
        if owner not in handles:
            handles[owner] = os.open(self.scans[owner].path("train.jsonl"), os.O_RDONLY)
        return os.pread(handles[owner], length, offset)


def _ranked_group(replay: StagedReplay, lo: int, hi: int, available: Path, strata: np.ndarray,
                  offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices, global strata) of a score range's available examples, by (score, id)."""
    rows, indices = read_group(replay.sources("scores"), SCORE_ROW, lo, hi)
    chosen = Bitmap.load(available, replay.size).get(indices)
    rows, indices = rows[chosen], indices[chosen]
    order = np.argsort(rows["key"], kind="stable")
    rows, indices = rows[order], indices[order]
    tied = np.flatnonzero(rows["key"][1:] == rows["key"][:-1])
    if tied.size:  # equal scores (52-bit hashes): the id text decides, as sorted((score, id)) does
        handles: dict[int, int] = {}
        ids = {int(position): json.loads(replay.line(int(indices[position]), int(rows["offset"][position]),
                                                     int(rows["length"][position]), handles))["id"]
               for position in np.union1d(tied, tied + 1)}
        for handle in handles.values():
            os.close(handle)
        keys = [(int(key), ids.get(position, "")) for position, key in enumerate(rows["key"].tolist())]
        order = np.array(sorted(range(len(keys)), key=keys.__getitem__), np.int64)
        rows, indices = rows[order], indices[order]
    owners = np.searchsorted(np.array(replay.bases), indices, side="right") - 1
    return indices, strata[offsets[owners] + rows["stratum"]]


def _group_counts(replay: StagedReplay, lo: int, hi: int, available: Path, strata: np.ndarray,
                  offsets: np.ndarray, count: int) -> np.ndarray:
    """Available examples per stratum in a score range."""
    return np.bincount(_ranked_group(replay, lo, hi, available, strata, offsets)[1], minlength=count)


def _take_group(replay: StagedReplay, lo: int, hi: int, available: Path, strata: np.ndarray, offsets: np.ndarray,
                take: np.ndarray) -> np.ndarray:
    """Indices of the first `take[s]` examples (by score, id) of each stratum s in a score range."""
    indices, stratum = _ranked_group(replay, lo, hi, available, strata, offsets)
    order = np.argsort(stratum, kind="stable")  # by stratum, by (score, id) within each
    ordered = stratum[order]
    rank = np.arange(ordered.size) - np.searchsorted(ordered, ordered, side="left")
    return indices[order[rank < take[ordered]]]


def _sample(replay: StagedReplay, available: Path, fraction: float, pool: Pool) -> Bitmap:
    """Each stratum's lowest (score, id) available examples, as many as its share: score ranges are counted
    (in parallel), each range's take per stratum follows in score order, then the ranges are taken from."""
    names: dict[str, int] = {}
    local = [np.array([names.setdefault(name, len(names)) for name in scan.strata], np.int64)
             for scan in replay.scans]
    strata = np.concatenate(local) if local else np.empty(0, np.int64)
    offsets = np.cumsum([0] + [len(scan_local) for scan_local in local])[:-1]
    groups = plan_groups(partition_totals(replay.sources("scores")), SCORE_ROW)
    common = (repeat(available), repeat(strata), repeat(offsets))
    counts = list(pool.map(_group_counts, repeat(replay), *zip(*groups), *common, repeat(len(names))))
    available_per_stratum = np.sum(counts, axis=0, dtype=np.int64) if counts else np.zeros(len(names), np.int64)
    remaining = np.array([stratum_sample_size(fraction, int(count)) for count in available_per_stratum], np.int64)
    takes = []
    for count in counts:
        takes.append(np.minimum(remaining, count))
        remaining -= takes[-1]
    sampled = Bitmap(replay.size)
    for indices in pool.map(_take_group, repeat(replay), *zip(*groups), *common, takes):
        sampled.set(indices)
    return sampled


def _odd_ids(replay: StagedReplay, used: Bitmap) -> list[tuple[str, np.ndarray]]:
    """(id, REPLAY_ROW with global index) of the used examples whose id is not canonical, by id."""
    odd: list[tuple[str, np.ndarray]] = []
    for scan, base in zip(replay.scans, replay.bases):
        ids, rows = scan.odd_ids()
        for id_, row in zip(ids, rows):
            if used.get(np.array([base + int(row["index"])]))[0]:
                row = row.copy()
                row["index"] = base + int(row["index"])
                odd.append((id_, row))
    return sorted(odd, key=lambda item: item[0])


def _restage_group(replay: StagedReplay, lo: int, hi: int, used: Path, odd: list[tuple[str, np.ndarray]],
                   stage: Path) -> int:
    """Write a key range's used examples, by id, as a unit; returns how many."""
    rows, indices = read_group(replay.sources("ids"), REPLAY_ROW, lo, hi)
    chosen = Bitmap.load(used, replay.size).get(indices) & (rows["canonical"] == 1)
    rows, indices = rows[chosen], indices[chosen]
    order = np.argsort(rows["key"], kind="stable")
    rows, indices = rows[order], indices[order]
    if odd:  # merge the odd ids in by text: a canonical id's text is its key in hex
        texts = [f"{key:016x}" for key in rows["key"].tolist()]
        merged = sorted([(text, 0, position) for position, text in enumerate(texts)]
                        + [(text, 1, position) for position, (text, _) in enumerate(odd)])
        rows = np.array([rows[position] if kind == 0 else odd[position][1] for _, kind, position in merged],
                        REPLAY_ROW).reshape(-1)
        indices = np.array([indices[position] if kind == 0 else int(odd[position][1]["index"])
                            for _, kind, position in merged], np.int64)
    writer = UnitWriter(stage, deduplicated=False)
    handles: dict[int, int] = {}
    try:
        for start in range(0, rows.size, BATCH_ROWS):
            batch, numbers = rows[start:start + BATCH_ROWS], indices[start:start + BATCH_ROWS]
            lines = [replay.line(int(number), int(offset), int(length), handles).decode("utf-8")
                     for number, offset, length in zip(numbers, batch["offset"], batch["length"])]
            columns = np.zeros(batch.size, COLUMNS)
            for name in ("prompt_key", "prompt_chars", "completion_chars"):
                columns[name] = batch[name]
            columns["id"], columns["split"] = batch["key"], TRAIN
            writer.add(lines, columns, batch["digest"], None)
    finally:
        for handle in handles.values():
            os.close(handle)
    return writer.close()


def _restage(replay: StagedReplay, used: Bitmap, used_path: Path, pool: Pool, work: Path, base: int) -> list[Unit]:
    """The used examples in id order, as units numbered from `base`."""
    groups = plan_groups(partition_totals(replay.sources("ids")), REPLAY_ROW)
    bounds = [f"{lo << (64 - PARTITION_BITS):016x}" for lo, _ in groups[1:]]  # first canonical id of each group
    odd: list[list[tuple[str, np.ndarray]]] = [[] for _ in groups]
    for item in _odd_ids(replay, used):
        odd[bisect.bisect_right(bounds, item[0])].append(item)
    work.mkdir(parents=True, exist_ok=True)
    stages = [work / f"{number:06d}" for number in range(len(groups))]
    sizes = list(pool.map(_restage_group, repeat(replay), *zip(*groups), repeat(used_path), odd, stages))
    firsts = np.cumsum([base] + sizes).tolist()
    return [Unit(stage, first, size) for stage, first, size in zip(stages, firsts, sizes)]


def select_replay(scans: list[ReplayScan], fraction: float, new_units: Sequence[Unit], new_kept: Path, new_size: int,
                  pool: Pool, work: Path) -> tuple[Replay, list[Unit], Path]:
    """The replay counts, the used replayed examples as units after the new ones (global index new_size on) and
    the bitmap (saved, over the staged replay examples) of those available (the first of each id)."""
    replay = StagedReplay.of(scans)
    quarantined = sum(scan.quarantined for scan in scans)
    work.mkdir(parents=True, exist_ok=True)
    repeated = Bitmap(replay.size)
    names = replay.sources("names")
    for found in pool.map(later_occurrences_group, repeat(names), *zip(*plan_groups(partition_totals(names), KEY_ROW))):
        repeated.set(found)
    available = repeated.invert()
    available_path = available.save(work / "available.bits")
    sampled = _sample(replay, available_path, fraction, pool)
    sampled_path = sampled.save(work / "sampled.bits")
    superseded = Bitmap(replay.size)
    for kind, dtype in (("prompt_keys", KEY_ROW), ("ids", REPLAY_ROW)):
        queries = Chosen(replay.sources(kind), dtype, sampled_path, replay.size)
        references = Chosen(loaded([unit.spill(kind) for unit in new_units]), KEY_ROW, new_kept, new_size)
        superseded = superseded | matches(queries, references, pool)
    used = sampled & superseded.invert()
    units = _restage(replay, used, used.save(work / "used.bits"), pool, work / "units", new_size)
    counts = Replay(available.count(), sampled.count(), (sampled & superseded).count(), quarantined, fraction)
    return counts, units, available_path
