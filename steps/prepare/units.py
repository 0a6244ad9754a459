"""Staged units: what scanning one file (or part of one) leaves on disk for the merge, and its writer.

A unit's examples are numbered in input order; unit `base` + local number = the example's global
index (files in name order, lines in order), which "first occurrence" refers to. Files, next to
the unit's `stage` path:

- `<stage>.{train,validation,test}.jsonl`: the examples' final JSONL lines, by split;
- `<stage>.columns`: per example, in order: id, prompt key, prompt and completion lengths
  (characters), the line's size in bytes and its split (COLUMNS);
- `<stage>.sig`: per example, its MinHash signature (uint32 x NUM_PERM), for units deduplicated;
- spilled keys (spill.py): `ids`, `prompt_keys`, `band0`.. (LSH buckets, with the signature's
  sketch) with the example's local number, and `digests` (content digests, for the data version);
  new data's units (deduplicated) also spill `facts` (fact key and id: which examples are phrasings
  of one fact, holdout) and `answers` (prompt key and answer key: answers that changed,
  contradictions).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prepare.dedup import BANDS, NUM_PERM, band_keys, sketches
from prepare import spill
from prepare.spill import ANSWER_ROW, BAND_ROW, DIGEST_ROW, FACT_ROW, KEY_ROW, SpillSource, SpillWriter, runs_path
from prepare.split import SPLIT_NAMES

COLUMNS = np.dtype([("id", "<u8"), ("prompt_key", "<u8"), ("prompt_chars", "<i8"), ("completion_chars", "<i8"),
                    ("line_bytes", "<u4"), ("split", "u1")])
BAND_KINDS = tuple(f"band{band}" for band in range(BANDS))
CHUNK_ROWS = 1 << 14
SIGNATURE_BYTES = NUM_PERM * 4


@dataclass(frozen=True)
class Unit:
    """A staged unit: `size` examples with global indices [base, base + size)."""

    stage: Path
    base: int
    size: int

    def path(self, name: str) -> Path:
        return self.stage.with_name(f"{self.stage.name}.{name}")

    def lines(self, code: int) -> Path:
        return self.path(f"{SPLIT_NAMES[code]}.jsonl")

    def spill(self, kind: str) -> SpillSource:
        return SpillSource(self.path(kind), self.base)

    def dedup_files(self) -> list[Path]:
        """The files only deduplication reads (signatures, LSH band keys)."""
        bands = [self.path(kind) for kind in BAND_KINDS]
        return [self.path("sig"), *bands, *(runs_path(path) for path in bands)]

    def columns(self, chunk_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(local number of the first, columns) of consecutive chunks of at most `chunk_rows` (CHUNK_ROWS) examples."""
        chunk_rows = chunk_rows or CHUNK_ROWS
        with self.path("columns").open("rb") as handle:
            for start in range(0, self.size, chunk_rows):
                yield start, np.fromfile(handle, COLUMNS, min(chunk_rows, self.size - start))


