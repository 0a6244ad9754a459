"""Replay for continual learning: a stratified, deterministic sample of a previous version's train split.

The replay folder holds a previous version's prepared train split (every *.jsonl under it; other
files such as `_EMPTY` or the manifest are ignored). A share of each source file (the stratum) is
sampled by a seeded hash and joins the new TRAIN split, sources prefixed `replay:`; a sampled
example whose prompt (normalized) or id the new data has is `superseded`: new answers win.

This module reads replay files: `scan_replay_file` stages one file (or part of one) in a worker
process like new data, its lines and the keys the selection works on spilled by key range
(replay_select decides, a key range at a time; contradictions reads the `answers`
spill: prompt key, answer key and where the line is). `read_replay_file` and `sample_replay` are
the same rules on examples in memory.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from prepare import spill
from prepare.readers import InputFile, discover, jsonl_file_rows, preview
from prepare.records import (
    Example,
    RecordMapper,
    RowError,
    answer_key,
    example_id,
    normalize,
    pair_messages,
    prompt_key,
    text_field,
)
from prepare.spill import KEY_ROW, SpillSource, SpillWriter
from prepare.split import SPLIT_NAMES, TRAIN

REPLAY_PREFIX = "replay:"
_LINE_SUFFIX = re.compile(r":\d+$")
_CANONICAL_ID = re.compile(r"[0-9a-f]{16}")
SCORE_BITS = 52  # replay_score is a 52-bit integer over 2**52
BATCH_ROWS = 4096
# A replayed example: its id as a 64-bit key, what its output needs, and where its line is staged.
REPLAY_ROW = np.dtype([("key", "<u8"), ("prompt_key", "<u8"), ("prompt_chars", "<i8"), ("completion_chars", "<i8"),
                       ("digest", "<u8", (2,)), ("offset", "<u8"), ("length", "<u4"), ("canonical", "u1"),
                       ("index", "<u4")])
SCORE_ROW = np.dtype([("key", "<u8"), ("stratum", "<u4"), ("offset", "<u8"), ("length", "<u4"), ("index", "<u4")])
# A replayed example's prompt key (the spill key), answer key and where its line is staged.
REPLAY_ANSWER_ROW = np.dtype([("key", "<u8"), ("answer", "<u8"), ("offset", "<u8"), ("length", "<u4"),
                              ("index", "<u4")])


@dataclass(frozen=True)
class ReplayRejected:
    file: str
    line: int
    reason: str
    detail: str
    raw: str

    def to_record(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason, "detail": self.detail, "raw": self.raw}


@dataclass(frozen=True)
class Replay:
    """How replayed examples were counted.

    `quarantined` lines are unusable and never available; `available` counts distinct usable
    examples (by id); `sampled` of them were chosen; of those, `superseded` were dropped because
    the new data answers their prompt and the rest are `used`: sampled = superseded + used.
    """

    available: int
    sampled: int
    superseded: int
    quarantined: int
    fraction: float

    @property
    def used(self) -> int:
        return self.sampled - self.superseded

    def counts(self) -> dict[str, Any]:
        return {"available": self.available, "sampled": self.sampled, "superseded": self.superseded,
                "quarantined": self.quarantined, "used": self.used, "fraction": self.fraction}


NO_REPLAY = Replay(0, 0, 0, 0, 0.0)


def replay_files(replay_dir: Path | None) -> list[InputFile]:
    """Every .jsonl file under `replay_dir`; none when it is missing or unset."""
    if replay_dir is None or not Path(replay_dir).is_dir():
        return []
    return [file for file in discover([Path(replay_dir)]) if file.path.suffix.lower() == ".jsonl"]


def _optional_text(record: dict[str, Any], key: str, default: str) -> str:
    return default if record.get(key) is None else text_field(record, key)


def _example(payload: dict[str, Any], name: str, chat: RecordMapper) -> Example:
    """A prepared-examples record as an Example (source prefixed `replay:`); RowError when unusable."""
    prompt, completion = text_field(payload, "prompt"), text_field(payload, "completion")
    messages = (chat.shape({"messages": payload["messages"]}).messages if payload.get("messages")
                else pair_messages(prompt, completion))
    id_ = _optional_text(payload, "id", example_id(prompt, completion, messages))
    source = _optional_text(payload, "source", name)
    source = source if source.startswith(REPLAY_PREFIX) else f"{REPLAY_PREFIX}{source}"
    return Example(id_, prompt, completion, source, messages)


def read_replay_file(file: InputFile) -> tuple[list[Example], list[ReplayRejected]]:
    """A prepared-examples file's examples (source prefixed `replay:`) and its unusable lines, in memory."""
    label = f"{REPLAY_PREFIX}{file.name}"
    examples: list[Example] = []
    rejected: list[ReplayRejected] = []
    for line_no, item, raw in replay_rows(file):
        if isinstance(item, RowError):
            rejected.append(ReplayRejected(label, line_no, item.reason, item.detail, preview(raw)))
        else:
            examples.append(item)
    return examples, rejected


