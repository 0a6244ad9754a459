"""The drift and quality checks of one monitoring run: captured traffic against the baseline.

Input drift (``baseline_drift_check`` violations), on a uniform sample of the window's prompts
(``sample_size``): the shares of prompts off the training topics (topic coverage), written with
letters the training data never uses, or far longer than training prompts (monitor/signals.py). Each
share is tested against the rate held-out training prompts are flagged at (``outlier_quantile``);
a check fails when the traffic's share exceeds it at ``significance_level``; the report gives the
sample size and a 95% interval of each share. Output signals (Model Quality's
``GreaterThanThreshold`` / ``LessThanThreshold``): response length ratio, empty and refusal rates from
the captured responses, error rate and p90 latency from the endpoint's metrics.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from monitor import features as features_of
from monitor.baseline import Baseline
from monitor.signals import Alphabet, TopicIndex, outlier_share, sample_indices
from monitor.text import normalise, words

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
    detail: dict[str, Any] | None = None

    def violation(self) -> dict[str, str]:
        """The constraint_violations.json entry."""
        if self.kind == INPUT_DRIFT:
            return {"feature_name": self.name, "constraint_check_type": "baseline_drift_check",
                    "description": self.description}
        return {"metric_name": self.name, "constraint_check_type": self.comparison, "description": self.description}

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _rate(name: str, value: float | None, threshold: float, what: str, comparison: str = "GreaterThanThreshold",
          enough: bool = True) -> CheckResult:
    if value is None or not enough:
        return CheckResult(name, OUTPUT_QUALITY, value, threshold, False, False, f"{what}: no data", None, comparison)
    violated = value > threshold if comparison == "GreaterThanThreshold" else value < threshold
    relation = (">" if value > threshold else "<=") if comparison == "GreaterThanThreshold" else (
        "<" if value < threshold else ">=")
    return CheckResult(name, OUTPUT_QUALITY, value, threshold, violated, True,
                       f"{what} {value:.4g} {relation} threshold {threshold:.4g}", None, comparison)


@dataclass(frozen=True)
class PromptScores:
    """The per-prompt signals of the sampled traffic (positions into the window's rows)."""

    sample: np.ndarray
    coverage: np.ndarray
    unseen: np.ndarray
    length: np.ndarray


def score_prompts(baseline: Baseline, features: features_of.TextFeatures, seed: int = 0) -> PromptScores:
    chosen = sample_indices(features.rows, int(baseline.thresholds["sample_size"]), seed)
    index = TopicIndex([words(normalise(p)) for p in baseline.reference_prompts])
    prompts = [features.prompts[i] for i in chosen]
    return PromptScores(chosen, index.coverage(features_of.prompt_words(features, chosen)),
                        Alphabet.of(sorted(baseline.vocabulary)).unseen_share(prompts), features.prompt_length[chosen])


def input_drift_checks(baseline: Baseline, scores: PromptScores, rows: int) -> list[CheckResult]:
    limits = baseline.thresholds
    alpha, rate, enough = float(limits["significance_level"]), float(limits["outlier_quantile"]), rows >= int(limits["min_rows"])
    topic, letters = float(limits["topic_coverage_threshold"]), float(limits["unseen_letter_threshold"])
    length = float(limits["prompt_length_threshold"])
    flags = {"topic_coverage": (topic, scores.coverage < topic, f"cover less than {topic:.3f} of every training question"),
             "unseen_letters": (letters, scores.unseen > letters,
                                f"have over {letters:.3f} of their letters outside the training alphabet"),
             "prompt_length": (length, scores.length > length, f"are longer than {length:.0f} words")}
    results = []
    for name, (threshold, flagged, what) in flags.items():
        test = outlier_share(flagged, rate)
        low, high = test.interval
        violated = enough and test.p_value < alpha
        description = (f"{'too few rows to judge: ' if not enough else ''}{test.share:.1%} of {test.size} sampled "
                       f"prompts (95% CI {low:.1%}-{high:.1%}) {what}; held-out training prompts: {rate:.1%} "
                       f"(p = {test.p_value:.3g}, significance level {alpha})")
        results.append(CheckResult(name, INPUT_DRIFT, test.share, rate, violated, enough, description, test.p_value,
                                   detail={"sample_size": test.size, "flagged": test.flagged, "rows": rows,
                                           "interval_95": [low, high], "flag_threshold": threshold}))
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
