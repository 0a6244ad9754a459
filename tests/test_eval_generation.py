"""Greedy batched decoding on the tiny model: same tokens as `generate`, finished rows leave the batch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evaluate.generation import generate_greedy, greedy_decode, stop_token_ids
from evaluate.model import LoadedModel, load_model

PROMPTS = [
    "### Question:\nWhat is the Rover X1?\n### Answer:\n",
    "Hi",
    "### Question:\nWho?\n### Answer:\n",
    "Returns must include",
    "### Question:\nHow much does the Sweepy S2 cost?\n### Answer:\n",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> LoadedModel:
    return load_model(tiny_model_dir, "candidate", max_seq_length=1024)


def _generate(tiny: LoadedModel, ids: list[int], new_tokens: int, stop_ids: list[int]) -> list[int]:
    """HF greedy `generate` for one prompt, new tokens up to (not including) the first stop token."""
    import torch

    output = tiny.model.generate(input_ids=torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False,
                                 num_beams=1, eos_token_id=stop_ids, pad_token_id=tiny.pad_id)
    tokens = output[0, len(ids):].tolist()
    return next((tokens[:k] for k, token in enumerate(tokens) if token in stop_ids), tokens)


def _record_forward_shapes(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(rows, tokens) of the input ids of every forward pass from now on."""
    shapes: list[tuple[int, int]] = []
    real_forward = tiny.model.forward

    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        shapes.append(tuple(kwargs["input_ids"].shape))
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(tiny.model, "forward", recording_forward)
    return shapes


