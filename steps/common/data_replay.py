"""Replay for continual learning: a stratified, deterministic sample of a previous version's train split.

The replay folder holds a previous version's prepared train split (every *.jsonl under it; other
files such as `_EMPTY` or the manifest are ignored). A share of each source file (the stratum) is
sampled by a seeded hash and joins the new TRAIN split, sources prefixed `replay:`; a sampled
example whose prompt (normalized) or id the new data has is `superseded`: new answers win.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.data_readers import InputFile, discover, jsonl_rows, preview
from common.data_records import Example, RecordMapper, RowError, example_id, pair_messages, prompt_key, text_field
from common.data_split import TRAIN
from common.data_units import COLUMNS, Unit, UnitWriter

REPLAY_PREFIX = "replay:"
_LINE_SUFFIX = re.compile(r":\d+$")


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
    """Previous examples trained on again, and how they were counted.

    `quarantined` lines are unusable and never available; `available` counts distinct usable
    examples (by id); `sampled` of them were chosen; of those, `superseded` were dropped because
    the new data answers their prompt and the rest are `used`: sampled = superseded + used.
    """

    used: list[Example]
    quarantined: list[ReplayRejected]
    available: int
    sampled: int
    superseded: int
    fraction: float

    def counts(self) -> dict[str, Any]:
        return {"available": self.available, "sampled": self.sampled, "superseded": self.superseded,
                "quarantined": len(self.quarantined), "used": len(self.used), "fraction": self.fraction}


NO_REPLAY = Replay([], [], 0, 0, 0, 0.0)


def replay_files(replay_dir: Path | None) -> list[InputFile]:
    """Every .jsonl file under `replay_dir`; none when it is missing or unset."""
    if replay_dir is None or not Path(replay_dir).is_dir():
        return []
    return [file for file in discover([Path(replay_dir)]) if file.path.suffix.lower() == ".jsonl"]


def _optional_text(record: dict[str, Any], key: str, default: str) -> str:
    return default if record.get(key) is None else text_field(record, key)


def read_replay_file(file: InputFile) -> tuple[list[Example], list[ReplayRejected]]:
    """A prepared-examples file's examples (source prefixed `replay:`) and its unusable lines."""
    label = f"{REPLAY_PREFIX}{file.name}"
    examples: list[Example] = []
    rejected: list[ReplayRejected] = []
    chat = RecordMapper()
    with file.path.open("rb") as handle:
        for line_no, payload, raw in jsonl_rows(handle):
            try:
                if isinstance(payload, RowError):
                    raise payload
                prompt, completion = text_field(payload, "prompt"), text_field(payload, "completion")
                messages = (chat.shape({"messages": payload["messages"]}).messages if payload.get("messages")
                            else pair_messages(prompt, completion))
                id_ = _optional_text(payload, "id", example_id(prompt, completion, messages))
                source = _optional_text(payload, "source", file.name)
            except RowError as error:
                rejected.append(ReplayRejected(label, line_no, error.reason, error.detail, preview(raw)))
                continue
            source = source if source.startswith(REPLAY_PREFIX) else f"{REPLAY_PREFIX}{source}"
            examples.append(Example(id_, prompt, completion, source, messages))
    return examples, rejected


def replay_stratum(source: str) -> str:
    """The source file an example came from: its source without the `replay:` prefix and `:line` suffix."""
    return _LINE_SUFFIX.sub("", source.removeprefix(REPLAY_PREFIX))


def replay_score(example_id_: str, seed: int) -> float:
    """An example's place in the replay sample order for a seed: a hash, stable across machines and runs."""
    digest = hashlib.sha256(f"{seed}:replay:{example_id_}".encode("utf-8")).hexdigest()
    return int(digest[:13], 16) / 16**13


def sample_replay(examples: list[Example], fraction: float, seed: int) -> list[Example]:
    """round(fraction x count) examples (at least 1) of each source file, lowest replay score first; sorted by id."""
    strata: dict[str, list[Example]] = {}
    for example in examples:
        strata.setdefault(replay_stratum(example.source), []).append(example)
    sampled: list[Example] = []
    for members in strata.values():
        ranked = sorted(members, key=lambda example: (replay_score(example.id, seed), example.id))
        sampled.extend(ranked[: max(1, round(fraction * len(members)))])
    return sorted(sampled, key=lambda example: example.id)


def id_key(example_id_: str) -> int:
    """A replayed id as a 64-bit integer; ids not in the 16-hex-digit form are hashed first."""
    try:
        return int(example_id_, 16) & 0xFFFFFFFFFFFFFFFF
    except ValueError:
        return int(hashlib.sha256(example_id_.encode("utf-8")).hexdigest()[:16], 16)


def _first_of_each_id(examples: Iterable[Example]) -> list[Example]:
    seen: set[str] = set()
    kept = []
    for example in examples:
        if example.id not in seen:
            seen.add(example.id)
            kept.append(example)
    return kept


def build_replay(replay_dir: Path | None, fraction: float, seed: int,
                 superseded: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Replay:
    """Sample the replay folder; drop what the new data supersedes (same normalized prompt or same id).

    `superseded(prompt_keys, ids)` says which of the sampled examples' prompt keys and ids (64-bit
    integers) the new examples hold.
    """
    files = replay_files(replay_dir)
    if not files:
        return NO_REPLAY
    read = [read_replay_file(file) for file in files]
    available = _first_of_each_id(example for examples, _ in read for example in examples)
    sampled = sample_replay(available, fraction, seed)
    prompts = np.array([int(prompt_key(example.prompt), 16) for example in sampled], np.uint64)
    ids = np.array([id_key(example.id) for example in sampled], np.uint64)
    dropped_mask = superseded(prompts, ids)
    used = [example for example, dropped in zip(sampled, dropped_mask) if not dropped]
    quarantined = [row for _, rows in read for row in rows]
    return Replay(used, quarantined, len(available), len(sampled), len(sampled) - len(used), fraction)


def stage_replay(used: list[Example], stage: Path, base: int, batch: int = 4096) -> Unit:
    """The replayed examples as a staged unit (all train, not deduplicated) after the new examples."""
    writer = UnitWriter(stage, deduplicated=False)
    for start in range(0, len(used), batch):
        examples = used[start:start + batch]
        lines = [example.line() for example in examples]
        columns = np.zeros(len(examples), COLUMNS)
        columns["id"] = [id_key(example.id) for example in examples]
        columns["prompt_key"] = [int(prompt_key(example.prompt), 16) for example in examples]
        columns["prompt_chars"] = [len(example.prompt) for example in examples]
        columns["completion_chars"] = [len(example.completion) for example in examples]
        columns["split"] = TRAIN
        digests = np.frombuffer(b"".join(digest for _, digest in lines), np.uint64).reshape(-1, 2)
        writer.add([line for line, _ in lines], columns, digests, None)
    return Unit(stage, base, writer.close())
