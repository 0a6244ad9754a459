"""Knowledge retention: each round re-asks what the previous version knew, and grows the inventory's coverage.

From the previous approved version's inventory (common.inventory) and this round's train split, a
round plans two sets of questions, both deterministic (items ranked by sha256 of this round's data
version and the item id, so a later round draws other items) and stratified by data version
(one item per data version in turn, so every earlier version keeps a voice however many came after):

- the retention check: items the inventory marks known (and the new data does not supersede), at
  most `--retention-max-cases`, oldest data version first. The candidate and the baseline (the
  previous approved version) answer them. An item counts as known this round when the baseline
  still answers it right (all asked items when there is no baseline); the few it misses had a
  verdict from an earlier round and were lost before this one (`lost_before`, not the candidate's
  doing). forgetting = share of those known items the candidate answers wrong; `MaxForgetting`
  bounds it (an absolute share).
- the coverage check: at most `--retention-max-new-cases` other items, those never checked first
  (this round's new examples and earlier ones over past caps), then those last answered wrong,
  newest data version first. Only the candidate answers them.

Both checks give the candidate's verdicts to the next inventory; other items keep their earlier
verdict. Coverage grows each round by up to `--retention-max-new-cases` items never checked before,
until every item has a verdict; known items over the retention cap stay in the pool that later
rounds draw from.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from common.benchmarks import BenchmarkSuite, SuiteSpec
from common.cases import BenchmarkCase
from common.inventory import Item, Merged, answered_right, summarize
from evaluate.tasks import CaseOutcome, SuiteRun

RETENTION_SUITE = "retention"
COVERAGE_SUITE = "inventory_check"
KNOWN_METRIC = "known_recall"  # share of a check's items answered right (answered_right)
FORGETTING_METRIC = "forgetting"
CHECK_METRICS = ["token_f1", "exact_match"]  # what run_suite computes for the checks (KNOWN_METRIC is added)
MAX_ANSWER_TOKENS = 256  # most new tokens a check generates, however long the trained answers
ANSWER_MARGIN = 8  # new tokens beyond the longest trained answer: room to say more than it (and be judged wrong)
FORGOTTEN_LISTED = 200  # forgotten items listed in evaluation.json (all are counted)


@dataclass(frozen=True)
class RoundPlan:
    """This round's inventory work, decided before any model is loaded."""

    data_version: str
    previous_items: int
    previous_known: int
    merged: Merged
    retention: tuple[Item, ...]  # known items re-asked (candidate and baseline)
    coverage: tuple[Item, ...]  # items given a first or fresh verdict (candidate only)


def _rank(salt: str, item: Item) -> str:
    return hashlib.sha256(f"{salt}:{item.id}".encode("utf-8")).hexdigest()


def stratified(items: Sequence[Item], limit: int, salt: str, newest_first: bool = False) -> list[Item]:
    """Up to `limit` items, one per data version in turn (versions in the order `items` first holds them, which the
    inventory keeps oldest first; reversed with `newest_first`), each version's items in salted hash order."""
    order = list(dict.fromkeys(item.data_version for item in items))
    if newest_first:
        order.reverse()
    by_version = {version: sorted((i for i in items if i.data_version == version), key=lambda i: _rank(salt, i))
                  for version in order}
    chosen: list[Item] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(by_version[v]) for v in order):
        chosen += [by_version[v][depth] for v in order if depth < len(by_version[v])][:limit - len(chosen)]
        depth += 1
    return chosen


def plan_round(previous: Sequence[Item], merged: Merged, data_version: str, max_retention: int,
               max_coverage: int) -> RoundPlan:
    """Which known items are re-asked (retention) and which others get a verdict (coverage) this round."""
    retention = stratified([item for item in merged.items if item.known is True], max_retention, data_version)
    asked = {item.id for item in retention}
    never = [item for item in merged.items if item.known is None]
    wrong = [item for item in merged.items if item.known is False and item.id not in asked]
    coverage = stratified(never, max_coverage, data_version, newest_first=True)
    coverage += stratified(wrong, max_coverage - len(coverage), data_version, newest_first=True)
    return RoundPlan(data_version, len(previous), sum(item.known is True for item in previous), merged,
                     tuple(retention), tuple(coverage))


