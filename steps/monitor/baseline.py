"""The monitoring baseline: what the training data looks like, in Model Monitor's files plus a reference sample.

A baseline folder holds ``statistics.json`` and ``constraints.json`` (Model Monitor's baselining
outputs; edit the thresholds under ``continuum_constraints`` to tune the checks), ``reference.jsonl``
(a deterministic sample of training prompts, the embedding test's reference) and ``vocabulary.txt``
(every word of the training prompts, for the out-of-vocabulary rate).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor import features as features_of
from monitor.drift import quantile_edges, sample
from monitor.formats import (MonitorFormatError, constraints_document, feature, histogram, numerical_feature,
                                    read_json, statistics_document, string_feature, write_json)
from monitor.formats import categories as bucket_values

DEFAULT_THRESHOLDS: dict[str, float] = {
    "significance_level": 0.01,  # a drift statistic counts only when its test is this significant
    "min_rows": 30,  # fewer captured prompts: verdict insufficient_data, no drift violations
    "psi_threshold": 0.2,  # prompt length, PSI
    "js_threshold": 0.1,  # first word and character set, Jensen-Shannon divergence (bits)
    "max_oov_increase": 0.1,  # out-of-vocabulary rate above the baseline's by more than this
    "mmd_min_effect": 0.02,  # embedding MMD² above its permutation mean by more than this
    "mmd_sample_size": 1000,
    "mmd_permutations": 200,
    "max_response_length_ratio": 3.0,  # mean response length vs the training completions, either way
    "max_empty_rate": 0.05,
    "max_refusal_increase": 0.05,
    "max_error_rate": 0.01,  # 4XX + 5XX per invocation (CloudWatch)
    "max_latency_p90_ms": 2000.0,  # ModelLatency p90 (CloudWatch)
}
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


def held_out_oov_rate(word_lists: list[list[str]]) -> float:
    """OOV rate of one half of the prompts against the other half's vocabulary (hash split: deterministic)."""
    halves: tuple[list[list[str]], list[list[str]]] = ([], [])
    for words in word_lists:
        halves[int(hashlib.md5(" ".join(words).encode()).hexdigest(), 16) % 2].append(words)
    if not halves[0] or not halves[1]:
        return 0.0
    return features_of.oov_rate(halves[1], features_of.vocabulary(halves[0]))


def feature_statistics(features: features_of.TextFeatures, length_edges: list[float],
                       response_edges: list[float], categories: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The statistics.json features of a set of rows, binned / bucketed like the baseline."""
    return [
        numerical_feature("prompt_length", features.prompt_length, length_edges),
        string_feature("first_word", features_of.category_counts(features.first_word, categories["first_word"])),
        string_feature("charset", features_of.category_counts(features.charset, categories["charset"])),
        numerical_feature("response_length", features.response_length, response_edges,
                          missing=features.responses_missing),
    ]


def build_baseline(prompts: list[str], completions: list[str], overrides: dict[str, float] | None = None,
                   reference_size: int = REFERENCE_SIZE, seed: int = 0) -> Baseline:
    """Baseline statistics, constraints, reference sample and vocabulary of the training data."""
    unknown = set(overrides or {}) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise BaselineError(f"unknown threshold(s) {sorted(unknown)}; known: {sorted(DEFAULT_THRESHOLDS)}")
    features = features_of.extract(prompts, list(completions))
    categories = {"first_word": features_of.top_categories(features.first_word),
                  "charset": sorted(set(features.charset) | {"ascii", "mixed", "non_ascii"})}
    length_edges = quantile_edges(features.prompt_length)
    response_edges = quantile_edges(features.response_length)
    summary = {"rows": features.rows, "oov_rate": held_out_oov_rate(features.prompt_words),
               "empty_rate": float(features.empty.mean()) if len(features.empty) else 0.0,
               "refusal_rate": float(features.refusal.mean()) if len(features.refusal) else 0.0,
               "response_length_mean": float(features.response_length.mean()) if len(features.response_length) else 0.0}
    statistics = statistics_document(features.rows, feature_statistics(features, length_edges, response_edges,
                                                                       categories), summary)
    thresholds = {**DEFAULT_THRESHOLDS, **(overrides or {}),
                  "baseline_oov_rate": summary["oov_rate"], "baseline_refusal_rate": summary["refusal_rate"],
                  "baseline_response_length": summary["response_length_mean"]}
    return Baseline(statistics, constraints_document(statistics, thresholds), sample(prompts, reference_size, seed),
                    features_of.vocabulary(features.prompt_words))


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
    missing = set(DEFAULT_THRESHOLDS) - set(constraints.get("continuum_constraints", {}))
    if missing:
        raise BaselineError(f"{folder / 'constraints.json'}: continuum_constraints lacks {sorted(missing)}")
    try:
        reference = [json.loads(line)["prompt"] for line in (folder / "reference.jsonl").read_text(
            encoding="utf-8").splitlines() if line.strip()]
        vocabulary = set((folder / "vocabulary.txt").read_text(encoding="utf-8").split())
    except (OSError, ValueError, KeyError) as exc:
        raise BaselineError(f"{folder}: reference.jsonl / vocabulary.txt unreadable ({exc})") from exc
    return Baseline(statistics, constraints, reference, vocabulary, folder)


def current_statistics(baseline: Baseline, features: features_of.TextFeatures, summary: dict[str, Any]) -> dict[str, Any]:
    """statistics.json of the monitored traffic, bucketed with the baseline's edges and categories."""
    source = baseline.source or Path("baseline")
    length_edges, _ = histogram(feature(baseline.statistics, "prompt_length", source), source)
    response_edges, _ = histogram(feature(baseline.statistics, "response_length", source), source)
    categories = {name: [v for v in bucket_values(feature(baseline.statistics, name, source), source)
                         if v != features_of.OTHER] for name in ("first_word", "charset")}
    return statistics_document(features.rows, feature_statistics(features, length_edges, response_edges, categories),
                               summary)