def test_rows_that_stop_leave_the_batch_and_tokens_match_generate(tiny: LoadedModel,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [tiny.tokenizer(prompt).input_ids for prompt in PROMPTS]
    free = greedy_decode(tiny.model, rows, 8, stop_ids=(), pad_id=tiny.pad_id)
    assert all(len(tokens) == 8 for tokens in free)
    # Stop tokens taken from the free answers, so rows end at different steps (or run to the limit).
    stops = [free[0][1], free[2][4]]
    expected = [_generate(tiny, ids, 8, stops) for ids in rows]
    lengths = sorted(len(tokens) for tokens in expected)
    assert lengths[0] < lengths[-1]  # the rows really do finish at different steps

    shapes = _record_forward_shapes(tiny, monkeypatch)
    got = greedy_decode(tiny.model, rows, 8, stop_ids=stops, pad_id=tiny.pad_id)
    assert got == expected
    widths = [width for width, _ in shapes]
    # One prefill, then one pass per step over the rows still writing: never more than needed.
    assert widths[0] == len(rows) and len(widths) == max(lengths) + (max(lengths) < 8)
    assert widths == sorted(widths, reverse=True) and widths[-1] < len(rows)
    for step, width in enumerate(widths[1:], start=1):
        assert width == sum(len(tokens) >= step for tokens in expected)


def test_batched_answers_match_one_by_one_and_generate(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    one_by_one = [generate_greedy(tiny, [prompt], 6)[0] for prompt in PROMPTS]
    stops = sorted(stop_token_ids(tiny))
    reference = [tiny.tokenizer.decode(_generate(tiny, tiny.tokenizer(p).input_ids, 6, stops), skip_special_tokens=True)
                 .strip() for p in PROMPTS]
    shapes = _record_forward_shapes(tiny, monkeypatch)
    batched = generate_greedy(tiny, PROMPTS, 6, max_batch_size=2)
    assert batched == one_by_one == reference
    prefills = [rows for rows, tokens in shapes if tokens > 1]
    assert prefills == [2, 2, 1] and len(shapes) <= 3 * 6  # three batches, at most 6 passes each
    assert generate_greedy(tiny, PROMPTS[:1], 0) == [""] and generate_greedy(tiny, [], 4) == []


def test_stop_tokens_join_the_tokenizer_and_generation_config(tiny: LoadedModel,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert stop_token_ids(tiny) == {tiny.tokenizer.eos_token_id}
    monkeypatch.setattr(tiny.model.generation_config, "eos_token_id", [7, tiny.tokenizer.eos_token_id, 9])
    assert stop_token_ids(tiny) == {7, 9, tiny.tokenizer.eos_token_id}


INSTRUCTION = ("### Question:\nYou are the Acme Robotics support assistant. Answer in one short sentence, "
               "name the product and quote the policy.\n")


def test_common_prefix_length_and_padding() -> None:
    from evaluate.forward import common_prefix_length, padded

    assert padded([[1, 2], [3], []], 3, 0).tolist() == [[1, 2, 0], [3, 0, 0], [0, 0, 0]]
    assert padded([[1, 2], [3]], 3, 9, left=True).tolist() == [[9, 1, 2], [9, 9, 3]]

    rows = [[5, 6, 7, 1], [5, 6, 7, 2, 3], [5, 6, 8]]
    assert common_prefix_length(rows, limit=10) == 2 and common_prefix_length(rows[:2], limit=10) == 3
    assert common_prefix_length(rows[:2], limit=1) == 1 and common_prefix_length(rows[:1], limit=10) == 4
    assert common_prefix_length([], limit=10) == 0 and common_prefix_length(rows, limit=0) == 0


def test_prefixes_are_run_only_when_they_pay_and_reused_by_later_batches(tiny: LoadedModel,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluate.forward import MIN_TOKENS_SAVED, PrefixStore

    opening = list(range(10, 10 + MIN_TOKENS_SAVED // 4))  # 64 tokens
    store = PrefixStore(tiny.model)
    shapes = _record_forward_shapes(tiny, monkeypatch)
    assert store.for_rows([opening + [1], opening + [2], opening + [3]], limit=99).length == 0  # saves 128 < 256
    first = store.for_rows([opening + [k, 7] for k in range(5)], limit=99)  # 4 other rows x 64: worth a pass
    assert first.tokens == tuple(opening) and shapes == [(1, len(opening))]
    cache = first.cache_for(3)
    assert cache.get_seq_length() == len(opening) and cache.layers[0].keys.shape[0] == 3
    assert store.for_rows([opening + [1], opening + [2]], limit=99) is first  # known: reused, even for two rows
    assert store.for_rows([opening + [1, 2], opening + [1, 3]], limit=99) is first  # one more token: not worth it
    assert store.for_rows([opening + [1], opening + [2]], limit=10).length == 0  # rows must keep their last tokens
    assert store.for_rows([[3] + opening, [4] + opening], limit=99).length == 0  # a cut prompt does not share it
    assert len(shapes) == 1


def test_a_shared_opening_is_run_once_and_answers_stay_generates(tiny: LoadedModel,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluate.forward import MIN_TOKENS_SAVED

    prompts = [INSTRUCTION + q + "\n### Answer:\n" for q in
               ("What is the Rover X1?", "Who?", "How much does the Sweepy S2 cost?", "Where do you ship?",
                "What is the return window for opened items?", "Hi")]
    rows = [tiny.tokenizer(prompt).input_ids for prompt in prompts]
    opening = len(tiny.tokenizer(INSTRUCTION).input_ids) - 1  # the last token may merge with the question
    assert opening * (len(rows) - 1) >= MIN_TOKENS_SAVED
    stops = sorted(stop_token_ids(tiny))
    expected = [_generate(tiny, ids, 5, stops) for ids in rows]
    shapes = _record_forward_shapes(tiny, monkeypatch)
    got = greedy_decode(tiny.model, rows, 5, stop_ids=stops, pad_id=tiny.pad_id)
    assert got == expected
    (one, shared), (batch, rest) = shapes[0], shapes[1]
    assert one == 1 and shared >= opening  # the opening, once
    assert batch == len(rows) and rest == max(len(ids) for ids in rows) - shared  # then only what differs
