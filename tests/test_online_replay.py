"""Replay selection `online` (steps/train/online_replay.py): what each epoch replays, how the scoring window is
chosen, the riders spread over the steps, the checkpoint state, and a train.py run that records it."""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import train
from common.examples import read_examples
from conftest import TINY_TRAIN_ARGS
from train.data import TrainExample
from train.online_replay import SCORING_SHARE, OnlineReplay
from train.scoring import lowest_margins


def _pool(sizes: dict[str, int]) -> list[TrainExample]:
    pool = []
    for name, size in sizes.items():
        for i in range(size):
            pool.append(TrainExample([1, 2, 3, 4], [-100, -100, 3, 4], 1.0, True, f"{name}-{i:02d}",
                                     f"replay:{name}:{i + 1}"))
    return pool


def _online(start: list[float], budget: float = 4, steps: int = 3) -> OnlineReplay:
    pool = _pool({"round1.csv": len(start) - len(start) // 4, "round2.jsonl": len(start) // 4})
    return OnlineReplay(pool, budget, "examples", steps, 0, 512, False, start)


def test_each_epoch_replays_the_known_items_closest_to_forgotten_per_data_version() -> None:
    start = [5.0] * 12 + [-1.0] * 4  # items 12-15 answered wrong by the previous version
    online = _online(start, budget=4)
    online.observe([3, 7, 1, 9, 13, 14], [-2.0, 0.5, 0.1, 4.0, 9.0, -0.5])  # 3 forgotten, 13 right now but unknown
    # quotas: round1.csv (12 items) 3, round2.jsonl (4 unknown items) 1; per version the known items by current
    # margin (forgotten first), then unknown ones nearest the boundary; the queue in that order
    assert online.choose() == [3, 1, 7, 14]
    online.observe(list(range(12)), [3.0] * 12)  # every known item safe again: equal margins, lowest ids
    assert online.choose() == [0, 1, 2, 14]
    everything = _online(start, budget=16)
    everything.observe([14, 12], [-3.0, -0.1])
    assert everything.choose() == [*range(12), 12, 13, 15, 14]


def test_a_token_budget_is_never_exceeded_and_a_zero_budget_scores_nothing() -> None:
    online = OnlineReplay(_pool({"a.csv": 30, "b.jsonl": 10}), 0.1, "tokens", 2, 0, 512, False, [1.0] * 40)
    for i, example in enumerate(online.pool):
        example.input_ids.extend([5] * (i % 7))  # lengths 4..10
    online.observe(list(range(40)), [float(i % 5) for i in range(40)])
    queue = online.choose()
    spent = sum(len(online.pool[i].input_ids) for i in queue)
    assert online.amount == round(0.1 * sum(len(e.input_ids) for e in online.pool)) and 0 < spent <= online.amount
    nothing = OnlineReplay(_pool({"a.csv": 8}), 0.0, "examples", 2, 0, 512, False, [1.0] * 8)
    assert [nothing.picked(step, None) for step in range(1, 5)] == [[], [], [], []]  # no model call: None is fine
    assert nothing.refreshes == 2 and nothing.scored_tokens == 0


def test_scoring_window_is_half_stalest_half_lowest_and_fixed_in_size() -> None:
    online = _online([5.0] * 40, budget=4)
    online.queue = [0, 1, 2, 3]
    online.scored_at = [3] * 20 + [1] * 20  # items 20-39 seen longest ago
    online.margins = [5.0] * 40
    online.margins[5], online.margins[6] = 0.2, 0.4  # the two most at risk
    assert online.window() == sorted([*range(20, 26), 5, 6, 0, 1, 2, 3])  # 6 stalest, then the 6 lowest margins
    assert len(online.window()) == SCORING_SHARE * len(online.queue)


def test_riders_spread_each_epoch_queue_evenly_and_refresh_once_an_epoch(monkeypatch) -> None:
    online = _online([5.0] * 16, budget=4, steps=3)
    refreshed: list[int] = []

    def fake_refresh(model: object) -> None:
        refreshed.append(len(refreshed))
        online.queue, online.refreshes = [10 + len(refreshed), 1, 2, 3], len(refreshed)

    monkeypatch.setattr(online, "refresh", fake_refresh)
    epochs = [[online.picked(step, None) for step in range(1 + 3 * e, 4 + 3 * e)] for e in range(2)]
    assert refreshed == [0, 1]
    for epoch, steps in enumerate(epochs):
        flat = [i for step in steps for i in step]
        assert sorted(flat) == sorted([11 + epoch, 1, 2, 3])  # every queued item exactly once an epoch, no more
        assert max(len(step) for step in steps) - min(len(step) for step in steps) <= 1
    assert online.replays[1] == 2 and online.replays[11] == 1


def test_checkpoint_state_round_trips_through_json() -> None:
    online = _online([1.0, -1.0, 2.0, 0.5, 3.0, 1.5, 0.2, 0.9])
    online.observe([0, 2], [0.3, -0.4])
    online.queue, online.refreshes, online.replays[2] = [2, 0], 3, 5
    resumed = _online([1.0, -1.0, 2.0, 0.5, 3.0, 1.5, 0.2, 0.9])
    resumed.restore(json.loads(json.dumps(online.state())))
    assert resumed.state() == online.state() and resumed.choose() == online.choose()


def test_lowest_margins_match_the_targets_logit_minus_the_best_other() -> None:
    import torch

    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.5, 0.5], [0.0, 0.0, 4.0]])
    targets = torch.tensor([0, 1, 0, 2])
    margins = lowest_margins(logits, targets, torch.tensor([0, 0, 1, 2]), 4)
    assert [round(m, 4) for m in margins[:3]] == [1.0, -0.5, 4.0] and math.isinf(margins[3])


