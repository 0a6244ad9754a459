"""The monitoring baseline: what the training data looks like, in Model Monitor's files plus a reference sample.

A baseline folder holds ``statistics.json`` and ``constraints.json`` (Model Monitor's baselining
outputs; the policies under ``continuum_constraints`` are editable, the derived thresholds are
recomputed by a new baseline), ``reference.jsonl`` (a deterministic sample of training prompts: the
topic index) and ``vocabulary.txt`` (every word of the training prompts: their alphabet).
Thresholds are calibrated on the training prompts themselves (monitor/signals.py: K-fold
cross-fitting, a quantile of the held-out scores); ``continuum_constraints.calibration`` records for
each how it was derived: method, quantile, sample sizes, folds and seed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitor import features as features_of
from monitor.formats import (MonitorFormatError, constraints_document, feature, histogram, numerical_feature,
                             quantile_edges, read_json, statistics_document, write_json)
from monitor.signals import cross_fitted_scores, sample_indices
from monitor.text import normalise

DEFAULT_THRESHOLDS: dict[str, float] = {  # policies; editable in constraints.json or with --threshold
    "significance_level": 0.01,  # a drift check fails only when its test is this significant
    "min_rows": 30,  # fewer captured prompts: verdict insufficient_data, no violations
    "outlier_quantile": 0.05,  # per-prompt flag: beyond this quantile of held-out training prompts' scores
    "calibration_folds": 5,  # cross-fitting folds of the training prompts
    "sample_size": 2000,  # prompts scored per check (a uniform sample of the window's traffic)
    "max_prompt_length_ratio": 3.0,  # a prompt longer than this × the training's (1 - outlier_quantile) length
    "max_response_length_ratio": 3.0,  # mean response length vs the training completions, either way
    "max_empty_rate": 0.05,
    "max_refusal_increase": 0.05,
    "max_error_rate": 0.01,  # 4XX + 5XX per invocation (CloudWatch)
    "max_latency_p90_ms": 2000.0,  # ModelLatency p90 (CloudWatch)
}
DERIVED = ("topic_coverage_threshold", "unseen_letter_threshold", "prompt_length_threshold", "baseline_refusal_rate",
           "baseline_response_length")
REFERENCE_SIZE = 2000


class BaselineError(ValueError):
    """Training data or a baseline folder the monitor cannot use; the message names the file."""


@dataclass(frozen=True)
class Baseline:
    statistics: dict[str, Any]
    constraints: dict[str, Any]
    reference_prompts: list[str]
    vocabulary: set[str]
    source: Path | None = None

    @property
    def thresholds(self) -> dict[str, Any]:
        return self.constraints["continuum_constraints"]


def read_training_examples(train_dir: Path) -> tuple[list[str], list[str]]:
    """(prompts, completions) of every ``*.jsonl`` under ``train_dir`` (the prepare step's train split)."""
    prompts, completions = [], []
    files = sorted(Path(train_dir).rglob("*.jsonl"))
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    example = json.loads(line)
                    prompt, completion = example["prompt"], example["completion"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise BaselineError(f"{path}:{line_no}: not a training example with prompt and completion "
                                        f"({exc!r})") from exc
                if not isinstance(prompt, str) or not isinstance(completion, str):
                    raise BaselineError(f"{path}:{line_no}: prompt and completion must be strings")
                prompts.append(prompt)
                completions.append(completion)
    if not prompts:
        raise BaselineError(f"{train_dir}: no training examples (*.jsonl with prompt/completion) to baseline on")
    return prompts, completions


def feature_statistics(prompt_length: np.ndarray, coverage: np.ndarray, unseen: np.ndarray,
                       response_length: np.ndarray, responses_missing: int,
                       edges: dict[str, list[float]]) -> list[dict[str, Any]]:
    """The statistics.json features, binned with ``edges`` (the baseline's)."""
    return [numerical_feature("prompt_length", prompt_length, edges["prompt_length"]),
            numerical_feature("topic_coverage", coverage, edges["topic_coverage"], inferred_type="Fractional"),
            numerical_feature("unseen_letter_share", unseen, edges["unseen_letter_share"], inferred_type="Fractional"),
            numerical_feature("response_length", response_length, edges["response_length"], missing=responses_missing)]


def _policy(overrides: dict[str, float] | None) -> dict[str, float]:
    unknown = set(overrides or {}) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise BaselineError(f"unknown threshold(s) {sorted(unknown)}; known: {sorted(DEFAULT_THRESHOLDS)}")
    policy = {**DEFAULT_THRESHOLDS, **(overrides or {})}
    if not 0 < policy["outlier_quantile"] < 0.5:
        raise BaselineError(f"outlier_quantile must be between 0 and 0.5, got {policy['outlier_quantile']}")
    if policy["calibration_folds"] < 2 or policy["sample_size"] < 1:
        raise BaselineError("calibration_folds must be at least 2 and sample_size at least 1")
    return policy


def build_baseline(prompts: list[str], completions: list[str], overrides: dict[str, float] | None = None,
                   reference_size: int = REFERENCE_SIZE, seed: int = 0) -> Baseline:
    """Baseline statistics, calibrated constraints, reference sample and vocabulary of the training data."""
    policy = _policy(overrides)
    features = features_of.extract(prompts, list(completions))
    chosen = sample_indices(len(prompts), reference_size, seed)
    q = float(policy["outlier_quantile"])
    try:
        coverage, unseen, folds = cross_fitted_scores([features.prompts[i] for i in chosen],
                                                      features_of.prompt_words(features, chosen),
                                                      int(policy["calibration_folds"]), seed)
    except ValueError as exc:
        raise BaselineError(f"training prompts: {exc}") from exc
    length_quantile = float(np.quantile(features.prompt_length, 1 - q))
    held_out = {"method": f"{folds}-fold cross-fitting of the distinct reference prompts, each fold scored against "
                          "the other folds", "folds": folds, "scored_prompts": len(coverage),
                "reference_prompts": len(chosen), "training_prompts": len(prompts), "seed": seed}
    derived = {
        "topic_coverage_threshold": float(np.quantile(coverage, q)),
        "unseen_letter_threshold": float(np.quantile(unseen, 1 - q)),
        "prompt_length_threshold": float(policy["max_prompt_length_ratio"]) * length_quantile,
        "baseline_refusal_rate": float(features.refusal.mean()),
        "baseline_response_length": float(features.response_length.mean()),
    }
    calibration = {
        "topic_coverage_threshold": {**held_out, "quantile": q, "flag": "coverage below"},
        "unseen_letter_threshold": {**held_out, "quantile": 1 - q, "flag": "share above"},
        "prompt_length_threshold": {"method": "max_prompt_length_ratio x this quantile of the training prompts' "
                                              "lengths in words", "quantile": 1 - q, "length_at_quantile": length_quantile,
                                    "training_prompts": len(prompts), "flag": "length above"},
        "baseline_refusal_rate": {"method": "share of training completions read as refusals",
                                  "training_completions": len(completions)},
        "baseline_response_length": {"method": "mean training completion length in words",
                                     "training_completions": len(completions)},
        "test": "a flag's rate on prompts like the training data is outlier_quantile; a drift check fails when its "
                "flagged share of the sampled traffic exceeds that rate with a one-sided binomial p below "
                "significance_level",
    }
    edges = {"prompt_length": quantile_edges(features.prompt_length), "topic_coverage": quantile_edges(coverage),
             "unseen_letter_share": quantile_edges(unseen), "response_length": quantile_edges(features.response_length)}
    summary = {"rows": features.rows, "empty_rate": float(features.empty.mean()),
               "refusal_rate": derived["baseline_refusal_rate"], "response_length_mean": derived["baseline_response_length"]}
    statistics = statistics_document(features.rows, feature_statistics(
        features.prompt_length, coverage, unseen, features.response_length, 0, edges), summary)
    constraints = constraints_document(statistics, {**policy, **derived, "calibration": calibration})
    return Baseline(statistics, constraints, [prompts[i] for i in chosen],
                    features_of.vocabulary(features_of.prompt_words(features, range(features.rows))))


def write_baseline(baseline: Baseline, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = [write_json(out_dir / "statistics.json", baseline.statistics),
             write_json(out_dir / "constraints.json", baseline.constraints)]
    reference = out_dir / "reference.jsonl"
    reference.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in baseline.reference_prompts), encoding="utf-8")
    vocabulary = out_dir / "vocabulary.txt"
    vocabulary.write_text("".join(f"{w}\n" for w in sorted(baseline.vocabulary)), encoding="utf-8")
    return [*paths, reference, vocabulary]


def load_baseline(folder: Path) -> Baseline:
    folder = Path(folder)
    try:
        statistics = read_json(folder / "statistics.json")
        constraints = read_json(folder / "constraints.json")
    except MonitorFormatError as exc:
        raise BaselineError(str(exc)) from exc
    missing = {*DEFAULT_THRESHOLDS, *DERIVED} - set(constraints.get("continuum_constraints", {}))
    if missing:
        raise BaselineError(f"{folder / 'constraints.json'}: continuum_constraints lacks {sorted(missing)} "
                            "(a baseline from an older monitor: run `monitor.py baseline` again)")
    try:
        reference = [json.loads(line)["prompt"] for line in (folder / "reference.jsonl").read_text(
            encoding="utf-8").splitlines() if line.strip()]
        vocabulary = set((folder / "vocabulary.txt").read_text(encoding="utf-8").split())
    except (OSError, ValueError, KeyError) as exc:
        raise BaselineError(f"{folder}: reference.jsonl / vocabulary.txt unreadable ({exc})") from exc
    if not any(normalise(p).strip() for p in reference):
        raise BaselineError(f"{folder / 'reference.jsonl'}: no reference prompt")
    return Baseline(statistics, constraints, reference, vocabulary, folder)


def current_statistics(baseline: Baseline, prompt_length: np.ndarray, coverage: np.ndarray, unseen: np.ndarray,
                       features: features_of.TextFeatures, summary: dict[str, Any]) -> dict[str, Any]:
    """statistics.json of the monitored traffic, binned with the baseline's edges."""
    source = baseline.source or Path("baseline")
    edges = {name: histogram(feature(baseline.statistics, name, source), source)[0]
             for name in ("prompt_length", "topic_coverage", "unseen_letter_share", "response_length")}
    return statistics_document(features.rows, feature_statistics(prompt_length, coverage, unseen,
                                                                 features.response_length, features.responses_missing,
                                                                 edges), summary)
