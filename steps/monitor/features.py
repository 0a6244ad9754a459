"""Features of LLM traffic, from the normalised text (monitor/text.py), cheap enough for 100k rows.

Prompts: the normalised text, its words and its length in words. Responses (when captured): length in
words, empty (nothing left after normalisation: blank, NBSP, zero-width) and refusal.
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
    prompt_words: list[list[str]]
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
    prompt_words = [words(p) for p in normal_prompts]
    present = [normalise(r) for r in responses if r is not None]
    return TextFeatures(
        prompts=normal_prompts,
        prompt_words=prompt_words,
        prompt_length=np.fromiter((len(w) for w in prompt_words), dtype=np.int64, count=len(prompt_words)),
        response_length=np.fromiter((len(words(r)) for r in present), dtype=np.int64, count=len(present)),
        empty=np.fromiter((not r for r in present), dtype=bool, count=len(present)),
        refusal=np.fromiter((is_refusal(r) for r in present), dtype=bool, count=len(present)),
        responses_missing=len(responses) - len(present),
        max_new_tokens=Counter(t for t in max_new_tokens if t is not None),
    )


def vocabulary(word_lists: Iterable[list[str]]) -> set[str]:
    return {w for ws in word_lists for w in ws}
