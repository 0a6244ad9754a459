"""Deterministic train/validation/test split: a hash of each example's id and the seed.

The same example lands in the same split on every run and machine, whatever the file order or
the other examples; more data never moves an old example to another split.
"""
from __future__ import annotations

import numpy as np

from common.data_dedup import mix64

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


def assign_splits(scores: np.ndarray, validation_fraction: float, test_fraction: float) -> np.ndarray:
    """Split codes (TRAIN/VALIDATION/TEST) for scores; with 2+ examples train and validation are never empty."""
    codes = np.full(scores.size, TRAIN, np.int8)
    codes[scores < validation_fraction + test_fraction] = TEST
    codes[scores < validation_fraction] = VALIDATION
    if scores.size >= 2:
        if not (codes == VALIDATION).any():
            codes[np.argmin(scores)] = VALIDATION
        if not (codes == TRAIN).any():
            codes[np.argmax(scores)] = TRAIN
    return codes
