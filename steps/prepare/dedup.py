"""Duplicate removal: exact (same content id) and near-duplicates (MinHash + LSH), vectorized with numpy.

Near-duplicates: each example's text (lower-cased, whitespace collapsed) is shingled into the
8-byte windows that start at each word (so a shingle is a word and the start of the next one);
NUM_PERM MinHash values per example (multiply-shift hashing, min per example); BANDS bands of
ROWS values each are hashed into LSH buckets. Examples sharing a bucket are candidates; a
candidate whose estimated Jaccard similarity (share of equal MinHash values) with an earlier,
kept example reaches the threshold is a near-duplicate of it. The first example of each group
(input order) is kept.

`first_occurrences`, `candidate_pairs` and `near_duplicates` state these rules on arrays held in
memory; the step applies them a key range at a time (merge.py) with `later_occurrences`,
`bucket_pairs`, `may_be_close`, `close_pairs` and `mark_near_duplicates`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NUM_PERM = 32
BANDS = 8
ROWS = NUM_PERM // BANDS
SHINGLE_BYTES = 8
_GAP_TEXT = SHINGLE_BYTES * "\n"
_HIGH = np.uint64(32)
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_rng = np.random.default_rng(20240601)  # fixed: signatures must agree across runs and machines
_MULTIPLIERS = _rng.integers(1, 2**63, size=NUM_PERM, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_OFFSETS = _rng.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64)
_BAND_WEIGHTS = _rng.integers(1, 2**63, size=ROWS, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a well-spread 64-bit hash of 64-bit integers (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def signatures(texts: Sequence[str]) -> np.ndarray:
    """(len(texts), NUM_PERM) uint32 MinHash signatures; every text must hold at least one word."""
    if not texts:
        return np.empty((0, NUM_PERM), np.uint32)
    joined = _GAP_TEXT.join(texts) + _GAP_TEXT
    data = joined.encode("utf-8")
    if len(data) == len(joined):  # ASCII: as many bytes as characters
        sizes = np.fromiter(map(len, texts), np.int64, len(texts))
    else:
        sizes = np.fromiter((len(text.encode("utf-8")) for text in texts), np.int64, len(texts))
    blob = np.frombuffer(data, np.uint8)
    gap = (blob == 32) | (blob == 10)
    starts = np.flatnonzero(gap[:-1] & ~gap[1:]) + 1
    if not gap[0]:
        starts = np.concatenate(([0], starts))
    starts = starts[starts + SHINGLE_BYTES <= blob.size]
    # Each shingle: the SHINGLE_BYTES bytes from its start, read as a little-endian 64-bit integer.
    windows = np.lib.stride_tricks.as_strided(blob, (blob.size - SHINGLE_BYTES + 1, SHINGLE_BYTES), (1, 1))
    hashed = mix64(np.ascontiguousarray(windows[starts]).view("<u8").ravel())
    doc_starts = np.concatenate(([0], np.cumsum(sizes[:-1] + SHINGLE_BYTES)))
    first = np.searchsorted(starts, doc_starts)  # each text's first shingle
    if np.any(np.diff(np.append(first, starts.size)) == 0):
        raise ValueError("every text needs at least one word to be shingled")
    out = np.empty((len(texts), NUM_PERM), np.uint32)
    scratch = np.empty_like(hashed)
    with np.errstate(over="ignore"):
        for k in range(NUM_PERM):  # the high 32 bits of the smallest value = the smallest high 32 bits
            np.multiply(hashed, _MULTIPLIERS[k], out=scratch)
            np.add(scratch, _OFFSETS[k], out=scratch)
            out[:, k] = np.minimum.reduceat(scratch, first) >> _HIGH
    return out


def band_keys(signature: np.ndarray) -> np.ndarray:
    """(BANDS, n) uint64 LSH bucket keys of (n, NUM_PERM) signatures."""
    keys = np.empty((BANDS, signature.shape[0]), np.uint64)
    with np.errstate(over="ignore"):
        for band in range(BANDS):
            rows = signature[:, band * ROWS:(band + 1) * ROWS].astype(np.uint64)
            keys[band] = mix64((rows * _BAND_WEIGHTS).sum(axis=1, dtype=np.uint64) + np.uint64(band))
    return keys


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a key appears for the first time (exact duplicates are False)."""
    _, first = np.unique(keys, return_index=True)
    mask = np.zeros(keys.size, bool)
    mask[first] = True
    return mask