class UnitWriter:
    """Writes a unit's files batch by batch; keys are buffered for at most RUN_ROWS examples."""

    def __init__(self, stage: Path, deduplicated: bool = True) -> None:
        self.unit = Unit(stage, 0, 0)
        self.count = 0
        self._lines = [self.unit.lines(code).open("wb") for code in range(len(SPLIT_NAMES))]
        self._columns = self.unit.path("columns").open("wb")
        self._signatures = self.unit.path("sig").open("wb") if deduplicated else None
        self._spills = {kind: SpillWriter(self.unit.path(kind), KEY_ROW) for kind in ("ids", "prompt_keys")}
        self._facts = None
        if deduplicated:
            self._spills.update({kind: SpillWriter(self.unit.path(kind), BAND_ROW) for kind in BAND_KINDS})
            self._facts = {"facts": SpillWriter(self.unit.path("facts"), FACT_ROW),
                           "answers": SpillWriter(self.unit.path("answers"), ANSWER_ROW)}
        self._digests = SpillWriter(self.unit.path("digests"), DIGEST_ROW)
        # per batch: (local numbers, ids, prompt keys, answer keys and fact keys, band keys + sketches or None,
        # digest rows)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]] = []
        self._pending_rows = 0

    def add(self, lines: list[str], columns: np.ndarray, digests: np.ndarray, signatures: np.ndarray | None,
            answers: np.ndarray | None = None, facts: np.ndarray | None = None) -> None:
        """A batch of examples: their lines, COLUMNS (line_bytes is filled in here), (n, 2) uint64 content digests,
        (n, NUM_PERM) signatures (None for a unit that is not deduplicated) and, for new data, answer and fact
        keys (records.answer_key / fact_key; default: the ids, each example its own answer and fact)."""
        codes = columns["split"]
        for code, handle in enumerate(self._lines):
            numbers = np.flatnonzero(codes == code)
            if not numbers.size:
                continue
            chosen = [lines[number] for number in numbers.tolist()] if numbers.size < len(lines) else lines
            text = "".join(chosen)
            data = text.encode("utf-8")
            handle.write(data)
            if len(data) == len(text):  # ASCII: as many bytes as characters
                columns["line_bytes"][numbers] = np.fromiter(map(len, chosen), np.uint32, len(chosen))
            else:
                columns["line_bytes"][numbers] = [len(line.encode("utf-8")) for line in chosen]
        columns.tofile(self._columns)
        bands = None
        if self._signatures is not None and signatures is not None:
            signatures.tofile(self._signatures)
            bands = np.concatenate([band_keys(signatures), sketches(signatures)[None, :]])
        index = np.arange(self.count, self.count + len(lines), dtype=np.uint32)
        digest_rows = np.empty(len(lines), DIGEST_ROW)
        digest_rows["key"], digest_rows["low"], digest_rows["index"] = digests[:, 0], digests[:, 1], index
        ids = columns["id"]
        keys = np.stack([ids, columns["prompt_key"], ids if answers is None else answers, ids if facts is None else facts])
        self._pending.append((index, keys, bands, digest_rows))
        self.count += len(lines)
        self._pending_rows += len(lines)
        if self._pending_rows >= spill.RUN_ROWS:
            self._flush_run()

    def _flush_run(self) -> None:
        """Spill the pending examples' keys as one run of each kind."""
        if not self._pending:
            return
        rows = np.empty(self._pending_rows, KEY_ROW)
        rows["index"] = np.concatenate([item[0] for item in self._pending])
        keys = np.concatenate([item[1] for item in self._pending], axis=1)
        for row, kind in enumerate(("ids", "prompt_keys")):
            rows["key"] = keys[row]
            self._spills[kind].write_run(rows)
        if self._facts is not None:
            facts = np.empty(self._pending_rows, FACT_ROW)
            facts["key"], facts["id"], facts["index"] = keys[3], keys[0], rows["index"]
            self._facts["facts"].write_run(facts)
            answers = np.empty(self._pending_rows, ANSWER_ROW)
            answers["key"], answers["answer"], answers["index"] = keys[1], keys[2], rows["index"]
            self._facts["answers"].write_run(answers)
        if self._signatures is not None:
            bands = np.concatenate([item[2] for item in self._pending], axis=1)
            band_rows = np.empty(self._pending_rows, BAND_ROW)
            band_rows["index"], band_rows["sketch"] = rows["index"], bands[-1]
            for band, kind in enumerate(BAND_KINDS):
                band_rows["key"] = bands[band]
                self._spills[kind].write_run(band_rows)
        self._digests.write_run(np.concatenate([item[3] for item in self._pending]))
        self._pending.clear()
        self._pending_rows = 0

    def close(self) -> int:
        """Flush and close everything; returns the number of examples."""
        self._flush_run()
        for handle in self._lines:
            handle.close()
        self._columns.close()
        if self._signatures is not None:
            self._signatures.close()
        for spill in (*self._spills.values(), *(self._facts or {}).values(), self._digests):
            spill.close()
        return self.count


def remove_files(paths: list[Path]) -> None:
    """Delete staged files no step reads any more (their pages need not be written back)."""
    for path in paths:
        path.unlink(missing_ok=True)
