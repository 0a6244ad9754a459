"""The fixed replay budget (steps/train/replay_budget.py): quotas per data version, at-risk scoring, and train.py
runs that record what they replayed and why."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

import ferry_company
import train
from common.examples import read_examples
from common.model_io import read_metadata
from common.prompting import template_from_metadata
from conftest import TINY_TRAIN_ARGS
from train.data import encode_records, step_plan
from train.replay_budget import (Candidate, answer_margins, budget_amount, choose, quotas, rotate, select_replay,
                                 stratum_of)


def _candidates(sizes: dict[str, int], tokens: int = 10) -> list[Candidate]:
    out: list[Candidate] = []
    for name, size in sizes.items():
        for i in range(size):
            out.append(Candidate(len(out), f"{name}-{i:02d}", f"replay:{name}:{i + 1}", tokens + i, float(size - i)))
    return out


def test_quotas_are_proportional_exact_and_keep_every_version() -> None:
    assert quotas({"a.csv": 60, "b.jsonl": 30, "c.jsonl": 10}, 10) == {"a.csv": 6, "b.jsonl": 3, "c.jsonl": 1}
    assert quotas({"a": 95, "b": 3, "c": 2}, 10) == {"a": 8, "b": 1, "c": 1}  # old versions keep a voice
    assert sum(quotas({"a": 7, "b": 5, "c": 3}, 4).values()) == 4
    assert quotas({"a": 2, "b": 1}, 2) == {"a": 1, "b": 1}
    assert quotas({"a": 4, "b": 1}, 9) == {"a": 4, "b": 1} and quotas({"a": 4}, 0) == {"a": 0}


@pytest.mark.parametrize("budget,amount", [(0.1, 10), (0.25, 25), (1.0, 100), (7, 7), (500, 100), (0.0, 0)])
def test_budget_in_examples_is_respected_exactly(budget: float, amount: int) -> None:
    candidates = _candidates({"round1.csv": 60, "round2.jsonl": 30, "round3.jsonl": 10})
    choice = choose(candidates, "at_risk", budget, "examples")
    assert choice.amount == amount == len(choice.chosen)
    per_stratum = {name: [c for c in choice.chosen if c.stratum == name] for name in choice.quotas}
    assert {name: len(members) for name, members in per_stratum.items()} == choice.quotas
    for name, members in per_stratum.items():  # the lowest scores of each data version
        pool = sorted(c.score for c in candidates if c.stratum == name)
        assert sorted(c.score for c in members) == pool[:len(members)]


def test_budget_in_tokens_never_exceeds_its_share() -> None:
    candidates = _candidates({"a.csv": 40, "b.jsonl": 20})
    total = sum(c.tokens for c in candidates)
    choice = choose(candidates, "random", 0.1, "tokens")
    assert choice.amount == budget_amount(0.1, "tokens", candidates) == round(0.1 * total)
    spent = {name: sum(c.tokens for c in choice.chosen if c.stratum == name) for name in choice.quotas}
    assert all(spent[name] <= choice.quotas[name] for name in spent) and sum(spent.values()) <= choice.amount
    assert sum(spent.values()) >= choice.amount - 2 * max(c.tokens for c in candidates)  # not far under either


def test_rotating_windows_keep_the_quota_per_epoch_and_cover_the_history() -> None:
    candidates = _candidates({"round1.csv": 30, "round2.jsonl": 20})
    choice = rotate(choose(candidates, "random", 0.1, "examples"), epochs=10)
    assert choice.quotas == {"round1.csv": 3, "round2.jsonl": 2} and len(choice.windows) == 10
    by_index = {c.index: c for c in candidates}
    for window in choice.windows:  # each epoch: the budget, split as the quotas say
        assert len(window) == 5 and sum(by_index[i].stratum == "round1.csv" for i in window) == 3
    assert {i for w in choice.windows for i in w} == {c.index for c in candidates} == {c.index for c in choice.chosen}
    new = [100, 101, 102]
    lengths = [10] * 103
    plan = step_plan(lengths, 42, 3, -1, 4, None, choice.epoch_members(new))
    per_epoch = [sorted(i for batch in plan[e * 2:(e + 1) * 2] for i in batch) for e in range(3)]
    assert per_epoch == [sorted(new + choice.windows[e]) for e in range(3)]


def test_stratum_is_the_source_file() -> None:
    assert stratum_of("replay:exports/support_chats.jsonl:12") == "exports/support_chats.jsonl"
    assert stratum_of("faq.csv:3") == "faq.csv"


def test_at_risk_replays_the_most_fragile_known_items_then_the_wrong_ones(trained_round1: dict,
                                                                         prepared_rounds: dict[int, Path]) -> None:
    """Round-1 examples the trained model learned, half of them given another item's answer: the margin is below 0
    exactly where greedy decoding leaves the given answer; at_risk spends the budget on the known items with the
    lowest margins, the wrong ones only after all known ones."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = trained_round1["dir"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    records = [r for r in read_examples(prepared_rounds[1] / "train") if len(r.get("messages") or []) <= 2][:24]
    answers = [r["completion"] for r in records]
    for i, record in enumerate(records):  # odd items get another item's answer (one the model does not give)
        record["source"], record["messages"] = "replay:round1.jsonl:%d" % (i + 1), None
        if i % 2:
            record["completion"] = next(a for a in answers[i + 1:] + answers if a != answers[i])
    template = template_from_metadata(read_metadata(model_dir))
    examples, skipped = encode_records(records, tokenizer, template, 128, 1.0)
    assert skipped == 0 and all(e.replay for e in examples)
    margins, losses = answer_margins(model, examples, tokenizer.pad_token_id, 512)
    for example, margin in zip(examples, margins):  # margin < 0 <=> greedy generation leaves the given answer
        prompt = [t for t, label in zip(example.input_ids, example.labels) if label == -100]
        answer = example.input_ids[len(prompt):]
        with torch.no_grad():
            out = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=len(answer), do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        assert (out[0, len(prompt):].tolist() != answer) == (margin < 0)
    wrong = {e.id for i, e in enumerate(examples) if margins[i] < 0}
    assert {examples[i].id for i in range(1, len(examples), 2)} <= wrong  # every swapped answer is wrong
    assert len(wrong) <= len(examples) - 6 and sum(losses[1::2]) > sum(losses[0::2])
    known = sorted((m, e.id) for m, e in zip(margins, examples) if m >= 0)
    fragile = select_replay(model, examples, "at_risk", 3, "examples", 42, tokenizer.pad_token_id, 512)
    assert [c.id for c in sorted(fragile.chosen, key=lambda c: c.score)] == [i for _, i in known[:3]]
    assert all(item["reason"].startswith("known") for item in fragile.record()["items"])
    over = select_replay(model, examples, "at_risk", len(known) + 2, "examples", 42, tokenizer.pad_token_id, 512)
    chosen_wrong = {c.id for c in over.chosen} & wrong
    assert {i for _, i in known} <= {c.id for c in over.chosen} and len(chosen_wrong) == 2
    least_wrong = sorted((-m, e.id) for m, e in zip(margins, examples) if m < 0)[:2]  # the nearest to right
    assert chosen_wrong == {i for _, i in least_wrong}
    assert over.record()["items"][-1]["reason"].startswith("answered wrong") and over.record()["wrong_before"] == len(wrong)
    randomly = select_replay(model, examples, "random", 3, "examples", 42, tokenizer.pad_token_id, 512)
    assert len(randomly.chosen) == 3 and randomly.record()["items"][0]["loss"] is None


