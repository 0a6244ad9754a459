"""Training data: prompt template choice, encoding with replay weights, the step plan, and batches.

Examples are encoded by `common.examples.encode_example` (shared with evaluation: the same
completion tokens are scored); a chat with a system message or earlier turns is rendered as that
conversation (`common.prompting`), with the loss on its final reply. A step's batch is either one
packed row (examples back to back, position_ids restarting at 0 for each, so the attention kernels
keep examples apart) or a right-padded matrix. Replayed examples (source `replay:...`, written by the prepare step) carry
the loss weight `replay_weight`.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.examples import IGNORE_INDEX, ExampleError, encode_example
from common.prompting import DEFAULT_PROMPT_TEMPLATE, chat_prompt_template, conversation_format, validate_template

REPLAY_SOURCE_PREFIX = "replay:"


@dataclass(frozen=True)
class TrainExample:
    """One encoded example with its loss weight."""

    input_ids: list[int]
    labels: list[int]
    weight: float
    replay: bool
    id: str = ""  # the prepared record's id and source (replay selection names them)
    source: str = ""


@dataclass
class Batch:
    """Tensors for one step: `inputs` go to the model; labels/weights/segments stay for the loss."""

    inputs: dict[str, Any]
    labels: Any  # (rows, T) long, IGNORE_INDEX where not scored
    weights: Any  # (rows, T) float, the loss weight of each label
    segments: Any  # (rows, T) long, index of the example in the batch (-1: padding)
    example_count: int
    token_count: int  # real (non-padding) tokens

    def to(self, device: Any) -> Batch:
        moved = {key: value.to(device, non_blocking=True) if hasattr(value, "to") else value
                 for key, value in self.inputs.items()}
        return Batch(moved, self.labels.to(device, non_blocking=True), self.weights.to(device, non_blocking=True),
                     self.segments.to(device, non_blocking=True), self.example_count, self.token_count)


# ---------------------------------------------------------------- prompt template


def resolve_prompt_template(requested: str, metadata: dict[str, Any], tokenizer: Any) -> tuple[str, str]:
    """(template, where it came from): --prompt_template, else the starting model's, else chat template, else default."""
    if requested != "auto":
        return validate_template(requested), "--prompt_template"
    if metadata.get("prompt_template") is not None:
        return validate_template(metadata["prompt_template"]), "starting model (continuum.json)"
    chat = chat_prompt_template(tokenizer)
    if chat is not None:
        return chat, "tokenizer chat template"
    return DEFAULT_PROMPT_TEMPLATE, "default"


# ---------------------------------------------------------------- encoding


def is_replay(record: dict[str, Any]) -> bool:
    return str(record.get("source", "")).startswith(REPLAY_SOURCE_PREFIX)


def encode_records(
    records: list[dict[str, Any]], tokenizer: Any, template: str, max_length: int, replay_weight: float
) -> tuple[list[TrainExample], int]:
    """(encoded examples, how many did not fit a completion token within max_length); ExampleError naming
    the example's source when its chat cannot be rendered."""
    fmt = conversation_format(template, tokenizer)
    encoded: list[TrainExample] = []
    skipped = 0
    for record in records:
        try:
            example = encode_example(tokenizer, fmt, record["prompt"], record["completion"], max_length,
                                     record.get("messages"))
        except ValueError as exc:
            raise ExampleError(f"example {record.get('id')} ({record.get('source')}): {exc}") from exc
        if example is None:
            skipped += 1
            continue
        replay = is_replay(record)
        encoded.append(TrainExample(example.input_ids, example.labels, replay_weight if replay else 1.0, replay,
                                    str(record.get("id") or ""), str(record.get("source") or "")))
    return encoded, skipped


# ---------------------------------------------------------------- the step plan


def token_budget(lengths: list[int], batch_size: int, tokens_per_batch: int) -> int:
    """Tokens per packed step: --tokens_per_batch, else batch_size x mean length; never below the longest example."""
    budget = tokens_per_batch or math.ceil(batch_size * sum(lengths) / max(len(lengths), 1))
    return max(budget, max(lengths, default=1))


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    """A seeded shuffle of range(count) that depends only on (seed, epoch): resumable at any step."""
    order = list(range(count))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def group_batches(order: list[int], lengths: list[int], batch_size: int, budget: int | None) -> list[list[int]]:
    """Consecutive examples of `order` grouped into batches of up to `budget` tokens (packing) or
    `batch_size` examples (budget None)."""
    if budget is None:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index in order:
        if current and used + lengths[index] > budget:
            batches.append(current)
            current, used = [], 0
        current.append(index)
        used += lengths[index]
    if current:
        batches.append(current)
    return batches


