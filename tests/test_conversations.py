"""Chats keep their context: one rendering (common.prompting) for training examples and serving requests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.examples import IGNORE_INDEX, ExampleError, encode_example, read_examples
from common.prompting import (
    DEFAULT_PROMPT_TEMPLATE,
    check_messages,
    chat_prompt_template,
    conversation_format,
    example_prompt_text,
    format_prompt,
    render_conversation,
)
from train.data import encode_records

CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n"
                 "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
SYSTEM = {"role": "system", "content": "You are the Acme Robotics support assistant."}


def _turns(*texts: str) -> list[dict[str, str]]:
    return [{"role": "user" if index % 2 == 0 else "assistant", "content": text} for index, text in enumerate(texts)]


def _record(messages: list[dict[str, str]], source: str = "chats.jsonl:1") -> dict[str, Any]:
    prompt = next(m["content"] for m in reversed(messages[:-1]) if m["role"] == "user")
    return {"id": "0123456789abcdef", "prompt": prompt, "completion": messages[-1]["content"], "messages": messages,
            "source": source}


@pytest.fixture()
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture()
def chat_tokenizer(tokenizer: Any) -> Any:
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.mark.parametrize("template", [DEFAULT_PROMPT_TEMPLATE, "Q: {prompt} A:", "{prompt}", "<|user|>{prompt}\n<|assistant|>"])
def test_single_turn_renders_byte_for_byte_as_before(tokenizer: Any, template: str) -> None:
    prompt, completion = "What is {the} Rover X1?\n", "A warehouse robot"
    fmt = conversation_format(template, tokenizer)
    before = format_prompt(template, prompt)
    assert example_prompt_text(fmt, prompt, _turns(prompt, completion)) == before
    assert example_prompt_text(fmt, prompt, None) == before
    assert render_conversation(fmt, _turns(prompt)) == before
    with_messages = encode_example(tokenizer, template, prompt, completion, 256, _turns(prompt, completion))
    expected_ids = (tokenizer(before)["input_ids"] + tokenizer(completion, add_special_tokens=False)["input_ids"]
                    + [tokenizer.eos_token_id])
    assert with_messages is not None and with_messages.input_ids == expected_ids
    assert with_messages == encode_example(tokenizer, template, prompt, completion, 256)


def test_context_rendering_rule(tokenizer: Any) -> None:
    messages = [SYSTEM, *_turns("What is the Rover X1?", "A warehouse robot", "How much does it weigh?")]
    assert render_conversation(conversation_format(DEFAULT_PROMPT_TEMPLATE, tokenizer), messages) == (
        "You are the Acme Robotics support assistant.\n"
        "### Question:\nWhat is the Rover X1?\n### Answer:\nA warehouse robot</s>\n"
        "### Question:\nHow much does it weigh?\n### Answer:\n"
    )
    # A one-line template separates turns with a space; without a tokenizer no end-of-turn text.
    assert render_conversation(conversation_format("Q: {prompt} A:"), messages) == (
        "You are the Acme Robotics support assistant. Q: What is the Rover X1? A:A warehouse robot "
        "Q: How much does it weigh? A:"
    )
    assert render_conversation(conversation_format("Q: {prompt} A:"), [SYSTEM, *_turns("Hi")]) == (
        "You are the Acme Robotics support assistant. Q: Hi A:"
    )


def test_multi_turn_example_trains_on_the_final_reply_with_its_context(tokenizer: Any) -> None:
    messages = [SYSTEM, *_turns("What is the Rover X1?", "A warehouse robot", "How much does it weigh?", "85 kg")]
    (example,), skipped = encode_records([_record(messages)], tokenizer, DEFAULT_PROMPT_TEMPLATE, 256, 1.0)
    assert skipped == 0
    context = example_prompt_text(conversation_format(DEFAULT_PROMPT_TEMPLATE, tokenizer), "", messages)
    context_ids = tokenizer(context)["input_ids"]
    reply_ids = tokenizer("85 kg", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert example.input_ids == context_ids + reply_ids
    assert example.labels == [IGNORE_INDEX] * len(context_ids) + reply_ids
    shown = tokenizer.decode(example.input_ids[: len(context_ids)])
    for text in ("Acme Robotics support assistant", "What is the Rover X1?", "A warehouse robot</s>",
                 "How much does it weigh?"):
        assert text in shown
    # The earlier reply is context: none of its tokens is scored.
    assert tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX], skip_special_tokens=True) == "85 kg"
    # Truncation keeps the old rule: an example whose reply does not fit is skipped and counted.
    assert encode_records([_record(messages)], tokenizer, DEFAULT_PROMPT_TEMPLATE, len(context_ids), 1.0) == ([], 1)


def test_a_models_own_chat_template_renders_its_chats(chat_tokenizer: Any) -> None:
    template = chat_prompt_template(chat_tokenizer)
    assert template == "<|user|>{prompt}\n<|assistant|>"
    messages = [SYSTEM, *_turns("What is the Rover X1?", "A warehouse robot", "How much does it weigh?")]
    rendered = render_conversation(conversation_format(template, chat_tokenizer), messages)
    native = chat_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert native.startswith(chat_tokenizer.bos_token) and rendered == native[len(chat_tokenizer.bos_token):]
    assert rendered == ("<|system|>You are the Acme Robotics support assistant.\n<|user|>What is the Rover X1?\n"
                        "<|assistant|>A warehouse robot\n<|user|>How much does it weigh?\n<|assistant|>")
    # A template of the model's own (not its tokenizer's) keeps the message-by-message rule.
    assert conversation_format("Q: {prompt} A:", chat_tokenizer).chat_tokenizer is None
    assert render_conversation(conversation_format("Q: {prompt} A:", chat_tokenizer), messages).startswith(
        "You are the Acme Robotics support assistant. Q: What is the Rover X1? A:A warehouse robot</s> Q:")


def test_a_chat_the_template_cannot_render_names_the_example(chat_tokenizer: Any) -> None:
    chat_tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                                    "{{ raise_exception('System role not supported') }}{% endif %}"
                                    "<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                                    "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    template = chat_prompt_template(chat_tokenizer)
    with pytest.raises(ExampleError, match=r"example 0123456789abcdef \(chats.jsonl:7\): .*System role not supported"):
        encode_records([_record([SYSTEM, *_turns("Hi", "Hello")], "chats.jsonl:7")], chat_tokenizer, template, 64, 1.0)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "messages must be a non-empty list"),
        ([{"role": "user", "content": "Hi"}, "Hello"], r"messages\[1\] must be an object"),
        ([{"role": "tool", "content": "x"}, {"role": "assistant", "content": "b"}], r"messages\[0\].role must be one of"),
        ([{"role": "user", "content": 3}, {"role": "assistant", "content": "b"}], r"messages\[0\].content must be a string"),
        ([SYSTEM, {"role": "assistant", "content": "b"}], "messages has no user message"),
        (_turns("a", "not the completion"), "must end with the assistant reply that 'completion' holds"),
    ],
)
def test_prepared_messages_are_checked_with_file_and_line(tmp_path: Path, messages: list, message: str) -> None:
    rows = [_record(_turns("a", "b")), {**_record(_turns("a", "b")), "messages": messages}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ExampleError, match=rf"train.jsonl:2: .*{message}"):
        read_examples(tmp_path)


def test_records_without_messages_still_read_and_encode(tokenizer: Any, tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n')
    records = read_examples(tmp_path)
    (example,), _ = encode_records(records, tokenizer, DEFAULT_PROMPT_TEMPLATE, 64, 1.0)
    assert example.input_ids == encode_example(tokenizer, DEFAULT_PROMPT_TEMPLATE, "a", "b", 64).input_ids


def test_check_messages_returns_plain_messages() -> None:
    extra = [{"role": "user", "content": "Hi", "name": "x"}]
    assert check_messages(extra, "inputs.messages") == [{"role": "user", "content": "Hi"}]
    with pytest.raises(ValueError, match=r"inputs.messages\[0\].role must be one of system, user, assistant; got None"):
        check_messages([{"content": "Hi"}], "inputs.messages")
