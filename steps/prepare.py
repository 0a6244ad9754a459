"""Prepare step: raw company data files in, validated and deduplicated train/validation JSONL out.

Reads every file under the input folder, recursively: .jsonl and .json (an array) records shaped
question/answer, instruction(+input)/output, prompt/completion or chat `messages`; .csv/.tsv with
a header row naming those columns; .txt/.md documents, whose paragraphs become examples (the
first sentence is the prompt, the rest the completion). Bad rows are quarantined with file, line
and reason; exact duplicates are dropped and counted; the kept examples are split by hashing
each example id with the seed, so an example lands in the same split on every machine and run,
whatever the file order. Writes train/train.jsonl, validation/validation.jsonl,
report/report.json and report/quarantine.jsonl under the output folder.

Continual learning: with --replay-dir, a previous version's prepared train split (every *.jsonl
under the folder) is sampled per source file (--replay-fraction, hashed with the seed) and added
to the train split, after dropping the replayed examples whose prompt the new data answers.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.jsonl import dumps_line, write_jsonl

DEFAULT_INPUT_DIR = Path("/opt/ml/processing/input/data")
DEFAULT_OUTPUT_DIR = Path("/opt/ml/processing/output")
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_SEED = 42
DEFAULT_MIN_EXAMPLES = 32
DEFAULT_REPLAY_FRACTION = 1.0
REPLAY_PREFIX = "replay:"
SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".md")
PAIR_SHAPES = (("prompt", "completion"), ("question", "answer"), ("instruction", "output"))
MIN_PARAGRAPH_WORDS = 4
RAW_PREVIEW_CHARS = 300
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_JSON_SEPARATORS = re.compile(r"[\s,]*")
_LINE_SUFFIX = re.compile(r":\d+$")


class PrepareError(Exception):
    """The step cannot produce usable data; the message says why and what to look at."""

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report


class RowError(Exception):
    """One input row is unusable: `reason` is a short category, `detail` says what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Example:
    id: str
    prompt: str
    completion: str
    source: str

    def to_record(self) -> dict[str, str]:
        return {"id": self.id, "prompt": self.prompt, "completion": self.completion, "source": self.source}


@dataclass(frozen=True)
class Quarantined:
    """A rejected row; `line` 0 means the whole file."""

    file: str
    line: int
    reason: str
    detail: str
    raw: str

    def to_record(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason, "detail": self.detail, "raw": self.raw}


@dataclass(frozen=True)
class FileResult:
    path: str
    sha256: str
    examples: list[Example]
    quarantined: list[Quarantined]

    @property
    def rows(self) -> int:
        return len(self.examples) + len(self.quarantined)


# A row as read from a file: (line number, record | paragraph text | RowError, raw text for the quarantine).
Row = tuple[int, "dict[str, Any] | str | RowError", str]


# ---------------------------------------------------------------- text and ids

