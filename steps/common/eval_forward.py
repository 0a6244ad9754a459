"""Low-level pieces of the forward passes shared by generation and scoring: the optional arguments a
model takes, and a prompt prefix that every row shares, run through the model once.

The prompts of one suite open the same way (the template's header, an instruction, few-shot
examples). Computing the keys and values of that opening once per call, instead of once per row,
saves that part of every row; the rows attend to the shared keys exactly as to their own copy
(same tokens, same positions).
"""
from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

# A shared prefix is run separately only when it saves at least this many token positions
# (prefix length x the other rows): below that, the extra forward pass costs more than it saves.
MIN_TOKENS_SAVED = 256


def accepted(model: Any, **optional: Any) -> dict[str, Any]:
    """The optional forward arguments (logits_to_keep, position_ids, ...) that the model's class names in forward."""
    parameters = _forward_parameters(type(model))
    return {name: value for name, value in optional.items() if name in parameters}


@cache
def _forward_parameters(model_class: type) -> frozenset[str]:
    return frozenset(inspect.signature(model_class.forward).parameters)


def shared_prefix_length(rows: Sequence[Sequence[int]], limit: int) -> int:
    """How many leading tokens every row has in common, at most `limit`; 0 when sharing would not pay."""
    if len(rows) < 2 or limit < 1:
        return 0
    first, length = rows[0], min(limit, *(len(row) for row in rows))
    for row in rows[1:]:
        length = next((k for k in range(length) if row[k] != first[k]), length)
    return length if length * (len(rows) - 1) >= MIN_TOKENS_SAVED else 0


@dataclass(frozen=True)
class SharedPrefix:
    """The leading tokens shared by every row of a call, and their keys and values (one row), or none."""

    length: int
    cache: Any = None

    @classmethod
    def of(cls, model: Any, rows: Sequence[Sequence[int]], limit: int) -> SharedPrefix:
        """The prefix shared by `rows` (at most `limit` tokens), run through the model once if it pays."""
        import torch
        from transformers import DynamicCache

        length = shared_prefix_length(rows, limit)
        if not length:
            return cls(0)
        prefix_cache = DynamicCache(config=model.config)
        with torch.inference_mode():
            model(input_ids=torch.tensor([list(rows[0][:length])], device=model.device), past_key_values=prefix_cache,
                  use_cache=True, **accepted(model, logits_to_keep=1))
        return cls(length, prefix_cache)

    def cache_for(self, rows: int) -> Any:
        """A fresh DynamicCache for a batch of `rows`: the prefix's keys and values in every row, or empty."""
        if self.cache is None:
            return None
        batch_cache = copy.deepcopy(self.cache)
        batch_cache.batch_repeat_interleave(rows)
        return batch_cache