def candidate_pairs(band_columns: Sequence[np.ndarray], eligible: np.ndarray) -> np.ndarray:
    """(m, 2) int64 pairs (earlier, later) of eligible examples sharing an LSH bucket in any band.

    `band_columns[b]` holds every example's key for band b; within a bucket each later member is
    paired with the bucket's first member.
    """
    indices = np.flatnonzero(eligible)
    found: list[np.ndarray] = []
    for keys in band_columns:
        order = indices[np.argsort(keys[indices], kind="stable")]
        sorted_keys = keys[order]
        same_as_previous = np.concatenate(([False], sorted_keys[1:] == sorted_keys[:-1]))
        if not same_as_previous.any():
            continue
        group_start = np.maximum.accumulate(np.where(same_as_previous, 0, np.arange(order.size)))
        members = np.flatnonzero(same_as_previous)
        found.append(np.stack([order[group_start[members]], order[members]], axis=1))
    if not found:
        return np.empty((0, 2), np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    keys = np.sort(pairs[:, 0] << 32 | pairs[:, 1])  # a pair found in several bands is checked once
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return np.stack([keys >> 32, keys & 0xFFFFFFFF], axis=1)


def near_duplicates(pairs: np.ndarray, similarity: np.ndarray, threshold: float, size: int) -> np.ndarray:
    """Boolean mask of near-duplicates: later examples similar enough to an earlier example that is kept."""
    duplicate = np.zeros(size, bool)
    close = pairs[similarity >= threshold]
    for earlier, later in close[np.argsort(close[:, 1], kind="stable")]:
        if not duplicate[earlier]:
            duplicate[later] = True
    return duplicate


def similarity(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of row pairs of signatures: the share of equal MinHash values."""
    return (left == right).mean(axis=1)


def repeated(keys: np.ndarray) -> np.ndarray:
    """Boolean mask of rows whose key another row shares (a sort of the keys, then a binary search)."""
    ordered = np.sort(keys)
    shared = ordered[1:][ordered[1:] == ordered[:-1]]
    if not shared.size:
        return np.zeros(keys.size, bool)
    shared = np.unique(shared)
    return shared[np.minimum(np.searchsorted(shared, keys), shared.size - 1)] == keys


def later_occurrences(keys: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Indices of rows whose key an earlier row holds; rows with equal keys must come in input order."""
    chosen = np.flatnonzero(repeated(keys))
    order = chosen[np.argsort(keys[chosen], kind="stable")]
    ordered = keys[order]
    return indices[order[1:][ordered[1:] == ordered[:-1]]]


def bucket_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers (first member, later member) of rows sharing a bucket key; equal keys must be in input order."""
    chosen = np.flatnonzero(repeated(keys))
    if not chosen.size:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    order = chosen[np.argsort(keys[chosen], kind="stable")]
    ordered = keys[order]
    same_as_previous = np.concatenate(([False], ordered[1:] == ordered[:-1]))
    group_start = np.maximum.accumulate(np.where(same_as_previous, 0, np.arange(order.size)))
    members = np.flatnonzero(same_as_previous)
    return order[group_start[members]], order[members]


_LANES = np.uint64(0x5555555555555555)


def sketches(signature: np.ndarray) -> np.ndarray:
    """A 64-bit sketch of each (n, NUM_PERM) signature row: the low 2 bits of each MinHash value."""
    shifts = (2 * np.arange(NUM_PERM)).astype(np.uint64)
    return np.bitwise_or.reduce((signature & 3).astype(np.uint64) << shifts, axis=1)


def may_be_close(left: np.ndarray, right: np.ndarray, threshold: float) -> np.ndarray:
    """False only for sketch pairs whose signatures surely are not similar enough (equal values have equal
    sketch lanes, so the share of equal lanes bounds the estimated similarity from above)."""
    differ = left ^ right
    unequal = np.bitwise_count((differ | (differ >> np.uint64(1))) & _LANES)
    return (NUM_PERM - unequal.astype(np.int64)) / NUM_PERM >= threshold


def close_pairs(pairs: np.ndarray, left: np.ndarray, right: np.ndarray, threshold: float) -> np.ndarray:
    """The pairs whose signatures (rows of `left` and `right`) are similar enough, sorted by (later, earlier)."""
    close = pairs[similarity(left, right) >= threshold]
    return close[np.lexsort((close[:, 0], close[:, 1]))]


def mark_near_duplicates(close: np.ndarray, duplicate: np.ndarray, first: int) -> None:
    """Apply close pairs (sorted by later member, both members >= first) to `duplicate`, the flags of
    examples first, first + 1, ...: a later member is a near-duplicate when its earlier member is not one.
    Pairs whose earlier member comes before `first` (already decided) are the caller's, applied before."""
    for earlier, later in close.tolist():
        if not duplicate[earlier - first]:
            duplicate[later - first] = True
