"""Knowledge retention: the held-out examples of earlier data versions, carried from version to version.

Each evaluation receives the previous approved version's held-out history (`heldout.jsonl`: the
validation- and test-split examples of every earlier data version, each tagged with its
`data_version`) and builds two things from it:

- the retention suite: earlier held-out examples whose prompt the current data does not answer
  differently (those are superseded: the new answer is what the candidate should say), one per
  prompt, at most `max_cases`, taken round-robin across data versions (oldest first) in a stable
  hash order, so every earlier version keeps a voice however many came after it;
- the next history: the surviving earlier examples plus this version's own held-out splits, at most
  `per_version` examples per data version, which the register step records on the model version.

Held-out examples were never trained on (replay mixes in earlier *train* splits only), so the
suite measures what earlier versions learned to generalize, not what the model memorized. A chat
example is asked with its context (system message, earlier turns); "the same prompt" means the
same last question in the same context.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common.benchmarks import SUITE_FILE, BenchmarkSuite, SuiteSpec
from common.eval_cases import BenchmarkCase
from common.examples import read_examples
from common.jsonl import write_jsonl
from common.metrics import normalize_answer
from common.prompting import Message, has_context

RETENTION_SUITE = "retention"
HELDOUT_FILE = "heldout.jsonl"
REPLAY_PREFIX = "replay:"
UNKNOWN_VERSION = "unknown"
_LINE_SUFFIX = re.compile(r":\d+$")
RETENTION_METRICS = ["token_f1", "exact_match", "rouge_l"]
HISTORY_FIELDS = ("id", "prompt", "completion", "messages", "source", "data_version")


@dataclass(frozen=True)
class RetentionCounts:
    """How the suite was built: held-out examples read, superseded, repeated prompts, capped, used, versions."""

    available: int
    superseded: int
    duplicates: int
    capped: int
    used: int
    data_versions: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"available": self.available, "superseded": self.superseded, "duplicates": self.duplicates,
                "capped": self.capped, "used": self.used, "data_versions": self.data_versions}


def source_group(source: str) -> str:
    """The source file an example came from (no `replay:` prefix, no `:line` suffix)."""
    return _LINE_SUFFIX.sub("", source.removeprefix(REPLAY_PREFIX)) or "unknown"


def _stable_rank(example_id: str) -> str:
    return hashlib.sha256(f"retention:{example_id}".encode("utf-8")).hexdigest()


def _example_id(example: dict[str, Any]) -> str:
    return str(example.get("id") or example["prompt"])


def _version(example: dict[str, Any]) -> str:
    return str(example.get("data_version") or UNKNOWN_VERSION)


def chat_context(example: dict[str, Any]) -> tuple[Message, ...]:
    """The system message and earlier turns before the example's question (none for a single-turn example)."""
    messages = example.get("messages") or []
    before_reply = messages[:-1]
    return tuple(before_reply[:-1]) if before_reply and has_context(before_reply) else ()


def prompt_key(example: dict[str, Any]) -> str:
    """The normalized question, in its normalized chat context."""
    context = [(m["role"], normalize_answer(m["content"])) for m in chat_context(example)]
    return normalize_answer(example["prompt"]) + (json.dumps(context) if context else "")


def current_answers(current: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """Prompt key -> normalized answers of the current version's own (not replayed) examples."""
    answers: dict[str, set[str]] = {}
    for example in current:
        if not str(example.get("source", "")).startswith(REPLAY_PREFIX):
            answers.setdefault(prompt_key(example), set()).add(normalize_answer(example["completion"]))
    return answers


def is_superseded(example: dict[str, Any], answers: dict[str, set[str]]) -> bool:
    """True when the current data answers this example's prompt, and never with this example's answer."""
    given = answers.get(prompt_key(example))
    return given is not None and normalize_answer(example["completion"]) not in given


def _version_order(examples: list[dict[str, Any]]) -> list[str]:
    """Data versions in the order they first appear (the history is written oldest first)."""
    return list(dict.fromkeys(_version(example) for example in examples))


def _round_robin(by_version: dict[str, list[dict[str, Any]]], order: list[str], limit: int) -> list[dict[str, Any]]:
    """Up to `limit` examples, one from each version in turn (each version's list already ranked)."""
    chosen: list[dict[str, Any]] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(by_version[v]) for v in order):
        chosen += [by_version[v][depth] for v in order if depth < len(by_version[v])][:limit - len(chosen)]
        depth += 1
    return chosen


