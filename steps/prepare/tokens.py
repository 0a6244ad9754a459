"""Token lengths of training examples, as training will see them.

With the base model's tokenizer: the chat template applied to `messages` when the tokenizer has
one, else the model's prompt template around the prompt (BOS) + the completion + EOS. Tokenizing
is slow (~50 µs per example here), so it is skipped when a cheap bound already proves the example
fits: a byte-level or byte-fallback tokenizer never makes more tokens than the text has UTF-8
bytes, so bytes + the template's own bytes + special tokens bounds the count. The other way round, no
token stands for more bytes than the vocabulary's longest piece, so a text that many times longer than
the limit is surely too long, also without tokenizing (a slack of 4 covers normalizers that shrink
text). Without a tokenizer the length is estimated (words and punctuation marks, a long run of letters
counting one token per ESTIMATE_PIECE_CHARS), and the report says so.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from prepare.records import Messages
from common.prompting import DEFAULT_PROMPT_TEMPLATE, PROMPT_PLACEHOLDER, format_prompt, template_from_metadata

SPECIAL_TOKEN_SLACK = 8
ESTIMATE_PER_MESSAGE = 4
ESTIMATE_PIECE_CHARS = 16  # a word longer than this counts as several tokens (no tokenizer splits fewer)
NORMALIZER_SLACK = 4
_ESTIMATE_PIECES = re.compile(r"\w+|[^\w\s]")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


@dataclass
class TokenCounter:
    """Counts an example's tokens; `bound_overhead(n)` is what the template adds to n messages, in bytes."""

    description: str
    encode: Callable[[str, bool], int] | None
    prompt_template: str
    chat_template: Any = None
    fixed_overhead: int = 0
    per_message_overhead: int = 0
    eos: bool = True
    checked: int = 0
    longest_piece_bytes: int = 0  # UTF-8 bytes of the vocabulary's longest piece (0: unknown)

    @property
    def exact(self) -> bool:
        return self.encode is not None

    def surely_fits(self, messages: Messages, prompt: str, completion: str, limit: int) -> bool:
        """True when the byte bound proves the example has at most `limit` tokens (no tokenizing)."""
        if self.chat_template is not None or not self.exact:
            content = sum(utf8_length(message["content"]) for message in messages)
            return content + self.fixed_overhead + self.per_message_overhead * len(messages) <= limit
        return utf8_length(prompt) + utf8_length(completion) + self.fixed_overhead <= limit

    def surely_too_long(self, messages: Messages, limit: int) -> int | None:
        """A lower bound over `limit` on the example's tokens when its size alone proves it (no tokenizing), else
        None."""
        if not self.longest_piece_bytes:
            return None
        content = sum(utf8_length(message["content"]) for message in messages)
        bound = content // (self.longest_piece_bytes * NORMALIZER_SLACK)
        return bound if bound > limit else None

    def count(self, messages: Messages, prompt: str, completion: str) -> int:
        """The example's token count (an estimate without a tokenizer)."""
        self.checked += 1
        if self.encode is None:
            texts = [message["content"] for message in messages]
            pieces = sum((len(piece) + ESTIMATE_PIECE_CHARS - 1) // ESTIMATE_PIECE_CHARS
                         for text in texts for piece in _ESTIMATE_PIECES.findall(text))
            return pieces + ESTIMATE_PER_MESSAGE * len(texts)
        if self.chat_template is not None:
            return self.encode(self.chat_template.render(messages=messages), False)
        return self.encode(format_prompt(self.prompt_template, prompt), True) + self.encode(completion, False) + self.eos


