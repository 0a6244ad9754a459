"""The one rendering of prompts and conversations, shared by training, evaluation and serving.

Standard library only: the training step ships this file beside `code/inference.py` in every model
artifact and the serving handler imports it from there, so an endpoint renders a request exactly as
training rendered the examples.

What the model continues (`render_conversation`, the messages before a reply):
- one user message: the prompt template with that message (`format_prompt`), as for a plain prompt;
- otherwise, when the template is the tokenizer's own chat template (`chat_prompt_template`): that chat
  template over the messages with its generation prompt (a leading BOS text dropped when the tokenizer
  adds BOS itself);
- otherwise message by message: a system message's text and the turn separator; a user message through
  the template; an assistant message's text, the end-of-turn text (the tokenizer's EOS token, which
  ends every trained reply) and the turn separator. The separator is a line break when the template
  spans lines, else a space.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROMPT_PLACEHOLDER = "{prompt}"
DEFAULT_PROMPT_TEMPLATE = "### Question:\n{prompt}\n### Answer:\n"
ROLES = ("system", "user", "assistant")

Message = Mapping[str, str]


def validate_template(template: str) -> str:
    """Return `template` if it holds exactly one `{prompt}` placeholder, else raise ValueError."""
    if not isinstance(template, str) or template.count(PROMPT_PLACEHOLDER) != 1:
        raise ValueError(f"prompt template must contain '{PROMPT_PLACEHOLDER}' exactly once, got {template!r}")
    return template


def format_prompt(template: str, prompt: str) -> str:
    """Put `prompt` into `template`; other braces in either string are left alone (no str.format)."""
    return validate_template(template).replace(PROMPT_PLACEHOLDER, prompt)


def template_from_metadata(metadata: Mapping[str, Any]) -> str:
    """The model's prompt template from its continuum.json contents, else the default."""
    template = metadata.get("prompt_template")
    if template is None:
        return DEFAULT_PROMPT_TEMPLATE
    return validate_template(template)


# ---------------------------------------------------------------- chat templates


def _drop_added_bos(tokenizer: Any, rendered: str) -> str:
    """`rendered` without its leading BOS text when the tokenizer adds BOS itself (no prompt with two)."""
    bos = getattr(tokenizer, "bos_token", None)
    if bos and rendered.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
        return rendered[len(bos):]
    return rendered


def chat_prompt_template(tokenizer: Any) -> str | None:
    """The tokenizer's chat template rendered for one user turn + generation prompt, with `{prompt}` inside.

    None when the tokenizer has no chat template; ValueError when it does not render a user message verbatim.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT_PLACEHOLDER}], tokenize=False, add_generation_prompt=True
    )
    if not isinstance(rendered, str) or rendered.count(PROMPT_PLACEHOLDER) != 1:
        raise ValueError("the tokenizer's chat template does not render a user message verbatim; pass --prompt_template")
    return _drop_added_bos(tokenizer, rendered)


# ---------------------------------------------------------------- conversations


@dataclass(frozen=True)
class ConversationFormat:
    """How one model renders conversations: its prompt template, the text that ends an earlier reply,
    and the tokenizer whose chat template renders them when the template came from it."""

    template: str
    end_of_turn: str = ""
    chat_tokenizer: Any = None


def conversation_format(template: str, tokenizer: Any = None) -> ConversationFormat:
    """The format of a model with this prompt template and tokenizer (build once per model: it renders the chat template)."""
    validate_template(template)
    if tokenizer is None:
        return ConversationFormat(template)
    end_of_turn = tokenizer.eos_token if getattr(tokenizer, "eos_token_id", None) is not None else ""
    try:
        native = chat_prompt_template(tokenizer) == template
    except ImportError:
        raise  # jinja2 missing: rendering differently from training would be silent, so fail
    except Exception:  # noqa: BLE001 - a chat template that cannot render one user turn is not this model's template
        native = False
    return ConversationFormat(template, end_of_turn or "", tokenizer if native else None)


def turn_separator(template: str) -> str:
    """What follows a system message or an earlier reply: a line break when the template spans lines, else a space."""
    return "\n" if "\n" in template else " "


def check_messages(messages: Any, field: str = "messages") -> list[dict[str, str]]:
    """`messages` as a list of {"role", "content"} dicts; ValueError naming the field (`messages[2].role`) otherwise."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{field} must be a non-empty list of {{\"role\", \"content\"}} objects")
    checked = []
    for index, message in enumerate(messages):
        where = f"{field}[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where} must be an object with \"role\" and \"content\"")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"{where}.role must be one of {', '.join(ROLES)}; got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"{where}.content must be a string")
        checked.append({"role": role, "content": content})
    if not any(message["role"] == "user" for message in checked):
        raise ValueError(f"{field} has no user message")
    return checked


def has_context(messages: Sequence[Message]) -> bool:
    """Whether the messages before a reply are more than one user message (a system message or earlier turns)."""
    return len(messages) != 1 or messages[0]["role"] != "user"


def render_conversation(fmt: ConversationFormat, messages: Sequence[Message]) -> str:
    """The text the model continues with its next reply, for `messages` (system, earlier turns, the last user turn)."""
    if not has_context(messages):
        return format_prompt(fmt.template, messages[0]["content"])
    if fmt.chat_tokenizer is not None:
        return _render_with_chat_template(fmt.chat_tokenizer, messages)
    separator = turn_separator(fmt.template)
    parts = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "user":
            parts.append(format_prompt(fmt.template, content))
        elif role == "assistant":
            parts.append(content + fmt.end_of_turn + separator)
        elif role == "system":
            parts.append(content + separator)
        else:
            raise ValueError(f"message role must be one of {', '.join(ROLES)}; got {role!r}")
    return "".join(parts)


def _render_with_chat_template(tokenizer: Any, messages: Sequence[Message]) -> str:
    try:
        rendered = tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False, add_generation_prompt=True)
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - templates raise their own errors (e.g. roles must alternate)
        raise ValueError(f"the chat template cannot render these messages: {exc}") from exc
    return _drop_added_bos(tokenizer, rendered)


def example_prompt_text(fmt: ConversationFormat, prompt: str, messages: Sequence[Message] | None = None) -> str:
    """The text before an example's completion: its chat (`messages` without the final reply) when that
    carries context, else the template with `prompt` (byte for byte what single-turn examples always got)."""
    context = list(messages[:-1]) if messages else []
    if context and has_context(context):
        return render_conversation(fmt, context)
    return format_prompt(fmt.template, prompt)