def epoch_batches(lengths: list[int], seed: int, epoch: int, batch_size: int, budget: int | None,
                  members: list[int] | None = None) -> list[list[int]]:
    """One epoch's batches: the epoch's seeded shuffle (of `members`, else of every example), grouped."""
    if members is None:
        return group_batches(epoch_order(len(lengths), seed, epoch), lengths, batch_size, budget)
    return group_batches([members[i] for i in epoch_order(len(members), seed, epoch)], lengths, batch_size, budget)


def step_plan(lengths: list[int], seed: int, epochs: float, max_steps: int, batch_size: int,
              budget: int | None, members: Callable[[int], list[int]] | None = None) -> list[list[int]]:
    """Every step's example indices, epoch after epoch: `max_steps` steps when > 0, else `epochs` epochs
    (a fractional last epoch takes that share of its batches); at least one step. `members(epoch)`: the
    examples of an epoch (default: all of them)."""
    if not lengths:
        raise ValueError("no training examples to plan steps for")
    plan: list[list[int]] = []
    epoch = 0
    while True:
        batches = epoch_batches(lengths, seed, epoch, batch_size, budget, members(epoch) if members else None)
        if max_steps > 0:
            plan.extend(batches[: max_steps - len(plan)])
            if len(plan) >= max_steps:
                return plan
        else:
            remaining = epochs - epoch
            if remaining >= 1:
                plan.extend(batches)
            else:
                plan.extend(batches[: round(remaining * len(batches))])
            if remaining <= 1:
                return plan or batches[:1]
        epoch += 1


# ---------------------------------------------------------------- batches


def collate_packed(examples: list[TrainExample], pad_id: int, pad_to: int | None = None,
                   flash_kwargs: bool = False) -> Batch:
    """One row: examples back to back, position_ids restarting at 0 for each (transformers builds a
    block-diagonal causal mask from them, or flash-attention varlen runs per example), the first
    label of every example ignored so no example predicts from the one before it. `pad_to` pads
    the row to a fixed length (a separate all-ignored segment) for torch.compile."""
    import torch

    input_ids: list[int] = []
    positions: list[int] = []
    labels: list[int] = []
    weights: list[float] = []
    segments: list[int] = []
    for index, example in enumerate(examples):
        size = len(example.input_ids)
        input_ids += example.input_ids
        positions += range(size)
        labels += [IGNORE_INDEX, *example.labels[1:]]
        weights += [example.weight] * size
        segments += [index] * size
    real = len(input_ids)
    lengths = [len(example.input_ids) for example in examples]
    if pad_to is not None and pad_to > real:
        extra = pad_to - real
        input_ids += [pad_id] * extra
        positions += range(extra)
        labels += [IGNORE_INDEX] * extra
        weights += [0.0] * extra
        segments += [-1] * extra
        lengths.append(extra)
    inputs: dict[str, Any] = {
        "input_ids": torch.tensor([input_ids]),
        "position_ids": torch.tensor([positions]),
    }
    if flash_kwargs:
        cumulative = torch.tensor([0, *lengths], dtype=torch.int32).cumsum(0, dtype=torch.int32)
        inputs.update(cu_seq_lens_q=cumulative, cu_seq_lens_k=cumulative,
                      max_length_q=max(lengths), max_length_k=max(lengths))
    return Batch(inputs, torch.tensor([labels]), torch.tensor([weights]), torch.tensor([segments]), len(examples), real)


def collate_padded(examples: list[TrainExample], pad_id: int) -> Batch:
    """Right-padded rows with an attention mask (no packing)."""
    import torch

    width = max(len(example.input_ids) for example in examples)
    rows = len(examples)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    labels = torch.full((rows, width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((rows, width), dtype=torch.long)
    weights = torch.zeros((rows, width))
    segments = torch.full((rows, width), -1, dtype=torch.long)
    for row, example in enumerate(examples):
        size = len(example.input_ids)
        input_ids[row, :size] = torch.tensor(example.input_ids)
        labels[row, :size] = torch.tensor(example.labels)
        mask[row, :size] = 1
        weights[row, :size] = example.weight
        segments[row, :size] = row
    inputs = {"input_ids": input_ids, "attention_mask": mask}
    return Batch(inputs, labels, weights, segments, rows, int(mask.sum()))


def make_batch(examples: list[TrainExample], pad_id: int, packing: bool, pad_to: int | None = None,
               flash_kwargs: bool = False) -> Batch:
    """A packed or padded batch, as configured."""
    if packing:
        return collate_packed(examples, pad_id, pad_to, flash_kwargs)
    return collate_padded(examples, pad_id)