def normalize(text: str) -> str:
    """The form duplicates are compared in: Unicode NFC, whitespace runs collapsed, ends stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def example_id(prompt: str, completion: str) -> str:
    """A content id: the same normalized prompt and completion always get the same id."""
    key = f"{normalize(prompt)}\x1f{normalize(completion)}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def split_paragraph(paragraph: str) -> tuple[str, str]:
    """A document paragraph as (prompt, completion): first sentence / the rest, else halves of the words."""
    sentences = [part for part in _SENTENCE_END.split(paragraph.strip()) if part]
    if len(sentences) >= 2:
        return sentences[0], " ".join(sentences[1:])
    words = paragraph.split()
    if len(words) < MIN_PARAGRAPH_WORDS:
        raise RowError(
            "short_paragraph",
            f"paragraph has {len(words)} word(s); at least {MIN_PARAGRAPH_WORDS} are needed to split it "
            "into prompt and completion",
        )
    middle = len(words) // 2
    return " ".join(words[:middle]), " ".join(words[middle:])


# ---------------------------------------------------------------- records

def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _text_field(fields: dict[str, Any], key: str, label: str | None = None) -> str:
    name = label or key
    if fields.get(key) is None:
        raise RowError("missing_field", f"missing field '{name}'" if key not in fields else f"field '{name}' is null")
    value = fields[key]
    if not isinstance(value, str):
        raise RowError("non_string_field", f"field '{name}' is {_json_kind(value)}, expected a string")
    if not value.strip():
        raise RowError("empty_field", f"field '{name}' is empty")
    return value.strip()


def _messages_to_pair(messages: Any) -> tuple[str, str]:
    """Chat messages as (last user message before the final assistant reply, that reply)."""
    if not isinstance(messages, list) or not messages:
        raise RowError("invalid_messages", "field 'messages' must be a non-empty array of {role, content} objects")
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise RowError("invalid_messages", f"{where} is {_json_kind(message)}, expected an object")
        role = _text_field(message, "role", f"{where}.role").lower()
        if role in ("user", "assistant"):
            turns.append((role, _text_field(message, "content", f"{where}.content")))
    replies = [index for index, (role, _) in enumerate(turns) if role == "assistant"]
    if not replies:
        raise RowError("invalid_messages", "field 'messages' has no assistant message")
    questions = [text for role, text in turns[: replies[-1]] if role == "user"]
    if not questions:
        raise RowError("invalid_messages", "field 'messages' has no user message before the last assistant message")
    return questions[-1], turns[replies[-1]][1]


def record_to_pair(record: dict[str, Any]) -> tuple[str, str]:
    """(prompt, completion) from a record of any supported shape; RowError says what is wrong."""
    fields = {str(key).strip().lower(): value for key, value in record.items()}
    if "messages" in fields:
        return _messages_to_pair(fields["messages"])
    for prompt_key, completion_key in PAIR_SHAPES:
        if prompt_key in fields or completion_key in fields:
            prompt = _text_field(fields, prompt_key)
            completion = _text_field(fields, completion_key)
            if prompt_key == "instruction" and fields.get("input") is not None:
                extra = fields["input"]
                if not isinstance(extra, str):
                    raise RowError("non_string_field", f"field 'input' is {_json_kind(extra)}, expected a string")
                prompt = f"{prompt}\n\n{extra.strip()}" if extra.strip() else prompt
            return prompt, completion
    raise RowError(
        "unrecognized_record",
        "no known fields (expected question/answer, instruction/output, prompt/completion or messages); "
        f"found {sorted(fields) or 'none'}",
    )


# ---------------------------------------------------------------- file readers

def _preview(text: str) -> str:
    return text if len(text) <= RAW_PREVIEW_CHARS else text[:RAW_PREVIEW_CHARS] + "..."


def _decoded_lines(data: bytes) -> Iterator[tuple[int, str | RowError, str]]:
    """(line number, text or an invalid_utf8 RowError, raw preview) for every line."""
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        if line_no == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = RowError("invalid_utf8", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
            yield line_no, error, _preview(raw.decode("utf-8", errors="replace"))
            continue
        yield line_no, text, _preview(text)


def _jsonl_rows(data: bytes) -> Iterator[Row]:
    for line_no, text, raw in _decoded_lines(data):
        if isinstance(text, RowError):
            yield line_no, text, raw
        elif text.strip():
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line_no, RowError("malformed_json", f"not valid JSON: {exc.msg} (column {exc.colno})"), raw
                continue
            if isinstance(record, dict):
                yield line_no, record, raw
            else:
                yield line_no, RowError("not_an_object", f"expected a JSON object, got {_json_kind(record)}"), raw


def _json_rows(data: bytes) -> Iterator[Row]:
    """A .json file holds one array of records; each element is a row, located by its first line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        yield line_no, RowError("invalid_utf8", f"not valid UTF-8 (byte 0x{data[exc.start]:02x})"), ""
        return
    if not text.strip():
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        yield exc.lineno, RowError("malformed_json", f"not valid JSON: {exc.msg} (column {exc.colno})"), ""
        return
    if not isinstance(document, list):
        yield 1, RowError("not_an_array", f"expected a JSON array of records, got {_json_kind(document)}"), ""
        return
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    for _ in document:
        position = _JSON_SEPARATORS.match(text, position).end()
        element, end = decoder.raw_decode(text, position)
        line_no = text.count("\n", 0, position) + 1
        raw = _preview(text[position:end])
        if isinstance(element, dict):
            yield line_no, element, raw
        else:
            yield line_no, RowError("not_an_object", f"expected a JSON object, got {_json_kind(element)}"), raw
        position = end