def test_train_with_online_replay_keeps_its_budget_and_records_why(trained_round1: dict,
                                                                   prepared_rounds: dict[int, Path],
                                                                   tmp_path: Path) -> None:
    split = prepared_rounds[2]
    out = tmp_path / "online"
    argv = [*TINY_TRAIN_ARGS, "--train-dir", str(split / "train"), "--base-model-dir", str(trained_round1["dir"]),
            "--model-dir", str(out), "--epochs", "3", "--fisher_samples", "0", "--strategy", "replay,distill",
            "--replay_budget", "0.1", "--replay_selection", "online"]
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        assert train.main(argv) == 0
    meta = json.loads((out / "continuum.json").read_text())
    history = [r for r in read_examples(split / "train") if str(r.get("source", "")).startswith("replay:")]
    replay, metrics = meta["replay"], meta["metrics"]
    assert replay["selection"] == "online" and replay["candidates"] == len(history)
    amount, refreshes = replay["amount"], replay["epoch_windows"]
    assert amount == round(0.1 * len(history)) and SCORING_SHARE * amount < len(history)
    steps_per_refresh = math.ceil(metrics["steps"] / metrics["epoch"])
    assert refreshes == math.ceil(metrics["steps"] / steps_per_refresh) >= 3
    # every refresh's queue is the budget's count, each item once (the last epoch may be cut short): never more
    replays = sum(v["replays"] for v in replay["by_data_version"].values())
    assert (refreshes - 1) * amount < replays <= refreshes * amount
    assert amount <= replay["chosen"] <= replays
    assert metrics["replay_tokens"] == replay["replayed_tokens"] > 0
    assert meta["data"]["replay_tokens_per_epoch"] == metrics["replay_tokens"] / metrics["epoch"]
    assert meta["data"]["replay_examples"] == replay["chosen"]
    assert 0 < replay["scored_tokens"] < refreshes * replay["candidate_tokens"]  # a window, not the history
    assert replay["scoring_seconds"] >= round(metrics["replay_scoring_cpu_seconds"], 3) > 0  # + the start, rounded
    assert metrics["distill_teacher_cpu_seconds"] > 0 and metrics["distill_tokens"] > 0
    items = replay["items"]
    assert items and all(item["replays"] >= 1 and item["reason"] and item["source"].startswith("replay:")
                         for item in items)
    assert [item["replays"] for item in items] == sorted((item["replays"] for item in items), reverse=True)
    assert "replay: online" in log.getvalue()
