"""Inference handler for continuum models, in the Hugging Face inference toolkit's contract.

The training step ships this file inside every model artifact as `code/inference.py`, with the
training step's prompt rendering as `code/prompting.py` beside it, so AWS's Hugging Face inference
containers use it (`model_fn`, `input_fn`, `predict_fn`, `output_fn`) and render prompts and chats
with the model's template from `continuum.json` exactly as training did; `serve.py` (the local
endpoint and this project's own image) calls the same four functions. Request `{"inputs": INPUT |
[INPUT, ...], "parameters": {...}}` where INPUT is a prompt string or `{"messages": [{"role":
"system" | "user" | "assistant", "content": str}, ...]}` ending with a user message; response
`[{"generated_text": str}, ...]` with only the new text.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


def _load_prompting() -> ModuleType:
    """The shared rendering: `prompting.py` beside this file (a model artifact's code/, the serving image),
    else the repository checkout's `steps/common/prompting.py`. Loaded by path under a name of its own, so
    the handler works however it was imported (the HF toolkit's `import inference`, serve.py by path)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "prompting.py", here.parent.parent / "steps" / "common" / "prompting.py"):
        if candidate.is_file():
            name = f"{__name__}_prompting"
            spec = importlib.util.spec_from_file_location(name, candidate)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses resolve their module through sys.modules
            spec.loader.exec_module(module)
            return module
    raise ImportError(f"prompting.py not found beside {__file__}: ship it with inference.py (code/ of the model)")


prompting = _load_prompting()

DEFAULT_TEMPLATE = prompting.DEFAULT_PROMPT_TEMPLATE
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

INPUTS_SHAPE = 'a string, {"messages": [...]}, or a non-empty list of those'

Messages = list[dict[str, str]]


class RequestError(ValueError):
    """The request cannot be served as sent (answered with 400 and this message)."""


@dataclass
class LoadedModel:
    """A model ready to generate: weights, tokenizer, prompt template, and a lock serializing generation."""

    model: Any
    tokenizer: Any
    template: str
    lock: threading.Lock
    _format: Any = field(default=None, init=False, repr=False, compare=False)

    def conversation_format(self) -> Any:
        """How this model renders chats (prompting.ConversationFormat), built once per template."""
        if self._format is None or self._format.template != self.template:
            self._format = prompting.conversation_format(self.template, self.tokenizer)
        return self._format


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
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}: not a JSON object: {err}") from err
    if not isinstance(metadata, dict):
        raise ValueError(f"{meta_path}: not a JSON object")
    try:
        return prompting.template_from_metadata(metadata)
    except ValueError as err:
        raise ValueError(f"{meta_path}: prompt_template: {err}") from err


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


def parse_chat(value: dict[str, Any], where: str) -> Messages:
    """The messages of one `{"messages": [...]}` input; RequestError naming the field (`inputs[1].messages[2].role`)."""
    unknown = sorted(set(value) - {"messages"})
    if unknown:
        raise RequestError(f'{where} has unsupported key {unknown[0]!r}: a chat input is {{"messages": [...]}}')
    if "messages" not in value:
        raise RequestError(f'{where} must be a string or {{"messages": [...]}}')
    try:
        messages = prompting.check_messages(value["messages"], f"{where}.messages")
    except ValueError as err:
        raise RequestError(str(err)) from err
    if messages[-1]["role"] != "user":
        raise RequestError(f"{where}.messages[{len(messages) - 1}].role must be 'user': the model answers the last "
                           f"message, got {messages[-1]['role']!r}")
    return messages


def parse_input(value: Any, where: str) -> str | Messages:
    """One input: a prompt string, or a chat's messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return parse_chat(value, where)
    raise RequestError(f'{where} must be a string or {{"messages": [...]}}')


def parse_request(body: bytes) -> tuple[list[str | Messages], dict[str, Any]]:
    """(inputs: prompt strings or chats' messages, generation parameters) from an /invocations body;
    RequestError says what is wrong and names the field."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(f"request body is not valid JSON: {err}") from err
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise RequestError(f'request must be a JSON object with "inputs" ({INPUTS_SHAPE})')
    inputs = payload["inputs"]
    if isinstance(inputs, list):
        if not inputs:
            raise RequestError(f'"inputs" must be {INPUTS_SHAPE}; got an empty list')
        prompts = [parse_input(item, f"inputs[{index}]") for index, item in enumerate(inputs)]
    elif isinstance(inputs, (str, dict)):
        prompts = [parse_input(inputs, "inputs")]
    else:
        raise RequestError(f'"inputs" must be {INPUTS_SHAPE}')
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


def render(loaded: LoadedModel, prompt: str | Messages) -> str:
    """The text the model continues: a string through the template, a chat through `prompting.render_conversation`."""
    if isinstance(prompt, str):
        return prompting.format_prompt(loaded.template, prompt)
    try:
        return prompting.render_conversation(loaded.conversation_format(), prompt)
    except ValueError as err:
        raise RequestError(str(err)) from err


def generate(loaded: LoadedModel, prompts: list[str | Messages], parameters: dict[str, Any]) -> list[dict[str, str]]:
    """`[{"generated_text": ...}]` per input (a prompt string or a chat's messages): the new text only
    (the raw prompt first if return_full_text)."""
    import torch

    if parameters.get("return_full_text") and not all(isinstance(p, str) for p in prompts):
        raise RequestError("parameter 'return_full_text' applies to string inputs only; "
                           "a chat input's generated_text is its reply")
    texts = [render(loaded, prompt) for prompt in prompts]  # every input checked before any generation
    options = {k: v for k, v in parameters.items() if k != "return_full_text"}
    options.setdefault("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    options.setdefault("do_sample", False)
    tokenizer, model = loaded.tokenizer, loaded.model
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # One call for all inputs, left-padded so every row's new tokens start at the same column.
    encoded = [tokenizer(text)["input_ids"] for text in texts]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in encoded], device=model.device)
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=model.device)
    with loaded.lock, torch.no_grad():
        output = model.generate(input_ids=input_ids, attention_mask=attention_mask, eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=pad_id, **options)
    results = []
    for prompt, row in zip(prompts, output):
        generated = tokenizer.decode(row[width:], skip_special_tokens=True)
        results.append({"generated_text": prompt + generated if parameters.get("return_full_text") else generated})
    return results


def model_fn(model_dir: str, context: Any = None) -> LoadedModel:
    """Toolkit hook: load the model from the unpacked artifact."""
    return load_model(Path(model_dir))


def input_fn(input_data: bytes | str,
             content_type: str = "application/json") -> tuple[list[str | Messages], dict[str, Any]]:
    """Toolkit hook: (inputs, generation parameters); RequestError (a ValueError) means a bad request."""
    if content_type and not content_type.startswith("application/json"):
        raise RequestError(f"unsupported content type {content_type!r}: send application/json")
    return parse_request(input_data.encode("utf-8") if isinstance(input_data, str) else input_data)


def predict_fn(data: tuple[list[str | Messages], dict[str, Any]], model: LoadedModel) -> list[dict[str, str]]:
    """Toolkit hook: generate for every input."""
    prompts, parameters = data
    return generate(model, prompts, parameters)


def output_fn(prediction: list[dict[str, str]], accept: str = "application/json") -> str:
    """Toolkit hook: the JSON response body."""
    return json.dumps(prediction)
