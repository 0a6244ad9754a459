"""Features of LLM traffic, from the normalised text (monitor/text.py), cheap enough for 100k rows.

Prompts: the normalised text and its length in words (whitespace-separated). Responses (when captured):
length in words, empty (nothing left after normalisation: blank, NBSP, zero-width) and refusal. The
words themselves (monitor/text.py ``words``) are read only for the prompts a check scores.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from monitor.text import is_refusal, normalise, words


@dataclass
class TextFeatures:
    """Column-wise features of a set of prompts and (optionally captured) responses."""

    prompts: list[str]  # normalised
    prompt_length: np.ndarray
    response_length: np.ndarray  # responses present only
    empty: np.ndarray  # bool, responses present only
    refusal: np.ndarray  # bool, responses present only
    responses_missing: int = 0
    max_new_tokens: Counter = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return len(self.prompts)


def extract(prompts: list[str], responses: list[str | None], max_new_tokens: Iterable[int | None] = ()) -> TextFeatures:
    """Features of prompts and their responses (a None response was not captured)."""
    normal_prompts = [normalise(p) for p in prompts]
    present = [normalise(r) for r in responses if r is not None]
    return TextFeatures(
        prompts=normal_prompts,
        prompt_length=np.fromiter((p.count(" ") + 1 if p else 0 for p in normal_prompts), dtype=np.int64,
                                  count=len(normal_prompts)),
        response_length=np.fromiter((r.count(" ") + 1 if r else 0 for r in present), dtype=np.int64,
                                    count=len(present)),
        empty=np.fromiter((not r for r in present), dtype=bool, count=len(present)),
        refusal=np.fromiter((is_refusal(r) for r in present), dtype=bool, count=len(present)),
        responses_missing=len(responses) - len(present),
        max_new_tokens=Counter(t for t in max_new_tokens if t is not None),
    )


def vocabulary(word_lists: Iterable[list[str]]) -> set[str]:
    return {w for ws in word_lists for w in ws}


def prompt_words(features: TextFeatures, positions: Iterable[int]) -> list[list[str]]:
    """The words of the prompts at ``positions``."""
    return [words(features.prompts[i]) for i in positions]
