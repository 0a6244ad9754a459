"""Which replayed examples a round trains on: a fixed budget, chosen by risk, stratified by data version.

The prepare step passes the whole history (every earlier, not superseded example, sources prefixed
`replay:`) with the new data; this module decides what of it the round spends training on, so a
round's cost stays flat however long the history grows:
- budget: `replay_budget` <= 1 is a share of the history, > 1 an absolute amount, counted in
  `replay_budget_unit` (examples, or completion+prompt tokens);
- strata: the history's data versions (a replayed example's source file: each round's export is
  its own files), each getting its proportional share of the budget, at least one example while
  the budget allows, so old versions keep a voice;
- selection `at_risk`: score every candidate with the starting model (the previous version) by its
  answer *margin* = min over the answer's tokens of logit(answer token) - the best other logit
  (below 0 the model's greedy answer is already wrong, just above 0 it is the next to flip) and take
  the known items with the lowest margin first, the already-wrong ones last (measured: spending the
  budget on repairing lost items first keeps less of what the model knows, bench/forgetting.py). This is the "which memories to rehearse" rule of Maximally Interfered Retrieval
  (Aljundi et al., NeurIPS 2019, arXiv:1908.04742) and of loss-/uncertainty-based rehearsal
  (Toneva et al., "An Empirical Study of Example Forgetting", ICLR 2019, arXiv:1812.05159: the
  examples that are forgotten are the ones near the decision boundary), scored once, before
  training, with one forward pass over the history (no backward);
- selection `random`: a seeded hash order within each stratum (reservoir-style rehearsal,
  Chaudhry et al., "On Tiny Episodic Memories in Continual Learning", arXiv:1902.10486).
The choice (per stratum, per item: score and reason) goes to continuum.json (`replay`).
"""
from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from train.data import TrainExample
from train.scoring import answer_margins

SELECTIONS = ("at_risk", "random", "rotating", "online")  # online: steps/train/online_replay.py
UNITS = ("examples", "tokens")
REPLAY_PREFIX = "replay:"
_LINE_SUFFIX = re.compile(r":\d+$")
RECORDED_ITEMS = 200  # continuum.json lists the chosen items (in selection order) up to this many


def stratum_of(source: str) -> str:
    """A replayed example's data version: its source file (source without `replay:` and `:line`)."""
    return _LINE_SUFFIX.sub("", str(source).removeprefix(REPLAY_PREFIX))


@dataclass(frozen=True)
class Candidate:
    """One replayable example: where it is in the encoded list, its record's id/source, size and score."""

    index: int
    id: str
    source: str
    tokens: int
    score: float  # at_risk: the margin (lower: more at risk); random: the hash order in [0, 1)
    loss: float | None = None  # mean NLL of the answer under the starting model (at_risk only)

    @property
    def rank(self) -> tuple[int, float]:
        """The selection order: items the model still knows (score >= 0) by ascending score, then the ones it
        already gets wrong (random scores are never negative)."""
        return (0, self.score) if self.score >= 0 else (1, -self.score)

    @property
    def stratum(self) -> str:
        return stratum_of(self.source)


