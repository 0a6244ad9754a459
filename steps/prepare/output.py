"""Kept examples → the split files, copied from the staged units; what the report needs of them.

The staged lines already are the final JSONL lines, so writing the split files is copying byte
ranges (`segments`): the runs of kept lines of each unit's staging file of a split, units in
order (replayed examples last), in the kernel where it can; a worker process hashes the same
ranges meanwhile (`split_hashes`). With holdout "phrasings" (holdout.py) every new example is
staged for train: the held-out phrasings are copied from there to validation or test, and the
re-asked ones copied there as well; both get a `"heldout"` field on the way (a marked segment).
`summarize_unit` reads a unit once, in chunks, for the split counts, length histograms, the
profile's word counts and the examples shown for review.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prepare.holdout import HELD_OUT_PHRASING, RECALL, Placed, Placement
from prepare.profile import LENGTH_EDGES, TextCounts, length_counts
from prepare.readers import preview
from prepare.replay import REPLAY_PREFIX, ReplayScan
from prepare.scan import FileScan
from prepare.spill import Bitmap
from prepare.split import SPLIT_NAMES, TRAIN, SplitTally, split_scores
from prepare.units import Unit

COPY_BYTES = 1 << 20
REVIEW_SAMPLE = 5


@dataclass(frozen=True)
class Segment:
    """Bytes [start, stop) of a unit's staging file of split `source`: `lines` whole lines for split `code`;
    with a `mark`, each line gets `"heldout": mark` (see `marked_blocks`)."""

    code: int
    source: int
    start: int
    stop: int
    lines: int
    mark: str = ""


def _line_offsets(columns: np.ndarray, positions: list[int]) -> np.ndarray:
    """Where each line starts in its staging file; `positions` (bytes before the chunk, per split) move on."""
    sizes = columns["line_bytes"].astype(np.int64)
    offsets = np.empty(sizes.size, np.int64)
    for code in range(len(SPLIT_NAMES)):
        mine = columns["split"] == code
        ends = np.cumsum(sizes[mine])
        offsets[mine] = positions[code] + ends - sizes[mine]
        positions[code] += int(ends[-1]) if ends.size else 0
    return offsets


MARKS = ("", HELD_OUT_PHRASING, RECALL)  # a segment's mark by number


def _runs(lines: np.ndarray, code: int, offsets: np.ndarray, sizes: np.ndarray, origin: np.ndarray,
          marks: np.ndarray | None = None) -> Iterator[Segment]:
    """Chunk lines (sorted positions) for split `code` as runs of neighbouring lines of one staging file with one
    mark (`marks`: a MARKS number per chunk line; None: unmarked)."""
    begin, end, source = offsets[lines], offsets[lines] + sizes[lines], origin[lines]
    mark = marks[lines] if marks is not None else np.zeros(lines.size, np.int8)
    breaks = np.flatnonzero((source[1:] != source[:-1]) | (begin[1:] != end[:-1]) | (mark[1:] != mark[:-1])) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks, [lines.size])) - 1
    for first, last in zip(firsts.tolist(), lasts.tolist()):
        yield Segment(code, int(source[first]), int(begin[first]), int(end[last]), last - first + 1,
                      MARKS[int(mark[first])])


def segments(unit: Unit, kept: Bitmap, moved: dict[int, int], placed: Placed | None = None) -> Iterator[Segment]:
    """The unit's kept lines as runs of neighbouring lines, in order per split; `moved`: global index → split;
    `placed`: holdout "phrasings" (held-out phrasings and re-asked copies, marked, in input order)."""
    positions = [0, 0, 0]
    for start, columns in unit.columns():
        offsets = _line_offsets(columns, positions)
        sizes = columns["line_bytes"].astype(np.int64)
        origin = columns["split"].astype(np.int64)
        chosen = kept.slice(unit.base + start, unit.base + start + columns.size)
        if placed is not None:
            target, recall, copy = placed.chunk(unit.base + start, columns["id"])
            for code in range(len(SPLIT_NAMES)):
                if code == TRAIN:
                    lines = np.flatnonzero(chosen & (target == code))
                    yield from _runs(lines, code, offsets, sizes, origin) if lines.size else ()
                    continue
                held, asked = chosen & (target == code), chosen & recall & (copy == code)
                lines = np.flatnonzero(held | asked)
                if lines.size:
                    yield from _runs(lines, code, offsets, sizes, origin, np.where(held, 1, 2).astype(np.int8))
            continue
        target = origin.copy()
        for index, code in moved.items():
            if unit.base + start <= index < unit.base + start + columns.size:
                target[index - unit.base - start] = code
        for code in range(len(SPLIT_NAMES)):
            lines = np.flatnonzero(chosen & (target == code))
            if lines.size:
                yield from _runs(lines, code, offsets, sizes, origin)


def whole_file(unit: Unit, code: int) -> Iterator[Segment]:
    """Every line of a unit's staging file of a split (replayed examples: all kept, all train)."""
    yield Segment(code, code, 0, unit.lines(code).stat().st_size, unit.size)


