"""What the validation and test splits hold out: phrasings of facts, never facts (holdout "phrasings").

A fact is the examples sharing a fact key (records.fact_key: the answer, normalized, case-folded
and without end punctuation, when it has at least MIN_FACT_WORDS words; a shorter answer such as
"Yes." or "$399" answers many questions, so such an example is its own fact). Each new example has
its split score (split: a seeded hash of its id) and the band that score falls in (train,
validation, test). With holdout "phrasings" (the default):

- a fact with several phrasings: each phrasing in the validation or test band is held out there,
  except that at least one phrasing always stays in train (when every phrasing falls in a held-out
  band, the one with the highest score stays);
- a fact with one phrasing stays in train; when its score falls in the validation or test band, a
  copy of it is also written there to be re-asked (recall);
- with a validation fraction above 0 and nothing in validation, the trained example with the
  lowest score in the train band is re-asked there too.

Held-out rows carry `"heldout": "phrasing"`, re-asked rows `"heldout": "recall"`; nothing is
withheld. With holdout "examples" (the split before this mode) the bands are the splits, and the
pass only counts the facts that end up with no phrasing in train.

Decided a fact-key range at a time (the `facts` spill of each unit): memory is one group of keys and
one bit per example; the held-out and recalled examples are bitmaps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from prepare.merge import Pool
from prepare.records import MIN_FACT_WORDS
from prepare.spill import FACT_ROW, Bitmap, SpillSource, loaded, partition_totals, plan_groups, read_group
from prepare.split import HOLDOUT_EXAMPLES, SPLIT_NAMES, TEST, TRAIN, VALIDATION, scan_codes, split_scores
from prepare.units import Unit

HELD_OUT_PHRASING, RECALL = "phrasing", "recall"
FACT_KEY = (f"the answer (normalized, case-folded, end punctuation ignored) when it has {MIN_FACT_WORDS}+ words; "
            "a shorter answer is a fact of its own")


@dataclass
class HoldoutCounts:
    """Facts and what was held out of them. `low`: (score, index) of the example with the lowest score in the
    train band, which `decide` may re-ask to keep validation non-empty."""

    facts: int = 0
    several: int = 0
    phrasings: int = 0  # examples of the facts with several phrasings
    held: list[int] = field(default_factory=lambda: [0, 0, 0])
    recall: list[int] = field(default_factory=lambda: [0, 0, 0])
    withheld: int = 0
    low: tuple[float, int] | None = None

    def merge(self, other: "HoldoutCounts") -> None:
        self.facts += other.facts
        self.several += other.several
        self.phrasings += other.phrasings
        self.withheld += other.withheld
        for code in range(len(SPLIT_NAMES)):
            self.held[code] += other.held[code]
            self.recall[code] += other.recall[code]
        if other.low is not None and (self.low is None or other.low < self.low):
            self.low = other.low


@dataclass(frozen=True)
class Placement:
    """Where holdout "phrasings" puts the new examples (all staged for train): the bitmaps, saved, of the held-out
    phrasings and of the examples re-asked (over the `size` new and replayed examples), the band settings, and
    `extra`: global index → split of a re-asked copy outside its band."""

    held: Path
    recall: Path
    size: int
    seed: int
    validation_fraction: float
    test_fraction: float
    extra: dict[int, int] = field(default_factory=dict)

    def load(self) -> "Placed":
        return Placed(self, Bitmap.load(self.held, self.size), Bitmap.load(self.recall, self.size))


@dataclass(frozen=True)
class Placed:
    """A Placement with its bitmaps read."""

    placement: Placement
    held: Bitmap
    recall: Bitmap

    def chunk(self, first: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For examples first, first + 1, ... with these ids: (split, re-asked?, split of the re-asked copy)."""
        placement, stop = self.placement, first + ids.size
        bands = scan_codes(split_scores(ids, placement.seed), placement.validation_fraction, placement.test_fraction)
        target = np.where(self.held.slice(first, stop), bands, TRAIN).astype(np.uint8)
        recall, copy = self.recall.slice(first, stop), bands.copy()
        for index, code in placement.extra.items():
            if first <= index < stop:
                recall[index - first], copy[index - first] = True, code
        return target, recall, copy


