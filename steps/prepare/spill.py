"""Per-example keys spilled to disk by key range, read back one bounded group at a time; bitmaps.

A unit (one scanned file or part of a file) writes each kind of key (example ids, prompt keys,
LSH band keys, content digests) to its own spill file in runs: a run holds the rows of up to
RUN_ROWS consecutive examples, sorted (stably) by partition, the key's top PARTITION_BITS bits,
and `<file>.runs.npy` counts each run's rows per partition. Reading partitions [lo, hi) from every
unit gives every row whose key falls in that key range, units in input order and rows in input
order within a run, so a stable sort by key keeps equal keys in input order. `plan_groups` cuts
the partitions into groups of at most GROUP_BYTES of rows: whatever the input size, only one
group is in memory at a time. Global decisions (duplicate, kept) are bitmaps: one bit per example.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARTITION_BITS = 8
PARTITIONS = 1 << PARTITION_BITS
RUN_ROWS = 1 << 14
GROUP_BYTES = 1 << 21
KEY_ROW = np.dtype([("key", "<u8"), ("index", "<u4")])
BAND_ROW = np.dtype([("key", "<u8"), ("sketch", "<u8"), ("index", "<u4")])
DIGEST_ROW = np.dtype([("key", "<u8"), ("low", "<u8"), ("index", "<u4")])
FACT_ROW = np.dtype([("key", "<u8"), ("id", "<u8"), ("index", "<u4")])  # key: fact key (records.fact_key)
ANSWER_ROW = np.dtype([("key", "<u8"), ("answer", "<u8"), ("index", "<u4")])  # key: prompt key; answer key
_SHIFT = np.uint64(64 - PARTITION_BITS)


def partition_of(keys: np.ndarray) -> np.ndarray:
    """The partition of each 64-bit key: its top PARTITION_BITS bits (so partitions are key ranges)."""
    return (keys >> _SHIFT).astype(np.uint8)  # 8 bits: numpy's stable sort of bytes is a radix sort


def runs_path(path: Path) -> Path:
    return path.with_name(path.name + ".runs.npy")


class SpillWriter:
    """One kind of key of one unit: runs of rows sorted by partition, and their per-partition counts."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path, self.dtype = path, dtype
        self._handle = path.open("wb")
        self._counts: list[np.ndarray] = []

    def write_run(self, rows: np.ndarray) -> None:
        """Rows of consecutive examples (any order within the run is kept for equal partitions)."""
        partitions = partition_of(rows["key"])
        rows[np.argsort(partitions, kind="stable")].tofile(self._handle)
        self._counts.append(np.bincount(partitions, minlength=PARTITIONS).astype(np.uint32))

    def close(self) -> None:
        self._handle.close()
        counts = np.array(self._counts, np.uint32).reshape(-1, PARTITIONS)
        np.save(runs_path(self.path), counts)


@dataclass(frozen=True, eq=False)
class SpillSource:
    """A unit's spill file of one kind, the global index of the unit's first example and, once `loaded`,
    the file's (runs, PARTITIONS) row counts (passed along to the worker processes, read once)."""

    path: Path
    base: int
    counts: np.ndarray | None = None

    def loaded(self) -> "SpillSource":
        return self if self.counts is not None else SpillSource(self.path, self.base, np.load(runs_path(self.path)))


def loaded(sources: Sequence[SpillSource]) -> list[SpillSource]:
    """The sources with their row counts read."""
    return [source.loaded() for source in sources]


def run_counts(source: SpillSource) -> np.ndarray:
    """(runs, PARTITIONS) row counts of a spill file."""
    return source.counts if source.counts is not None else np.load(runs_path(source.path))


def partition_totals(sources: Sequence[SpillSource]) -> np.ndarray:
    """Rows per partition over every source."""
    totals = np.zeros(PARTITIONS, np.int64)
    for source in sources:
        totals += run_counts(source).sum(axis=0, dtype=np.int64)
    return totals