class _Sources:
    """The staging files of a unit, opened for reading."""

    def __init__(self, unit: Unit) -> None:
        self.handles = [os.open(unit.lines(code), os.O_RDONLY) for code in range(len(SPLIT_NAMES))]

    def __enter__(self) -> list[int]:
        return self.handles

    def __exit__(self, *exc_info: object) -> None:
        for handle in self.handles:
            os.close(handle)


def marked_blocks(source: int, part: Segment) -> Iterator[bytes]:
    """A marked segment's lines, read a block of whole lines at a time, each with `"heldout": mark` added.

    Every staged line is one JSON object ending in `}` and a newline (string values escape newlines), so the
    two bytes end each line and nothing else."""
    field = f', "heldout": "{part.mark}"}}\n'.encode("utf-8")
    start, rest = part.start, b""
    while start < part.stop:
        data = rest + os.pread(source, min(COPY_BYTES, part.stop - start), start)
        start += len(data) - len(rest)
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        yield data[:cut].replace(b"}\n", field)
    if rest:
        raise ValueError(f"staged lines of split {SPLIT_NAMES[part.source]} do not end with a newline")


def _copy_range(source: int, target: int, start: int, stop: int) -> None:
    """Append bytes [start, stop) of `source` to `target` (in the kernel where it can)."""
    while start < stop:
        try:
            copied = os.copy_file_range(source, target, stop - start, start)
        except OSError:
            copied = 0
        if not copied:
            data = os.pread(source, min(COPY_BYTES, stop - start), start)
            os.write(target, data)
            copied = len(data)
        start += copied


class SplitWriter:
    """The split files, written by copying segments of the staging files; counts lines per split."""

    def __init__(self, output_dir: Path) -> None:
        self.paths = [output_dir / name / f"{name}.jsonl" for name in SPLIT_NAMES]
        self.counts = [0, 0, 0]
        self.hashes = ["", "", ""]  # each file's sha256, from `split_hashes`
        self._handles: list[int] = []
        self._marked: list[list[bytes]] = [[], [], []]  # marked lines not written yet, per split
        self._marked_bytes = [0, 0, 0]

    def __enter__(self) -> "SplitWriter":
        for path in self.paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handles.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        return self

    def copy(self, unit: Unit, parts: Iterable[Segment]) -> None:
        with _Sources(unit) as sources:
            for part in parts:
                if part.mark:  # mostly single lines: gathered, written a COPY_BYTES block at a time
                    for block in marked_blocks(sources[part.source], part):
                        self._marked[part.code].append(block)
                        self._marked_bytes[part.code] += len(block)
                    if self._marked_bytes[part.code] >= COPY_BYTES:
                        self._flush(part.code)
                else:
                    self._flush(part.code)
                    _copy_range(sources[part.source], self._handles[part.code], part.start, part.stop)
                self.counts[part.code] += part.lines

    def _flush(self, code: int) -> None:
        """Write the marked lines gathered for a split."""
        if self._marked[code]:
            data = b"".join(self._marked[code])
            self._marked[code], self._marked_bytes[code] = [], 0
            written = 0
            while written < len(data):
                written += os.write(self._handles[code], data[written:])

    def __exit__(self, *exc_info: object) -> None:
        for code, handle in enumerate(self._handles):
            if exc_info[0] is None:
                self._flush(code)
            os.close(handle)

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {name: {"file": f"{name}/{name}.jsonl", "examples": self.counts[code], "sha256": self.hashes[code]}
                for code, name in enumerate(SPLIT_NAMES)}


def _split_parts(units: list[Unit], replayed: list[Unit], kept: Bitmap, moved: dict[int, int],
                 placed: Placed | None) -> Iterator[tuple[Unit, Iterator[Segment]]]:
    for unit in units:
        yield unit, segments(unit, kept, moved, placed)
    for unit in replayed:
        yield unit, whole_file(unit, TRAIN)


def write_splits(writer: SplitWriter, units: list[Unit], replayed: list[Unit], kept: Bitmap,
                 moved: dict[int, int], placed: Placed | None = None) -> None:
    """The split files: each unit's kept lines in order, then the replayed examples (train)."""
    for unit, parts in _split_parts(units, replayed, kept, moved, placed):
        writer.copy(unit, parts)