def _train(argv: list[str]) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        assert train.main(argv) == 0
    return json.loads((Path(argv[argv.index("--model-dir") + 1]) / "continuum.json").read_text())


def test_train_replays_its_budget_and_records_why(trained_round1: dict, prepared_rounds: dict[int, Path],
                                                  tmp_path: Path) -> None:
    split = prepared_rounds[2]
    common = [*TINY_TRAIN_ARGS, "--train-dir", str(split / "train"), "--base-model-dir", str(trained_round1["dir"]),
              "--max_steps", "2", "--fisher_samples", "0", "--strategy", "replay"]
    history = sum(str(r.get("source", "")).startswith("replay:") for r in read_examples(split / "train"))
    meta = _train([*common, "--model-dir", str(tmp_path / "examples"), "--replay_budget", "0.1",
                   "--replay_selection", "at_risk"])
    replay = meta["replay"]
    assert replay["candidates"] == history and replay["chosen"] == round(0.1 * history) == meta["data"]["replay_examples"]
    assert replay["selection"] == "at_risk" and replay["scoring_seconds"] > 0
    assert meta["strategy"]["replay_budget"] == {"budget": 0.1, "unit": "examples", "selection": "at_risk"}
    versions = replay["by_data_version"]
    assert len(versions) >= 3 and all(v["chosen"] == v["quota"] >= 1 for v in versions.values())
    assert sum(v["candidates"] for v in versions.values()) == history
    scores = [item["score"] for item in replay["items"]]
    known = [score for score in scores if score >= 0]
    assert known == sorted(known) and scores[:len(known)] == known and all(item["reason"] and item["source"].startswith("replay:")
                                            for item in replay["items"])
    assert meta["data"]["replay_tokens_per_epoch"] == replay["chosen_tokens"] > 0
    assert meta["data"]["train_examples"] == meta["data"]["replay_examples"] + sum(
        not str(r.get("source", "")).startswith("replay:") for r in read_examples(split / "train"))
    assert meta["metrics"]["train_cpu_seconds"] > 0 and meta["metrics"]["train_seconds"] > 0

    tokens = _train([*common, "--model-dir", str(tmp_path / "tokens"), "--replay_budget", "0.05",
                     "--replay_budget_unit", "tokens", "--replay_selection", "random"])["replay"]
    assert tokens["amount"] == round(0.05 * tokens["candidate_tokens"]) and 0 < tokens["chosen_tokens"] <= tokens["amount"]
    assert tokens["scoring_seconds"] < replay["scoring_seconds"] and tokens["wrong_before"] is None

    rotating = _train([*common, "--model-dir", str(tmp_path / "rotating"), "--replay_budget", "0.1",
                       "--epochs", "4", "--replay_selection", "rotating"])["replay"]
    assert rotating["epoch_windows"] == 4 and rotating["amount"] == replay["amount"]
    assert rotating["chosen"] == min(history, 4 * rotating["amount"]) and rotating["items"][0]["reason"].startswith("its")

    everything = _train([*common, "--model-dir", str(tmp_path / "all"), "--replay_budget", "1"])
    assert everything["replay"]["selection"] == "all" and everything["data"]["replay_examples"] == history


def test_ferry_rounds_three_to_five_add_and_change_facts() -> None:
    seen = {fact.id: fact.answer for fact in ferry_company.facts(1)}
    for round_no in (2, 3, 4, 5):
        facts = ferry_company.facts(round_no)
        changed = [f for f in facts if f.status == "changed"]
        new = [f for f in facts if f.status == "new"]
        assert changed and new and not {f.id for f in new} & set(seen)
        assert all(f.id in seen and seen[f.id] != f.answer for f in changed)
        seen.update({f.id: f.answer for f in facts})
    assert ferry_company.current_answers(5)["fare-port-alder-gull-island"].answer == "$23"  # changed twice
    with pytest.raises(ValueError, match="rounds 1, 2, 3, 4, 5"):
        ferry_company.facts(6)
