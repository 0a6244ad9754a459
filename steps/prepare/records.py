"""Record shapes → one training example: prompt/completion plus the chat form (`messages`).

Shapes (field names matched case-insensitively, after the configurable column mapping):
chat `messages` ([{"role", "content"}]) or ShareGPT `conversations` ([{"from", "value"}]);
prompt/completion; question/answer; instruction (+ input)/output; raw `text` (split into a
continuation example: first sentence as the prompt, the rest as the completion). A `system`
field joins the chat form as its system message.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from json.encoder import encode_basestring as quote
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PAIR_SHAPES = (("prompt", "completion"), ("question", "answer"), ("instruction", "output"))
CANONICAL_FIELDS = ("prompt", "completion", "question", "answer", "instruction", "input", "output",
                    "messages", "conversations", "text", "system")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "bot": "assistant", "model": "assistant"}
MIN_PARAGRAPH_WORDS = 4
MIN_FACT_WORDS = 4  # shorter answers ("Yes.", "$399", "30 days") answer many questions: each is its own fact
_ANSWER_END = " .!?;:"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

Messages = list[dict[str, str]]


class RowError(Exception):
    """One input row is unusable: `reason` is a short category, `detail` says what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Example:
    """One training example; `messages` is its chat form (system + turns up to the final reply)."""

    id: str
    prompt: str
    completion: str
    source: str
    messages: Messages = field(default_factory=list)

    def chat(self) -> Messages:
        return self.messages or pair_messages(self.prompt, self.completion)

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "completion": self.completion, "messages": self.chat(),
                "source": self.source}

    def line(self) -> tuple[str, bytes]:
        """Its JSONL line and content digest (see record_line)."""
        return record_line(self.id, self.source, Shaped(self.prompt, self.completion, self.chat()))


@dataclass(slots=True)
class Shaped:
    """A record mapped to the training schema, before ids and checks (one per input row: not frozen, which
    would make building it twice as slow)."""

    prompt: str
    completion: str
    messages: Messages

    @classmethod
    def from_messages(cls, messages: Messages) -> "Shaped":
        """The final reply is the completion; the last user message before it the prompt."""
        prompt = next(m["content"] for m in reversed(messages[:-1]) if m["role"] == "user")
        return cls(prompt, messages[-1]["content"], messages)


def pair_messages(prompt: str, completion: str, system: str | None = None) -> Messages:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]


def normalize(text: str) -> str:
    """The form duplicates are compared in: Unicode NFC, whitespace runs collapsed, ends stripped."""
    if (text.isascii() and "  " not in text and "\n" not in text and "\t" not in text and "\r" not in text
            and "\x0b" not in text and "\x0c" not in text and "\x1c" not in text and "\x1d" not in text
            and "\x1e" not in text and "\x1f" not in text and text[:1] != " " and text[-1:] != " "):
        return text  # ASCII is NFC, and this text has single spaces and no other whitespace (str.split's)
    return " ".join(unicodedata.normalize("NFC", text).split())


def _key(parts: list[str]) -> str:
    return hashlib.sha256("\x1f".join(normalize(part) for part in parts).encode("utf-8")).hexdigest()[:16]


def has_context(messages: Messages | None) -> bool:
    """Whether a chat holds more than one user question and its reply (a system message or earlier turns)."""
    return bool(messages) and (len(messages) > 2 or messages[0]["role"] != "user")


def example_id(prompt: str, completion: str, messages: Messages | None = None) -> str:
    """A content id: the same normalized prompt and completion (and chat context, if any) → the same id."""
    if has_context(messages):
        return _key([f"{m['role']}:{m['content']}" for m in messages])
    return _key([prompt, completion])


def prompt_key(prompt: str) -> str:
    """What the example asks (its final question, normalized): equal keys with other ids = a changed answer."""
    return _key([prompt])