def replay_rows(file: InputFile) -> Iterator[tuple[int, Example | RowError, Any]]:
    """(line number, the line's example or why it is unusable, the raw line) for every line of a replay file."""
    chat = RecordMapper()
    for line_no, payload, raw in jsonl_file_rows(file):
        try:
            if isinstance(payload, RowError):
                raise payload
            yield line_no, _example(payload, file.name, chat), raw
        except RowError as error:
            yield line_no, error, raw


def replay_stratum(source: str) -> str:
    """The source file an example came from: its source without the `replay:` prefix and `:line` suffix."""
    return _LINE_SUFFIX.sub("", source.removeprefix(REPLAY_PREFIX))


def _score_bits(example_id_: str, seed: int) -> int:
    return int(hashlib.sha256(f"{seed}:replay:{example_id_}".encode("utf-8")).hexdigest()[:13], 16)


def replay_score(example_id_: str, seed: int) -> float:
    """An example's place in the replay sample order for a seed: a hash, stable across machines and runs."""
    return _score_bits(example_id_, seed) / 16**13


def sample_replay(examples: list[Example], fraction: float, seed: int) -> list[Example]:
    """round(fraction x count) examples (at least 1) of each source file, lowest replay score first; sorted by id."""
    strata: dict[str, list[Example]] = {}
    for example in examples:
        strata.setdefault(replay_stratum(example.source), []).append(example)
    sampled: list[Example] = []
    for members in strata.values():
        ranked = sorted(members, key=lambda example: (replay_score(example.id, seed), example.id))
        sampled.extend(ranked[: stratum_sample_size(fraction, len(members))])
    return sorted(sampled, key=lambda example: example.id)


def stratum_sample_size(fraction: float, count: int) -> int:
    return max(1, round(fraction * count))


def id_key(example_id_: str) -> int:
    """A replayed id as a 64-bit integer; ids not in the 16-hex-digit form are hashed first."""
    try:
        return int(example_id_, 16) & 0xFFFFFFFFFFFFFFFF
    except ValueError:
        return int(hashlib.sha256(example_id_.encode("utf-8")).hexdigest()[:16], 16)


def name_key(example_id_: str) -> int:
    """A 64-bit hash of the id text: equal ids, equal keys (the first of each id is available)."""
    return int.from_bytes(hashlib.sha256(example_id_.encode("utf-8")).digest()[:8], "big")


def canonical(example_id_: str) -> bool:
    """16 lower-case hex digits: id_key keeps such ids apart and in their text order."""
    return len(example_id_) == 16 and _CANONICAL_ID.fullmatch(example_id_) is not None


@dataclass
class ReplayScan:
    """One staged replay file (or part): its usable examples, its unusable lines and its strata by number."""

    name: str
    stage: Path
    size: int = 0
    quarantined: int = 0
    strata: list[str] = field(default_factory=list)

    def path(self, kind: str) -> Path:
        return self.stage.with_name(f"{self.stage.name}.{kind}")

    def spill(self, kind: str, base: int) -> SpillSource:
        return SpillSource(self.path(kind), base)

    def odd_ids(self) -> tuple[list[str], np.ndarray]:
        """The ids that are not canonical, and their examples' REPLAY_ROWs."""
        with self.path("odd-ids.jsonl").open("r", encoding="utf-8") as handle:
            ids = [json.loads(line) for line in handle]
        return ids, np.fromfile(self.path("odd-rows"), REPLAY_ROW)


