"""Low-level pieces of the forward passes shared by generation and scoring: the optional arguments a
model takes, and prompt prefixes that every row of a batch shares, each run through the model once.

The prompts of one suite open the same way (the template's header, an instruction, few-shot
examples). Computing the keys and values of that opening once, instead of once per row, saves
that part of every row; the rows attend to the shared keys exactly as to their own copy (same
tokens, same positions). Later batches that open the same way reuse it.
"""
from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

# A new shared prefix is run only when it saves at least this many token positions (its length x the
# other rows of the batch): below that, the extra forward pass costs more than it saves.
MIN_TOKENS_SAVED = 256


def accepted(model: Any, **optional: Any) -> dict[str, Any]:
    """The optional forward arguments (logits_to_keep, position_ids, ...) that the model's class names in forward."""
    parameters = _forward_parameters(type(model))
    return {name: value for name, value in optional.items() if name in parameters}


def cache_argument(model: Any, kv_cache: Any) -> dict[str, Any]:
    """The keyword that passes a Cache object to the model: `cache` where its forward names it (transformers
    5.x, where `past_key_values` is deprecated), else `past_key_values` (transformers 4.x)."""
    return {"cache" if "cache" in _forward_parameters(type(model)) else "past_key_values": kv_cache}


@cache
def _forward_parameters(model_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(model_class.forward).parameters)


def padded(rows: Sequence[Sequence[int]], width: int, fill: int, left: bool = False) -> Any:
    """A (rows, width) long tensor of the rows, padded with `fill` on the right (or the left)."""
    import numpy as np
    import torch

    array = np.full((len(rows), width), fill, dtype=np.int64)
    for number, row in enumerate(rows):
        start = width - len(row) if left else 0
        array[number, start:start + len(row)] = row
    return torch.from_numpy(array)


def common_prefix_length(rows: Sequence[Sequence[int]], limit: int) -> int:
    """How many leading tokens all rows have in common, at most `limit`."""
    if not rows or limit < 1:
        return 0
    first, length = rows[0], min(limit, *(len(row) for row in rows))
    for row in rows[1:]:
        length = next((k for k in range(length) if row[k] != first[k]), length)
    return length


@dataclass(frozen=True)
class SharedPrefix:
    """Leading tokens that every row of a batch starts with, and their keys and values (one row), or none."""

    tokens: tuple[int, ...] = ()
    cache: Any = None

    @property
    def length(self) -> int:
        return len(self.tokens)

    def cache_for(self, rows: int) -> Any:
        """A fresh DynamicCache for a batch of `rows`: the prefix's keys and values in every row."""
        if self.cache is None:
            raise ValueError("the empty prefix has no cache")
        batch_cache = copy.deepcopy(self.cache)
        batch_cache.batch_repeat_interleave(rows)
        return batch_cache


class PrefixStore:
    """The shared prefixes of one call's batches: each is run through the model once, later batches reuse it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._known: list[SharedPrefix] = []

    def for_rows(self, rows: Sequence[Sequence[int]], limit: int) -> SharedPrefix:
        """The prefix for a batch whose rows must keep at least the tokens from `limit` on: the longest known
        prefix they all start with, or their own common prefix if running it saves MIN_TOKENS_SAVED more."""
        import torch
        from transformers import DynamicCache

        common = common_prefix_length(rows, limit)
        first = tuple(rows[0][:common])
        best = max((known for known in self._known if first[:known.length] == known.tokens),
                   key=lambda known: known.length, default=SharedPrefix())
        if (common - best.length) * (len(rows) - 1) < MIN_TOKENS_SAVED:
            return best
        prefix_cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            self.model(input_ids=torch.tensor([list(first)], device=self.model.device), use_cache=True,
                       **cache_argument(self.model, prefix_cache), **accepted(self.model, logits_to_keep=1))
        self._known.append(SharedPrefix(first, prefix_cache))
        return self._known[-1]
