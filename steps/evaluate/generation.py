"""Greedy generation for many prompts: length-sorted, left-padded batches decoded with a KV cache.

Each batch is one prefill pass over its prompts, then one forward pass per new token. A row that
emits a stop token leaves the batch at once: its rows of the KV cache, attention mask and
positions are dropped, so the next steps only compute rows still writing. (`generate` keeps
finished rows in the batch until the longest answer ends; fine-tuned models, whose answers are
short and end at different steps, waste most of a batch that way.) The opening that the prompts
share (the template's header) is run once and reused by every batch (`evaluate.forward`). The tokens
are greedy `generate`'s: argmax of the last position's logits, no logits processors.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from evaluate.forward import PrefixStore, accepted, cache_argument, padded
from evaluate.model import LoadedModel


def batch_plan(lengths: Sequence[int], new_tokens: int, max_batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Prompt indices grouped into batches: longest first, each batch's rows x (prompt + new tokens) within budget."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if current is not None:
            width = lengths[current[0]] + new_tokens
            if (len(current) + 1) * width <= max_batch_tokens and len(current) < max_batch_size:
                current.append(index)
                continue
        batches.append([index])
    return batches


def encode_prompts(loaded: LoadedModel, prompts: Sequence[str], max_new_tokens: int) -> tuple[list[list[int]], int]:
    """Token ids of every prompt, cut from the left to leave room for the answer; and how many were cut."""
    room = max(1, loaded.max_length - max_new_tokens)
    encoded = loaded.tokenizer(list(prompts))["input_ids"] if prompts else []
    return [ids[-room:] for ids in encoded], sum(len(ids) > room for ids in encoded)


def stop_token_ids(loaded: LoadedModel) -> frozenset[int]:
    """Token ids that end an answer: the tokenizer's EOS and every EOS of the model's generation config."""
    configured = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, (list, tuple)) else [configured])
    ids.add(loaded.tokenizer.eos_token_id)
    return frozenset(int(token) for token in ids if token is not None)


def greedy_decode(model: Any, rows: Sequence[Sequence[int]], max_new_tokens: int, stop_ids: Collection[int],
                  pad_id: int, prefixes: PrefixStore | None = None) -> list[list[int]]:
    """Greedy new tokens of each prompt row (stop token excluded); rows leave the batch when they stop.

    The opening that all rows share is run once (`prefixes`: those of earlier batches of the same call).
    """
    import torch
    from transformers import DynamicCache

    if max_new_tokens < 1 or not rows:
        return [[] for _ in rows]
    device = model.device
    prefix = (prefixes if prefixes is not None else PrefixStore(model)).for_rows(rows, min(map(len, rows)) - 1)
    shared = prefix.length
    cache = prefix.cache_for(len(rows)) if shared else DynamicCache(config=model.config)
    suffixes = [list(ids[shared:]) for ids in rows]
    width = max(len(ids) for ids in suffixes)
    input_ids = padded(suffixes, width, pad_id, left=True).to(device)
    mask = torch.cat([torch.ones((len(rows), shared), dtype=torch.long),
                      padded([[1] * len(ids) for ids in suffixes], width, 0, left=True)], dim=1).to(device)
    positions = (mask.cumsum(-1) - 1).clamp_(min=0)[:, shared:]
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long, device=device)
    live = torch.arange(len(rows), device=device)  # the original row of each batch row still writing
    tokens = torch.full((len(rows), max_new_tokens), -1, dtype=torch.long, device=device)
    with torch.inference_mode():
        for step in range(max_new_tokens):
            logits = model(input_ids=input_ids, attention_mask=mask, use_cache=True, **cache_argument(model, cache),
                           **accepted(model, position_ids=positions, logits_to_keep=1)).logits
            next_tokens = logits[:, -1].argmax(-1)
            tokens[live, step] = next_tokens
            if step == max_new_tokens - 1:
                break
            stopped = torch.isin(next_tokens, stops)
            if bool(stopped.any()):  # those rows leave the batch: cache, mask and positions lose them
                keep = (~stopped).nonzero().squeeze(1)
                if keep.numel() == 0:
                    break
                live, next_tokens, mask, positions = live[keep], next_tokens[keep], mask[keep], positions[keep]
                cache.batch_select_indices(keep)
            input_ids = next_tokens[:, None]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            positions = positions[:, -1:] + 1
    return [_until_stop(row, stop_ids) for row in tokens.tolist()]


def _until_stop(tokens: list[int], stop_ids: Collection[int]) -> list[int]:
    """A row's new tokens before its first stop token (-1 marks steps after it left the batch)."""
    return next((tokens[:k] for k, token in enumerate(tokens) if token in stop_ids or token < 0), tokens)


def generate_from_ids(
    loaded: LoadedModel,
    encoded: Sequence[list[int]],
    max_new_tokens: int,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 64,
) -> list[str]:
    """Greedy completions of tokenized prompts, in prompt order; generation stops at EOS."""
    stop_ids = stop_token_ids(loaded)
    outputs: list[str] = [""] * len(encoded)
    if not encoded or max_new_tokens < 1:
        return outputs
    prefixes = PrefixStore(loaded.model)  # the template's opening, run once for all batches
    for batch in batch_plan([len(ids) for ids in encoded], max_new_tokens, max_batch_tokens, max_batch_size):
        answers = greedy_decode(loaded.model, [encoded[i] for i in batch], max_new_tokens, stop_ids, loaded.pad_id,
                                prefixes)
        texts = loaded.tokenizer.batch_decode(answers, skip_special_tokens=True)
        for index, text in zip(batch, texts):
            outputs[index] = text.strip()
    return outputs


def generate_greedy(
    loaded: LoadedModel,
    prompts: Sequence[str],
    max_new_tokens: int,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 64,
) -> list[str]:
    """Greedy completions of already-templated prompts, in prompt order; generation stops at EOS."""
    encoded, _ = encode_prompts(loaded, prompts, max_new_tokens)
    return generate_from_ids(loaded, encoded, max_new_tokens, max_batch_tokens, max_batch_size)