def _delimited_rows(data: bytes, delimiter: str) -> Iterator[Row]:
    """CSV/TSV with a header row; each later non-blank row becomes a record keyed by lower-cased header."""
    readable: list[tuple[int, str]] = []
    for line_no, text, raw in _decoded_lines(data):
        if isinstance(text, RowError):
            yield line_no, text, raw
        else:
            readable.append((line_no, text))
    reader = csv.reader((text + "\n" for _, text in readable), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    while True:
        first = reader.line_num
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line_no, text = readable[first]
            yield line_no, RowError("malformed_row", f"unreadable row: {exc}"), _preview(text)
            continue
        line_no, text = readable[first]
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in cells]
        elif len(cells) != len(header):
            yield line_no, RowError("malformed_row", f"row has {len(cells)} fields, the header has {len(header)}"), \
                _preview(text)
        else:
            yield line_no, dict(zip(header, cells)), _preview(text)


def _text_rows(data: bytes, markdown: bool) -> Iterator[Row]:
    """Paragraphs (blocks between blank lines; Markdown headings dropped) located by their first line."""
    block: list[tuple[int, str]] = []

    def paragraph() -> Iterator[Row]:
        if block:
            text = " ".join(line.strip() for _, line in block)
            yield block[0][0], text, _preview(text)
            block.clear()

    for line_no, text, raw in _decoded_lines(data):
        if isinstance(text, RowError):
            yield from paragraph()
            yield line_no, text, raw
        elif not text.strip():
            yield from paragraph()
        elif markdown and text.lstrip().startswith("#"):
            yield from paragraph()
        else:
            block.append((line_no, text))
    yield from paragraph()


def _rows(path: Path, data: bytes) -> Iterator[Row]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl_rows(data)
    if suffix == ".json":
        return _json_rows(data)
    if suffix in (".csv", ".tsv"):
        return _delimited_rows(data, "," if suffix == ".csv" else "\t")
    if suffix in (".txt", ".md"):
        return _text_rows(data, markdown=suffix == ".md")
    supported = ", ".join(SUPPORTED_SUFFIXES)
    return iter([(0, RowError("unsupported_file", f"unsupported file type '{suffix or path.name}' "
                                                  f"(supported: {supported})"), "")])


def read_file(path: Path, relative: str) -> FileResult:
    """Every row of one file, as examples or quarantined rows; `relative` names the file in reports."""
    data = path.read_bytes()
    examples: list[Example] = []
    quarantined: list[Quarantined] = []
    for line_no, payload, raw in _rows(path, data):
        try:
            if isinstance(payload, RowError):
                raise payload
            prompt, completion = split_paragraph(payload) if isinstance(payload, str) else record_to_pair(payload)
        except RowError as error:
            quarantined.append(Quarantined(relative, line_no, error.reason, error.detail, raw))
            continue
        examples.append(Example(example_id(prompt, completion), prompt, completion, f"{relative}:{line_no}"))
    return FileResult(relative, hashlib.sha256(data).hexdigest(), examples, quarantined)


# ---------------------------------------------------------------- dataset

def deduplicate(examples: list[Example]) -> tuple[list[Example], int]:
    """Keep the first example of each id (input order); return the kept ones and how many were dropped."""
    seen: set[str] = set()
    kept = []
    for example in examples:
        if example.id not in seen:
            seen.add(example.id)
            kept.append(example)
    return kept, len(examples) - len(kept)