@dataclass
class ReplayChoice:
    """The replayed examples this round trains on, and why."""

    selection: str
    budget: float
    unit: str
    amount: int  # the budget in `unit` (examples or tokens)
    candidates: list[Candidate]
    chosen: list[Candidate]
    scoring_seconds: float = 0.0
    quotas: dict[str, int] = field(default_factory=dict)
    windows: list[list[int]] | None = None  # rotating: each epoch's replayed examples (indices), cycling

    def epoch_members(self, new: list[int]) -> Any:
        """members(epoch) for train.data.step_plan: the new examples and that epoch's window."""
        windows = self.windows or [self.indices]
        return lambda epoch: new + windows[epoch % len(windows)]

    @property
    def indices(self) -> list[int]:
        return sorted(candidate.index for candidate in self.chosen)

    def record(self) -> dict[str, Any]:
        """continuum.json's `replay`: budget, what was chosen per data version, and why (score per item)."""
        by_stratum: dict[str, dict[str, Any]] = {}
        for candidate in self.candidates:
            entry = by_stratum.setdefault(candidate.stratum, {"candidates": 0, "chosen": 0, "quota": 0,
                                                              "chosen_tokens": 0, "at_risk": 0})
            entry["candidates"] += 1
            entry["at_risk"] += self.selection == "at_risk" and candidate.score < 0
        for candidate in self.chosen:
            by_stratum[candidate.stratum]["chosen"] += 1
            by_stratum[candidate.stratum]["chosen_tokens"] += candidate.tokens
        for name, quota in self.quotas.items():
            by_stratum[name]["quota"] = quota
        ranked = sorted(self.chosen, key=lambda c: (c.rank, c.id))
        return {
            "selection": self.selection, "budget": self.budget, "unit": self.unit, "amount": self.amount,
            "epoch_windows": len(self.windows) if self.windows else None,
            "candidates": len(self.candidates), "candidate_tokens": sum(c.tokens for c in self.candidates),
            "chosen": len(self.chosen), "chosen_tokens": sum(c.tokens for c in self.chosen),
            "wrong_before": sum(c.score < 0 for c in self.candidates) if self.selection == "at_risk" else None,
            "scoring_seconds": round(self.scoring_seconds, 3),
            "by_data_version": by_stratum,
            "items": [{"id": c.id, "source": c.source, "score": round(c.score, 4),
                       "loss": None if c.loss is None else round(c.loss, 4), "reason": reason(self.selection, c)}
                      for c in ranked[:RECORDED_ITEMS]],
        }


def reason(selection: str, candidate: Candidate) -> str:
    """Why an item was replayed, in words."""
    if selection == "all":
        return "the budget covers the whole history"
    if selection == "random":
        return "random sample of its data version"
    if selection == "rotating":
        return "its data version's turn in the epoch's window (every item in turn, a budget's worth per epoch)"
    if candidate.score < 0:
        return "answered wrong by the previous version (margin < 0): relearned once the known items are covered"
    return "known, with one of the lowest margins of its data version (the closest to being forgotten)"


def budget_amount(budget: float, unit: str, candidates: Sequence[Candidate]) -> int:
    """The budget in `unit`: budget <= 1 a share of the candidates' total (rounded), else that many."""
    return amount_of(budget, len(candidates) if unit == "examples" else sum(c.tokens for c in candidates))


def amount_of(budget: float, total: int) -> int:
    """`budget` of `total`: <= 1 a share (rounded), else that many, within 0..total."""
    return max(0, min(round(budget * total) if budget <= 1 else int(budget), total))


def quotas(sizes: dict[str, int], amount: int) -> dict[str, int]:
    """Split `amount` over strata: one each first (oldest first, in `sizes`' order, while the amount lasts: every
    data version keeps a voice), the rest in proportion to what each has left (largest remainder), never more
    than a stratum's size. The quotas add up to min(amount, total)."""
    share = {name: 0 for name in sizes}
    left = min(amount, sum(sizes.values()))
    for name, size in sizes.items():
        if left and size:
            share[name], left = 1, left - 1
    while left:
        room = {name: sizes[name] - share[name] for name in sizes if sizes[name] > share[name]}
        pool = sum(room.values())
        exact = {name: left * size / pool for name, size in room.items()}
        grant = {name: min(room[name], math.floor(value)) for name, value in exact.items()}
        if not sum(grant.values()):  # less than one each: the largest remainders
            for name in sorted(room, key=lambda n: (-exact[n], list(sizes).index(n)))[:left]:
                grant[name] = 1
        for name, extra in grant.items():
            share[name] += extra
        left -= sum(grant.values())
    return share


