"""Forward-only passes over examples (no backward): the logits where an answer token is predicted, and the margins
and losses read off them. The replay selections, online replay's refreshes and distill's teacher all use them."""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from train.data import TrainExample, group_batches, make_batch


@dataclass
class ScoredBatch:
    """One packed forward: the examples' indices, and per scored position its logits, target and example."""

    indices: list[int]
    logits: Any  # (scored positions, vocab), float32
    targets: Any  # (scored positions,)
    segments: Any  # (scored positions,): the position's example, 0..len(indices)-1

    def margins_and_losses(self) -> tuple[list[float], list[float]]:
        """Per example: (min over its answer tokens of the token's logit minus the best other logit: < 0 where
        greedy decoding leaves the answer; inf without an answer token) and its mean NLL (0 without one)."""
        import torch

        count = len(self.indices)
        nll = torch.nn.functional.cross_entropy(self.logits, self.targets, reduction="none")
        sums = torch.zeros(count, device=self.logits.device).index_add_(0, self.segments, nll)
        counts = torch.zeros(count, device=self.logits.device).index_add_(0, self.segments, torch.ones_like(nll))
        losses = [total / n if n else 0.0 for total, n in zip(sums.tolist(), counts.tolist())]
        return lowest_margins(self.logits, self.targets, self.segments, count), losses


def lowest_margins(logits: Any, targets: Any, segments: Any, count: int) -> list[float]:
    """Per example (`count` segments): the lowest, over its scored positions, of the target's logit minus the best
    other logit (< 0: greedy decoding leaves the answer); inf for an example with no scored position."""
    import torch

    logits = logits.detach().float()
    target_logit = logits.gather(1, targets[:, None])[:, 0]
    other = logits.scatter(1, targets[:, None], float("-inf")).max(dim=1).values
    lowest = torch.full((count,), math.inf, device=logits.device)
    return lowest.scatter_reduce_(0, segments, target_logit - other, "amin").tolist()


def scored_batches(model: Any, examples: Sequence[TrainExample], pad_id: int, tokens_per_batch: int,
                   bf16: bool = False) -> Iterator[ScoredBatch]:
    """`examples` packed into rows of up to `tokens_per_batch` tokens, forwarded once each in eval mode without
    gradients; logits only where a label follows (the answer's tokens)."""
    import torch

    from train.loss import autocast_context, scored_positions

    if not examples:
        return
    device = next(model.parameters()).device
    lengths = [len(example.input_ids) for example in examples]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for indices in group_batches(list(range(len(examples))), lengths, 1, max(tokens_per_batch, max(lengths))):
                batch = make_batch([examples[i] for i in indices], pad_id, packing=True).to(device)
                keep = scored_positions(batch.labels)
                with autocast_context(bf16, device.type):
                    logits = model(**batch.inputs, logits_to_keep=keep, use_cache=False).logits
                yield ScoredBatch(indices, logits.reshape(-1, logits.shape[-1]).float(),
                                  batch.labels[:, 1:][keep[:, :-1]], batch.segments[:, 1:][keep[:, :-1]])
    finally:
        model.train(was_training)


def answer_margins(model: Any, examples: Sequence[TrainExample], pad_id: int, tokens_per_batch: int,
                   bf16: bool = False) -> tuple[list[float], list[float]]:
    """(margin, mean NLL) of each example's answer under `model` (ScoredBatch.margins_and_losses); one pass."""
    margins = [math.inf] * len(examples)
    losses = [0.0] * len(examples)
    for scored in scored_batches(model, examples, pad_id, tokens_per_batch, bf16):
        for index, margin, loss in zip(scored.indices, *scored.margins_and_losses()):
            margins[index], losses[index] = margin, loss
    return margins, losses
