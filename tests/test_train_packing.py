"""Packing: examples share a row without seeing each other, and every example's loss is the unpacked one."""
from __future__ import annotations

from pathlib import Path

import pytest

from common.examples import IGNORE_INDEX, read_examples
from common.prompting import DEFAULT_PROMPT_TEMPLATE
from train.data import (
    TrainExample,
    collate_packed,
    collate_padded,
    encode_records,
    epoch_batches,
    step_plan,
    token_budget,
)
from train.loss import token_losses


@pytest.fixture(scope="module")
def encoded(tiny_model_dir: Path, prepared_rounds: dict[int, Path]) -> list[TrainExample]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = read_examples(prepared_rounds[2] / "train")
    replayed = [r for r in records if r["source"].startswith("replay:")]
    records = [r for r in records if r not in replayed][:4] + replayed[:3]
    examples, skipped = encode_records(records, tokenizer, DEFAULT_PROMPT_TEMPLATE, 128, replay_weight=0.25)
    assert skipped == 0 and len(examples) == 7
    return examples


def _model(tiny_model_dir: Path, attention: str) -> object:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention).eval()


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_loss_per_example_equals_unpacked(tiny_model_dir: Path, encoded: list[TrainExample], attention: str) -> None:
    import torch

    model = _model(tiny_model_dir, attention)
    with torch.no_grad():
        packed = token_losses(model, collate_packed(encoded, pad_id=0)).per_example(len(encoded))
        padded = token_losses(model, collate_padded(encoded, pad_id=0)).per_example(len(encoded))
        alone = torch.stack([token_losses(model, collate_padded([ex], pad_id=0)).per_example(1)[0] for ex in encoded])
    assert bool(torch.isfinite(alone).all()) and float(alone.min()) > 1.0  # an untrained model: real losses
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_packed_examples_do_not_attend_to_each_other(tiny_model_dir: Path, encoded: list[TrainExample]) -> None:
    import torch

    model = _model(tiny_model_dir, "sdpa")
    batch = collate_packed(encoded[:3], pad_id=0)
    changed = collate_packed([TrainExample([t + 1 for t in encoded[0].input_ids], encoded[0].labels, 1.0, False),
                              *encoded[1:3]], pad_id=0)
    with torch.no_grad():
        before = model(**batch.inputs, use_cache=False).logits[0]  # as token_losses calls it (a cache turns off packing)
        after = model(**changed.inputs, use_cache=False).logits[0]
    first = len(encoded[0].input_ids)
    assert (before[:first] - after[:first]).abs().max() > 1e-3  # the changed example itself does change
    torch.testing.assert_close(after[first:], before[first:], atol=1e-6, rtol=0)


def test_packed_row_layout(encoded: list[TrainExample]) -> None:
    sizes = [len(ex.input_ids) for ex in encoded[:3]]
    batch = collate_packed(encoded[:3], pad_id=0, pad_to=sum(sizes) + 5, flash_kwargs=True)
    positions = batch.inputs["position_ids"][0].tolist()
    assert positions == [*range(sizes[0]), *range(sizes[1]), *range(sizes[2]), *range(5)]
    starts = [0, sizes[0], sizes[0] + sizes[1], sum(sizes)]
    labels = batch.labels[0].tolist()
    assert all(labels[start] == IGNORE_INDEX for start in starts)  # no example is predicted from the one before
    assert labels[sum(sizes):] == [IGNORE_INDEX] * 5 and batch.weights[0, sum(sizes):].eq(0).all()
    assert batch.inputs["cu_seq_lens_q"].tolist() == [0, starts[1], starts[2], starts[3], starts[3] + 5]
    assert batch.inputs["max_length_q"] == max(*sizes, 5)
    assert batch.token_count == sum(sizes) and batch.example_count == 3
    assert batch.segments[0].tolist() == [0] * sizes[0] + [1] * sizes[1] + [2] * sizes[2] + [-1] * 5


def test_replayed_examples_are_weighted(tiny_model_dir: Path, encoded: list[TrainExample]) -> None:
    import torch

    replayed = [ex.replay for ex in encoded]
    assert any(replayed) and not all(replayed)
    assert all(ex.weight == (0.25 if ex.replay else 1.0) for ex in encoded)
    with torch.no_grad():
        losses = token_losses(_model(tiny_model_dir, "sdpa"), collate_packed(encoded, pad_id=0))
    weights = torch.tensor([0.25 if ex.replay else 1.0 for ex in encoded])[losses.segments]
    expected = (losses.nll * weights).sum() / weights.sum()
    torch.testing.assert_close(losses.weighted_mean(), expected)
    assert abs(float(losses.weighted_mean()) - float(losses.nll.mean())) > 1e-4


def test_step_plan_is_deterministic_and_covers_epochs() -> None:
    lengths = [10, 30, 25, 7, 40, 12, 18, 33, 9, 21]
    budget = token_budget(lengths, batch_size=3, tokens_per_batch=0)
    assert budget == 62  # ceil(3 x mean length 20.5)
    assert token_budget(lengths, 3, tokens_per_batch=16) == 40  # never below the longest example
    batches = epoch_batches(lengths, seed=1, epoch=0, batch_size=3, budget=budget)
    assert sorted(i for batch in batches for i in batch) == list(range(10))
    assert all(sum(lengths[i] for i in batch) <= budget for batch in batches)
    assert epoch_batches(lengths, 1, 0, 3, budget) == batches != epoch_batches(lengths, 1, 1, 3, budget)
    plan = step_plan(lengths, seed=1, epochs=2.5, max_steps=-1, batch_size=3, budget=None)
    assert len(plan) == 4 + 4 + 2 and plan[:4] == epoch_batches(lengths, 1, 0, 3, None)
    assert len(step_plan(lengths, seed=1, epochs=1, max_steps=9, batch_size=3, budget=None)) == 9
