"""Continual-learning strategies: the penalties, the Fisher information, and round-2 runs that use them."""
from __future__ import annotations

import contextlib
import io
import json
from argparse import Namespace
from pathlib import Path

import pytest

import train
from common.examples import read_examples
from common.prompting import DEFAULT_PROMPT_TEMPLATE
from train.data import encode_records
from train.fisher import FactoredFisher, compute_fisher, load_fisher, save_fisher
from train.history import read_history, write_history
from train.lora import LoraModule, add_lora, lora_modules
from train.strategies import build_penalty, ewc_term, l2sp_term, normalised_fisher, orthogonal_term
from train.scoring import answer_margins
from conftest import TINY_TRAIN_ARGS


def _module(seed: int, out_features: int = 6, in_features: int = 5, rank: int = 3) -> LoraModule:
    import torch

    generator = torch.Generator().manual_seed(seed)
    return LoraModule("layer", torch.randn(rank, in_features, generator=generator),
                      torch.randn(out_features, rank, generator=generator), scaling=0.5)


def test_penalties_equal_their_dense_definitions() -> None:
    import torch

    module = _module(0)
    delta = module.scaling * module.lora_b @ module.lora_a
    torch.testing.assert_close(l2sp_term(module), (delta**2).sum())

    generator = torch.Generator().manual_seed(1)
    fisher = {"layer": FactoredFisher(torch.rand(6, generator=generator), torch.rand(5, generator=generator), 0.0),
              "other": FactoredFisher(torch.rand(4, generator=generator), torch.rand(4, generator=generator), 0.0)}
    for item in fisher.values():  # a consistent factorisation: total = sum(rows) = sum(cols)
        item.cols *= item.rows.sum() / item.cols.sum()
        item.total = float(item.rows.sum())
    factors = normalised_fisher(fisher, ["layer", "other"])
    dense = {name: torch.outer(*factors[name]).float() for name in fisher}
    assert float(sum(d.sum() for d in dense.values())) / (6 * 5 + 4 * 4) == pytest.approx(1.0)  # mean 1
    torch.testing.assert_close(dense["layer"] * float(fisher["layer"].total + fisher["other"].total) / 46,
                               fisher["layer"].dense(), rtol=1e-5, atol=1e-6)
    rows, cols = (f.float() for f in factors["layer"])
    torch.testing.assert_close(ewc_term(module, rows, cols), (dense["layer"] * delta**2).sum(), rtol=1e-5, atol=1e-6)

    previous = torch.randn(2, 5, generator=generator)
    unit = previous / previous.norm(dim=1, keepdim=True)
    expected = sum(float((module.lora_a[i] @ unit[j]) ** 2) for i in range(3) for j in range(2))
    assert float(orthogonal_term(module, unit)) == pytest.approx(expected, rel=1e-5)


