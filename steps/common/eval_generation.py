"""Greedy generation for many prompts: length-sorted, left-padded batches through `generate` with a KV cache."""
from __future__ import annotations

from collections.abc import Sequence

from common.eval_model import LoadedModel


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


def generate_from_ids(
    loaded: LoadedModel,
    encoded: Sequence[list[int]],
    max_new_tokens: int,
    max_batch_tokens: int = 8192,
    max_batch_size: int = 64,
) -> list[str]:
    """Greedy completions of tokenized prompts, in prompt order; generation stops at EOS."""
    import torch
    from transformers import GenerationConfig

    tokenizer = loaded.tokenizer
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=True,
        pad_token_id=loaded.pad_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    outputs: list[str] = [""] * len(encoded)
    for batch in batch_plan([len(ids) for ids in encoded], max_new_tokens, max_batch_tokens, max_batch_size):
        rows = [encoded[i] for i in batch]
        width = max(len(ids) for ids in rows)
        input_ids = torch.tensor([[loaded.pad_id] * (width - len(ids)) + ids for ids in rows])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows])
        with torch.no_grad():
            generated = loaded.model.generate(
                input_ids=input_ids.to(loaded.device),
                attention_mask=mask.to(loaded.device),
                generation_config=config,
            )
        texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
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
