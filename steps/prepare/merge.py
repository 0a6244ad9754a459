"""Staged units → duplicates across all of them, decided one bounded group of keys at a time.

Every staged example has a global index (files in name order, lines in order), so "first
occurrence" means the same thing on every run. Exact duplicates: the spilled ids are read back a
key range at a time; an id seen earlier marks a duplicate. Near-duplicates: for each LSH band and
key range, the examples sharing a bucket (exact duplicates left out) pair with the bucket's first
member; pairs whose 64-bit signature sketches already rule out the threshold are dropped, the
rest are spilled by the later member's index range, and each range's pairs are verified against
the signatures, then applied in input order. `matches` (which chosen keys another set holds: the
replay's supersede check) and `compare_counts` (new / changed / unchanged / removed against the
previous version's index) work the same way. Memory is a few bounded groups plus one bit per
example, whatever the input size; the groups are spread over the worker processes.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from prepare import dedup, spill
from prepare.manifest import PreviousData
from prepare.spill import (
    BAND_ROW,
    KEY_ROW,
    Bitmap,
    SpillSource,
    SpillWriter,
    loaded,
    partition_totals,
    plan_groups,
    read_group,
)
from prepare.replay import REPLAY_ROW
from prepare.units import BAND_KINDS, SIGNATURE_BYTES, Unit


class Pool(Protocol):
    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]: ...

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]: ...


class InlinePool:
    """The Pool interface, run in this process (small inputs: starting processes would cost more)."""

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        return map(fn, *iterables)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as error:  # noqa: BLE001 - raised by result(), as a process pool's future does
            future.set_exception(error)
        return future


@dataclass(frozen=True)
class Deduplicated:
    kept: Bitmap  # over the new examples
    exact: int
    near: int


def later_occurrences_group(sources: list[SpillSource], lo: int, hi: int) -> np.ndarray:
    """Indices of the examples of a key range whose key an earlier example holds."""
    rows, indices = read_group(sources, KEY_ROW, lo, hi)
    return dedup.later_occurrences(rows["key"], indices)


def _band_group(sources: list[SpillSource], lo: int, hi: int, exact_path: Path, size: int,
                threshold: float) -> np.ndarray:
    """Candidate pairs (first member, later member) of one band's key range; pairs whose sketches
    already show they are not similar enough are left out."""
    rows, indices = read_group(sources, BAND_ROW, lo, hi)
    eligible = ~Bitmap.load(exact_path, size).get(indices)
    rows, indices = rows[eligible], indices[eligible]
    first, later = dedup.bucket_pairs(rows["key"])
    possible = dedup.may_be_close(rows["sketch"][first], rows["sketch"][later], threshold)
    return np.stack([indices[first[possible]], indices[later[possible]]], axis=1)


class PairSpill:
    """Candidate pairs, stored by the later member's index range (at most GROUP_BYTES of pairs per range).

    Pairs are buffered (up to a sixteenth of that) before they go to the range files.
    """

    def __init__(self, folder: Path, size: int) -> None:
        self.folder = folder
        pairs = max(1, spill.GROUP_BYTES // 8)  # packed in 64 bits
        self.span = max(1, pairs // dedup.BANDS)  # an example is the later member of <= BANDS pairs
        self.budget = max(1, pairs // 16)
        self.ranges = [(start, min(start + self.span, size)) for start in range(0, size, self.span)]
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        folder.mkdir(parents=True, exist_ok=True)

    def path(self, number: int) -> Path:
        return self.folder / f"{number:06d}.pairs"

    def add(self, pairs: np.ndarray) -> None:
        self._pending.append((pairs[:, 1].astype(np.uint64) << np.uint64(32)) | pairs[:, 0].astype(np.uint64))
        self._pending_rows += len(pairs)
        if self._pending_rows >= self.budget:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        packed = np.sort(np.concatenate(self._pending))
        self._pending, self._pending_rows = [], 0
        firsts = (np.arange(len(self.ranges) + 1, dtype=np.uint64) * np.uint64(self.span)) << np.uint64(32)
        bounds = np.searchsorted(packed, firsts)
        for number in np.flatnonzero(np.diff(bounds)).tolist():
            with self.path(number).open("ab") as handle:
                packed[bounds[number]:bounds[number + 1]].tofile(handle)


def signature_rows(units: Sequence[Unit], indices: np.ndarray) -> np.ndarray:
    """Signatures of sorted, distinct global indices; neighbours are read together."""
    out = np.empty((indices.size, dedup.NUM_PERM), np.uint32)
    if not indices.size:
        return out
    owners = np.searchsorted(np.array([unit.base for unit in units]), indices, side="right") - 1
    breaks = np.flatnonzero((np.diff(indices) != 1) | (np.diff(owners) != 0)) + 1
    starts, ends = np.concatenate(([0], breaks)), np.concatenate((breaks, [indices.size]))
    handles: dict[int, int] = {}
    try:
        for start, end in zip(starts.tolist(), ends.tolist()):
            owner = int(owners[start])
            unit = units[owner]
            if owner not in handles:
                handles[owner] = os.open(unit.path("sig"), os.O_RDONLY)
            data = os.pread(handles[owner], (end - start) * SIGNATURE_BYTES,
                            int(indices[start] - unit.base) * SIGNATURE_BYTES)
            out[start:end] = np.frombuffer(data, np.uint32).reshape(-1, dedup.NUM_PERM)
    finally:
        for handle in handles.values():
            os.close(handle)
    return out


def _verify_range(path: Path, units: list[Unit], threshold: float) -> np.ndarray:
    """The close pairs among a range's candidates, sorted by (later, earlier)."""
    if not path.exists():
        return np.empty((0, 2), np.int64)
    packed = np.unique(np.fromfile(path, np.uint64))
    pairs = np.stack([(packed & np.uint64(0xFFFFFFFF)).astype(np.int64), (packed >> np.uint64(32)).astype(np.int64)],
                     axis=1)
    members, where = np.unique(pairs, return_inverse=True)
    signatures = signature_rows(units, members)
    where = where.reshape(-1, 2)
    return dedup.close_pairs(pairs, signatures[where[:, 0]], signatures[where[:, 1]], threshold)