def build_retention_suite(
    earlier: list[dict[str, Any]], current: list[dict[str, Any]], max_cases: int, folder: Path
) -> tuple[BenchmarkSuite | None, RetentionCounts]:
    """The retention suite over earlier held-out examples given the `current` data; None when nothing is left."""
    answers = current_answers(current)
    rank = {version: index for index, version in enumerate(_version_order(earlier))}
    by_prompt: dict[str, dict[str, Any]] = {}
    superseded = duplicates = 0
    for example in sorted(earlier, key=lambda item: (rank[_version(item)], _example_id(item))):
        prompt = prompt_key(example)
        if is_superseded(example, answers):
            superseded += 1
        elif prompt in by_prompt:
            duplicates += 1
        else:
            by_prompt[prompt] = example
    kept = list(by_prompt.values())
    order = _version_order(kept)
    by_version: dict[str, list[dict[str, Any]]] = {version: [] for version in order}
    for example in sorted(kept, key=lambda item: _stable_rank(_example_id(item))):
        by_version[_version(example)].append(example)
    chosen = _round_robin(by_version, order, max_cases)
    counts = RetentionCounts(len(earlier), superseded, duplicates, len(kept) - len(chosen), len(chosen),
                             len({_version(example) for example in chosen}))
    if not chosen:
        return None, counts
    cases = tuple(sorted(
        (BenchmarkCase(id=_example_id(item), prompt=item["prompt"], target=item["completion"],
                       group=source_group(str(item.get("source", ""))), context=chat_context(item)) for item in chosen),
        key=lambda case: (case.group, case.id),
    ))
    spec = SuiteSpec(
        name=RETENTION_SUITE,
        version=hashlib.sha256("".join(case.id for case in cases).encode("utf-8")).hexdigest()[:12],
        task="qa",
        description=f"Held-out examples of {counts.data_versions} earlier data version(s) that the current data "
                    "does not supersede",
        data="cases.jsonl",
        metrics=RETENTION_METRICS,
    )
    _write_suite(folder, spec, cases)
    return BenchmarkSuite(spec=spec, cases=cases, path=folder), counts


def next_history(earlier: list[dict[str, Any]], current: list[dict[str, Any]], heldout: list[dict[str, Any]],
                 data_version: str, per_version: int) -> list[dict[str, Any]]:
    """The held-out history for the next version: surviving earlier examples, then this version's held-out ones.

    An example already in the history keeps its first data version; each version keeps at most
    `per_version` examples, chosen by the same stable hash as the suite.
    """
    answers = current_answers(current)
    seen: set[str] = set()
    survivors: list[dict[str, Any]] = []
    for example in [*earlier, *({**item, "data_version": data_version} for item in heldout)]:
        key = _example_id(example)
        if key in seen or is_superseded(example, answers):
            continue
        seen.add(key)
        survivors.append({field: example[field] for field in HISTORY_FIELDS if field in example}
                         | {"data_version": _version(example)})
    ranked = {version: sorted((e for e in survivors if _version(e) == version),
                              key=lambda item: _stable_rank(_example_id(item)))[:per_version]
              for version in _version_order(survivors)}
    kept_ids = {_example_id(example) for examples in ranked.values() for example in examples}
    return [example for example in survivors if _example_id(example) in kept_ids]


def _write_suite(folder: Path, spec: SuiteSpec, cases: tuple[BenchmarkCase, ...]) -> None:
    """The suite as files (suite.yaml + cases.jsonl): `continuum benchmarks validate` can check it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUITE_FILE).write_text(yaml.safe_dump(spec.model_dump(exclude_none=True), sort_keys=False), encoding="utf-8")
    write_jsonl(folder / spec.data, ({"id": c.id, **_question(c), "target": c.target, "group": c.group} for c in cases))


def _question(case: BenchmarkCase) -> dict[str, Any]:
    """A case's question as cases.jsonl holds it: a prompt, or the chat ending with it."""
    if not case.context:
        return {"prompt": case.prompt}
    return {"messages": [*map(dict, case.context), {"role": "user", "content": case.prompt}]}


def write_history(folder: Path, history: list[dict[str, Any]]) -> Path:
    """`heldout.jsonl` under `folder` (written even when empty, so the output prefix always exists)."""
    write_jsonl(folder / HELDOUT_FILE, history)
    return folder / HELDOUT_FILE


def read_dirs(directories: Iterable[Path | None]) -> list[dict[str, Any]]:
    """Every prepared example under the given folders (JSONL; missing folders and markers such as `_EMPTY` ignored)."""
    return [example for directory in directories for example in read_examples(directory)]