def split_score(example_id_: str, seed: int) -> float:
    """Where an example falls in [0, 1) for a seed: a hash, so the same on every machine and run."""
    digest = hashlib.sha256(f"{seed}:{example_id_}".encode("utf-8")).hexdigest()
    return int(digest[:13], 16) / 16**13


def split_examples(examples: list[Example], validation_fraction: float, seed: int
                   ) -> tuple[list[Example], list[Example]]:
    """(train, validation), each sorted by id; with 2+ examples neither split is empty."""
    scored = sorted(examples, key=lambda example: (split_score(example.id, seed), example.id))
    cut = sum(1 for example in scored if split_score(example.id, seed) < validation_fraction)
    if len(scored) >= 2:
        cut = min(max(cut, 1), len(scored) - 1)
    validation, train = scored[:cut], scored[cut:]
    return sorted(train, key=lambda e: e.id), sorted(validation, key=lambda e: e.id)


def data_version(examples: list[Example]) -> str:
    """sha256 over the kept examples' id, prompt and completion, sorted by id (not their sources)."""
    digest = hashlib.sha256()
    for example in sorted(examples, key=lambda e: e.id):
        digest.update(dumps_line({"id": example.id, "prompt": example.prompt, "completion": example.completion})
                      .encode("utf-8"))
    return digest.hexdigest()


def input_files(input_dir: Path) -> list[tuple[Path, str]]:
    """(path, path relative to input_dir) of every file, recursively, sorted by relative path."""
    files = [(path, path.relative_to(input_dir).as_posix()) for path in input_dir.rglob("*") if path.is_file()]
    return sorted(files, key=lambda item: item[1])


# ---------------------------------------------------------------- replay

@dataclass(frozen=True)
class Replay:
    """Previous examples trained on again, and how they were counted.

    `quarantined` lines are unusable and never available; `available` counts distinct usable
    examples (by id); `sampled` of them were chosen; of those, `superseded` were dropped because
    the new data answers their prompt and the rest are `used`: sampled = superseded + used.
    """

    used: list[Example]
    quarantined: list[Quarantined]
    available: int
    sampled: int
    superseded: int
    fraction: float

    def counts(self) -> dict[str, Any]:
        return {"available": self.available, "sampled": self.sampled, "superseded": self.superseded,
                "quarantined": len(self.quarantined), "used": len(self.used), "fraction": self.fraction}


NO_REPLAY = Replay([], [], 0, 0, 0, 0.0)


def replay_files(replay_dir: Path | None) -> list[tuple[Path, str]]:
    """(path, relative path) of every .jsonl file under `replay_dir`; none when it is missing or unset."""
    if replay_dir is None or not Path(replay_dir).is_dir():
        return []
    return [(path, relative) for path, relative in input_files(Path(replay_dir)) if path.suffix.lower() == ".jsonl"]


def _optional_text(record: dict[str, Any], key: str, default: str) -> str:
    return default if record.get(key) is None else _text_field(record, key)


def read_replay_file(path: Path, relative: str) -> tuple[list[Example], list[Quarantined]]:
    """A prepared-examples file's examples (source prefixed `replay:`) and its unusable lines."""
    label = f"{REPLAY_PREFIX}{relative}"
    examples: list[Example] = []
    quarantined: list[Quarantined] = []
    for line_no, payload, raw in _jsonl_rows(path.read_bytes()):
        try:
            if isinstance(payload, RowError):
                raise payload
            prompt, completion = _text_field(payload, "prompt"), _text_field(payload, "completion")
            id_ = _optional_text(payload, "id", example_id(prompt, completion))
            source = _optional_text(payload, "source", relative)
        except RowError as error:
            quarantined.append(Quarantined(label, line_no, error.reason, error.detail, raw))
            continue
        source = source if source.startswith(REPLAY_PREFIX) else f"{REPLAY_PREFIX}{source}"
        examples.append(Example(id_, prompt, completion, source))
    return examples, quarantined