def example_keys(shaped: "Shaped") -> tuple[str, int, int, str]:
    """(example id, the id and the prompt key as 64-bit integers, near-duplicate text) of a shaped record,
    normalizing each text once.

    The near-duplicate text leaves system messages out: a shared system prompt would make different chats alike.
    """
    if has_context(shaped.messages):
        normalized = [normalize(message["content"]) for message in shaped.messages if message["role"] != "system"]
        id_ = example_id("", "", shaped.messages)
        return id_, int(id_, 16), int(prompt_key(shaped.prompt), 16), " ".join(normalized).lower()
    prompt, completion = normalize(shaped.prompt), normalize(shaped.completion)
    prompt_bytes = prompt.encode("utf-8")
    id_bytes = hashlib.sha256(prompt_bytes + b"\x1f" + completion.encode("utf-8")).digest()[:8]
    return (id_bytes.hex(), int.from_bytes(id_bytes, "big"),
            int.from_bytes(hashlib.sha256(prompt_bytes).digest()[:8], "big"), f"{prompt} {completion}".lower())


def answer_key(normalized_completion: str) -> int:
    """What an answer says, as a 64-bit integer: its normalized text (see `normalize`) case-folded, without end
    punctuation ("30 days." = "30 Days"). Equal prompt keys with other answer keys = a changed answer."""
    text = normalized_completion.casefold().rstrip(_ANSWER_END)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def fact_key(normalized_completion: str, answer: int, id_key_: int) -> int:
    """The fact an example states: examples with equal keys are phrasings of one fact.

    The answer key when the answer has at least MIN_FACT_WORDS words; a shorter answer cannot tell facts apart
    ("Yes." answers many questions), so the example is its own fact (its id).
    """
    return answer if normalized_completion.count(" ") >= MIN_FACT_WORDS - 1 else id_key_


def split_paragraph(paragraph: str) -> tuple[str, str]:
    """Raw text as (prompt, completion): first sentence / the rest, else halves of the words."""
    sentences = [part for part in _SENTENCE_END.split(paragraph.strip()) if part]
    if len(sentences) >= 2:
        return sentences[0], " ".join(sentences[1:])
    words = paragraph.split()
    if len(words) < MIN_PARAGRAPH_WORDS:
        raise RowError("short_paragraph", f"text has {len(words)} word(s); at least {MIN_PARAGRAPH_WORDS} are needed "
                                          "to split it into prompt and completion")
    middle = len(words) // 2
    return " ".join(words[:middle]), " ".join(words[middle:])


def json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def text_field(fields: Mapping[str, Any], key: str, label: str | None = None) -> str:
    name = label or key
    value = fields.get(key)
    if value is None:
        raise RowError("missing_field", f"missing field '{name}'" if key not in fields else f"field '{name}' is null")
    if not isinstance(value, str):
        raise RowError("non_string_field", f"field '{name}' is {json_kind(value)}, expected a string")
    value = value.strip()
    if not value:
        raise RowError("empty_field", f"field '{name}' is empty")
    return value


def _optional_text(fields: Mapping[str, Any], key: str) -> str | None:
    if fields.get(key) is None:
        return None
    value = fields[key]
    if not isinstance(value, str):
        raise RowError("non_string_field", f"field '{key}' is {json_kind(value)}, expected a string")
    return value.strip() or None


def _chat(turns: Any, field_name: str, role_key: str, content_key: str, roles: Mapping[str, str] | None,
          system: str | None) -> Shaped:
    """Chat turns → (last user message before the final assistant reply, that reply, the chat form)."""
    if not isinstance(turns, list) or not turns:
        raise RowError("invalid_messages", f"field '{field_name}' must be a non-empty array of "
                                           f"{{{role_key}, {content_key}}} objects")
    messages: Messages = [{"role": "system", "content": system}] if system else []
    for index, turn in enumerate(turns):
        where = f"{field_name}[{index}]"
        if not isinstance(turn, dict):
            raise RowError("invalid_messages", f"{where} is {json_kind(turn)}, expected an object")
        raw_role = text_field(turn, role_key, f"{where}.{role_key}").lower()
        role = roles.get(raw_role, raw_role) if roles else raw_role
        if role in ("system", "user", "assistant"):
            messages.append({"role": role, "content": text_field(turn, content_key, f"{where}.{content_key}")})
    replies = [index for index, message in enumerate(messages) if message["role"] == "assistant"]
    if not replies:
        raise RowError("invalid_messages", f"field '{field_name}' has no assistant message")
    questions = [index for index in range(replies[-1]) if messages[index]["role"] == "user"]
    if not questions:
        raise RowError("invalid_messages",
                       f"field '{field_name}' has no user message before the last assistant message")
    kept = messages[: replies[-1] + 1]
    return Shaped(kept[questions[-1]]["content"], kept[-1]["content"], kept)


