"""Log-likelihood scoring: how likely a model finds each continuation of a context, in few forward passes.

Requests are sorted by length and batched up to a token budget. A request with several
continuations (multiple-choice options, classification labels) that share one context is packed
into ONE sequence: the context once, then every continuation, with a 4-D attention mask so each
continuation sees the context and itself only, and position ids that restart after the context.
One forward pass scores all options of a question without recomputing the shared prompt.
Models whose attention kernel cannot take a custom mask (flash attention) get one row per option.
The opening that every request shares (the suite's template) is run once per call and reused as
a KV-cache prefix by every batch, and only the positions that are scored are projected to the
vocabulary (`logits_to_keep`).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from evaluate.forward import PrefixStore, SharedPrefix, accepted, cache_argument, padded
from evaluate.model import LoadedModel

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


def _packed_mask(batch: list[_Row], width: int, first_query: int, dtype: Any, boolean: bool) -> Any:
    """(batch, 1, width - first_query, width) mask of the queries from `first_query` on: causal, continuations
    see the context and themselves. Boolean (True = may attend) for SDPA, else additive (0 or the dtype's
    minimum) as eager attention adds it."""
    import torch

    # Padding (segment -1, only at the end of a row) is never a real query's context (0) or its own segment;
    # a padding query sees the context and earlier padding: no row of the mask is empty (no NaN softmax).
    segments = padded([row.segments for row in batch], width, -1)
    query, key = segments[:, first_query:, None], segments[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()[first_query:]
    allowed = causal & ((key == 0) | (key == query))
    if boolean:
        return allowed[:, None]
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def _forward(loaded: LoadedModel, batch: list[_Row], packed: bool, scored: Any, prefix: SharedPrefix) -> Any:
    """Logits at the `scored` (batch, width) positions, flattened in (row, position) order. The rows start
    with `prefix` (already run); only the scored positions are projected to the vocabulary where the
    model can (`logits_to_keep`), else they are picked from the full logits."""
    import torch

    model, device = loaded.model, loaded.device
    width = max(len(row.input_ids) for row in batch)
    shared = prefix.length
    pad = loaded.pad_id
    input_ids = padded([row.input_ids[shared:] for row in batch], width - shared, pad)
    position_ids = padded([row.position_ids[shared:] for row in batch], width - shared, 0)
    if packed:
        boolean = getattr(model.config, "_attn_implementation", "eager") == "sdpa"
        mask = _packed_mask(batch, width, shared, model.dtype, boolean)
    else:
        mask = padded([[1] * len(row.input_ids) for row in batch], width, 0)
    cache = prefix.cache_for(len(batch)) if shared else None
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), **cache_argument(model, cache),
                       **accepted(model, position_ids=position_ids.to(device),
                                  logits_to_keep=scored[:, shared:].to(device))).logits
    return logits if logits.dim() == 2 else logits[scored[:, shared:].to(logits.device)]


def _first_scored(row: _Row) -> int:
    """The first position whose logits the row needs (the last context token)."""
    return min((target[2][0] for target in row.targets if target[2]), default=len(row.input_ids) - 1)


def score_requests(
    loaded: LoadedModel,
    requests: Sequence[ScoringRequest],
    max_batch_tokens: int = 4096,
    max_batch_size: int = 64,
    packed: bool | None = None,
) -> list[list[ContinuationScore]]:
    """Scores of every continuation of every request, in request order."""
    if packed is None:
        packed = getattr(loaded.model.config, "_attn_implementation", "eager") in PACKABLE_ATTENTION
    rows: list[_Row] = []
    for index, request in enumerate(requests):
        if packed and len(request.continuations) > 1:
            rows.append(_packed_row(index, request, loaded.max_length))
        else:
            rows.extend(_plain_rows(index, request, loaded.max_length))
    prefixes = PrefixStore(loaded.model)  # the opening the rows share, run once for all batches
    results: list[list[ContinuationScore | None]] = [[None] * len(r.continuations) for r in requests]
    for batch in _batches(rows, max_batch_tokens, max_batch_size):
        for (index, number, *_), result in zip((target for row in batch for target in row.targets),
                                               _score_batch(loaded, batch, packed, prefixes)):
            results[index][number] = result
    return [[score for score in scores if score is not None] for scores in results]


def _score_batch(loaded: LoadedModel, batch: list[_Row], packed: bool, prefixes: PrefixStore) -> list[ContinuationScore]:
    """Scores of the batch's continuations, in the order of its rows' targets: one forward pass, then
    log p(token) = its logit - logsumexp(logits) at every scored position."""
    import torch

    targets: list[tuple[int, int, list[int], list[int], bool]] = []
    rows_of, positions_of, tokens_of, targets_of = [], [], [], []  # one entry per scored token
    for number, row in enumerate(batch):
        for target in row.targets:
            rows_of += [number] * len(target[3])
            positions_of += target[2]
            tokens_of += target[3]
            targets_of += [len(targets)] * len(target[3])
            targets.append(target)
    row_index, positions, wanted, of_target = (torch.tensor(values, dtype=torch.long)
                                               for values in (rows_of, positions_of, tokens_of, targets_of))
    scored = torch.zeros((len(batch), max(len(row.input_ids) for row in batch)), dtype=torch.bool)
    scored[row_index, positions] = True
    needs_mask = packed and any(max(row.segments) > 0 for row in batch)
    prefix = prefixes.for_rows([row.input_ids for row in batch], min(map(_first_scored, batch)))
    logits = _forward(loaded, batch, needs_mask, scored, prefix).float()  # (scored positions, vocabulary)
    sums = torch.zeros(len(targets), dtype=torch.float64)
    misses = torch.zeros(len(targets), dtype=torch.long)
    if len(positions):
        kept = scored.flatten().cumsum(0).sub_(1).view(scored.shape)[row_index, positions].to(logits.device)
        wanted = wanted.to(logits.device)
        top, best = logits.max(dim=-1)  # one pass: the greedy token and the shift for a stable logsumexp
        log_totals = top + (logits - top[:, None]).exp_().sum(dim=-1).log_()
        sums.index_add_(0, of_target, (logits[kept, wanted] - log_totals[kept]).cpu().double())
        misses.index_add_(0, of_target, (best[kept] != wanted).long().cpu())
    return [ContinuationScore(logprob, len(target[3]), missed == 0, target[4])
            for target, logprob, missed in zip(targets, sums.tolist(), misses.tolist())]