def replay_stratum(source: str) -> str:
    """The source file an example came from: its source without the `replay:` prefix and `:line` suffix."""
    return _LINE_SUFFIX.sub("", source.removeprefix(REPLAY_PREFIX))


def replay_score(example_id_: str, seed: int) -> float:
    """An example's place in the replay sample order for a seed: a hash, stable across machines and runs."""
    digest = hashlib.sha256(f"{seed}:replay:{example_id_}".encode("utf-8")).hexdigest()
    return int(digest[:13], 16) / 16**13


def sample_replay(examples: list[Example], fraction: float, seed: int) -> list[Example]:
    """round(fraction x count) examples (at least 1) of each source file, lowest replay score first; sorted by id."""
    strata: dict[str, list[Example]] = {}
    for example in examples:
        strata.setdefault(replay_stratum(example.source), []).append(example)
    sampled: list[Example] = []
    for members in strata.values():
        ranked = sorted(members, key=lambda example: (replay_score(example.id, seed), example.id))
        sampled.extend(ranked[: max(1, round(fraction * len(members)))])
    return sorted(sampled, key=lambda example: example.id)


def build_replay(replay_dir: Path | None, fraction: float, seed: int, new_examples: list[Example]) -> Replay:
    """Sample the replay folder and drop what `new_examples` supersede (same normalized prompt or same id)."""
    files = replay_files(replay_dir)
    if not files:
        return NO_REPLAY
    read = [read_replay_file(path, relative) for path, relative in files]
    available, _ = deduplicate([example for examples, _ in read for example in examples])
    sampled = sample_replay(available, fraction, seed)
    new_prompts = {normalize(example.prompt) for example in new_examples}
    new_ids = {example.id for example in new_examples}
    used = [example for example in sampled
            if normalize(example.prompt) not in new_prompts and example.id not in new_ids]
    quarantined = [row for _, rows in read for row in rows]
    return Replay(used, quarantined, len(available), len(sampled), len(sampled) - len(used), fraction)


