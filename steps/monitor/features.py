"""Features of LLM traffic that drift checks compare: per-prompt and per-response, cheap enough for 100k rows.

Inputs: prompt length (words), first word (the question type: what / how / …), character set
(ascii / mixed / non_ascii), the words themselves (for the out-of-vocabulary rate and the
embedding). Outputs: response length, empty responses, refusals.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

WORD = re.compile(r"\w+(?:'\w+)?")
REFUSAL = re.compile(
    r"\b(?:i\s*(?:am|'m)\s+(?:sorry|unable|not able)|i\s+(?:can(?:no|')t|cannot|won't|will not)\s+"
    r"(?:help|answer|assist|provide|do that)|as an ai\b|i\s+do(?:n't| not)\s+have\s+(?:access|information))",
    re.IGNORECASE)
TOP_CATEGORIES = 20
OTHER = "<other>"
EMPTY = "<empty>"


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def charset(text: str) -> str:
    """``ascii`` / ``mixed`` (under 30% non-ASCII letters) / ``non_ascii``."""
    if text.isascii():
        return "ascii"
    letters = [c for c in text if c.isalpha()]
    share = sum(not c.isascii() for c in letters) / max(len(letters), 1)
    return "non_ascii" if share >= 0.3 else "mixed"


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.search(text))


@dataclass
class TextFeatures:
    """Column-wise features of a set of prompts and (optionally captured) responses."""

    prompt_length: np.ndarray
    first_word: list[str]
    charset: list[str]
    prompt_words: list[list[str]]
    response_length: np.ndarray  # responses present only
    empty: np.ndarray  # bool, responses present only
    refusal: np.ndarray  # bool, responses present only
    responses_missing: int = 0
    max_new_tokens: Counter = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return len(self.first_word)


def extract(prompts: list[str], responses: list[str | None], max_new_tokens: Iterable[int | None] = ()) -> TextFeatures:
    """Features of prompts and their responses (a None response was not captured)."""
    prompt_words = [words(p) for p in prompts]
    present = [r for r in responses if r is not None]
    missing = len(responses) - len(present)
    response_words = [words(r) for r in present]
    return TextFeatures(
        prompt_length=np.fromiter((len(w) for w in prompt_words), dtype=np.int64, count=len(prompt_words)),
        first_word=[w[0] if w else EMPTY for w in prompt_words],
        charset=[charset(p) for p in prompts],
        prompt_words=prompt_words,
        response_length=np.fromiter((len(w) for w in response_words), dtype=np.int64, count=len(response_words)),
        empty=np.fromiter((not r.strip() for r in present), dtype=bool, count=len(present)),
        refusal=np.fromiter((is_refusal(r) for r in present), dtype=bool, count=len(present)),
        responses_missing=missing,
        max_new_tokens=Counter(t for t in max_new_tokens if t is not None),
    )


def top_categories(values: list[str], limit: int = TOP_CATEGORIES) -> list[str]:
    """The ``limit`` most frequent values (ties by value), the categories a baseline keeps."""
    counts = Counter(values)
    return [value for value, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]]


def category_counts(values: list[str], categories: list[str]) -> dict[str, int]:
    """Counts over ``categories`` plus ``<other>`` for anything else."""
    known = set(categories)
    counts = Counter(v if v in known else OTHER for v in values)
    return {c: counts.get(c, 0) for c in [*categories, OTHER]}


def vocabulary(word_lists: Iterable[list[str]], min_count: int = 1) -> set[str]:
    counts = Counter(w for ws in word_lists for w in ws)
    return {w for w, c in counts.items() if c >= min_count}


def oov_rate(word_lists: list[list[str]], known: set[str]) -> float:
    """Share of words not in ``known`` (0.0 when there are no words)."""
    total = sum(len(ws) for ws in word_lists)
    if total == 0:
        return 0.0
    return sum(1 for ws in word_lists for w in ws if w not in known) / total