class _ReplayWriter:
    """A replay unit's files: the example lines (train), quarantined lines, spilled keys, odd ids.

    Examples are encoded a batch at a time; their keys are spilled a run (RUN_ROWS) at a time.
    """

    def __init__(self, scan: ReplayScan, seed: int) -> None:
        self.scan, self.seed = scan, seed
        self.lines = scan.path(f"{SPLIT_NAMES[TRAIN]}.jsonl").open("wb")
        self.quarantine: IO[str] = scan.path("quarantine.jsonl").open("w", encoding="utf-8")
        self.odd: IO[str] = scan.path("odd-ids.jsonl").open("w", encoding="utf-8")
        self.odd_rows = scan.path("odd-rows").open("wb")
        self.spills = {"names": SpillWriter(scan.path("names"), KEY_ROW),
                       "prompt_keys": SpillWriter(scan.path("prompt_keys"), KEY_ROW),
                       "scores": SpillWriter(scan.path("scores"), SCORE_ROW),
                       "ids": SpillWriter(scan.path("ids"), REPLAY_ROW),
                       "answers": SpillWriter(scan.path("answers"), REPLAY_ANSWER_ROW)}
        self.strata: dict[str, int] = {}
        self.offset = 0
        self.batch: list[Example] = []
        self.pending: dict[str, list[np.ndarray]] = {kind: [] for kind in self.spills}
        self.pending_rows = 0

    def reject(self, line_no: int, error: RowError, raw: str) -> None:
        record = ReplayRejected(f"{REPLAY_PREFIX}{self.scan.name}", line_no, error.reason, error.detail, preview(raw))
        self.quarantine.write(json.dumps(record.to_record(), ensure_ascii=False) + "\n")
        self.scan.quarantined += 1

    def add(self, example: Example) -> None:
        self.batch.append(example)
        if len(self.batch) >= BATCH_ROWS:
            self._encode()

    def _encode(self) -> None:
        """Write the batch's lines; keep its keys for the next run."""
        examples, self.batch = self.batch, []
        if not examples:
            return
        lines = [example.line() for example in examples]
        encoded = [line.encode("utf-8") for line, _ in lines]
        index = np.arange(self.scan.size, self.scan.size + len(examples), dtype=np.uint32)
        rows = np.zeros(len(examples), REPLAY_ROW)
        rows["key"] = [id_key(example.id) for example in examples]
        rows["prompt_key"] = [int(prompt_key(example.prompt), 16) for example in examples]
        rows["prompt_chars"] = [len(example.prompt) for example in examples]
        rows["completion_chars"] = [len(example.completion) for example in examples]
        rows["digest"] = np.frombuffer(b"".join(digest for _, digest in lines), np.uint64).reshape(-1, 2)
        rows["length"] = [len(line) for line in encoded]
        rows["offset"] = self.offset + np.cumsum(rows["length"], dtype=np.uint64) - rows["length"]
        rows["canonical"] = [canonical(example.id) for example in examples]
        rows["index"] = index
        for example, ok in zip(examples, rows["canonical"].tolist()):
            if not ok:
                self.odd.write(json.dumps(example.id) + "\n")
        rows[rows["canonical"] == 0].tofile(self.odd_rows)
        self.lines.write(b"".join(encoded))
        self.offset += int(rows["length"].sum(dtype=np.uint64))
        names = np.empty(len(examples), KEY_ROW)
        names["key"], names["index"] = [name_key(example.id) for example in examples], index
        prompts = np.empty(len(examples), KEY_ROW)
        prompts["key"], prompts["index"] = rows["prompt_key"], index
        scores = np.empty(len(examples), SCORE_ROW)
        scores["key"] = np.array([_score_bits(example.id, self.seed) for example in examples],
                                 np.uint64) << np.uint64(64 - SCORE_BITS)
        scores["stratum"] = [self.strata.setdefault(replay_stratum(example.source), len(self.strata))
                             for example in examples]
        scores["offset"], scores["length"], scores["index"] = rows["offset"], rows["length"], index
        answers = np.empty(len(examples), REPLAY_ANSWER_ROW)
        answers["key"], answers["answer"] = rows["prompt_key"], [answer_key(normalize(e.completion)) for e in examples]
        answers["offset"], answers["length"], answers["index"] = rows["offset"], rows["length"], index
        for kind, batch in (("ids", rows), ("names", names), ("prompt_keys", prompts), ("scores", scores),
                            ("answers", answers)):
            self.pending[kind].append(batch)
        self.scan.size += len(examples)
        self.pending_rows += len(examples)
        if self.pending_rows >= spill.RUN_ROWS:
            self._spill()

    def _spill(self) -> None:
        """Write the pending keys as one run of each kind."""
        if self.pending_rows:
            for kind, batches in self.pending.items():
                self.spills[kind].write_run(np.concatenate(batches))
                batches.clear()
            self.pending_rows = 0

    def close(self) -> None:
        self._encode()
        self._spill()
        for handle in (self.lines, self.quarantine, self.odd, self.odd_rows):
            handle.close()
        for spill in self.spills.values():
            spill.close()
        self.scan.strata = list(self.strata)


def scan_replay_file(file: InputFile, seed: int, stage: Path) -> ReplayScan:
    """Stage one replay file or part of one (see the module docstring); returns its counts and strata."""
    writer = _ReplayWriter(ReplayScan(file.name, stage), seed)
    for line_no, item, raw in replay_rows(file):
        if isinstance(item, RowError):
            writer.reject(line_no, item, raw)
        else:
            writer.add(item)
    writer.close()
    return writer.scan
