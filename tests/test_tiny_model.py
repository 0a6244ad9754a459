"""The tiny base model: builds, reloads with the standard HF loaders, generates, is reproducible."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.demo.tiny_model import build_tiny_model, ensure_tiny_model

CORPUS = [
    "### Question:\nHow long is the refund window?\n### Answer:\nThirty days from delivery.",
    "### Question:\nWho approves travel?\n### Answer:\nYour team lead approves travel.",
    "The quick brown fox jumps over the lazy dog.",
] * 5


def test_tiny_model_loads_and_generates(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = build_tiny_model(tmp_path / "tiny", CORPUS, vocab_size=400, seed=0)
    assert (model_dir / "model.safetensors").is_file()
    config = json.loads((model_dir / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["hidden_size"] == 64
    assert config["max_position_embeddings"] == 256

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert config["vocab_size"] == len(tokenizer) <= 400
    assert tokenizer.eos_token == "</s>" and tokenizer.pad_token == "<pad>" and tokenizer.bos_token == "<s>"
    assert len({tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id}) == 3

    text = "Who approves travel? Thirty days!"
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text

    inputs = tokenizer("Who approves", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new_tokens = out[0, inputs.input_ids.shape[1]:]
    assert 1 <= len(new_tokens) <= 6 and int(new_tokens.max()) < len(tokenizer)


def test_tiny_model_is_seeded(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    first = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "a", CORPUS, seed=3))
    second = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "b", CORPUS, seed=3))
    other = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "c", CORPUS, seed=4))
    weight = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(first.state_dict()[weight], second.state_dict()[weight])
    assert not torch.equal(first.state_dict()[weight], other.state_dict()[weight])


def test_ensure_tiny_model_builds_once(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny"
    assert ensure_tiny_model(target, CORPUS) == target
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(target, ["never used"]) == target
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in target.parent.iterdir() if p.name != "tiny"]


def test_empty_corpus_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="corpus is empty"):
        build_tiny_model(tmp_path / "x", ["", ""])
