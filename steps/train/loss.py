"""The completion-only, weighted language-model loss, computed on scored positions only.

Logits are produced only where a label follows (`logits_to_keep` as a boolean mask), so prompt
positions never reach the (large) vocabulary projection.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from common.examples import IGNORE_INDEX
from train.data import Batch


@dataclass
class TokenLosses:
    """Per scored token: its negative log-likelihood, loss weight and example index in the batch."""

    nll: Any
    weights: Any
    segments: Any
    logits: Any = None  # (scored tokens, vocab): the predictions the NLL was computed from
    targets: Any = None  # (scored tokens,): the tokens they should predict

    def weighted_mean(self) -> Any:
        """sum(w * nll) / sum(w); 0 (with a gradient) when nothing is scored."""
        total = self.weights.sum()
        return (self.nll * self.weights).sum() / total.clamp_min(1e-12)

    def per_example(self, count: int) -> Any:
        """Mean NLL of each example (NaN for an example with no scored token)."""
        import torch

        sums = torch.zeros(count, device=self.nll.device).index_add_(0, self.segments, self.nll.float())
        counts = torch.zeros(count, device=self.nll.device).index_add_(0, self.segments, torch.ones_like(self.nll))
        return sums / counts


def autocast_context(bf16: bool, device_type: str) -> Any:
    """bf16 autocast on GPUs (fp32 adapter weights, bf16 matmuls); nothing otherwise."""
    import torch

    return torch.autocast(device_type=device_type, dtype=torch.bfloat16) if bf16 else nullcontext()


def scored_positions(labels: Any) -> Any:
    """The positions whose next token is scored (an answer token follows): where logits are needed."""
    import torch

    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return keep


def token_losses(model: Any, batch: Batch) -> TokenLosses:
    """Forward `batch` and return the NLL of every scored next-token prediction."""
    import torch

    labels = batch.labels
    keep = scored_positions(labels)
    logits = model(**batch.inputs, logits_to_keep=keep, use_cache=False).logits
    targets = labels[:, 1:][keep[:, :-1]]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets, reduction="none")
    return TokenLosses(nll, batch.weights[:, 1:][keep[:, :-1]].float(), batch.segments[:, 1:][keep[:, :-1]],
                       logits.reshape(-1, logits.shape[-1]), targets)
