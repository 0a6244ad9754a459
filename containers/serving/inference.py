"""Inference handler for continuum models, in the Hugging Face inference toolkit's contract.

The training step ships this file inside every model artifact as `code/inference.py`, so AWS's
Hugging Face inference containers use it (`model_fn`, `input_fn`, `predict_fn`, `output_fn`) and
apply the model's prompt template from `continuum.json`; `serve.py` (the local endpoint and this
project's own image) calls the same four functions. Request `{"inputs": str | [str],
"parameters": {...}}`, response `[{"generated_text": str}, ...]` with only the new text.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE = "### Question:\n{prompt}\n### Answer:\n"
DEFAULT_MAX_NEW_TOKENS = 32
MAX_NEW_TOKENS_LIMIT = 2048
# Below this size, intra-op threads cost more than they save on CPU.
SINGLE_THREAD_MAX_PARAMETERS = 20_000_000
GENERATION_PARAMETERS: dict[str, tuple[type, ...]] = {
    "max_new_tokens": (int,),
    "do_sample": (bool,),
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "repetition_penalty": (int, float),
    "return_full_text": (bool,),
}


class RequestError(ValueError):
    """The request cannot be served as sent (answered with 400 and this message)."""


@dataclass
class LoadedModel:
    """A model ready to generate: weights, tokenizer, prompt template, and a lock serializing generation."""

    model: Any
    tokenizer: Any
    template: str
    lock: threading.Lock


def find_model_dir(model_dir: Path) -> Path:
    """`model_dir` if it holds config.json, else its single subfolder that does."""
    model_dir = Path(model_dir)
    if (model_dir / "config.json").is_file():
        return model_dir
    nested = [d for d in sorted(model_dir.glob("*/")) if (d / "config.json").is_file()] if model_dir.is_dir() else []
    if len(nested) != 1:
        raise FileNotFoundError(f"{model_dir}: no model (config.json) at the top or in exactly one subfolder")
    return nested[0]


def read_template(model_dir: Path) -> str:
    """The prompt template from the model's continuum.json, else the default."""
    meta_path = Path(model_dir) / "continuum.json"
    if not meta_path.is_file():
        return DEFAULT_TEMPLATE
    try:
        template = json.loads(meta_path.read_text(encoding="utf-8")).get("prompt_template", DEFAULT_TEMPLATE)
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{meta_path}: not a JSON object: {err}") from err
    if not isinstance(template, str) or template.count("{prompt}") != 1:
        raise ValueError(f"{meta_path}: prompt_template must contain '{{prompt}}' exactly once, got {template!r}")
    return template


def load_model(model_dir: Path) -> LoadedModel:
    """Load the model and tokenizer (bf16 on a GPU that supports it, else fp32 on CPU) in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = find_model_dir(model_dir)
    use_gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if use_gpu and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(root)
    model = AutoModelForCausalLM.from_pretrained(root, dtype=dtype)
    model.to("cuda" if use_gpu else "cpu").eval()
    if not use_gpu and "OMP_NUM_THREADS" not in os.environ and model.num_parameters() <= SINGLE_THREAD_MAX_PARAMETERS:
        torch.set_num_threads(1)
    return LoadedModel(model=model, tokenizer=tokenizer, template=read_template(root), lock=threading.Lock())


def parse_request(body: bytes) -> tuple[list[str], dict[str, Any]]:
    """(prompts, generation parameters) from an /invocations body; RequestError says what is wrong."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(f"request body is not valid JSON: {err}") from err
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise RequestError('request must be a JSON object with "inputs" (a string or a list of strings)')
    inputs = payload["inputs"]
    prompts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise RequestError('"inputs" must be a string or a non-empty list of strings')
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError('"parameters" must be a JSON object')
    for name, value in parameters.items():
        if name not in GENERATION_PARAMETERS:
            raise RequestError(f"unsupported parameter {name!r}; supported: {', '.join(GENERATION_PARAMETERS)}")
        allowed = GENERATION_PARAMETERS[name]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise RequestError(f"parameter {name!r} must be of type {' or '.join(t.__name__ for t in allowed)}")
    max_new_tokens = parameters.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
        raise RequestError(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}, got {max_new_tokens}")
    return prompts, parameters


def generate(loaded: LoadedModel, prompts: list[str], parameters: dict[str, Any]) -> list[dict[str, str]]:
    """`[{"generated_text": ...}]` per prompt: the new text only (the raw prompt first if return_full_text)."""
    import torch

    options = {k: v for k, v in parameters.items() if k != "return_full_text"}
    options.setdefault("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    options.setdefault("do_sample", False)
    tokenizer, model = loaded.tokenizer, loaded.model
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results = []
    for prompt in prompts:
        text = loaded.template.replace("{prompt}", prompt)
        inputs = tokenizer(text, return_tensors="pt").to(model.device)
        with loaded.lock, torch.no_grad():
            output = model.generate(**inputs, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad_id, **options)
        generated = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        results.append({"generated_text": prompt + generated if parameters.get("return_full_text") else generated})
    return results


def model_fn(model_dir: str, context: Any = None) -> LoadedModel:
    """Toolkit hook: load the model from the unpacked artifact."""
    return load_model(Path(model_dir))


def input_fn(input_data: bytes | str, content_type: str = "application/json") -> tuple[list[str], dict[str, Any]]:
    """Toolkit hook: (prompts, generation parameters); RequestError (a ValueError) means a bad request."""
    if content_type and not content_type.startswith("application/json"):
        raise RequestError(f"unsupported content type {content_type!r}: send application/json")
    return parse_request(input_data.encode("utf-8") if isinstance(input_data, str) else input_data)


def predict_fn(data: tuple[list[str], dict[str, Any]], model: LoadedModel) -> list[dict[str, str]]:
    """Toolkit hook: generate for every prompt."""
    prompts, parameters = data
    return generate(model, prompts, parameters)


def output_fn(prediction: list[dict[str, str]], accept: str = "application/json") -> str:
    """Toolkit hook: the JSON response body."""
    return json.dumps(prediction)