def prepare(input_dir: Path, output_dir: Path, validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
            seed: int = DEFAULT_SEED, min_examples: int = DEFAULT_MIN_EXAMPLES, replay_dir: Path | None = None,
            replay_fraction: float = DEFAULT_REPLAY_FRACTION) -> dict[str, Any]:
    """Run the step; return report.json's content.

    Raises PrepareError when it cannot produce data; the report and quarantine are still written
    when it fails for too few examples (new + replayed) or for no new example, so the user can see why.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise PrepareError(f"input folder {input_dir} does not exist")
    if not 0 < validation_fraction < 1:
        raise PrepareError(f"--validation-fraction must be between 0 and 1 (exclusive), got {validation_fraction}")
    if not 0 < replay_fraction <= 1:
        raise PrepareError(f"--replay-fraction must be in (0, 1], got {replay_fraction}")
    results = [read_file(path, relative) for path, relative in input_files(input_dir)]
    if not results:
        raise PrepareError(f"input folder {input_dir} holds no files")
    kept, duplicates = deduplicate([example for result in results for example in result.examples])
    quarantined = sorted((row for result in results for row in result.quarantined), key=lambda q: (q.file, q.line))
    train, validation = split_examples(kept, validation_fraction, seed)
    replay = build_replay(replay_dir, replay_fraction, seed, kept)
    train = sorted(train + replay.used, key=lambda e: e.id)
    report: dict[str, Any] = {
        "rows": {"input": sum(result.rows for result in results), "kept": len(kept),
                 "duplicates": duplicates, "quarantined": len(quarantined)},
        "quarantine_reasons": dict(sorted(Counter(row.reason for row in quarantined).items())),
        "replay": replay.counts(),
        "splits": {"train": len(train), "validation": len(validation)},
        "data_version": data_version(train + validation),
        "files": [{"path": result.path, "sha256": result.sha256, "rows": result.rows} for result in results],
        "parameters": {"validation_fraction": validation_fraction, "seed": seed, "min_examples": min_examples,
                       "replay_fraction": replay_fraction},
    }
    report_dir = output_dir / "report"
    all_quarantined = sorted(quarantined + replay.quarantined, key=lambda q: (q.file, q.line))
    write_jsonl(report_dir / "quarantine.jsonl", (row.to_record() for row in all_quarantined))
    (report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    train_file, validation_file = output_dir / "train" / "train.jsonl", output_dir / "validation" / "validation.jsonl"
    usable = len(kept) + len(replay.used)
    if not kept or usable < min_examples:
        train_file.unlink(missing_ok=True)
        validation_file.unlink(missing_ok=True)
        problem = ("no new usable example, nothing new to learn from" if not kept else
                   f"only {usable} usable example(s) remain, fewer than --min-examples {min_examples}")
        raise PrepareError(
            f"{problem}: {report['rows']['input']} rows read from {len(results)} file(s) in {input_dir}, "
            f"{len(quarantined)} quarantined (see {report_dir / 'quarantine.jsonl'}), {duplicates} duplicate(s), "
            f"{len(replay.used)} replayed",
            report,
        )
    write_jsonl(train_file, (example.to_record() for example in train))
    write_jsonl(validation_file, (example.to_record() for example in validation))
    return report


def _replay_line(replay: dict[str, Any]) -> str:
    if not any(replay.values()):
        return "  replay: none"
    return (f"  replay (fraction {replay['fraction']}): used {replay['used']} of {replay['available']} available | "
            f"sampled {replay['sampled']} | superseded {replay['superseded']} | quarantined {replay['quarantined']}")


def summary(report: dict[str, Any]) -> str:
    """A few readable lines about a report."""
    rows, splits = report["rows"], report["splits"]
    reasons = ", ".join(f"{reason} {count}" for reason, count in report["quarantine_reasons"].items()) or "none"
    return "\n".join([
        f"prepare: {rows['input']} rows from {len(report['files'])} file(s)",
        f"  kept {rows['kept']} | duplicates {rows['duplicates']} | quarantined {rows['quarantined']} ({reasons})",
        f"  split (seed {report['parameters']['seed']}, validation fraction "
        f"{report['parameters']['validation_fraction']}): train {splits['train']}, validation {splits['validation']}",
        _replay_line(report["replay"]),
        f"  data version {report['data_version']}",
    ])


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def _replay_fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be greater than 0 and at most 1, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Validate, deduplicate and split raw company data into train/validation JSONL.")
    parser.add_argument("--input-dir", type=Path, default=DEFAULT_INPUT_DIR,
                        help=f"folder of raw data files, read recursively (default {DEFAULT_INPUT_DIR})")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                        help=f"root of train/, validation/ and report/ (default {DEFAULT_OUTPUT_DIR})")
    parser.add_argument("--validation-fraction", type=_fraction, default=DEFAULT_VALIDATION_FRACTION,
                        help=f"share of examples held out for validation (default {DEFAULT_VALIDATION_FRACTION})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the hash split (default {DEFAULT_SEED})")
    parser.add_argument("--min-examples", type=int, default=DEFAULT_MIN_EXAMPLES,
                        help="fail when fewer usable examples (new + replayed) remain "
                             f"(default {DEFAULT_MIN_EXAMPLES})")
    parser.add_argument("--replay-dir", type=Path, default=None,
                        help="folder of a previous version's prepared train split (*.jsonl, read recursively; "
                             "other files ignored); missing or empty means no replay")
    parser.add_argument("--replay-fraction", type=_replay_fraction, default=DEFAULT_REPLAY_FRACTION,
                        help=f"share of each replayed source file to train on again, in (0, 1] "
                             f"(default {DEFAULT_REPLAY_FRACTION})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = prepare(args.input_dir, args.output_dir, args.validation_fraction, args.seed, args.min_examples,
                         args.replay_dir, args.replay_fraction)
    except PrepareError as error:
        if error.report is not None:
            print(summary(error.report))
        print(f"prepare: error: {error}", file=sys.stderr)
        return 1
    print(summary(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
