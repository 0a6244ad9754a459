"""The knowledge inventory: every example a model version was trained on, and whether it knows it.

Each registered version carries an inventory (`inventory.jsonl`, one item per line, oldest data
version first): every training example of every data version so far, except those superseded by
a later version (the same question in the same chat context, answered differently: the newer
answer wins). An item holds the example (id, prompt, completion, a chat's `messages` when it has
context, source), the `data_version` that brought it, and a verdict: `known` (true/false: whether
the model answered it right, by `answered_right`, the one rule) with `checked_in`, the data version
of the round whose candidate gave that answer; `known: null` when no round has checked it yet.
A verdict is the latest check's: items a round does not re-ask keep theirs (see evaluate.retention
for which items each round asks). `summary.json` beside it counts items, checked and known items
per data version (what `continuum lineage` and `continuum report` show).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.examples import read_examples
from common.jsonl import write_jsonl
from common.metrics import normalize_answer, token_f1_single
from common.prompting import Message, has_context

INVENTORY_FILE = "inventory.jsonl"
SUMMARY_FILE = "summary.json"
REPLAY_PREFIX = "replay:"  # the prepare step's source prefix for replayed rows (already in the inventory)
UNKNOWN_VERSION = "unknown"
KNOWN_MIN_TOKEN_F1 = 0.9
KNOWN_RULE = (f"token F1 >= {KNOWN_MIN_TOKEN_F1} between the model's greedy answer and the trained answer "
              "(SQuAD normalization: case, punctuation and articles ignored): an answer of up to nine words must "
              "match word for word, a longer one may differ by one word")


def answered_right(answer: str, expected: str) -> bool:
    """Whether a model's answer counts as knowing the item: the one rule (KNOWN_RULE) for `known`."""
    return token_f1_single(answer, expected) >= KNOWN_MIN_TOKEN_F1


@dataclass(frozen=True)
class Item:
    """One trained example in the inventory, with the latest verdict on it."""

    id: str
    prompt: str
    completion: str
    source: str
    data_version: str
    context: tuple[Message, ...] = ()  # a chat's system message and earlier turns, before `prompt`
    known: bool | None = None
    checked_in: str | None = None

    @property
    def question_key(self) -> str:
        return question_key(self.prompt, self.context)

    def to_record(self) -> dict[str, Any]:
        chat = {"messages": [*map(dict, self.context), {"role": "user", "content": self.prompt},
                             {"role": "assistant", "content": self.completion}]} if self.context else {}
        return {"id": self.id, "prompt": self.prompt, "completion": self.completion, **chat, "source": self.source,
                "data_version": self.data_version, "known": self.known, "checked_in": self.checked_in}


def question_key(prompt: str, context: Sequence[Message] = ()) -> str:
    """The normalized question in its normalized chat context: equal keys ask the same thing."""
    normalized = [(m["role"], normalize_answer(m["content"])) for m in context]
    return normalize_answer(prompt) + (json.dumps(normalized) if normalized else "")


def chat_context(messages: Sequence[Message] | None) -> tuple[Message, ...]:
    """The system message and earlier turns before an example's question (none for a single-turn example)."""
    before_reply = list(messages or [])[:-1]
    return tuple(before_reply[:-1]) if before_reply and has_context(before_reply) else ()


def item_from_record(record: Mapping[str, Any], data_version: str | None = None) -> Item:
    """An item from an inventory line, or (with `data_version`) from a prepared training example."""
    example_id = record.get("id") or hashlib.sha256(
        f"{record['prompt']}\x1f{record['completion']}".encode("utf-8")).hexdigest()[:16]
    known = record.get("known") if data_version is None else None
    return Item(str(example_id), record["prompt"], record["completion"], str(record.get("source") or ""),
                data_version or str(record.get("data_version") or UNKNOWN_VERSION), chat_context(record.get("messages")),
                known if isinstance(known, bool) else None,
                record.get("checked_in") if data_version is None and isinstance(known, bool) else None)


def read_inventory(folder: Path | None) -> list[Item]:
    """The items of the inventory under `folder` (none when absent or holding only an `_EMPTY` marker)."""
    return [item_from_record(record) for record in read_examples(folder)]


@dataclass(frozen=True)
class Merged:
    """The inventory after this round's training data: the items and what the merge did."""

    items: list[Item]
    added: int  # this round's new training examples
    superseded: int  # earlier items whose question the new data answers differently
    repeated: int  # new examples already in the inventory (kept with their first data version)
    replayed: int  # replayed rows of the train split (skipped: already in the inventory)


def _superseded(item: Item, answers: Mapping[str, set[str]]) -> bool:
    """True when the new data asks the item's question and never gives the item's answer."""
    given = answers.get(item.question_key)
    return given is not None and normalize_answer(item.completion) not in given


def merge(previous: Sequence[Item], train: Iterable[Mapping[str, Any]], data_version: str) -> Merged:
    """The previous inventory minus what this round's training data supersedes, plus its new examples."""
    new: list[Item] = []
    replayed = 0
    for record in train:
        if str(record.get("source", "")).startswith(REPLAY_PREFIX):
            replayed += 1
        else:
            new.append(item_from_record(record, data_version))
    answers: dict[str, set[str]] = {}
    for item in new:
        answers.setdefault(item.question_key, set()).add(normalize_answer(item.completion))
    kept = [item for item in previous if not _superseded(item, answers)]
    seen = {item.id for item in kept}
    added: list[Item] = []
    for item in new:
        if item.id not in seen:
            seen.add(item.id)
            added.append(item)
    return Merged([*kept, *added], len(added), len(previous) - len(kept), len(new) - len(added), replayed)


def summarize(items: Sequence[Item]) -> dict[str, Any]:
    """Size and coverage: items, checked and known, in all and per data version (oldest first)."""
    by_version: dict[str, dict[str, int]] = {}
    for item in items:
        counts = by_version.setdefault(item.data_version, {"items": 0, "checked": 0, "known": 0})
        counts["items"] += 1
        counts["checked"] += item.known is not None
        counts["known"] += item.known is True
    totals = {key: sum(counts[key] for counts in by_version.values()) for key in ("items", "checked", "known")}
    return {**totals, "data_versions": len(by_version), "by_data_version": by_version, "known_rule": KNOWN_RULE}


def write_inventory(folder: Path, items: Sequence[Item], summary: Mapping[str, Any]) -> Path:
    """`inventory.jsonl` and `summary.json` under `folder` (written even when empty: the output prefix always exists)."""
    write_jsonl(Path(folder) / INVENTORY_FILE, (item.to_record() for item in items))
    (Path(folder) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return Path(folder) / INVENTORY_FILE
