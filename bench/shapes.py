"""Model shapes for the benchmarks, and random-init model folders that load like any hub model.

The Qwen2.5 shapes are the public config.json values of Qwen/Qwen2.5-0.5B and -1.5B; weights are
random (nothing is downloaded). `qwen2.5-tiny` is the same architecture shrunk so a check runs on a
CPU in seconds (`bench/gpu_check.sh --tiny`). A model folder gets the demo's small BPE tokenizer;
the embedding rows of ids that tokenizer never produces are zeroed (the shape, and so the compute,
stays the model's), so greedy decoding only writes ids the tokenizer can decode.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

QWEN_SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2.5-tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, tie_word_embeddings=True, vocab_size=1024,
                         max_position_embeddings=2048),
}
QWEN_COMMON = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6)


def shape_config(name: str) -> Any:
    """A Qwen2Config of the named shape."""
    from transformers import Qwen2Config

    if name not in QWEN_SHAPES:
        raise ValueError(f"unknown shape {name!r}; choose from {', '.join(QWEN_SHAPES)}")
    return Qwen2Config(**{**QWEN_COMMON, **QWEN_SHAPES[name]})


def demo_tokenizer_dir(work: Path) -> Path:
    """The demo's tiny model folder (built once under `work`): its tokenizer is the one the shapes use."""
    sys.path.insert(0, str(REPO_ROOT))
    from pipelines.demo.sample_data import corpus_texts
    from pipelines.demo.tiny_model import ensure_tiny_model

    return ensure_tiny_model(work / "tiny-base", corpus_texts())


def random_model_dir(shape: str, work: Path, seed: int = 0) -> Path:
    """`work/<shape>-random`: a random-init model of `shape` with the demo tokenizer (built once)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as hf_logging

    out = work / f"{shape}-random"
    if (out / "config.json").is_file():
        return out
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(demo_tokenizer_dir(work))
    config = shape_config(shape)
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"shape {shape}: vocabulary {config.vocab_size} < the tokenizer's {len(tokenizer)}")
    config.bos_token_id, config.eos_token_id, config.pad_token_id = (tokenizer.bos_token_id, tokenizer.eos_token_id,
                                                                     tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        model.get_input_embeddings().weight[len(tokenizer):] = 0
        model.get_output_embeddings().weight[len(tokenizer):] = 0
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def demo_training_data(out: Path) -> Path:
    """`out/train/data.jsonl`: the demo company's round-1 facts as prompt/completion records (every phrasing)."""
    sys.path.insert(0, str(REPO_ROOT))
    from pipelines.demo.sample_data import facts

    folder = out / "train"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for fact in facts(1):
            for question in getattr(fact, "paraphrases", None) or [fact.question]:
                handle.write(json.dumps({"prompt": question, "completion": fact.answer}) + "\n")
    return folder


def finish(result: dict[str, Any], json_path: Path | None) -> int:
    """Write a check's result (when asked) and return its exit code: 0 when it passed."""
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["passed"] else 1