def plan_groups(totals: np.ndarray, dtype: np.dtype, budget: int | None = None) -> list[tuple[int, int]]:
    """Consecutive partition ranges [lo, hi) of at most `budget` rows each (default: GROUP_BYTES of `dtype`
    rows); a bigger partition stands alone."""
    budget = budget or max(1, GROUP_BYTES // dtype.itemsize)
    groups: list[tuple[int, int]] = []
    lo, rows = 0, 0
    for partition, count in enumerate(totals.tolist()):
        if partition > lo and rows + count > budget:
            groups.append((lo, partition))
            lo, rows = partition, 0
        rows += count
    groups.append((lo, PARTITIONS))
    return groups


def read_group(sources: Sequence[SpillSource], dtype: np.dtype, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, global indices) of partitions [lo, hi) from every source, sources and runs in order."""
    plans: list[tuple[SpillSource, list[tuple[int, int]]]] = []  # per source: (first row, rows) per run
    total = 0
    for source in sources:
        counts = run_counts(source).astype(np.int64)
        starts = np.cumsum(counts.sum(axis=1)) - counts.sum(axis=1) + counts[:, :lo].sum(axis=1)
        wanted = counts[:, lo:hi].sum(axis=1)
        reads = [(start, count) for start, count in zip(starts.tolist(), wanted.tolist()) if count]
        plans.append((source, reads))
        total += sum(count for _, count in reads)
    rows = np.empty(total, dtype)
    indices = np.empty(total, np.int64)
    filled = 0
    for source, reads in plans:
        if not reads:
            continue
        with source.path.open("rb") as handle:
            for start, count in reads:
                handle.seek(start * dtype.itemsize)
                handle.readinto(memoryview(rows[filled:filled + count]).cast("B"))
                indices[filled:filled + count] = rows["index"][filled:filled + count]
                indices[filled:filled + count] += source.base
                filled += count
    return rows, indices


class Bitmap:
    """One bit per example (bit i of byte i // 8, little-endian bit order)."""

    def __init__(self, size: int, bits: np.ndarray | None = None) -> None:
        self.size = size
        self.bits = np.zeros((size + 7) // 8, np.uint8) if bits is None else bits

    @classmethod
    def load(cls, path: Path, size: int) -> "Bitmap":
        return cls(size, np.fromfile(path, np.uint8))

    def save(self, path: Path) -> Path:
        self.bits.tofile(path)
        return path

    def resized(self, size: int) -> "Bitmap":
        """A copy holding `size` bits: these, then zeros."""
        bits = np.zeros((size + 7) // 8, np.uint8)
        kept = min(self.bits.size, bits.size)
        bits[:kept] = self.bits[:kept]
        if size < self.size and size % 8:
            bits[-1] &= np.uint8((1 << (size % 8)) - 1)
        return Bitmap(size, bits)

    def set_range(self, start: int, stop: int) -> None:
        """Set bits [start, stop)."""
        if start >= stop:
            return
        first, last = (start + 7) >> 3, stop >> 3  # whole bytes [first, last)
        if first <= last:
            self.bits[first:last] = 0xFF
            self.set(np.arange(start, min(8 * first, stop)))
            self.set(np.arange(max(8 * last, start), stop))
        else:
            self.set(np.arange(start, stop))

    def set(self, indices: np.ndarray) -> None:
        indices = np.asarray(indices, np.int64)
        np.bitwise_or.at(self.bits, indices >> 3, np.left_shift(1, indices & 7).astype(np.uint8))

    def get(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        return ((self.bits[indices >> 3] >> (indices & 7).astype(np.uint8)) & 1).astype(bool)

    def slice(self, start: int, stop: int) -> np.ndarray:
        """Booleans of indices [start, stop)."""
        first = start >> 3
        unpacked = np.unpackbits(self.bits[first:(stop + 7) >> 3], bitorder="little")
        return unpacked[start - 8 * first:stop - 8 * first].astype(bool)

    def count(self) -> int:
        return int(np.bitwise_count(self.bits).sum(dtype=np.int64))

    def invert(self) -> "Bitmap":
        inverted = Bitmap(self.size, np.bitwise_not(self.bits))
        if self.size % 8:
            inverted.bits[-1] &= np.uint8((1 << (self.size % 8)) - 1)  # padding bits stay 0
        return inverted

    def __or__(self, other: "Bitmap") -> "Bitmap":
        return Bitmap(self.size, self.bits | other.bits)

    def __and__(self, other: "Bitmap") -> "Bitmap":
        return Bitmap(self.size, self.bits & other.bits)
