"""Replay selection `online`: keep watching the history while training and replay what is being forgotten now.

The static selections (steps/train/replay_budget.py) decide before the first step; but what a round
forgets is decided by the round itself (the new facts' gradients interfere with their neighbours).
`online` re-decides every epoch, at the same replay budget:
- refresh (each epoch): score a window of the history under the current weights (answer margins, one
  forward pass, no backward; steps/train/scoring.answer_margins), SCORING_SHARE times the epoch's
  replay amount: half the items scored longest ago (every item comes round) and half the lowest margins
  seen so far (the ones at risk are watched closely);
- the epoch's replay: per data version (replay_budget.quotas: every version keeps a voice), the items
  the starting model answered right with the lowest current margin first (already forgotten ones,
  margin < 0, lowest: they are repaired), then the ones it got wrong;
- each step, its share of them rides along in the batch with the replay weight, and their margins (and
  the distill component's riders', when on) are read off that step's forward for free.
Per epoch the cost is the budget's replayed tokens plus a forward over SCORING_SHARE x the budget:
flat, however long the history. Maximally Interfered Retrieval (Aljundi et al., NeurIPS 2019,
arXiv:1908.04742) scores memories under the current parameters, as here; forgetting events (Toneva et
al., ICLR 2019, arXiv:1812.05159) are what the margin watches; the staleness half is spaced repetition
(Amiri et al., "Repeat before Forgetting", ACL 2017). bench/forgetting.py measured this selection.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from train.data import TrainExample
from train.replay_budget import RECORDED_ITEMS, Candidate, budget_amount, choose
from train.scoring import answer_margins

SCORING_SHARE = 3  # history items scored per epoch, as a multiple of the epoch's replayed items (measured: 1-3)


@dataclass
class OnlineReplay:
    """The online replay of one run: call `picked(step, model)` once per step (1-based) for the step's riders."""

    pool: list[TrainExample]  # the history, with the replay weight
    budget: float
    unit: str
    steps_per_refresh: int  # the steps of one epoch (rounded up): one refresh each
    pad_id: int
    tokens_per_batch: int
    bf16: bool
    start_margins: list[float]  # under the starting model; >= 0: answered right (the inventory it must keep)
    margins: list[float] = field(default_factory=list)  # the latest seen, per item
    scored_at: list[int] = field(default_factory=list)  # the refresh that last saw each item (-1: only the start)
    replays: list[int] = field(default_factory=list)  # times each item rode along
    queue: list[int] = field(default_factory=list)  # this epoch's replayed items
    refreshes: int = 0
    scored_tokens: int = 0  # forward-only tokens of the refreshes
    scoring_seconds: float = 0.0  # CPU seconds of the refreshes (the start's scoring: start_seconds)
    start_seconds: float = 0.0

    def __post_init__(self) -> None:
        size = len(self.pool)
        self.margins = self.margins or list(self.start_margins)
        self.scored_at = self.scored_at or [-1] * size
        self.replays = self.replays or [0] * size

    @property
    def amount(self) -> int:
        """The budget per epoch in the unit (examples or tokens)."""
        return budget_amount(self.budget, self.unit, self._candidates())

    def known(self, index: int) -> bool:
        return self.start_margins[index] >= 0

    def _candidates(self) -> list[Candidate]:
        return [Candidate(i, e.id or str(i), e.source, len(e.input_ids), self.margins[i])
                for i, e in enumerate(self.pool)]

    def picked(self, step: int, model: Any) -> list[int]:
        """Step `step`'s replayed items (pool indices): the epoch's queue spread evenly over its steps."""
        offset = (step - 1) % self.steps_per_refresh
        if offset == 0 or not self.refreshes:  # an epoch's first step (or a run resumed before any refresh)
            self.refresh(model)
        count = len(self.queue)
        chosen = [self.queue[j] for j in range(count) if j * self.steps_per_refresh // count == offset]
        for index in chosen:
            self.replays[index] += 1
        return chosen

    def refresh(self, model: Any) -> None:
        """Score this epoch's window under `model` and choose the epoch's replay."""
        if self.amount == 0:  # a budget of nothing: nothing to score or replay
            self.queue, self.refreshes = [], self.refreshes + 1
            return
        started = time.process_time()
        window = self.window()
        margins, _ = answer_margins(model, [self.pool[i] for i in window], self.pad_id, self.tokens_per_batch, self.bf16)
        self.observe(window, margins)
        self.scored_tokens += sum(len(self.pool[i].input_ids) for i in window)
        self.queue = self.choose()
        self.refreshes += 1
        self.scoring_seconds += time.process_time() - started

    def window(self) -> list[int]:
        """The items to score now: half the stalest, half the lowest margins seen (known items first)."""
        size = min(len(self.pool), SCORING_SHARE * max(1, self._epoch_items()))
        order = sorted(range(len(self.pool)), key=lambda i: (not self.known(i), self.scored_at[i], i))
        stale = order[: (size + 1) // 2]
        rest = sorted(set(range(len(self.pool))) - set(stale), key=lambda i: (not self.known(i), self.margins[i], i))
        return sorted(stale + rest[: size - len(stale)])

    def _epoch_items(self) -> int:
        """How many items an epoch replays (the last queue, else the budget's count at the mean size)."""
        if self.queue:
            return len(self.queue)
        amount = self.amount
        if self.unit == "tokens":
            mean = sum(len(e.input_ids) for e in self.pool) / max(len(self.pool), 1)
            return max(1, round(amount / max(mean, 1)))
        return amount

    def choose(self) -> list[int]:
        """Per data version, the known items with the lowest current margin first (forgotten ones lowest), then the
        ones the starting model got wrong, nearest the boundary first; in that order."""
        def need(candidate: Candidate) -> tuple[int, float, int]:
            i = candidate.index
            return (0, self.margins[i], i) if self.known(i) else (1, abs(self.margins[i]), i)

        return [c.index for c in sorted(choose(self._candidates(), "online", self.budget, self.unit, need).chosen,
                                        key=need)]

    def observe(self, indices: list[int], margins: list[float]) -> None:
        """Record margins seen now (a refresh's window, or a step's riders)."""
        for index, margin in zip(indices, margins):
            if math.isfinite(margin):
                self.margins[index] = margin
                self.scored_at[index] = self.refreshes

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps (JSON), so a resumed run replays as the uninterrupted one would."""
        return {"margins": self.margins, "scored_at": self.scored_at, "replays": self.replays, "queue": self.queue,
                "refreshes": self.refreshes, "scored_tokens": self.scored_tokens,
                "scoring_seconds": self.scoring_seconds}

    def restore(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, list(value) if isinstance(value, list) else value)

    def record(self) -> dict[str, Any]:
        """continuum.json's `replay`: the budget, what was replayed per data version and item, and why."""
        touched = [i for i, n in enumerate(self.replays) if n]
        by_stratum: dict[str, dict[str, Any]] = {}
        for candidate in self._candidates():
            entry = by_stratum.setdefault(candidate.stratum, {"candidates": 0, "chosen": 0, "replays": 0,
                                                              "chosen_tokens": 0, "known": 0, "at_risk": 0})
            i = candidate.index
            entry["candidates"] += 1
            entry["known"] += self.known(i)
            entry["at_risk"] += self.known(i) and self.margins[i] < 0
            entry["chosen"] += bool(self.replays[i])
            entry["replays"] += self.replays[i]
            entry["chosen_tokens"] += candidate.tokens if self.replays[i] else 0
        ranked = sorted(touched, key=lambda i: (-self.replays[i], i))
        return {
            "selection": "online", "budget": self.budget, "unit": self.unit, "amount": self.amount,
            "epoch_windows": self.refreshes, "candidates": len(self.pool),
            "candidate_tokens": sum(len(e.input_ids) for e in self.pool),
            "chosen": len(touched), "chosen_tokens": sum(len(self.pool[i].input_ids) for i in touched),
            "replayed_tokens": sum(len(self.pool[i].input_ids) * self.replays[i] for i in touched),
            "wrong_before": sum(not self.known(i) for i in range(len(self.pool))),
            "wrong_now": sum(self.known(i) and self.margins[i] < 0 for i in range(len(self.pool))),
            "scored_tokens": self.scored_tokens, "scoring_share": SCORING_SHARE,
            "scoring_seconds": round(self.start_seconds + self.scoring_seconds, 3),
            "by_data_version": by_stratum,
            "items": [{"id": self.pool[i].id, "source": self.pool[i].source, "score": round(self.margins[i], 4),
                       "loss": None, "replays": self.replays[i], "reason": self.reason(i)}
                      for i in ranked[:RECORDED_ITEMS]],
        }

    def reason(self, index: int) -> str:
        start, now = self.start_margins[index], self.margins[index]
        if not self.known(index):
            return (f"answered wrong by the previous version (margin {start:.2f}): replayed when the budget had room "
                    f"after the known items; margin now {now:.2f}")
        return (f"known by the previous version (margin {start:.2f}); among the lowest margins while training "
                f"(margin now {now:.2f}): replayed {self.replays[index]}x")


def build_online_replay(model: Any, history: list[TrainExample], budget: float, unit: str,
                        steps_per_epoch: float, pad_id: int, tokens_per_batch: int, bf16: bool,
                        start_margins: list[float] | None = None) -> OnlineReplay:
    """The online replay over `history`, scored once under the starting `model` (before the first step), unless
    `start_margins` already hold that (distill's teacher pass over the same history)."""
    started = time.process_time()
    if start_margins is None:
        start_margins, _ = answer_margins(model, history, pad_id, tokens_per_batch, bf16)
    return OnlineReplay(history, budget, unit, max(1, math.ceil(steps_per_epoch)), pad_id, tokens_per_batch, bf16,
                        list(start_margins), start_seconds=time.process_time() - started)