def split_hashes(units: list[Unit], replayed: list[Unit], kept_path: Path, size: int,
                 moved: dict[int, int], placement: Placement | None = None) -> list[str]:
    """sha256 of each split file `write_splits` writes, from the same segments (runs beside the copy)."""
    kept = Bitmap.load(kept_path, size)
    placed = placement.load() if placement is not None else None
    hashes = [hashlib.sha256() for _ in SPLIT_NAMES]
    for unit, parts in _split_parts(units, replayed, kept, moved, placed):
        with _Sources(unit) as sources:
            for part in parts:
                if part.mark:
                    for block in marked_blocks(sources[part.source], part):
                        hashes[part.code].update(block)
                    continue
                for start in range(part.start, part.stop, COPY_BYTES):
                    hashes[part.code].update(os.pread(sources[part.source], min(COPY_BYTES, part.stop - start), start))
    return [digest.hexdigest() for digest in hashes]


@dataclass
class UnitSummary:
    """What the report needs of a unit's kept examples."""

    tally: SplitTally = field(default_factory=SplitTally)
    prompt_chars: np.ndarray = field(default_factory=lambda: np.zeros(len(LENGTH_EDGES) - 1, np.int64))
    completion_chars: np.ndarray = field(default_factory=lambda: np.zeros(len(LENGTH_EDGES) - 1, np.int64))
    texts: TextCounts = field(default_factory=TextCounts)
    review: list[dict[str, Any]] = field(default_factory=list)  # the sampled records with the lowest ids

    def merge(self, later: "UnitSummary") -> None:
        self.tally.merge(later.tally)
        self.prompt_chars += later.prompt_chars
        self.completion_chars += later.completion_chars
        self.texts.merge(later.texts)
        self.review = heapq.nsmallest(REVIEW_SAMPLE, self.review + later.review, key=lambda record: record["id"])


def _sampled_records(unit: Unit, offsets: np.ndarray, columns: np.ndarray) -> Iterator[dict[str, Any]]:
    handles = [os.open(unit.lines(code), os.O_RDONLY) for code in range(len(SPLIT_NAMES))]
    try:
        for offset, size, code in zip(offsets.tolist(), columns["line_bytes"].tolist(), columns["split"].tolist()):
            yield json.loads(os.pread(handles[code], size, offset))
    finally:
        for handle in handles:
            os.close(handle)


def read_records(units: list[Unit], indices: list[int]) -> dict[int, dict[str, Any]]:
    """The staged records of a few examples by global index (their units' columns are read for the offsets)."""
    wanted = np.unique(np.array(indices, np.int64))
    records: dict[int, dict[str, Any]] = {}
    for unit in units:
        mine = wanted[(wanted >= unit.base) & (wanted < unit.base + unit.size)]
        if not mine.size:
            continue
        positions = [0, 0, 0]
        for start, columns in unit.columns():
            offsets = _line_offsets(columns, positions)
            local = mine[(mine >= unit.base + start) & (mine < unit.base + start + columns.size)] - unit.base - start
            for index, record in zip(local.tolist(), _sampled_records(unit, offsets[local], columns[local])):
                records[unit.base + start + index] = record
    return records


def summarize_unit(unit: Unit, kept_path: Path, size: int, seed: int, profile_seed: int, rate: float,
                   replayed: bool) -> UnitSummary:
    """Split tally (new examples), length histograms, profile sample word counts and review candidates of a unit."""
    kept = Bitmap.load(kept_path, size)
    summary = UnitSummary()
    positions = [0, 0, 0]
    for start, columns in unit.columns():
        offsets = _line_offsets(columns, positions)
        chosen = kept.slice(unit.base + start, unit.base + start + columns.size)
        columns, offsets = columns[chosen], offsets[chosen]
        if not replayed:
            indices = unit.base + start + np.flatnonzero(chosen)
            summary.tally.add(split_scores(columns["id"], seed), columns["split"], indices)
        summary.prompt_chars += length_counts(columns["prompt_chars"])
        summary.completion_chars += length_counts(columns["completion_chars"])
        sampled = split_scores(columns["id"], profile_seed) < rate
        for record in _sampled_records(unit, offsets[sampled], columns[sampled]):
            summary.texts.add(" ".join(message["content"] for message in record["messages"]))
            if not replayed and not record["source"].startswith(REPLAY_PREFIX):
                summary.review.append({"id": record["id"], "prompt": preview(record["prompt"]),  # bounded excerpts
                                       "completion": preview(record["completion"]), "source": record["source"]})
        summary.review = heapq.nsmallest(REVIEW_SAMPLE, summary.review, key=lambda record: record["id"])
    return summary


def _lines(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        with path.open("r", encoding="utf-8") as handle:
            yield from handle


def write_quarantine(path: Path, scans: list[FileScan], replay_scans: list[ReplayScan]) -> None:
    """quarantine.jsonl: every rejected row of the new data and of the replay input, by (file, line)."""

    def key(line: str) -> tuple[str, int]:
        record = json.loads(line)
        return record["file"], record["line"]

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(heapq.merge(_lines(scan.stage.with_name(scan.stage.name + ".quarantine.jsonl")
                                             for scan in scans),
                                      _lines(scan.path("quarantine.jsonl") for scan in replay_scans), key=key))
