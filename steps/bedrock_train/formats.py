"""Bedrock's fine-tuning JSONL formats, and which one each base model family takes (decided here only).

Bedrock documents two text formats (user guide, "Prepare data for fine-tuning"):
- `prompt_completion`: `{"prompt": str, "completion": str}` (Amazon Titan Text, Cohere Command, Meta Llama 2);
- `conversation`: `{"schemaVersion": "bedrock-conversation-2024", "system": [{"text"}], "messages": [{"role",
  "content": [{"text"}]}, ...]}` (Amazon Nova: multi-turn; Anthropic Claude 3 Haiku and Meta Llama 3.x:
  single-turn, one user message).
A chat's earlier turns go into a multi-turn record; for a single-turn family they are dropped (counted in
bedrock.json as `context_dropped`), and for prompt/completion the system text is dropped too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONVERSATION_SCHEMA = "bedrock-conversation-2024"


@dataclass(frozen=True)
class DataFormat:
    """How one base model family's training records look."""

    name: str  # "conversation" | "prompt_completion"
    multi_turn: bool


CONVERSATION_MULTI = DataFormat("conversation", True)
CONVERSATION_SINGLE = DataFormat("conversation", False)
PROMPT_COMPLETION = DataFormat("prompt_completion", False)

# Model id prefixes (after any "arn:...:foundation-model/"), longest match wins.
FAMILIES: dict[str, DataFormat] = {
    "amazon.nova-": CONVERSATION_MULTI,
    "anthropic.claude-3-haiku": CONVERSATION_SINGLE,
    "meta.llama3-": CONVERSATION_SINGLE,
    "amazon.titan-text-": PROMPT_COMPLETION,
    "cohere.command-": PROMPT_COMPLETION,
    "meta.llama2-": PROMPT_COMPLETION,
}


class FormatError(ValueError):
    """No known format for the base model, or an example that cannot be written in it."""


def model_name(identifier: str) -> str:
    """`arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0:128k` → `amazon.nova-micro-v1:0:128k`."""
    return identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier


def data_format(base_model_identifier: str) -> DataFormat:
    """The format Bedrock takes to fine-tune this base model."""
    name = model_name(base_model_identifier)
    matches = [prefix for prefix in FAMILIES if name.startswith(prefix)]
    if not matches:
        raise FormatError(f"base model {base_model_identifier!r}: no known Bedrock fine-tuning data format; known "
                          f"families: {', '.join(sorted(FAMILIES))} (training.bedrock.base_model_identifier)")
    return FAMILIES[max(matches, key=len)]


def _turns(example: dict[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """(system text, the user/assistant turns ending with the reply) of a prepared example."""
    messages = example.get("messages") or [{"role": "user", "content": example["prompt"]},
                                           {"role": "assistant", "content": example["completion"]}]
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


def to_record(example: dict[str, Any], fmt: DataFormat) -> tuple[dict[str, Any], bool]:
    """One prepared example (docs/contracts.md "Training examples") as a Bedrock record; and whether earlier
    turns of its chat were dropped."""
    system, turns = _turns(example)
    dropped = len(turns) > 2 and not fmt.multi_turn
    if not fmt.multi_turn:
        turns = turns[-2:]
    if fmt.name == "prompt_completion":
        return {"prompt": turns[0]["content"], "completion": turns[-1]["content"]}, dropped
    record: dict[str, Any] = {"schemaVersion": CONVERSATION_SCHEMA}
    if system:
        record["system"] = [{"text": system}]
    record["messages"] = [{"role": m["role"], "content": [{"text": m["content"]}]} for m in turns]
    return record, dropped