def deduplicate(units: list[Unit], threshold: float, pool: Pool, work_dir: Path) -> Deduplicated:
    """Exact duplicates (same id) first, then near-duplicates among the rest; the first occurrence is kept."""
    size = sum(unit.size for unit in units)
    id_sources = loaded([unit.spill("ids") for unit in units])
    exact = Bitmap(size)
    groups = plan_groups(partition_totals(id_sources), KEY_ROW)
    for found in pool.map(later_occurrences_group, repeat(id_sources), *zip(*groups)):
        exact.set(found)
    exact_path = exact.save(work_dir / "exact.bits")

    pair_spill = PairSpill(work_dir / "pairs", size)
    band_sources = [loaded([unit.spill(kind) for unit in units]) for kind in BAND_KINDS]  # one list per band
    tasks = [(sources, lo, hi) for sources in band_sources
             for lo, hi in plan_groups(partition_totals(sources), BAND_ROW)]
    for pairs in pool.map(_band_group, *zip(*tasks), repeat(exact_path), repeat(size), repeat(threshold)):
        if pairs.size:
            pair_spill.add(pairs)
    pair_spill.flush()

    near = Bitmap(size)
    paths = [pair_spill.path(number) for number in range(len(pair_spill.ranges))]
    for (first, stop), close in zip(pair_spill.ranges, pool.map(_verify_range, paths, repeat(units),
                                                                 repeat(threshold))):
        flags = np.zeros(stop - first, bool)
        decided = close[:, 0] < first
        if decided.any():
            earlier, later = close[decided, 0], close[decided, 1]
            flags[later[~near.get(earlier)] - first] = True
        dedup.mark_near_duplicates(close[~decided], flags, first)
        near.set(first + np.flatnonzero(flags))
    kept = (exact | near).invert()
    return Deduplicated(kept, exact.count(), near.count())


@dataclass(frozen=True)
class Chosen:
    """Spilled keys of one kind, and the bitmap (saved at `bits`, `size` bits) of the examples that count."""

    sources: list[SpillSource]
    dtype: np.dtype
    bits: Path
    size: int

    def keys(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, indices) of the chosen examples of partitions [lo, hi)."""
        rows, indices = read_group(self.sources, self.dtype, lo, hi)
        chosen = Bitmap.load(self.bits, self.size).get(indices)
        return rows["key"][chosen], indices[chosen]


def _match_group(queries: Chosen, references: Chosen, lo: int, hi: int) -> np.ndarray:
    keys, indices = queries.keys(lo, hi)
    return indices[np.isin(keys, references.keys(lo, hi)[0])]


def matches(queries: Chosen, references: Chosen, pool: Pool) -> Bitmap:
    """The chosen queries whose key a chosen reference holds, a key range at a time."""
    wider = max(queries.dtype, references.dtype, key=lambda dtype: dtype.itemsize)
    groups = plan_groups(partition_totals(queries.sources) + partition_totals(references.sources), wider)
    found = Bitmap(queries.size)
    for indices in pool.map(_match_group, repeat(queries), repeat(references), *zip(*groups)):
        found.set(indices)
    return found


def _spill_previous(previous: PreviousData, folder: Path) -> dict[str, SpillSource]:
    """The previous version's index, spilled by key range like a unit's keys."""
    sources = {}
    for name in ("ids", "prompt_keys"):
        writer = SpillWriter(folder / f"previous.{name}", KEY_ROW)
        position = 0
        for chunk in previous.chunks(name, spill.RUN_ROWS):
            rows = np.empty(chunk.size, KEY_ROW)
            rows["key"], rows["index"] = chunk, np.arange(position, position + chunk.size, dtype=np.uint32)
            writer.write_run(rows)
            position += chunk.size
        writer.close()
        sources[name] = SpillSource(writer.path, 0)
    return sources


def _kept_keys(sources: list[SpillSource], lo: int, hi: int, kept: Bitmap) -> tuple[np.ndarray, np.ndarray]:
    rows, indices = read_group(sources, KEY_ROW, lo, hi)
    chosen = kept.get(indices)
    return rows["key"][chosen], indices[chosen]


def _compare_ids(new: list[SpillSource], replayed: list[SpillSource], replay_input: list[SpillSource],
                 previous: SpillSource, lo: int, hi: int, kept_path: Path,
                 size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Of an id range: (indices of new examples the previous version has; positions of previous examples neither
    in this export nor replayed, those in the replay input and those not; previous examples kept by replay)."""
    kept = Bitmap.load(kept_path, size)
    new_keys, new_indices = _kept_keys(new, lo, hi, kept)
    replay_keys, _ = _kept_keys(replayed, lo, hi, kept)
    previous_keys, positions = read_group([previous], KEY_ROW, lo, hi)
    previous_keys = previous_keys["key"]
    exported = np.isin(previous_keys, new_keys)
    replayed_ = np.isin(previous_keys, replay_keys) & ~exported
    gone = ~exported & ~replayed_
    offered = np.isin(previous_keys, read_group(replay_input, REPLAY_ROW, lo, hi)[0]["key"]) if replay_input \
        else np.zeros(previous_keys.size, bool)
    return (new_indices[np.isin(new_keys, previous_keys)], positions[gone & offered], positions[gone & ~offered],
            int(replayed_.sum()))


