"""Per-prompt signals that see what a prompt is about, and their calibration on the training prompts.

- **topic coverage**: how much of the closest training question the prompt contains, with each word
  weighted by its squared IDF over the training prompts (names and subject words count, "what is the"
  hardly). A polite rephrasing still contains its question (coverage ≈ 1); an off-topic question or
  one in another language covers little of any training question. Words the training data never used
  are ignored, so greetings and thanks cost nothing.
- **unseen letters**: the share of a prompt's letters outside the training prompts' alphabet (a
  letter of a script the training data writes in, without a diacritic, counts as seen): other
  scripts and accented languages.
- **prompt length** in words: pasted documents.

Each is turned into a per-prompt flag by a threshold calibrated on the training prompts themselves:
K-fold cross-fitting (each fold scored against an index of the other folds), the threshold at the
``outlier_quantile`` of those held-out scores, so a new prompt like the training data is flagged with
probability about ``outlier_quantile``. A check then tests whether the traffic's flagged share exceeds
that rate (one-sided binomial test on a sample), which is what a topic shift of a few tens of percent
looks like, while traffic that only rephrases the training questions is flagged less than held-out
training prompts are.
"""
from __future__ import annotations

import math
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import sparse
from scipy.stats import binom


class TopicIndex:
    """The training prompts as IDF²-weighted word sets; ``coverage`` scores prompts against them."""

    def __init__(self, reference: list[list[str]]) -> None:
        documents = sorted({tuple(sorted(set(ws))) for ws in reference if ws})
        if not documents:
            raise ValueError("no reference prompt with words to index")
        frequency = Counter(w for doc in documents for w in doc)
        self.columns = {w: i for i, w in enumerate(sorted(frequency))}
        n = len(documents)
        idf = np.array([math.log((1 + n) / (1 + frequency[w])) + 1.0 for w in sorted(frequency)])
        rows = np.repeat(np.arange(n), [len(doc) for doc in documents])
        cols = np.array([self.columns[w] for doc in documents for w in doc])
        weights = sparse.csr_matrix((idf[cols] ** 2, (rows, cols)), shape=(n, len(self.columns)))
        totals = np.asarray(weights.sum(axis=1)).ravel()
        self.weights = sparse.diags(1.0 / totals) @ weights  # each training question's weights sum to 1

    def coverage(self, prompts: list[list[str]]) -> np.ndarray:
        """Per prompt: the largest share of one training question's weight that the prompt's words hold."""
        if not prompts:
            return np.zeros(0)
        pairs = {(r, self.columns[w]) for r, ws in enumerate(prompts) for w in ws if w in self.columns}
        if not pairs:
            return np.zeros(len(prompts))
        rows, cols = zip(*pairs)
        present = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(prompts), len(self.columns)))
        best = (present @ self.weights.T).max(axis=1)
        return np.minimum(np.asarray(best.todense()).ravel(), 1.0)


def _script(letter: str) -> str:
    name = unicodedata.name(letter, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


@dataclass(frozen=True)
class Alphabet:
    """The letters of the training prompts, and the scripts they belong to."""

    letters: frozenset[str]
    scripts: frozenset[str] = field(default=frozenset())

    @classmethod
    def of(cls, texts: list[str]) -> Alphabet:
        letters = frozenset(ch for text in texts for ch in text if ch.isalpha())
        return cls(letters, frozenset(_script(ch) for ch in letters))

    def unseen_share(self, texts: list[str]) -> np.ndarray:
        """Per text: unseen letters / letters (0 for a text without letters)."""
        seen = lru_cache(maxsize=None)(self._seen)
        shares = np.zeros(len(texts))
        for i, text in enumerate(texts):
            letters = [ch for ch in text if ch.isalpha()]
            if letters:
                shares[i] = sum(not seen(ch) for ch in letters) / len(letters)
        return shares

    def _seen(self, letter: str) -> bool:
        return letter in self.letters or (_script(letter) in self.scripts and not unicodedata.decomposition(letter))


@dataclass(frozen=True)
class OutlierShare:
    """Flagged prompts in a sample, tested against the rate expected of prompts like the training data."""

    flagged: int
    size: int
    null_rate: float
    p_value: float
    interval: tuple[float, float]  # 95% Wilson interval of the flagged share

    @property
    def share(self) -> float:
        return self.flagged / self.size if self.size else 0.0


def outlier_share(flags: np.ndarray, null_rate: float) -> OutlierShare:
    """One-sided binomial test of "flagged share ≤ null_rate" on the flags of a sample."""
    size, flagged = int(len(flags)), int(np.sum(flags))
    p_value = float(binom.sf(flagged - 1, size, null_rate)) if size else 1.0
    return OutlierShare(flagged, size, null_rate, p_value, wilson_interval(flagged, size))


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def cross_fitted_scores(prompts: list[str], prompt_words: list[list[str]], folds: int,
                        seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(topic coverage, unseen-letter share, folds used) of each distinct training prompt, each scored
    against an index of the other folds only."""
    distinct = sorted({p: ws for p, ws in zip(prompts, prompt_words) if ws}.items())
    if len(distinct) < 2:
        raise ValueError(f"{len(distinct)} distinct training prompt(s) with words: at least 2 are needed to calibrate")
    order = np.random.default_rng(seed).permutation(len(distinct))
    folds = min(folds, len(distinct))
    coverage, unseen = np.zeros(len(distinct)), np.zeros(len(distinct))
    for fold in range(folds):
        held = order[fold::folds]
        rest = np.setdiff1d(order, held)
        index = TopicIndex([distinct[i][1] for i in rest])
        coverage[held] = index.coverage([distinct[i][1] for i in held])
        unseen[held] = Alphabet.of([distinct[i][0] for i in rest]).unseen_share([distinct[i][0] for i in held])
    return coverage, unseen, folds


def sample_indices(size: int, limit: int, seed: int = 0) -> np.ndarray:
    """A deterministic sample of at most ``limit`` of ``size`` positions, in order (all when fewer)."""
    if size <= limit:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, size=limit, replace=False))