class RecordMapper:
    """Maps records of any supported shape to `Shaped`; `columns` maps canonical names to source names."""

    def __init__(self, columns: Mapping[str, str] | None = None) -> None:
        self._rename = {source.strip().lower(): canonical for canonical, source in (columns or {}).items()}
        self._plain_keys: dict[tuple[Any, ...], bool] = {}  # key tuple → already canonical?
        self._pairs: dict[tuple[Any, ...], tuple[str, str] | None] = {}  # key tuple → its plain pair shape

    def _plain(self, keys: tuple[Any, ...]) -> bool:
        """Whether records with these keys are already keyed by canonical names."""
        plain = self._plain_keys.get(keys)
        if plain is None:
            if len(self._plain_keys) > 4096:  # records with ever-new keys: keep the cache small
                self._plain_keys.clear()
            names = [str(key).strip().lower() for key in keys]
            plain = self._plain_keys[keys] = names == list(keys) and not set(names) & set(self._rename)
        return plain

    def fields(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """The record keyed by canonical names (the record itself when its keys already are)."""
        if self._plain(tuple(record)):
            return record
        fields: dict[str, Any] = {}
        for key, value in record.items():
            name = str(key).strip().lower()
            fields[self._rename.get(name, name)] = value
        return fields

    def _pair_shape(self, keys: tuple[Any, ...]) -> tuple[str, str] | None:
        """The (prompt, completion) fields of records with these canonical keys and no system message, chat,
        instruction input or text: what `_shape` reads for them."""
        if len(self._pairs) > 4096:
            self._pairs.clear()
        pair = None
        if self._plain(keys) and not {"system", "messages", "conversations"} & set(keys):
            pair = next(((prompt, completion) for prompt, completion in PAIR_SHAPES
                         if prompt in keys or completion in keys), None)
            pair = None if pair is None or pair[0] == "instruction" else pair
        self._pairs[keys] = pair
        return pair

    def shape(self, record: Mapping[str, Any]) -> Shaped:
        keys = tuple(record)
        pair = self._pairs[keys] if keys in self._pairs else self._pair_shape(keys)
        if pair is not None:  # the common case, without the general checks (the same result)
            prompt, completion = record.get(pair[0]), record.get(pair[1])
            if type(prompt) is str and type(completion) is str:
                prompt, completion = prompt.strip(), completion.strip()
                if prompt and completion:
                    return Shaped(prompt, completion, [{"role": "user", "content": prompt},
                                                       {"role": "assistant", "content": completion}])
        fields = self.fields(record)
        try:
            return self._shape(fields)
        except RowError:
            if all(value is None or (isinstance(value, str) and not value.strip()) for value in fields.values()):
                raise RowError("empty_record", "record has no content" + (
                    f" (fields {sorted(fields)} are all empty)" if fields else "")) from None
            raise

    def _shape(self, fields: Mapping[str, Any]) -> Shaped:
        system = _optional_text(fields, "system")
        if "messages" in fields:
            return _chat(fields["messages"], "messages", "role", "content", None, system)
        if "conversations" in fields:
            return _chat(fields["conversations"], "conversations", "from", "value", SHAREGPT_ROLES, system)
        for prompt_key_, completion_key in PAIR_SHAPES:
            if prompt_key_ in fields or completion_key in fields:
                prompt = text_field(fields, prompt_key_)
                completion = text_field(fields, completion_key)
                if prompt_key_ == "instruction":
                    extra = _optional_text(fields, "input")
                    prompt = f"{prompt}\n\n{extra}" if extra else prompt
                return Shaped(prompt, completion, pair_messages(prompt, completion, system))
        if "text" in fields:
            prompt, completion = split_paragraph(text_field(fields, "text"))
            return Shaped(prompt, completion, pair_messages(prompt, completion, system))
        raise RowError(
            "unrecognized_record",
            "no known fields (expected messages, conversations, prompt/completion, question/answer, "
            f"instruction/output or text); found {sorted(fields)}",
        )


def shape_text(paragraph: str) -> Shaped:
    prompt, completion = split_paragraph(paragraph)
    return Shaped(prompt, completion, pair_messages(prompt, completion))


def record_line(example_id_: str, source: str, shaped: Shaped) -> tuple[str, bytes]:
    """The example's output JSONL line (as json.dumps(Example.to_record())) and its 16-byte content digest.

    The digest covers everything but the source (id, prompt, completion, messages); texts are JSON-encoded
    once, even when a message holds the same string object as the prompt or completion.
    """
    prompt, completion = quote(shaped.prompt), quote(shaped.completion)
    if len(shaped.messages) == 2 and shaped.messages[0]["content"] is shaped.prompt:  # the common pair
        messages = f'{{"role": "user", "content": {prompt}}}, {{"role": "assistant", "content": {completion}}}'
    else:
        encoded = {id(shaped.prompt): prompt, id(shaped.completion): completion}
        messages = ", ".join(f'{{"role": "{m["role"]}", "content": '
                             f'{encoded.get(id(m["content"])) or quote(m["content"])}}}' for m in shaped.messages)
    content = f'{{"id": "{example_id_}", "prompt": {prompt}, "completion": {completion}, "messages": [{messages}]'
    return f'{content}, "source": {quote(source)}}}\n', hashlib.sha256(content.encode("utf-8")).digest()[:16]


Encoded = tuple[str, bytes, int, int, str, int, int, int, int]


def encode_example(shaped: Shaped, source: str) -> Encoded:
    """Everything the scan stores of a shaped record: its JSONL line, content digest, id and prompt key
    (64-bit integers), near-duplicate text, prompt and completion lengths, answer key and fact key (what
    `example_keys`, `record_line`, `answer_key` and `fact_key` give, in one pass for the common pair)."""
    prompt, completion, messages = shaped.prompt, shaped.completion, shaped.messages
    if len(messages) != 2 or messages[0]["content"] is not prompt or messages[0]["role"] != "user":
        id_, id_key, prompt_key_, text = example_keys(shaped)
        line, digest = record_line(id_, source, shaped)
        normalized = normalize(completion)
        answer = answer_key(normalized)
        return (line, digest, id_key, prompt_key_, text, len(prompt), len(completion), answer,
                fact_key(normalized, answer, id_key))
    normalized_prompt, normalized_completion = normalize(prompt), normalize(completion)
    prompt_bytes = normalized_prompt.encode("utf-8")
    id_bytes = hashlib.sha256(prompt_bytes + b"\x1f" + normalized_completion.encode("utf-8")).digest()[:8]
    quoted_prompt, quoted_completion = quote(prompt), quote(completion)
    content = (f'{{"id": "{id_bytes.hex()}", "prompt": {quoted_prompt}, "completion": {quoted_completion}, '
               f'"messages": [{{"role": "user", "content": {quoted_prompt}}}, '
               f'{{"role": "assistant", "content": {quoted_completion}}}]')
    id_key = int.from_bytes(id_bytes, "big")
    answer = int.from_bytes(hashlib.sha256(normalized_completion.casefold().rstrip(_ANSWER_END).encode("utf-8"))
                            .digest()[:8], "big")  # answer_key, inline: this runs on every row
    return (f'{content}, "source": {quote(source)}}}\n', hashlib.sha256(content.encode("utf-8")).digest()[:16],
            id_key, int.from_bytes(hashlib.sha256(prompt_bytes).digest()[:8], "big"),
            f"{normalized_prompt} {normalized_completion}".lower(), len(prompt), len(completion), answer,
            answer if normalized_completion.count(" ") >= MIN_FACT_WORDS - 1 else id_key)
