"""Prepared examples: reading the JSONL, and tokenizing them for a completion-only loss.

Shared by training and evaluation so both score exactly the same tokens. An example whose `messages`
carry context (a system message or earlier turns) is rendered as that conversation
(`common.prompting.example_prompt_text`); the loss stays on the final reply.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.prompting import (ConversationFormat, Message, check_messages, conversation_format, example_prompt_text,
                              has_context)

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
    if record.get("messages") is not None:
        try:
            messages = check_messages(record["messages"])
        except ValueError as exc:
            raise ExampleError(f"{path}:{line_no}: {exc}") from exc
        if messages[-1] != {"role": "assistant", "content": record["completion"]}:
            raise ExampleError(f"{path}:{line_no}: field 'messages' must end with the assistant reply that 'completion' holds")
    return record


def encode_example(tokenizer: Any, template: str | ConversationFormat, prompt: str, completion: str, max_length: int,
                   messages: list[Message] | None = None) -> EncodedExample | None:
    """Tokenize the prompt text + completion + EOS; mask the prompt; None if no completion token fits.

    The prompt text is template(prompt), or the conversation when `messages` (the record's chat, ending
    with the completion) carry context. Pass a `ConversationFormat` (`conversation_format(template,
    tokenizer)`) when encoding many examples: built from a bare template string it is made per call.
    """
    if isinstance(template, str):
        context = messages[:-1] if messages else []
        fmt = conversation_format(template, tokenizer if context and has_context(context) else None)
    else:
        fmt = template
    prompt_ids = tokenizer(example_prompt_text(fmt, prompt, messages), add_special_tokens=True)["input_ids"]
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
