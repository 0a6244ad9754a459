"""Deterministic train/validation/test split: a hash of each example's id and the seed.

The same example lands in the same split on every run and machine, whatever the file order or
the other examples; more data never moves an old example to another split. The only exception
keeps train and validation non-empty: with no validation example the lowest score moves there
(unless the validation fraction is 0), with no train example the highest (`assign_splits`;
streamed: `SplitTally.fixes`). That is the `holdout: examples` mode; the default, `phrasings`,
uses the same scores as bands and holds out phrasings of facts, never facts (holdout.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from prepare.contract import HOLDOUT_EXAMPLES, HOLDOUT_MODES, HOLDOUT_PHRASINGS
from prepare.dedup import mix64

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")


def id_key(example_id: str) -> int:
    """An example id (16 hex digits) as the 64-bit integer the vectorized code works on."""
    return int(example_id, 16)


def split_scores(keys: np.ndarray, seed: int) -> np.ndarray:
    """Where each example falls in [0, 1) for a seed."""
    salt = mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], np.uint64))[0]
    return (mix64(keys.astype(np.uint64) ^ salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def split_score(example_id: str, seed: int) -> float:
    return float(split_scores(np.array([id_key(example_id)], np.uint64), seed)[0])


def scan_codes(scores: np.ndarray, validation_fraction: float, test_fraction: float) -> np.ndarray:
    """Split codes by score alone (before the fixes that keep train and validation non-empty)."""
    codes = np.full(scores.size, TRAIN, np.uint8)
    codes[scores < validation_fraction + test_fraction] = TEST
    codes[scores < validation_fraction] = VALIDATION
    return codes


def assign_splits(scores: np.ndarray, validation_fraction: float, test_fraction: float) -> np.ndarray:
    """Split codes (TRAIN/VALIDATION/TEST) for scores; with 2+ examples train and validation (unless its fraction
    is 0) are never empty."""
    codes = scan_codes(scores, validation_fraction, test_fraction).astype(np.int8)
    if scores.size >= 2:
        if validation_fraction > 0 and not (codes == VALIDATION).any():
            codes[np.argmin(scores)] = VALIDATION
        if not (codes == TRAIN).any():
            codes[np.argmax(scores)] = TRAIN
    return codes


@dataclass
class SplitTally:
    """Kept examples' split codes by score, streamed in input order: counts, and the lowest and highest score.

    `low`/`high` are (score, global index, code) of the first example holding the lowest/highest score.
    """

    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    low: tuple[float, int, int] | None = None
    high: tuple[float, int, int] | None = None

    def add(self, scores: np.ndarray, codes: np.ndarray, indices: np.ndarray) -> None:
        """Examples in input order, after every example added before."""
        if not scores.size:
            return
        for code, count in enumerate(np.bincount(codes, minlength=3).tolist()):
            self.counts[code] += count
        lowest, highest = int(np.argmin(scores)), int(np.argmax(scores))
        if self.low is None or scores[lowest] < self.low[0]:
            self.low = (float(scores[lowest]), int(indices[lowest]), int(codes[lowest]))
        if self.high is None or scores[highest] > self.high[0]:
            self.high = (float(scores[highest]), int(indices[highest]), int(codes[highest]))

    def merge(self, later: "SplitTally") -> None:
        """Add the tally of examples that all come after this tally's."""
        for code in range(3):
            self.counts[code] += later.counts[code]
        if later.low is not None and (self.low is None or later.low[0] < self.low[0]):
            self.low = later.low
        if later.high is not None and (self.high is None or later.high[0] > self.high[0]):
            self.high = later.high

    def fixes(self, validation: bool = True) -> dict[int, int]:
        """Global index → split code of the examples `assign_splits` would move; empty almost always.
        `validation`: whether the validation split is kept non-empty (False: its fraction is 0)."""
        moved: dict[int, int] = {}
        counts = list(self.counts)
        if sum(counts) < 2 or self.low is None or self.high is None:
            return moved
        if validation and not counts[VALIDATION]:
            moved[self.low[1]] = VALIDATION
            counts[self.low[2]] -= 1
            counts[VALIDATION] += 1
        if not counts[TRAIN]:
            moved[self.high[1]] = TRAIN
        return moved