def _compare_prompts(new: list[SpillSource], previous: SpillSource, lo: int, hi: int, kept_path: Path,
                     unchanged_path: Path, size: int) -> tuple[int, np.ndarray]:
    """Of a prompt-key range: (new examples asking a previous prompt with another answer, positions of the
    previous examples whose prompt a new example asks)."""
    new_keys, new_indices = _kept_keys(new, lo, hi, Bitmap.load(kept_path, size))
    previous_rows, positions = read_group([previous], KEY_ROW, lo, hi)
    asked = np.isin(new_keys, previous_rows["key"])
    changed = int((asked & ~Bitmap.load(unchanged_path, size).get(new_indices)).sum())
    return changed, positions[np.isin(previous_rows["key"], new_keys)]


def compare_counts(previous: PreviousData, new_units: list[Unit], replay_units: list[Unit], kept_path: Path,
                   size: int, new_kept: int, pool: Pool, work_dir: Path,
                   replay_input: list[SpillSource] | None = None) -> dict[str, int]:
    """Kept new examples new / changed / unchanged against the previous index; previous examples not in this
    export: kept by replay, superseded (a new example asks their prompt), held out last time (not in the replay
    input, which is the previous train split: its validation and test examples) and removed (the rest: in the
    replay input but not replayed, e.g. replay_fraction < 1). `replay_input`: the replay scans' `ids` spills."""
    spilled = {name: source.loaded() for name, source in _spill_previous(previous, work_dir).items()}
    new_ids = loaded([unit.spill("ids") for unit in new_units])
    replay_ids = loaded([unit.spill("ids") for unit in replay_units])
    offered = loaded(replay_input or [])
    groups = plan_groups(partition_totals([*new_ids, *replay_ids, *offered, spilled["ids"]]), REPLAY_ROW)
    unchanged, kept_by_replay = Bitmap(size), 0
    gone_offered, gone_elsewhere = Bitmap(previous.size), Bitmap(previous.size)
    for indices, offered_gone, other_gone, replayed in pool.map(
            _compare_ids, repeat(new_ids), repeat(replay_ids), repeat(offered), repeat(spilled["ids"]), *zip(*groups),
            repeat(kept_path), repeat(size)):
        unchanged.set(indices)
        gone_offered.set(offered_gone)
        gone_elsewhere.set(other_gone)
        kept_by_replay += replayed
    unchanged_path = unchanged.save(work_dir / "unchanged.bits")
    new_prompts = loaded([unit.spill("prompt_keys") for unit in new_units])
    groups = plan_groups(partition_totals([*new_prompts, spilled["prompt_keys"]]), KEY_ROW)
    changed, asked = 0, Bitmap(previous.size)
    for count, positions in pool.map(_compare_prompts, repeat(new_prompts), repeat(spilled["prompt_keys"]),
                                     *zip(*groups), repeat(kept_path), repeat(unchanged_path), repeat(size)):
        changed += count
        asked.set(positions)
    same = unchanged.count()
    open_ = asked.invert()
    return {"new": new_kept - same - changed, "changed": changed, "unchanged": same,
            "removed": (gone_offered & open_).count(), "kept_by_replay": kept_by_replay,
            "superseded": ((gone_offered | gone_elsewhere) & asked).count(),
            "held_out_before": (gone_elsewhere & open_).count()}
