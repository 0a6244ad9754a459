""""Should we retrain?": a profile of a data version and its comparison with the previous one.

Profile: histograms of prompt and completion lengths (characters, all examples); on a fixed-size
deterministic sample, a hashed unigram vocabulary and the top keywords (topics: content words by
the share of examples using them). Comparison: examples new / changed (a known prompt with
another answer) / unchanged; the previous version's examples this export lacks are not removed
when replay keeps them (a delta export holds only new and changed facts): they are kept by
replay, superseded (a changed answer), held out last time (the previous validation/test split,
which replay does not read) or removed (not replayed: replay_fraction < 1); and the
Jensen-Shannon divergence (base 2, 0 = same, 1 = disjoint) of each distribution. The retrain
score is the largest of the changed share, the removed share and the divergences; training is
recommended when it reaches `min_change` (0 = always).
"""
from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prepare.manifest import PreviousData

LENGTH_EDGES = [0, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
VOCABULARY_BUCKETS = 4096
PROFILE_SAMPLE = 20000
TOP_KEYWORDS = 50
_WORDS = re.compile(r"[^\W\d_]{4,}")
STOPWORDS = frozenset("""about above after again against also because been before being below between both could
does doing down during each from further have having here hers herself himself into itself just more most myself once
only other ours ourselves over same should some such than that their theirs them themselves then there these they this
those through under until very were what when where which while whom whose will with would your yours yourself
yourselves please thanks thank""".split())


def length_counts(lengths: np.ndarray) -> np.ndarray:
    """Histogram counts of lengths over LENGTH_EDGES (counts of parts add up to the whole's)."""
    counts, _ = np.histogram(np.minimum(lengths, LENGTH_EDGES[-1] - 1), bins=LENGTH_EDGES)
    return counts


@dataclass
class TextCounts:
    """Word counts of sampled example texts; counts of parts of a sample add up (`merge`) to the whole's.

    `words` counts every word, `keywords` the texts each content word appears in.
    """

    sample: int = 0
    words: Counter[str] = field(default_factory=Counter)
    keywords: Counter[str] = field(default_factory=Counter)

    def add(self, text: str) -> None:
        self.sample += 1
        words = _WORDS.findall(text.lower())
        self.words.update(words)
        self.keywords.update(set(words) - STOPWORDS)

    def merge(self, other: "TextCounts") -> None:
        self.sample += other.sample
        self.words.update(other.words)
        self.keywords.update(other.keywords)

    def profile(self) -> dict[str, Any]:
        """Hashed vocabulary and top keywords."""
        vocabulary: Counter[int] = Counter()
        for word, count in self.words.items():
            vocabulary[zlib.crc32(word.encode("utf-8")) % VOCABULARY_BUCKETS] += count
        top = sorted(self.keywords.items(), key=lambda item: (-item[1], item[0]))[:TOP_KEYWORDS]
        return {"sample": self.sample,
                "vocabulary": {str(bucket): count for bucket, count in sorted(vocabulary.items())},
                "topics": {word: round(count / max(self.sample, 1), 4) for word, count in top}}


def build_profile(examples: int, prompt_counts: np.ndarray, completion_counts: np.ndarray,
                  texts: TextCounts) -> dict[str, Any]:
    """The profile from length histogram counts (`length_counts`) and the sample's word counts."""
    return {"examples": examples, "length_edges": LENGTH_EDGES,
            "prompt_chars": [int(count) for count in prompt_counts],
            "completion_chars": [int(count) for count in completion_counts], **texts.profile()}


def js_divergence(left: Mapping[str, float], right: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence (base 2) of two unnormalized distributions over keys; 0 if either is empty."""
    keys = set(left) | set(right)
    p_total, q_total = sum(left.values()), sum(right.values())
    if not keys or p_total <= 0 or q_total <= 0:
        return 0.0
    divergence = 0.0
    for key in keys:
        p, q = left.get(key, 0) / p_total, right.get(key, 0) / q_total
        m = (p + q) / 2
        divergence += (p * math.log2(p / m) if p else 0.0) + (q * math.log2(q / m) if q else 0.0)
    return round(max(0.0, divergence / 2), 6)


def _as_distribution(counts: list[int]) -> dict[str, float]:
    return {str(index): float(count) for index, count in enumerate(counts) if count}


def shift(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    old_topics, new_topics = previous.get("topics", {}), current.get("topics", {})
    return {
        "prompt_length": js_divergence(_as_distribution(previous.get("prompt_chars", [])),
                                       _as_distribution(current["prompt_chars"])),
        "completion_length": js_divergence(_as_distribution(previous.get("completion_chars", [])),
                                           _as_distribution(current["completion_chars"])),
        "vocabulary": js_divergence(previous.get("vocabulary", {}), current["vocabulary"]),
        "topics": js_divergence(old_topics, new_topics),
        "new_topics": [word for word in list(new_topics)[:10] if word not in old_topics],
        "dropped_topics": [word for word in list(old_topics)[:10] if word not in new_topics],
    }


def compare(previous: PreviousData | None, counts: Mapping[str, int] | None, new_examples: int,
            profile: dict[str, Any], version: str) -> dict[str, Any]:
    """The new data against the previous version: counts of new/changed/unchanged examples, what became of the
    previous examples this export lacks, and shift.

    `counts` ({new, changed, unchanged, removed, kept_by_replay, superseded, held_out_before}) compare the
    `new_examples` kept new (not replayed) examples with the previous index (see merge.py.compare_counts).
    """
    if previous is None or counts is None:
        return {"previous_data_version": None, "same_data_version": False, "score": 1.0,
                "reason": "no previous data version (no manifest in the replay input)"}
    previous_examples = previous.size
    drift = shift(previous.manifest.get("profile", {}), profile)
    change_share = (counts["new"] + counts["changed"]) / max(1, new_examples)
    removed_share = counts["removed"] / max(1, previous_examples)
    score = max(change_share, removed_share,
                *(drift[name] for name in ("prompt_length", "completion_length", "vocabulary", "topics")))
    return {"previous_data_version": previous.version, "same_data_version": previous.version == version,
            "previous_examples": previous_examples, "examples": dict(counts),
            "change_share": round(change_share, 6), "removed_share": round(removed_share, 6), "shift": drift,
            "score": round(score, 6), "reason": _reason(counts, change_share, removed_share, drift)}


def absent_text(counts: Mapping[str, int], removed_share: float) -> str:
    """What became of the previous version's examples that this export lacks, in words."""
    parts = [f"{counts[key]} {label}" for key, label in (
        ("kept_by_replay", "kept by replay"), ("superseded", "superseded by a changed answer"),
        ("held_out_before", "held out last time (not replayed)")) if counts.get(key)]
    absent = f"not in this export: {', '.join(parts)}; " if parts else ""
    return f"{absent}removed {counts['removed']} ({removed_share:.1%} of the previous version)"


def _reason(counts: Mapping[str, int], change_share: float, removed_share: float, drift: Mapping[str, Any]) -> str:
    largest = max(("prompt_length", "completion_length", "vocabulary", "topics"), key=lambda name: drift[name])
    return (f"{counts['new']} new and {counts['changed']} changed examples ({change_share:.1%} of the new data), "
            f"{absent_text(counts, removed_share)}; largest shift: {largest} {drift[largest]:.3f}")


def retrain_decision(comparison: Mapping[str, Any], min_change: float) -> dict[str, Any]:
    score = float(comparison["score"])
    recommended = score >= min_change
    verdict = "retrain" if recommended else "skip training: nothing meaningful changed"
    return {"score": score, "min_change": min_change, "recommended": recommended,
            "reason": f"{verdict} (score {score:.4f} {'>=' if recommended else '<'} min change {min_change}): "
                      f"{comparison['reason']}"}