def _special(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return value if isinstance(value, str) else ""


def _chat_template_source(folder: Path, config: dict[str, Any]) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):
        named = {item.get("name"): item.get("template") for item in template if isinstance(item, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    return template if isinstance(template, str) and template.strip() else None


class ChatTemplate:
    """A Hugging Face chat template rendered the way `apply_chat_template` does (sandboxed Jinja)."""

    def __init__(self, source: str, special_tokens: dict[str, str]) -> None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise ValueError(f"chat template: {message}")

        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        environment.filters["tojson"] = lambda value, **kwargs: json.dumps(value, ensure_ascii=False, **kwargs)
        environment.globals["raise_exception"] = raise_exception
        self._template = environment.from_string(source)
        self._special = special_tokens

    def render(self, messages: Messages) -> str:
        return self._template.render(messages=messages, add_generation_prompt=False, **self._special)


def _longest_piece(vocabulary: dict[str, int]) -> int:
    return max((utf8_length(piece) for piece in vocabulary), default=0)


def _encoder(folder: Path) -> tuple[Callable[[str, bool], int], str, int]:
    """(token count of a text, the counter's description, UTF-8 bytes of the longest vocabulary piece)."""
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        return (lambda text, special: len(tokenizer.encode(text, add_special_tokens=special).ids),
                "the base model's tokenizer.json", _longest_piece(tokenizer.get_vocab(with_added_tokens=True)))
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(str(folder))
    return (lambda text, special: len(slow(text, add_special_tokens=special)["input_ids"]),
            f"the base model's {type(slow).__name__}", _longest_piece(slow.get_vocab()))


def _overheads(counter: TokenCounter) -> tuple[int, int]:
    """(fixed, per-message) bytes the template adds around the contents, plus slack for special tokens."""
    if counter.chat_template is None:
        template_bytes = utf8_length(counter.prompt_template) - len(PROMPT_PLACEHOLDER)
        return template_bytes + SPECIAL_TOKEN_SLACK, 0
    sizes = []
    for turns in (1, 2):
        probe: Messages = [{"role": "system", "content": "x"}]
        for _ in range(turns):
            probe += [{"role": "user", "content": "x"}, {"role": "assistant", "content": "x"}]
        sizes.append(utf8_length(counter.chat_template.render(probe)) - len(probe))
    per_message = max(0, (sizes[1] - sizes[0] + 1) // 2)
    return sizes[0] + SPECIAL_TOKEN_SLACK, per_message + SPECIAL_TOKEN_SLACK


def _estimator(why: str) -> TokenCounter:
    return TokenCounter(f"estimate: words and punctuation marks ({why})", None, DEFAULT_PROMPT_TEMPLATE,
                        per_message_overhead=ESTIMATE_PER_MESSAGE)


def load_counter(tokenizer_dir: Path | None) -> TokenCounter:
    """The counter of the tokenizer in `tokenizer_dir` (a model folder or model.tar.gz), else an estimator."""
    folder = _tokenizer_folder(tokenizer_dir)
    if folder is None:
        return _estimator("no tokenizer given")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    metadata_path = folder / "continuum.json"
    metadata = json.loads(metadata_path.read_text(encoding="utf-8")) if metadata_path.is_file() else {}
    try:
        encode, description, longest = _encoder(folder)
    except ImportError as exc:
        return _estimator(f"{exc.name or 'tokenizers'} is not installed here")
    source = _chat_template_source(folder, config)
    special = {name: _special(config.get(name)) for name in ("bos_token", "eos_token", "unk_token", "pad_token")}
    try:
        chat = ChatTemplate(source, special) if source else None
        description += " with its chat template" if chat else ""
    except ImportError:
        chat, description = None, description + " (its chat template ignored: jinja2 is not installed here)"
    counter = TokenCounter(description, encode,
                           template_from_metadata(metadata), chat, eos=bool(special["eos_token"]),
                           longest_piece_bytes=longest)
    counter.fixed_overhead, counter.per_message_overhead = _overheads(counter)
    return counter


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def _tokenizer_folder(tokenizer_dir: Path | None) -> Path | None:
    """The folder holding the tokenizer files: the given one, or the model directory in it (or in its archive)."""
    from common.model_io import contains_model, materialize_model_dir

    if tokenizer_dir is None or not Path(tokenizer_dir).is_dir():
        return None
    folder = Path(tokenizer_dir)
    if _has_tokenizer(folder):
        return folder
    if contains_model(folder):
        model_dir = materialize_model_dir(folder)
        return model_dir if _has_tokenizer(model_dir) else None
    return None