def choose(candidates: Sequence[Candidate], selection: str, budget: float, unit: str,
           order: Callable[[Candidate], Any] | None = None) -> ReplayChoice:
    """The first candidates of each stratum by `order` (default: `Candidate.rank`, then id), up to the stratum's
    share of the budget."""
    amount = budget_amount(budget, unit, candidates)
    strata: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        strata.setdefault(candidate.stratum, []).append(candidate)
    size = (lambda members: len(members)) if unit == "examples" else (lambda members: sum(c.tokens for c in members))
    share = quotas({name: size(members) for name, members in strata.items()}, amount)
    chosen: list[Candidate] = []
    for name, members in strata.items():
        spent = 0
        for candidate in sorted(members, key=order or (lambda c: (c.rank, c.id))):
            cost = 1 if unit == "examples" else candidate.tokens
            if spent + cost > share[name]:
                if unit == "examples":
                    break
                continue  # tokens: a shorter example may still fit
            chosen.append(candidate)
            spent += cost
    return ReplayChoice(selection, budget, unit, amount, list(candidates), chosen, quotas=share)


def rotate(choice: ReplayChoice, epochs: int) -> ReplayChoice:
    """Spread the budget over the whole history instead of spending it on one subset: epoch e replays each
    stratum's next window of its quota (hash order, cycling), so every round's replayed tokens per epoch stay
    at the budget while every item comes round in turn. The per-epoch cost is the budget's; the distinct
    examples a round touches are up to all of the history (with the unit's amount per epoch). Scheduled
    rehearsal in the spirit of "Tiny Episodic Memories" (Chaudhry et al., arXiv:1902.10486) and of spaced
    repetition for networks (Amiri et al., "Repeat before Forgetting", ACL 2017)."""
    strata: dict[str, list[Candidate]] = {}
    for candidate in sorted(choice.candidates, key=lambda c: (c.score, c.id)):
        strata.setdefault(candidate.stratum, []).append(candidate)
    count = {name: len([c for c in choice.chosen if c.stratum == name]) for name in strata}
    windows: list[list[int]] = []
    for epoch in range(max(1, epochs)):
        window: list[int] = []
        for name, members in strata.items():
            take = count[name]
            window += [members[(epoch * take + j) % len(members)].index for j in range(take)]
        windows.append(sorted(set(window)))
    touched = {index for window in windows for index in window}
    return ReplayChoice("rotating", choice.budget, choice.unit, choice.amount, choice.candidates,
                        [c for c in choice.candidates if c.index in touched], choice.scoring_seconds, choice.quotas,
                        windows)


def hash_order(example_id: str, seed: int) -> float:
    """A stable pseudo-random place in [0, 1) for an id and seed."""
    return int(hashlib.sha256(f"{seed}:replay-budget:{example_id}".encode()).hexdigest()[:13], 16) / 16**13


def covers_history(budget: float, unit: str, history: Sequence[TrainExample]) -> bool:
    """Whether the budget covers the whole history (then every selection replays all of it)."""
    total = len(history) if unit == "examples" else sum(len(example.input_ids) for example in history)
    return amount_of(budget, total) >= total


def select_replay(model: Any, examples: Sequence[TrainExample], selection: str, budget: float, unit: str, seed: int,
                  pad_id: int, tokens_per_batch: int, bf16: bool = False, epochs: int = 1) -> ReplayChoice:
    """Choose among the replayed examples (`replay` set). A budget that covers the whole history takes it all,
    unscored (selection `all`)."""
    started = time.monotonic()
    replayed = [i for i, example in enumerate(examples) if example.replay]
    candidates = [Candidate(i, examples[i].id or str(i), examples[i].source, len(examples[i].input_ids),
                            hash_order(examples[i].id or str(i), seed)) for i in replayed]
    if covers_history(budget, unit, [examples[i] for i in replayed]):
        selection = "all"
    elif selection == "at_risk":
        margins, losses = answer_margins(model, [examples[i] for i in replayed], pad_id, tokens_per_batch, bf16)
        candidates = [Candidate(c.index, c.id, c.source, c.tokens, margin, loss)
                      for c, margin, loss in zip(candidates, margins, losses)]
    choice = choose(candidates, "random" if selection == "rotating" else selection, budget, unit)
    if selection == "rotating":
        choice = rotate(choice, epochs)
    choice.scoring_seconds = time.monotonic() - started
    return choice
