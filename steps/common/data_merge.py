"""Staged files → one dataset: duplicates across all files, then the split files, streamed.

Every staged example has a global index (files in name order, lines in order), so "first
occurrence" means the same thing on every run. Only small per-example arrays are held in memory
(ids, prompt keys, digests, lengths: ~40 bytes each, one LSH band at a time); example lines are
copied from the staging files to the split files as they are read.
"""
from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from common import data_dedup
from common.data_replay import ReplayRejected
from common.data_scan import FileScan
from common.data_split import SPLIT_NAMES

WRITE_CHUNK = 8192


@dataclass
class Staged:
    """The per-example arrays of every staged file, concatenated in file order."""

    scans: list[FileScan]
    ids: np.ndarray
    prompt_keys: np.ndarray
    digests: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray  # offsets[i] = global index of scans[i]'s first example
    _signatures: list[np.ndarray] | None = None

    @classmethod
    def load(cls, scans: list[FileScan]) -> "Staged":
        parts: dict[str, list[np.ndarray]] = {"keys": [], "prompt_keys": [], "digests": [], "lengths": []}
        for scan in scans:
            with np.load(scan.stage.with_suffix(".npz")) as arrays:
                for name in parts:
                    parts[name].append(arrays[name])
        joined = {name: np.concatenate(values) if values else np.empty(0, np.uint64) for name, values in parts.items()}
        offsets = np.cumsum([0] + [scan.staged for scan in scans])
        return cls(scans, joined["keys"].astype(np.uint64), joined["prompt_keys"].astype(np.uint64),
                   joined["digests"].reshape(-1, 2).astype(np.uint64), joined["lengths"].reshape(-1, 2), offsets)

    @property
    def size(self) -> int:
        return int(self.ids.size)

    def band(self, band: int) -> np.ndarray:
        columns = []
        for scan in self.scans:
            with np.load(scan.stage.with_suffix(".npz")) as arrays:
                columns.append(arrays[f"band{band}"])
        return np.concatenate(columns) if columns else np.empty(0, np.uint64)

    def signature_rows(self, indices: np.ndarray) -> np.ndarray:
        """Signatures of the given global indices, gathered file by file from the memory-mapped staged arrays."""
        if self._signatures is None:
            self._signatures = [np.load(scan.stage.with_suffix(".sig.npy"), mmap_mode="r") for scan in self.scans]
        out = np.empty((indices.size, data_dedup.NUM_PERM), np.uint32)
        owners = np.searchsorted(self.offsets, indices, side="right") - 1
        order = np.argsort(owners, kind="stable")
        bounds = np.searchsorted(owners[order], np.arange(len(self.scans) + 1))
        for owner, signature in enumerate(self._signatures):
            chosen = order[bounds[owner]:bounds[owner + 1]]
            if chosen.size:
                out[chosen] = signature[indices[chosen] - self.offsets[owner]]
        return out

    def pair_similarity(self, pairs: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
        """Estimated Jaccard similarity of each candidate pair, a chunk at a time (memory stays bounded)."""
        out = np.empty(len(pairs))
        for start in range(0, len(pairs), chunk):
            part = pairs[start:start + chunk]
            out[start:start + len(part)] = data_dedup.similarity(self.signature_rows(part[:, 0]),
                                                                 self.signature_rows(part[:, 1]))
        return out


@dataclass(frozen=True)
class Deduplicated:
    kept: np.ndarray  # boolean mask over staged examples
    exact: int
    near: int


def deduplicate(staged: Staged, threshold: float) -> Deduplicated:
    """Exact duplicates (same id) first, then near-duplicates among the rest."""
    unique = data_dedup.first_occurrences(staged.ids)
    pairs = data_dedup.candidate_pairs([staged.band(band) for band in range(data_dedup.BANDS)], unique)
    near = data_dedup.near_duplicates(pairs, staged.pair_similarity(pairs), threshold, staged.size)
    kept = unique & ~near
    return Deduplicated(kept, int((~unique).sum()), int((unique & near).sum()))


@dataclass
class SplitWriter:
    """The split files, with a running sha256 and count each."""

    output_dir: Path
    handles: list[IO[str]] = field(default_factory=list)
    hashes: list[Any] = field(default_factory=list)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])

    def __enter__(self) -> "SplitWriter":
        for name in SPLIT_NAMES:
            path = self.output_dir / name / f"{name}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handles.append(path.open("w", encoding="utf-8", newline="\n"))
            self.hashes.append(hashlib.sha256())
        return self

    def write(self, code: int, line: str) -> None:
        self.handles[code].write(line)
        self.hashes[code].update(line.encode("utf-8"))
        self.counts[code] += 1

    def write_lines(self, pending: tuple[list[str], ...]) -> None:
        """Write and clear each split's pending lines."""
        for code, lines in enumerate(pending):
            if lines:
                self.write(code, "".join(lines))
                self.counts[code] += len(lines) - 1
                lines.clear()

    def __exit__(self, *exc_info: object) -> None:
        for handle in self.handles:
            handle.close()

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {name: {"file": f"{name}/{name}.jsonl", "examples": self.counts[code],
                       "sha256": self.hashes[code].hexdigest()}
                for code, name in enumerate(SPLIT_NAMES)}


def write_new_examples(staged: Staged, kept: np.ndarray, codes: np.ndarray, sampled: np.ndarray,
                       writer: SplitWriter) -> list[dict[str, Any]]:
    """Copy the kept examples into their split files, in order; return the sampled ones, parsed (for the profile)."""
    code_of = np.full(staged.size, -1, np.int8)
    code_of[kept] = codes
    sample_of = np.zeros(staged.size, bool)
    sample_of[np.flatnonzero(kept)[sampled]] = True
    samples: list[dict[str, Any]] = []
    for scan, start in zip(staged.scans, staged.offsets):
        unit_codes = code_of[start:start + scan.staged].tolist()
        unit_samples = set(np.flatnonzero(sample_of[start:start + scan.staged]).tolist())
        pending: tuple[list[str], ...] = ([], [], [])
        with scan.stage.with_suffix(".examples.jsonl").open("r", encoding="utf-8") as handle:
            for local, line in enumerate(handle):
                code = unit_codes[local]
                if code >= 0:
                    pending[code].append(line)
                    if local in unit_samples:
                        samples.append(json.loads(line))
                if local % WRITE_CHUNK == WRITE_CHUNK - 1:
                    writer.write_lines(pending)
        writer.write_lines(pending)
    return samples


def _quarantine_rows(scans: list[FileScan]) -> Iterator[str]:
    for scan in scans:
        with scan.stage.with_suffix(".quarantine.jsonl").open("r", encoding="utf-8") as handle:
            yield from handle


def write_quarantine(path: Path, scans: list[FileScan], replay_rows: list[ReplayRejected]) -> None:
    """quarantine.jsonl: every rejected row of the new data and of the replay input, by (file, line)."""
    replay_lines = [json.dumps(row.to_record(), ensure_ascii=False) + "\n"
                    for row in sorted(replay_rows, key=lambda row: (row.file, row.line))]

    def key(line: str) -> tuple[str, int]:
        record = json.loads(line)
        return record["file"], record["line"]

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(heapq.merge(_quarantine_rows(scans), replay_lines, key=key))

