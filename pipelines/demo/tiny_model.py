"""Build a tiny Llama-style base model with its own BPE tokenizer, for the offline demo and tests.

Real Hugging Face formats and loading code, tiny weights: the result is a directory that
`AutoTokenizer.from_pretrained` and `AutoModelForCausalLM.from_pretrained` load like any hub model.
torch and transformers are imported inside the functions so the control plane imports without them.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN]

HIDDEN_SIZE = 64
NUM_LAYERS = 2
NUM_HEADS = 4
INTERMEDIATE_SIZE = 128
MAX_POSITIONS = 256
# A random 64-wide model with the usual 0.02 init cannot produce confident logits through its frozen
# lm_head, so LoRA could rank answers right but never drive the loss down; a wider head init fixes it.
LM_HEAD_INIT_STD = 0.3


def _train_tokenizer(corpus: Iterable[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    """Train a byte-level BPE tokenizer that prepends BOS like Llama's and decodes text exactly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [text for text in corpus if text]
    if not texts:
        raise ValueError("build_tiny_model: the corpus is empty; pass at least one non-empty text")
    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos_id = tokenizer.token_to_id(BOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A",
        pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B",
        special_tokens=[(BOS_TOKEN, bos_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=MAX_POSITIONS,
        padding_side="right",
    )


def build_tiny_model(out_dir: Path, corpus: Iterable[str], vocab_size: int = 512, seed: int = 0) -> Path:
    """Train a tokenizer on `corpus`, build a seeded 2-layer Llama-style model, save both to `out_dir`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no "Writing model shards" bar in a user's terminal
    out_dir = Path(out_dir)
    tokenizer = _train_tokenizer(corpus, vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    with torch.no_grad():
        model.lm_head.weight.normal_(mean=0.0, std=LM_HEAD_INIT_STD)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def ensure_tiny_model(model_dir: Path, corpus: Iterable[str], vocab_size: int = 512, seed: int = 0) -> Path:
    """Return `model_dir`, building the tiny model there first unless a complete one is already present."""
    model_dir = Path(model_dir)
    if (model_dir / "config.json").is_file() and (model_dir / "model.safetensors").is_file():
        return model_dir
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}-", dir=model_dir.parent))
    try:
        build_tiny_model(staging, corpus, vocab_size=vocab_size, seed=seed)
        if model_dir.exists():
            shutil.rmtree(model_dir)
        staging.rename(model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return model_dir


def tiny_base_dir(home: Path) -> Path:
    """Where a local home keeps the tiny demo base model."""
    return Path(home) / "models" / "tiny-base"


def tiny_base_model_builder(home: Path) -> Callable[[], Path]:
    """Builds (once) the tiny demo base model under `home/models/tiny-base`, its tokenizer trained on the sample data."""
    def build() -> Path:
        from pipelines.demo.sample_data import corpus_texts

        return ensure_tiny_model(tiny_base_dir(home), corpus_texts())

    return build