def _group(sources: list[SpillSource], lo: int, hi: int, kept_path: Path, size: int, seed: int,
           validation_fraction: float, test_fraction: float, mode: str,
           moved: dict[int, int]) -> tuple[np.ndarray, np.ndarray, HoldoutCounts]:
    """(held-out indices, re-asked indices, counts) of the kept examples of a fact-key range."""
    rows, indices = read_group(sources, FACT_ROW, lo, hi)
    chosen = Bitmap.load(kept_path, size).get(indices)
    rows, indices = rows[chosen], indices[chosen]
    counts, none = HoldoutCounts(), np.empty(0, np.int64)
    if not rows.size:
        return none, none, counts
    order = np.argsort(rows["key"], kind="stable")
    keys, indices = rows["key"][order], indices[order]
    scores = split_scores(rows["id"][order], seed)
    bands = scan_codes(scores, validation_fraction, test_fraction)
    for index, code in moved.items():  # holdout "examples": the split fixes
        bands[indices == index] = code
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    sizes = np.diff(np.append(starts, keys.size))
    out = bands != TRAIN
    trained = np.add.reduceat((~out).astype(np.int64), starts)
    counts.facts, counts.several = int(starts.size), int((sizes > 1).sum())
    counts.phrasings = int(sizes[sizes > 1].sum())
    if mode == HOLDOUT_EXAMPLES:
        counts.held = [0, *(int((bands == code).sum()) for code in (VALIDATION, TEST))]
        counts.withheld = int((trained == 0).sum())
        return none, none, counts
    fact = np.repeat(np.arange(starts.size), sizes)
    by_score = np.lexsort((scores, fact))  # by fact, then score: each fact's highest score is its last
    stay = np.zeros(keys.size, bool)
    stay[by_score[(starts + sizes - 1)[(trained == 0) & (sizes > 1)]]] = True
    single = (sizes == 1)[fact]
    held, recall = out & ~single & ~stay, out & single
    for code in (VALIDATION, TEST):
        counts.held[code] = int((held & (bands == code)).sum())
        counts.recall[code] = int((recall & (bands == code)).sum())
    free = np.flatnonzero(bands == TRAIN)
    if free.size:
        lowest = free[np.lexsort((indices[free], scores[free]))[0]]
        counts.low = (float(scores[lowest]), int(indices[lowest]))
    return indices[held], indices[recall], counts


def decide(units: list[Unit], kept_path: Path, size: int, seed: int, validation_fraction: float,
           test_fraction: float, mode: str, pool: Pool, work: Path,
           moved: dict[int, int] | None = None) -> tuple[Placement | None, HoldoutCounts]:
    """The placement of the new examples (None for holdout "examples", whose split is the scan's plus `moved`)
    and the counts. `size`: bits of the kept bitmap (new examples, then replayed ones, which stay in train)."""
    sources = loaded([unit.spill("facts") for unit in units])
    groups = plan_groups(partition_totals(sources), FACT_ROW)
    held, recall, counts = Bitmap(size), Bitmap(size), HoldoutCounts()
    for held_part, recall_part, part in pool.map(_group, repeat(sources), *zip(*groups), repeat(kept_path),
                                                 repeat(size), repeat(seed), repeat(validation_fraction),
                                                 repeat(test_fraction), repeat(mode), repeat(moved or {})):
        held.set(held_part)
        recall.set(recall_part)
        counts.merge(part)
    if mode == HOLDOUT_EXAMPLES:
        return None, counts
    extra: dict[int, int] = {}
    if validation_fraction > 0 and not counts.held[VALIDATION] + counts.recall[VALIDATION] and counts.low:
        extra[counts.low[1]] = VALIDATION
        counts.recall[VALIDATION] += 1
    placement = Placement(held.save(work / "held.bits"), recall.save(work / "recall.bits"), size, seed,
                          validation_fraction, test_fraction, extra)
    return placement, counts


def holdout_report(mode: str, counts: HoldoutCounts) -> dict[str, Any]:
    """report.json's `holdout`: what was held out and why."""
    held = {SPLIT_NAMES[code]: counts.held[code] for code in (VALIDATION, TEST)}
    recall = {SPLIT_NAMES[code]: counts.recall[code] for code in (VALIDATION, TEST)}
    if mode == HOLDOUT_EXAMPLES:
        why = (f"holdout 'examples': whole examples are held out by the hash of their id; {counts.withheld} of "
               f"{counts.facts} facts have no phrasing in train, so the model never learns them")
    else:
        why = (f"holdout 'phrasings': no fact is withheld; of the {counts.several} facts with several phrasings, "
               f"{sum(held.values())} phrasings are held out (never a fact's last phrasing in train); "
               f"{sum(recall.values())} one-phrasing facts, all in train, are re-asked (recall)")
    return {"mode": mode, "fact_key": FACT_KEY, "facts": counts.facts, "facts_with_several_phrasings": counts.several,
            "phrasings_of_those_facts": counts.phrasings, "phrasings_held_out": held, "recall": recall,
            "facts_withheld": counts.withheld, "reason": why}