def test_fisher_hooks_equal_per_example_weight_gradients(tiny_model_dir: Path, prepared_rounds: dict[int, Path]) -> None:
    """Packed, hook-based per-example gradients give the same Fisher as one backward per example on W itself."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.data import collate_padded
    from train.loss import token_losses

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples, _ = encode_records(read_examples(prepared_rounds[1] / "train")[:5], tokenizer, DEFAULT_PROMPT_TEMPLATE, 128, 1.0)
    torch.manual_seed(0)
    model = add_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), 4, 8, 0.0, "all-linear")
    with torch.no_grad():
        for module in lora_modules(model):
            module.lora_b.normal_(std=0.05)  # a trained-looking adapter, so W_eff differs from the base
    fisher, used = compute_fisher(model, examples, samples=5, seed=0, budget=10_000, batch_size=8, pad_id=0,
                                  packing=True, bf16=False)
    assert used == 5

    layers = {m.name: m for m in lora_modules(model)}
    weights = {name: model.get_submodule(f"base_model.model.{name}").base_layer.weight for name in layers}
    for weight in weights.values():
        weight.requires_grad_(True)
    brute = {name: torch.zeros_like(w) for name, w in weights.items()}
    model.eval()
    for example in examples:
        token_losses(model, collate_padded([example], pad_id=0)).nll.sum().backward()
        for name, weight in weights.items():
            brute[name] += weight.grad**2 / len(examples)
            weight.grad = None
    assert set(fisher) == set(brute) and len(fisher) == 14
    for name, dense in brute.items():
        torch.testing.assert_close(fisher[name].rows, dense.sum(1), rtol=1e-3, atol=1e-7)
        torch.testing.assert_close(fisher[name].cols, dense.sum(0), rtol=1e-3, atol=1e-7)
        assert fisher[name].total == pytest.approx(float(dense.sum()), rel=1e-3)


def test_fisher_file_round_trip_and_errors(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    fisher = {"model.layers.0.mlp.up_proj": FactoredFisher(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 2.5, 0.0]), 3.0)}
    save_fisher(fisher, tmp_path, samples=7)
    loaded = load_fisher(tmp_path)
    assert loaded is not None and set(loaded) == set(fisher)
    torch.testing.assert_close(loaded["model.layers.0.mlp.up_proj"].cols, torch.tensor([0.5, 2.5, 0.0]))
    assert loaded["model.layers.0.mlp.up_proj"].total == 3.0
    assert load_fisher(tmp_path / "nowhere") is None
    save_file({"x.rows": torch.ones(2)}, str(tmp_path / "continual" / "fisher.safetensors"))
    with pytest.raises(ValueError, match="fisher.safetensors: not a continuum-fisher-factored-v1 file"):
        load_fisher(tmp_path)


def test_penalty_without_what_the_starting_model_lacks_says_so() -> None:
    knobs = Namespace(l2sp_lambda=0.5, ewc_lambda=2.0, orthogonal_lambda=3.0)
    messages: list[str] = []
    module = _module(2)
    penalty = build_penalty(("ewc", "l2sp", "modular"), [module], None, [], knobs, messages.append)
    assert penalty.active and penalty.l2sp == [module] and not penalty.ewc and not penalty.orthogonal
    assert any("EWC is off" in m for m in messages) and any("nothing to stay orthogonal to" in m for m in messages)
    total, parts = penalty()
    assert set(parts) == {"l2sp"} and float(total) == pytest.approx(0.5 * float(l2sp_term(module)))
    assert not build_penalty(("replay",), [module], None, [], knobs, messages.append).active


def test_each_penalty_uses_its_own_lambda() -> None:
    """Distinct lambdas, every penalty applied: each part equals its own lambda times its dense definition."""
    import torch

    knobs = Namespace(l2sp_lambda=0.5, ewc_lambda=7.0, orthogonal_lambda=3.0)
    module = _module(3)
    generator = torch.Generator().manual_seed(4)
    rows, cols = torch.rand(6, generator=generator) + 0.1, torch.rand(5, generator=generator) + 0.1
    cols *= rows.sum() / cols.sum()
    fisher = {"layer": FactoredFisher(rows, cols, float(rows.sum()))}
    previous = torch.randn(2, 5, generator=generator)
    messages: list[str] = []
    penalty = build_penalty(("ewc", "l2sp", "modular"), [module], fisher, [{"layer": previous}], knobs, messages.append)
    assert messages == [] and penalty.l2sp and penalty.ewc and penalty.orthogonal

    delta = module.scaling * module.lora_b @ module.lora_a
    dense_fisher = fisher["layer"].dense()
    dense_fisher = dense_fisher / dense_fisher.mean()  # normalised to mean 1 over the adapted weights
    unit = previous / previous.norm(dim=1, keepdim=True)
    expected = {"l2sp": 0.5 * float((delta**2).sum()), "ewc": 7.0 * float((dense_fisher * delta**2).sum()),
                "orthogonal": 3.0 * float(((module.lora_a @ unit.T) ** 2).sum())}
    total, parts = penalty()
    assert {name: float(value) for name, value in parts.items()} == pytest.approx(expected, rel=1e-4)
    assert float(total) == pytest.approx(sum(expected.values()), rel=1e-4)

    only_ewc = build_penalty(("ewc",), [module], fisher, [], knobs, messages.append)
    assert not only_ewc.l2sp and not only_ewc.orthogonal
    assert float(only_ewc()[0]) == pytest.approx(expected["ewc"], rel=1e-4)
    off = Namespace(l2sp_lambda=0.0, ewc_lambda=0.0, orthogonal_lambda=0.0)
    assert not build_penalty(("ewc", "l2sp", "modular"), [module], fisher, [{"layer": previous}], off).active


def test_penalties_cover_only_the_layers_with_matching_information() -> None:
    """A layer without (or with a mis-shaped) Fisher entry or kept adapter is left out, and the run says so."""
    import torch

    knobs = Namespace(l2sp_lambda=0.0, ewc_lambda=2.0, orthogonal_lambda=3.0)
    layer, other = _module(5), LoraModule("other", torch.ones(3, 4), torch.ones(4, 3), scaling=1.0)
    fisher = {"layer": FactoredFisher(torch.ones(6), torch.full((5,), 1.2), 6.0),
              "other": FactoredFisher(torch.ones(5), torch.ones(4), 5.0)}  # 5 rows: not other's 4 x 4
    previous = torch.tensor([[3.0, 4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    history = [{"layer": previous}, {"layer": torch.ones(1, 7)}, {"elsewhere": torch.ones(1, 5)}]
    messages: list[str] = []
    penalty = build_penalty(("ewc", "modular"), [layer, other], fisher, history, knobs, messages.append)
    assert messages == ["ewc: 1 of 2 adapted layers have no Fisher entry; EWC covers the others"]
    assert [term.module.name for term in penalty.ewc] == ["layer"] and not penalty.l2sp
    torch.testing.assert_close(penalty.ewc[0].rows * penalty.ewc[0].cols[0], torch.ones(6))  # mean 1 over layer alone
    [(module, stacked)] = penalty.orthogonal
    assert module is layer
    torch.testing.assert_close(stacked, torch.tensor([[0.6, 0.8, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]))
    total, parts = penalty()
    assert set(parts) == {"ewc", "orthogonal"}
    assert float(parts["orthogonal"]) == pytest.approx(3.0 * float(((layer.lora_a @ stacked.T) ** 2).sum()), rel=1e-5)

    nothing = build_penalty(("modular",), [other], None, history, knobs, messages.append)
    assert not nothing.active and messages[-1] == \
        "modular: the starting model keeps no adapters (a base model); nothing to stay orthogonal to"
    assert build_penalty(("ewc",), [layer], {}, [], knobs, messages.append).ewc == []
    assert messages[-1].startswith("ewc: the starting model has no Fisher information (a base model, or trained with "
                                   "--fisher_samples 0); EWC is off for this run")


def test_normalised_fisher_leaves_out_what_carries_no_information() -> None:
    import torch

    empty = {"a": FactoredFisher(torch.zeros(2), torch.zeros(3), 0.0)}
    assert normalised_fisher(empty, ["a"]) == {} and normalised_fisher({}, []) == {}
    fisher = {**empty, "b": FactoredFisher(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]), 4.0)}
    factors = normalised_fisher(fisher, ["a", "b"])
    assert set(factors) == {"b"}
    dense = torch.outer(*factors["b"])  # mean 1 over all 10 adapted weights: b's 4 weights hold the total
    assert float(dense.sum()) == pytest.approx(10.0) and factors["b"][0].dtype == torch.float64
    torch.testing.assert_close(dense / dense.sum(), fisher["b"].dense().double() / 4.0)


def test_small_lambdas_small_norms_and_the_adapters_device() -> None:
    """Lambdas below 1 still apply; kept adapter rows of any length become unit rows; the factors and kept rows
    go to the adapter's device (meta here: the shapes and devices, no numbers)."""
    import torch

    knobs = Namespace(l2sp_lambda=0.25, ewc_lambda=0.5, orthogonal_lambda=0.75)
    layer, absent = _module(6), LoraModule("absent", torch.ones(3, 4), torch.ones(4, 3), scaling=1.0)
    fisher = {"layer": FactoredFisher(torch.full((6,), 0.01), torch.full((5,), 0.012), 0.06)}  # totals below 1
    previous = torch.tensor([[0.3, 0.4, 0.0, 0.0, 0.0]])  # norm 0.5
    penalty = build_penalty(("l2sp", "ewc", "modular"), [layer, absent], fisher, [{"layer": previous}], knobs,
                            lambda message: None)
    assert penalty.l2sp and [t.module.name for t in penalty.ewc] == ["layer"] and len(penalty.orthogonal) == 1
    torch.testing.assert_close(penalty.orthogonal[0][1], torch.tensor([[0.6, 0.8, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(penalty.ewc[0].rows * penalty.ewc[0].cols[0], torch.ones(6))
    assert set(normalised_fisher({"one": FactoredFisher(torch.ones(1), torch.ones(1), 1.0)}, ["one"])) == {"one"}

    meta = LoraModule("layer", torch.empty(3, 5, device="meta"), torch.empty(6, 3, device="meta"), scaling=0.5)
    on_meta = build_penalty(("ewc", "modular"), [meta], fisher, [{"layer": previous}], knobs, lambda message: None)
    assert on_meta.ewc[0].rows.device.type == on_meta.ewc[0].cols.device.type == "meta"
    assert on_meta.ewc[0].rows.dtype == torch.float32 and on_meta.orthogonal[0][1].device.type == "meta"


def test_history_keeps_every_generation(tmp_path: Path) -> None:
    previous = tmp_path / "v2"
    for folder in (previous / "adapters" / "0001", previous / "adapter", tmp_path / "v3" / "adapter"):
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_text(folder.as_posix())
    history = read_history(previous, {"generation": 2})
    assert [(e.generation, e.path) for e in history] == [(1, previous / "adapters" / "0001"), (2, previous / "adapter")]
    records = write_history(tmp_path / "v3", history, generation=3)
    assert records == [{"generation": g, "path": f"adapters/000{g}"} for g in (1, 2, 3)]
    assert (tmp_path / "v3" / "adapters" / "0002" / "adapter_model.safetensors").read_text() == (previous / "adapter").as_posix()
    assert [e.generation for e in read_history(tmp_path / "v3", {"generation": 3})] == [1, 2, 3]
    assert read_history(None, {}) == [] and read_history(tmp_path, {"generation": 0}) == []


def _train(argv: list[str]) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        assert train.main(argv) == 0
    return json.loads((Path(argv[argv.index("--model-dir") + 1]) / "continuum.json").read_text())


def test_round_two_with_every_strategy_then_naive(trained_round1: dict, prepared_rounds: dict[int, Path],
                                                  tmp_path: Path) -> None:
    split = prepared_rounds[2]
    common = [*TINY_TRAIN_ARGS, "--train-dir", str(split / "train"), "--base-model-dir", str(trained_round1["dir"]),
              "--max_steps", "6", "--replay_budget", "1",
              "--fisher_samples", "8", "--ewc_lambda", "10", "--l2sp_lambda", "1", "--orthogonal_lambda", "100"]
    everything = _train([*common, "--model-dir", str(tmp_path / "all"), "--strategy", "modular,l2sp,replay,ewc"])
    assert everything["generation"] == 2 and everything["strategy"]["names"] == ["replay", "ewc", "l2sp", "modular"]
    assert everything["strategy"]["ewc"] == {"lambda": 10.0, "fisher_from_starting_model": True}
    assert everything["strategy"]["modular"] == {"lambda": 100.0, "previous_adapters": 1}
    assert all(everything["metrics"][f"penalty_{name}"] > 0 for name in ("ewc", "l2sp", "orthogonal"))
    assert everything["data"]["replay_examples"] > 100
    assert everything["adapter_history"] == [{"generation": 1, "path": "adapters/0001"},
                                             {"generation": 2, "path": "adapters/0002"}]
    first_adapter = (trained_round1["dir"] / "adapter" / "adapter_model.safetensors").read_bytes()
    assert (tmp_path / "all" / "adapters" / "0001" / "adapter_model.safetensors").read_bytes() == first_adapter
    assert load_fisher(tmp_path / "all") is not None

    naive = _train([*common, "--model-dir", str(tmp_path / "naive"), "--strategy", "naive"])
    assert naive["strategy"]["names"] == ["naive"] and naive["strategy"]["penalty_applied"] is False
    assert naive["data"]["replay_examples"] == 0
    assert naive["data"]["train_examples"] == everything["data"]["train_examples"] - everything["data"]["replay_examples"]
    assert naive["adapter_history"] == [] and not (tmp_path / "naive" / "adapters").exists()


def test_distill_is_zero_at_the_teacher_positive_after_a_step_and_counts_its_tokens(
        tiny_model_dir: Path, prepared_rounds: dict[int, Path], trained_round1: dict, tmp_path: Path) -> None:
    """The distill component (LwF): KL to the starting model's top-k soft targets is 0 while the new adapter is zero
    (B = 0), > 0 and differentiable once it moves; a slice of the history a step, cycling; in a round-2 run its
    riders' tokens are counted in train_tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.contract import parse_strategy
    from train.data import make_batch
    from train.loss import token_losses
    from train.strategies import DISTILL_TOP_K, build_distillation, soft_targets

    assert parse_strategy("Distill, replay").names == ("replay", "distill")
    ids, log_probs = soft_targets(torch.randn(3, 200))
    assert ids.shape == (3, DISTILL_TOP_K) and torch.allclose(log_probs.exp().sum(-1), torch.ones(3), atol=1e-5)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    history, _ = encode_records(read_examples(prepared_rounds[1] / "train")[:10], tokenizer, DEFAULT_PROMPT_TEMPLATE,
                                128, 1.0)
    torch.manual_seed(0)
    model = add_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), 4, 8, 0.0, "all-linear")
    messages: list[str] = []
    assert build_distillation(parse_strategy("replay"), model, history, 0.5, 1.0, 2.0, 0, 0) is None
    assert build_distillation(parse_strategy("distill"), model, [], 0.5, 1.0, 2.0, 0, 0, log=messages.append) is None
    assert "distillation is off" in messages[0]
    distill = build_distillation(parse_strategy("replay,distill"), model, history, 0.5, 3.0, 2.0, 0, 0)
    assert distill is not None and distill.per_epoch == 5  # half of 10 an epoch, spread over its 2 steps
    # the same pass gives online replay its start: each example's answer margin, as answer_margins finds it
    assert distill.start_margins == pytest.approx(answer_margins(model, history, 0, 2048)[0], abs=1e-5)
    assert len(set(distill.start_margins)) > 1
    assert [len(distill.picked(step)) for step in range(1, 7)] == [2, 3, 2, 3, 2, 3]  # exactly 5 an epoch
    assert distill.picked(4) == [distill.order[i] for i in range(7, 10)]
    assert distill.picked(5) == [distill.order[i % 10] for i in range(10, 12)]  # cycling through the history
    picked = distill.picked(1)
    batch = make_batch([distill.pool[i] for i in picked], 0, packing=True)
    assert float(token_losses(model, batch).weights.sum()) == 0  # riders: no loss on the stored answers
    assert float(distill.term(token_losses(model, batch).logits, picked).detach()) == pytest.approx(0.0, abs=1e-5)
    with torch.no_grad():
        for module in lora_modules(model):
            module.lora_b.normal_(std=0.05)
    value = distill.term(token_losses(model, batch).logits, picked)
    assert float(value.detach()) > 0
    value.backward()
    assert all(float(module.lora_b.grad.abs().sum()) > 0 for module in lora_modules(model))

    split = prepared_rounds[2]
    common = [*TINY_TRAIN_ARGS, "--train-dir", str(split / "train"), "--base-model-dir", str(trained_round1["dir"]),
              "--epochs", "1", "--fisher_samples", "0", "--replay_selection", "random"]  # whole epochs: same new tokens
    both = _train([*common, "--model-dir", str(tmp_path / "distill"), "--strategy", "replay,distill",
                   "--distill_budget", "0.5"])  # riders on every step (a tenth spread over an epoch's steps may skip one)
    plain = _train([*common, "--model-dir", str(tmp_path / "replay"), "--strategy", "replay"])
    assert both["strategy"]["distill"] == {"lambda": 0.3, "budget": 0.5}
    assert both["metrics"]["distill_tokens"] > 0 and both["metrics"]["penalty_distill"] > 0
    assert both["metrics"]["train_tokens"] == plain["metrics"]["train_tokens"] + both["metrics"]["distill_tokens"]