def check_suite(name: str, items: Sequence[Item], description: str) -> BenchmarkSuite | None:
    """The items as a qa suite (asked in their chat context, grouped by data version); None when there are none."""
    if not items:
        return None
    cases = tuple(BenchmarkCase(id=item.id, prompt=item.prompt, target=item.completion, group=item.data_version,
                                context=item.context) for item in items)
    spec = SuiteSpec(name=name, version=hashlib.sha256("".join(c.id for c in cases).encode("utf-8")).hexdigest()[:12],
                     task="qa", description=description, data="cases.jsonl", metrics=CHECK_METRICS)
    return BenchmarkSuite(spec=spec, cases=cases, path=Path(name))


def sized_for(suite: BenchmarkSuite, tokenizer: Any) -> BenchmarkSuite:
    """The suite with room for its longest trained answer (and a margin), up to MAX_ANSWER_TOKENS new tokens."""
    targets = [case.target for case in suite.cases]
    longest = max(len(ids) for ids in tokenizer(targets, add_special_tokens=False)["input_ids"])
    new_tokens = min(MAX_ANSWER_TOKENS, longest + ANSWER_MARGIN)
    return replace(suite, spec=suite.spec.model_copy(update={"max_new_tokens": new_tokens}))


def judge(run: SuiteRun) -> SuiteRun:
    """A check's run with every answer judged by `answered_right` (`correct` and a KNOWN_METRIC score per case)."""
    outcomes = tuple(replace(outcome, correct=answered_right(outcome.prediction, outcome.target),
                             scores={KNOWN_METRIC: float(answered_right(outcome.prediction, outcome.target)),
                                     **outcome.scores})
                     for outcome in run.outcomes)
    recall = sum(outcome.correct is True for outcome in outcomes) / max(1, len(outcomes))
    return replace(run, outcomes=outcomes, metrics={KNOWN_METRIC: recall, **run.metrics})


@dataclass(frozen=True)
class Retention:
    """The retention check's outcome: what was asked, what the previous version still knew, what was forgotten."""

    asked: int
    known: int  # asked items the previous version answers right now (all asked items without a baseline)
    lost_before: int  # asked items the previous version itself answers wrong now (verdicts of an earlier round)
    forgotten: list[dict[str, Any]]  # known items the candidate answers wrong

    @property
    def share(self) -> float:
        """forgetting: the share of known items the candidate answers wrong (0 when none were asked)."""
        return len(self.forgotten) / self.known if self.known else 0.0


def compare_retention(items: Sequence[Item], candidate: SuiteRun, baseline: SuiteRun | None) -> Retention:
    """Compare the judged runs of the retention check (same items, same order)."""
    old = baseline.outcomes if baseline is not None else [None] * len(candidate.outcomes)
    known = [(item, new, before) for item, new, before in zip(items, candidate.outcomes, old)
             if before is None or before.correct]
    forgotten = [_forgotten(item, new, before) for item, new, before in known if not new.correct]
    return Retention(len(items), len(known), len(items) - len(known), forgotten)


def _forgotten(item: Item, new: CaseOutcome, old: CaseOutcome | None) -> dict[str, Any]:
    return {"id": item.id, "prompt": item.prompt, "expected": item.completion, "candidate": new.prediction,
            "baseline": old.prediction if old else None, "data_version": item.data_version, "source": item.source}


def next_items(plan: RoundPlan, *runs: SuiteRun | None) -> list[Item]:
    """The next inventory: the merged items with the candidate's verdicts from this round's judged checks."""
    verdicts = {outcome.id: outcome.correct for run in runs if run is not None for outcome in run.outcomes}
    return [replace(item, known=bool(verdicts[item.id]), checked_in=plan.data_version) if item.id in verdicts else item
            for item in plan.merged.items]


def inventory_section(plan: RoundPlan, result: Retention | None, items: Sequence[Item], max_forgetting: float | None
                      ) -> dict[str, Any]:
    """evaluation.json's `inventory`: the previous inventory, the merge, the checks and the next inventory."""
    merged = plan.merged
    return {
        "data_version": plan.data_version,
        "previous": {"items": plan.previous_items, "known": plan.previous_known},
        "merge": {"added": merged.added, "superseded": merged.superseded, "repeated": merged.repeated,
                  "replayed_rows": merged.replayed},
        "retention": None if result is None else {
            "asked": result.asked, "known": result.known, "lost_before": result.lost_before,
            "forgotten": len(result.forgotten), "forgetting": result.share, "max_forgetting": max_forgetting,
            "forgotten_items": result.forgotten[:FORGOTTEN_LISTED]},
        "coverage_checks": len(plan.coverage),
        "next": summarize(items),
    }
