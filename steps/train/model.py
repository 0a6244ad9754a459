"""Load the starting model for training: precision, attention kernel, QLoRA (4-bit NF4) and the device.

The start is the `base_model` channel (the previous approved version: a model directory or its
model.tar.gz) when it holds a model, else `--base_model` (HF id or local path).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.model_io import contains_model, limit_threads_for_small_models, materialize_model_dir, read_metadata


class TrainingSetupError(ValueError):
    """The run cannot start as configured; the message says what to change."""


@dataclass(frozen=True)
class Precision:
    """Where and how the model computes: device, weight dtype name, and whether to autocast to bf16."""

    device: str
    dtype: str  # "bfloat16" | "float32"
    autocast_bf16: bool


@dataclass
class StartingModel:
    """The loaded model and what it came from."""

    model: Any
    tokenizer: Any
    metadata: dict[str, Any]
    source: str
    model_dir: Path | None  # a local directory (channel or path); None for a hub id
    precision: Precision
    quantized: bool
    attn_implementation: str


def find_start(base_model_dir: Path | None, base_model: str) -> tuple[str, Path | None]:
    """(what to load, its local directory or None): the channel's model first, else --base_model."""
    if base_model_dir is not None and contains_model(base_model_dir):
        directory = materialize_model_dir(base_model_dir)
        return str(directory), directory
    if base_model:
        if Path(base_model).exists():
            directory = materialize_model_dir(Path(base_model))
            return str(directory), directory
        return base_model, None
    raise TrainingSetupError(
        f"no base model: the base_model channel ({base_model_dir}) holds no model and --base_model is empty"
    )


def choose_precision(requested: str, cuda_available: bool, bf16_supported: bool, local_rank: int = 0) -> Precision:
    """bf16 weights + bf16 autocast on GPUs that support it (auto or bf16); fp32 otherwise."""
    device = f"cuda:{local_rank}" if cuda_available else "cpu"
    if requested == "bf16" and cuda_available and not bf16_supported:
        raise TrainingSetupError("--precision bf16: this GPU does not support bfloat16; use --precision fp32")
    use_bf16 = requested == "bf16" or (requested == "auto" and cuda_available and bf16_supported)
    return Precision(device=device, dtype="bfloat16" if use_bf16 else "float32", autocast_bf16=use_bf16 and cuda_available)


def choose_attention(requested: str, cuda_available: bool, dtype: str) -> str:
    """auto: flash_attention_2 (varlen kernels for packed rows) on CUDA when installed, else sdpa."""
    if requested != "auto":
        if requested == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise TrainingSetupError("--attn_implementation flash_attention_2: the flash-attn package is not installed")
        return requested
    if cuda_available and dtype == "bfloat16" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def quantization_config(quantization: str, cuda_available: bool, compute_dtype: str) -> Any:
    """QLoRA's BitsAndBytesConfig (NF4, double quantization) for 4bit; None for none. CUDA only."""
    if quantization == "none":
        return None
    if not cuda_available:
        raise TrainingSetupError(
            "--quantization 4bit (QLoRA) needs a CUDA GPU: bitsandbytes 4-bit training is not supported on CPU. "
            "Use --quantization none here, or a GPU instance type (e.g. ml.g5.2xlarge)."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainingSetupError(
            "--quantization 4bit (QLoRA) needs the bitsandbytes package in the training image "
            "(pip install 'continuum[gpu]' or bitsandbytes)"
        )
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


def load_tokenizer(source: str) -> Any:
    """The tokenizer, with pad = eos when the model defines no pad token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_starting_model(args: Any, local_rank: int = 0) -> StartingModel:
    """Load tokenizer + model as configured: precision, attention kernel, optional 4-bit base, device."""
    import torch
    from transformers import AutoModelForCausalLM

    source, model_dir = find_start(args.base_model_dir, args.base_model)
    cuda = torch.cuda.is_available()
    precision = choose_precision(args.precision, cuda, cuda and torch.cuda.is_bf16_supported(), local_rank)
    quant = quantization_config(args.quantization, cuda, precision.dtype)
    attention = choose_attention(args.attn_implementation, cuda, precision.dtype)
    if cuda:
        torch.cuda.set_device(local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    kwargs: dict[str, Any] = {"dtype": getattr(torch, precision.dtype), "attn_implementation": attention}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": local_rank})
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if quant is None:
        model.to(precision.device)
    else:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    limit_threads_for_small_models(model, cuda)
    metadata = read_metadata(model_dir) if model_dir is not None else {}
    return StartingModel(model, load_tokenizer(source), metadata, source, model_dir, precision, quant is not None, attention)


def load_unquantized(source: str, dtype: str, device: str) -> Any:
    """The starting model again in full precision (QLoRA merges its adapter into these weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype)).to(device)
