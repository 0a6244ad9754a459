"""Two-sample drift statistics: PSI and Jensen-Shannon on binned / categorical features, MMD on embeddings.

Each statistic comes with a p-value, so small samples do not raise false alarms: PSI and JS with the
chi-square / G-test of homogeneity on the same contingency table (scipy's chi-square tail), MMD with a permutation
test. The embedding is offline and deterministic: hashed word uni- and bigrams → TF-IDF → truncated
SVD (LSA, scikit-learn) fitted on the pooled sample, rows L2-normalised. The linear algebra runs on
one BLAS thread: these matrices are small, and numpy's and scipy's thread pools spinning against
each other made it 10× slower on two cores.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import chdtrc
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize
from threadpoolctl import ThreadpoolController

SMOOTHING = 1e-4
_THREADS = ThreadpoolController()


@dataclass(frozen=True)
class DriftStat:
    """A drift statistic and the p-value of "both samples come from one distribution"."""

    value: float
    p_value: float
    detail: dict = field(default_factory=dict)


def quantile_edges(values: np.ndarray, bins: int = 10) -> list[float]:
    """Inner bin edges at the baseline's quantiles (distinct values only)."""
    if len(values) == 0:
        return []
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    return [float(e) for e in edges]


def _homogeneity_p(expected: np.ndarray, actual: np.ndarray, log_likelihood: bool) -> float:
    """p-value of the chi-square (or G) test that two count vectors share one distribution."""
    table = np.vstack([expected, actual]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    expected_counts = table.sum(axis=1, keepdims=True) @ table.sum(axis=0, keepdims=True) / table.sum()
    if log_likelihood:
        observed = table > 0
        statistic = 2.0 * float(np.sum(table[observed] * np.log(table[observed] / expected_counts[observed])))
    else:
        statistic = float(np.sum((table - expected_counts) ** 2 / expected_counts))
    return float(chdtrc(table.shape[1] - 1, statistic))


def _shares(counts: np.ndarray) -> np.ndarray:
    shares = counts / max(counts.sum(), 1)
    shares = np.maximum(shares, SMOOTHING)
    return shares / shares.sum()


def psi(expected_counts: np.ndarray, actual_counts: np.ndarray) -> DriftStat:
    """Population stability index Σ (a − e)·ln(a / e) over bins (0.1: moderate, 0.2: large shift)."""
    expected, actual = _shares(np.asarray(expected_counts)), _shares(np.asarray(actual_counts))
    value = float(np.sum((actual - expected) * np.log(actual / expected)))
    return DriftStat(value, _homogeneity_p(np.asarray(expected_counts), np.asarray(actual_counts), False))


def jensen_shannon(expected_counts: np.ndarray, actual_counts: np.ndarray) -> DriftStat:
    """Jensen-Shannon divergence in bits (0: same, 1: disjoint) with the G-test's p-value."""
    expected, actual = _shares(np.asarray(expected_counts)), _shares(np.asarray(actual_counts))
    mixture = (expected + actual) / 2
    value = float(0.5 * np.sum(expected * np.log2(expected / mixture)) + 0.5 * np.sum(actual * np.log2(actual / mixture)))
    return DriftStat(value, _homogeneity_p(np.asarray(expected_counts), np.asarray(actual_counts), True))


@_THREADS.wrap(limits=1)
def embed(reference: list[str], current: list[str], dimensions: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """LSA embeddings of both samples, fitted on the pooled texts (labels are not used)."""
    hashing = HashingVectorizer(n_features=2**18, ngram_range=(1, 2), alternate_sign=False, norm=None,
                                token_pattern=r"(?u)\b\w+\b")
    counts = hashing.transform(reference + current).tocsc()
    counts = counts[:, np.flatnonzero(np.diff(counts.indptr))]  # only the hashed n-grams that occur
    pooled = TfidfTransformer(sublinear_tf=True).fit_transform(counts)
    components = max(1, min(dimensions, pooled.shape[0] - 1, pooled.shape[1] - 1))
    vectors = normalize(TruncatedSVD(n_components=components, random_state=seed).fit_transform(pooled))
    return vectors[: len(reference)], vectors[len(reference):]


@_THREADS.wrap(limits=1)
def mmd_permutation_test(x: np.ndarray, y: np.ndarray, permutations: int = 200, seed: int = 0) -> DriftStat:
    """Squared MMD with a Gaussian kernel (median-distance bandwidth) and a permutation p-value.

    ``value`` is the biased MMD² minus its mean under permutation (≈ 0 without drift); ``detail`` has
    the raw statistic, the null mean and the bandwidth.
    """
    z = np.vstack([x, y]).astype(np.float64)
    squared = np.sum(z * z, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2.0 * z @ z.T, 0.0)
    off_diagonal = distances[~np.eye(len(z), dtype=bool)]
    bandwidth = float(np.median(off_diagonal)) if off_diagonal.size and np.median(off_diagonal) > 0 else 1.0
    kernel = np.exp(-distances / bandwidth)
    weights = np.concatenate([np.full(len(x), 1.0 / len(x)), np.full(len(y), -1.0 / len(y))])
    observed = float(weights @ kernel @ weights)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(weights) for _ in range(permutations)], axis=1)
    null = np.einsum("ip,ip->p", shuffled, kernel @ shuffled)
    p_value = float((1 + np.sum(null >= observed)) / (1 + permutations))
    return DriftStat(observed - float(null.mean()), p_value,
                     {"mmd2": observed, "null_mean": float(null.mean()), "bandwidth": bandwidth,
                      "permutations": permutations, "sizes": [len(x), len(y)]})


def sample(items: list[str], size: int, seed: int = 0) -> list[str]:
    """A deterministic sample of at most ``size`` items (all of them when fewer)."""
    if len(items) <= size:
        return list(items)
    chosen = np.random.default_rng(seed).choice(len(items), size=size, replace=False)
    return [items[i] for i in sorted(chosen)]
