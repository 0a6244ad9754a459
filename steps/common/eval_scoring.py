"""Log-likelihood scoring: how likely a model finds each continuation of a context, in few forward passes.

Requests are sorted by length and batched up to a token budget. A request with several
continuations (multiple-choice options, classification labels) that share one context is packed
into ONE sequence: the context once, then every continuation, with a 4-D attention mask so each
continuation sees the context and itself only, and position ids that restart after the context.
One forward pass scores all options of a question without recomputing the shared prompt.
Models whose attention kernel cannot take a custom mask (flash attention) get one row per option.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from common.eval_model import LoadedModel

PACKABLE_ATTENTION = ("eager", "sdpa")


@dataclass(frozen=True)
class ScoringRequest:
    """A context (token ids, at least one) and the continuations to score after it."""

    context: tuple[int, ...]
    continuations: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class ContinuationScore:
    """Sum of log p(token | everything before) over a continuation's scored tokens."""

    logprob: float
    tokens: int
    greedy: bool
    truncated: bool


@dataclass(frozen=True)
class _Row:
    """One sequence of a batch and, per continuation it scores, (request, continuation, positions, targets)."""

    input_ids: list[int]
    position_ids: list[int]
    segments: list[int]  # 0 = context (a plain row is all context), i + 1 = packed continuation i
    targets: list[tuple[int, int, list[int], list[int], bool]]


def _fit(request: ScoringRequest, max_length: int) -> tuple[list[int], list[list[int]], list[bool]]:
    """Cut the context from the left (and over-long continuations from the right) so positions fit."""
    if not request.context:
        raise ValueError("a scoring request needs at least one context token")
    room = max_length - 1
    continuations = [list(c[:room]) for c in request.continuations]
    cut = [len(c) > room for c in request.continuations]
    longest = max((len(c) for c in continuations), default=0)
    context = list(request.context[-(max_length - longest):])
    return context, continuations, cut


def _packed_row(index: int, request: ScoringRequest, max_length: int) -> _Row:
    context, continuations, cut = _fit(request, max_length)
    ids, positions, segments = list(context), list(range(len(context))), [0] * len(context)
    targets = []
    for number, continuation in enumerate(continuations):
        start = len(ids)
        # Token 0 is predicted by the last context position, token k by the continuation's token k-1.
        predictors = [len(context) - 1] + [start + k for k in range(len(continuation) - 1)] if continuation else []
        targets.append((index, number, predictors, continuation, cut[number]))
        ids += continuation
        positions += range(len(context), len(context) + len(continuation))
        segments += [number + 1] * len(continuation)
    return _Row(ids, positions, segments, targets)


def _plain_rows(index: int, request: ScoringRequest, max_length: int) -> list[_Row]:
    context, continuations, cut = _fit(request, max_length)
    rows = []
    for number, continuation in enumerate(continuations):
        predictors = list(range(len(context) - 1, len(context) + len(continuation) - 1))
        ids = context + continuation
        rows.append(_Row(ids, list(range(len(ids))), [0] * len(ids), [(index, number, predictors, continuation, cut[number])]))
    return rows


def _batches(rows: list[_Row], max_batch_tokens: int, max_batch_size: int) -> Iterator[list[_Row]]:
    """Longest rows first; a batch grows while rows x longest row stays within the token budget."""
    ordered = sorted(rows, key=lambda row: len(row.input_ids), reverse=True)
    batch: list[_Row] = []
    for row in ordered:
        width = len(batch[0].input_ids) if batch else len(row.input_ids)
        if batch and ((len(batch) + 1) * width > max_batch_tokens or len(batch) >= max_batch_size):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def _packed_mask(batch: list[_Row], width: int, dtype: Any) -> Any:
    """(batch, 1, width, width) additive mask: causal, continuations see the context and themselves."""
    import torch

    segments = torch.full((len(batch), width), -1, dtype=torch.long)
    for row_number, row in enumerate(batch):
        segments[row_number, : len(row.segments)] = torch.tensor(row.segments)
    query, key = segments[:, :, None], segments[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = causal & (key != -1) & (query != -1) & ((key == 0) | (key == query))
    allowed |= torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves: no empty softmax
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def _forward(loaded: LoadedModel, batch: list[_Row], packed: bool) -> Any:
    import torch

    width = max(len(row.input_ids) for row in batch)
    input_ids = torch.full((len(batch), width), loaded.pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(batch), width), dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    for row_number, row in enumerate(batch):
        size = len(row.input_ids)
        input_ids[row_number, :size] = torch.tensor(row.input_ids)
        position_ids[row_number, :size] = torch.tensor(row.position_ids)
        attention[row_number, :size] = 1
    mask = _packed_mask(batch, width, loaded.model.dtype) if packed else attention
    with torch.no_grad():
        return loaded.model(
            input_ids=input_ids.to(loaded.device),
            attention_mask=mask.to(loaded.device),
            position_ids=position_ids.to(loaded.device),
        ).logits


def score_requests(
    loaded: LoadedModel,
    requests: Sequence[ScoringRequest],
    max_batch_tokens: int = 4096,
    max_batch_size: int = 64,
    packed: bool | None = None,
) -> list[list[ContinuationScore]]:
    """Scores of every continuation of every request, in request order."""
    import torch

    if packed is None:
        packed = getattr(loaded.model.config, "_attn_implementation", "eager") in PACKABLE_ATTENTION
    rows: list[_Row] = []
    for index, request in enumerate(requests):
        if packed and len(request.continuations) > 1:
            rows.append(_packed_row(index, request, loaded.max_length))
        else:
            rows.extend(_plain_rows(index, request, loaded.max_length))
    results: list[list[ContinuationScore | None]] = [[None] * len(r.continuations) for r in requests]
    for batch in _batches(rows, max_batch_tokens, max_batch_size):
        needs_mask = packed and any(max(row.segments) > 0 for row in batch)
        logits = _forward(loaded, batch, needs_mask)
        spans = [target for row in batch for target in row.targets]
        row_index = [number for number, row in enumerate(batch) for target in row.targets for _ in target[3]]
        positions = [position for row in batch for target in row.targets for position in target[2]]
        wanted = torch.tensor([token for row in batch for target in row.targets for token in target[3]],
                              dtype=torch.long, device=logits.device)
        if not positions:
            picked_logprobs = hits = torch.zeros(0, device=logits.device)
        else:  # one log-softmax over every scored position of the batch
            picked = logits[torch.tensor(row_index, device=logits.device), torch.tensor(positions, device=logits.device)]
            picked = picked.float()
            picked_logprobs = torch.log_softmax(picked, dim=-1).gather(1, wanted[:, None]).squeeze(1)
            hits = picked.argmax(dim=-1) == wanted
        start = 0
        for index, number, _, targets, cut in spans:
            end = start + len(targets)
            results[index][number] = ContinuationScore(
                float(picked_logprobs[start:end].sum()), len(targets), bool(hits[start:end].all()), cut
            )
            start = end
    return [[score for score in scores if score is not None] for scores in results]
