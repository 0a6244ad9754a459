"""The drift and quality checks of one monitoring run: captured traffic against the baseline.

Input drift (``baseline_drift_check`` violations): prompt length (PSI), first word and character set
(Jensen-Shannon), out-of-vocabulary rate, embedding distance (MMD). A drift statistic counts only
when it passes its threshold *and* its test is significant at ``significance_level``. Output signals
(Model Quality's ``GreaterThanThreshold`` / ``LessThanThreshold``): response length ratio, empty and
refusal rates from the captured responses, error rate and p90 latency from the endpoint's metrics.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from monitor import features as features_of
from monitor.baseline import Baseline
from monitor.drift import embed, jensen_shannon, mmd_permutation_test, psi, sample
from monitor.formats import categories, feature, histogram

INPUT_DRIFT, OUTPUT_QUALITY = "input_drift", "output_quality"


@dataclass(frozen=True)
class CheckResult:
    """One check: its statistic, threshold, p-value (drift checks), whether it ran and whether it fails."""

    name: str
    kind: str
    value: float | None
    threshold: float
    violated: bool
    evaluated: bool
    description: str
    p_value: float | None = None
    comparison: str = "GreaterThanThreshold"

    def violation(self) -> dict[str, str]:
        """The constraint_violations.json entry."""
        if self.kind == INPUT_DRIFT:
            return {"feature_name": self.name, "constraint_check_type": "baseline_drift_check",
                    "description": self.description}
        return {"metric_name": self.name, "constraint_check_type": self.comparison, "description": self.description}

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _drift(name: str, statistic: str, value: float, threshold: float, p_value: float, alpha: float,
           enough: bool) -> CheckResult:
    violated = enough and value > threshold and p_value < alpha
    relation = ">" if value > threshold else "<="
    description = (f"{'too few rows to judge: ' if not enough else ''}{statistic} {value:.4f} {relation} threshold "
                   f"{threshold} (p = {p_value:.3g}, significance level {alpha})")
    return CheckResult(name, INPUT_DRIFT, value, threshold, violated, enough, description, p_value)


def _rate(name: str, value: float | None, threshold: float, what: str, comparison: str = "GreaterThanThreshold",
          enough: bool = True) -> CheckResult:
    if value is None or not enough:
        return CheckResult(name, OUTPUT_QUALITY, value, threshold, False, False, f"{what}: no data", None, comparison)
    violated = value > threshold if comparison == "GreaterThanThreshold" else value < threshold
    relation = (">" if value > threshold else "<=") if comparison == "GreaterThanThreshold" else (
        "<" if value < threshold else ">=")
    return CheckResult(name, OUTPUT_QUALITY, value, threshold, violated, True,
                       f"{what} {value:.4g} {relation} threshold {threshold:.4g}", None, comparison)


def input_drift_checks(baseline: Baseline, current: features_of.TextFeatures, prompts: list[str],
                       seed: int = 0) -> list[CheckResult]:
    limits, source = baseline.thresholds, baseline.source
    alpha, enough = float(limits["significance_level"]), current.rows >= int(limits["min_rows"])
    edges, expected = histogram(feature(baseline.statistics, "prompt_length", source), source)
    actual = np.bincount(np.searchsorted(np.asarray(edges), current.prompt_length, side="left"), minlength=len(expected))
    stat = psi(expected, actual)
    results = [_drift("prompt_length", "PSI", stat.value, float(limits["psi_threshold"]), stat.p_value, alpha, enough)]
    for name, values in (("first_word", current.first_word), ("charset", current.charset)):
        baseline_counts = categories(feature(baseline.statistics, name, source), source)
        known = [v for v in baseline_counts if v != features_of.OTHER]
        counts = features_of.category_counts(values, known)
        stat = jensen_shannon(np.array([baseline_counts[k] for k in counts]), np.array(list(counts.values())))
        results.append(_drift(name, "Jensen-Shannon divergence", stat.value, float(limits["js_threshold"]),
                              stat.p_value, alpha, enough))
    oov = features_of.oov_rate(current.prompt_words, baseline.vocabulary)
    oov_limit = float(limits["baseline_oov_rate"]) + float(limits["max_oov_increase"])
    results.append(CheckResult("oov_rate", INPUT_DRIFT, oov, oov_limit, enough and oov > oov_limit, enough,
                               f"{'too few rows to judge: ' if not enough else ''}out-of-vocabulary rate {oov:.4f} {'>' if oov > oov_limit else '<='} threshold "
                               f"{oov_limit:.4f} (baseline {float(limits['baseline_oov_rate']):.4f})"))
    if enough and baseline.reference_prompts:
        size = int(limits["mmd_sample_size"])
        reference, traffic = embed(sample(baseline.reference_prompts, size, seed), sample(prompts, size, seed))
        stat = mmd_permutation_test(reference, traffic, int(limits["mmd_permutations"]), seed)
        results.append(_drift("embedding_mmd", "MMD² (above its permutation mean)", stat.value,
                              float(limits["mmd_min_effect"]), stat.p_value, alpha, True))
    else:
        results.append(CheckResult("embedding_mmd", INPUT_DRIFT, None, float(limits["mmd_min_effect"]), False, False,
                                   "embedding MMD: not enough rows"))
    return results


def output_checks(baseline: Baseline, current: features_of.TextFeatures,
                  service: dict[str, float | None]) -> list[CheckResult]:
    limits = baseline.thresholds
    answered = len(current.response_length)
    enough = answered >= int(limits["min_rows"])
    ratio = None
    if answered and float(limits["baseline_response_length"]) > 0:
        ratio = float(current.response_length.mean()) / float(limits["baseline_response_length"])
    max_ratio = float(limits["max_response_length_ratio"])
    length = _rate("response_length_ratio", ratio, max_ratio, "mean response length / training completions",
                   enough=enough)
    if length.evaluated and ratio is not None and ratio < 1 / max_ratio:
        length = CheckResult(length.name, OUTPUT_QUALITY, ratio, 1 / max_ratio, True, True,
                             f"mean response length / training completions {ratio:.4g} < threshold "
                             f"{1 / max_ratio:.4g}", None, "LessThanThreshold")
    return [
        length,
        _rate("empty_rate", float(current.empty.mean()) if answered else None, float(limits["max_empty_rate"]),
              "empty response rate", enough=enough),
        _rate("refusal_rate", float(current.refusal.mean()) if answered else None,
              float(limits["baseline_refusal_rate"]) + float(limits["max_refusal_increase"]), "refusal rate",
              enough=enough),
        _rate("error_rate", service.get("error_rate"), float(limits["max_error_rate"]), "invocation error rate"),
        _rate("latency_p90_ms", service.get("latency_p90_ms"), float(limits["max_latency_p90_ms"]),
              "p90 model latency (ms)"),
    ]


def verdict(results: list[CheckResult], rows: int, min_rows: int) -> str:
    """``drift`` (an input drift violation), ``degraded`` (an output violation only), ``ok``, or
    ``insufficient_data`` (fewer rows than ``min_rows`` and nothing violated)."""
    if any(r.violated and r.kind == INPUT_DRIFT for r in results):
        return "drift"
    if any(r.violated for r in results):
        return "degraded"
    return "insufficient_data" if rows < min_rows else "ok"
