"""Prompt/completion examples: reading the prepared JSONL, and tokenizing them for a completion-only loss.

Shared by training and evaluation so both score exactly the same tokens.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.prompting import format_prompt

IGNORE_INDEX = -100


class ExampleError(ValueError):
    """A prepared example file that cannot be used; the message names file and line."""


@dataclass(frozen=True)
class EncodedExample:
    """One tokenized example: the full sequence and its labels (prompt positions masked)."""

    input_ids: list[int]
    labels: list[int]


def read_examples(folder: Path | None) -> list[dict[str, Any]]:
    """All prompt/completion records from the *.jsonl files under `folder` (none if absent), in path order."""
    if folder is None or not Path(folder).is_dir():
        return []
    examples: list[dict[str, Any]] = []
    for path in sorted(Path(folder).rglob("*.jsonl")):
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                examples.append(parse_example(path, line_no, line))
    return examples


def parse_example(path: Path, line_no: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ExampleError(f"{path}:{line_no}: not valid JSON: {exc.msg}") from exc
    if not isinstance(record, dict):
        raise ExampleError(f"{path}:{line_no}: expected a JSON object")
    for field in ("prompt", "completion"):
        if not isinstance(record.get(field), str):
            raise ExampleError(f"{path}:{line_no}: field '{field}' is missing or not a string")
    return record


def encode_example(tokenizer: Any, template: str, prompt: str, completion: str, max_length: int) -> EncodedExample | None:
    """Tokenize template(prompt) + completion + EOS; mask the prompt; None if no completion token fits."""
    prompt_ids = tokenizer(format_prompt(template, prompt), add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        completion_ids = [*completion_ids, tokenizer.eos_token_id]
    input_ids = (prompt_ids + completion_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + completion_ids)[:max_length]
    if all(label == IGNORE_INDEX for label in labels[1:]):
        return None
    return EncodedExample(input_ids=input_ids, labels=labels)


def collate(batch: list[EncodedExample], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch into input_ids / attention_mask / labels tensors."""
    import torch

    width = max(len(ex.input_ids) for ex in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ex in enumerate(batch):
        size = len(ex.input_ids)
        input_ids[row, :size] = torch.tensor(ex.input_ids)
        labels[row, :size] = torch.tensor(ex.labels)
        attention_mask[row, :size] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
