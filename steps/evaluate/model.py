"""Load a model for evaluation: the merged weights, the tokenizer and the prompt template it was trained with."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from common.model_io import limit_threads_for_small_models, materialize_model_dir, read_metadata
from common.prompting import ConversationFormat, conversation_format, template_from_metadata


class ModelLoadError(ValueError):
    """A model input that cannot be loaded; the message names the role and the path."""


@dataclass
class LoadedModel:
    """A model, its tokenizer, the prompt template it was trained with and its continuum.json."""

    model: Any
    tokenizer: Any
    template: str
    max_length: int
    device: Any
    metadata: dict[str, Any]
    path: Path

    @cached_property
    def conversation(self) -> ConversationFormat:
        """How this model renders chats (training's rule; built once: it may render the chat template)."""
        return conversation_format(self.template, self.tokenizer)

    @property
    def pad_id(self) -> int:
        """The id used to pad batches: pad, else EOS, else 0 (padded positions are always masked)."""
        for token_id in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id):
            if token_id is not None:
                return int(token_id)
        return 0

    @property
    def start_id(self) -> int:
        """What an empty context starts with: BOS, else EOS."""
        for token_id in (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id):
            if token_id is not None:
                return int(token_id)
        raise ModelLoadError(f"{self.path}: the tokenizer has neither a BOS nor an EOS token to start a text with")


def load_model(path: Path, role: str, max_seq_length: int) -> LoadedModel:
    """Materialize and load the model at path (directory or model.tar.gz) for evaluation, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        model_dir = materialize_model_dir(path)
        metadata = read_metadata(model_dir)
        template = template_from_metadata(metadata)
    except (FileNotFoundError, ValueError) as exc:
        raise ModelLoadError(f"{role} model: {exc}") from exc
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    limit_threads_for_small_models(model, device.type == "cuda")  # as training and serving do
    positions = getattr(model.config, "max_position_embeddings", None) or max_seq_length
    return LoadedModel(model, tokenizer, template, min(max_seq_length, positions), device, metadata, model_dir)
