"""One input file (or part of one) → staged examples, quarantined rows and the keys deduplication works on.

Runs in a worker process per unit. Rows are read as a stream and handled in batches: shape →
PII (redact or block) → junk answers (junk.py) → token limit → ids, content digest, MinHash
signature, answer and fact keys, split. Each example's final JSONL line goes to the unit's staging
file of its split (`<stage>.train.jsonl`...): with `holdout` "examples" by the seeded hash of its id
(`split.SplitTally.fixes` may still move one or two), with "phrasings" every example is staged
for train and holdout decides later which phrasings are held out. Rejected rows go to
`<stage>.quarantine.jsonl`. Per example, `<stage>.columns` holds id, prompt key, lengths, line size
and split, `<stage>.sig` the MinHash signature; its keys (id, prompt key, content digest, LSH band
keys) are spilled by key range (see spill.py). Memory is bounded by the batch and run sizes,
whatever the file size.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from prepare import dedup, pii
from prepare.junk import junk_answer
from prepare.readers import DEFAULT_MAX_ROW_BYTES, RAW_PREVIEW_CHARS, InputFile, preview, read_rows
from prepare.records import Encoded, RecordMapper, RowError, Shaped, encode_example, shape_text
from prepare.split import HOLDOUT_EXAMPLES, HOLDOUT_PHRASINGS, TRAIN, scan_codes, split_scores
from prepare.tokens import TokenCounter, load_counter
from prepare.units import COLUMNS, Unit, UnitWriter

BATCH_ROWS = 4096
# What a quarantine record may show of a row: the preview plus a margin, so that a secret cut by the
# preview's end is still whole (and masked) when the excerpt is redacted.
RAW_EXCERPT_CHARS = RAW_PREVIEW_CHARS + 1000


@dataclass(frozen=True)
class ScanSettings:
    max_file_bytes: int
    max_tokens: int
    pii: str
    pii_allow: frozenset[str]
    columns: dict[str, str]
    tokenizer_dir: Path | None
    seed: int = 42
    validation_fraction: float = 0.1
    test_fraction: float = 0.0
    holdout: str = HOLDOUT_PHRASINGS
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES


@dataclass
class FileScan:
    """What scanning one file found; the examples and arrays are in the files under `stage`."""

    name: str
    format: str | None
    bytes: int
    sha256: str
    stage: Path
    rows: int = 0
    staged: int = 0
    splits: list[int] = field(default_factory=lambda: [0, 0, 0])  # staged examples per split (before fixes)
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    pii_found: Counter[str] = field(default_factory=Counter)
    pii_rows: int = 0
    tokens_counted: int = 0
    token_counter: str = ""

    def file_entry(self) -> dict[str, Any]:
        return {"path": self.name, "format": self.format, "bytes": self.bytes, "sha256": self.sha256, "rows": self.rows,
                "quarantined": self.quarantined}


def staged_units(scans: list[FileScan]) -> list[Unit]:
    """The scans' staged units, numbered on from each other in order."""
    bases = np.cumsum([0] + [scan.staged for scan in scans]).tolist()
    return [Unit(scan.stage, base, scan.staged) for scan, base in zip(scans, bases)]


def merge_file_entries(scans: list[FileScan]) -> list[dict[str, Any]]:
    """One report entry per input file: the counts of its parts added up, the hash from its first part."""
    entries: dict[str, dict[str, Any]] = {}
    for scan in scans:
        entry = entries.get(scan.name)
        if entry is None:
            entries[scan.name] = scan.file_entry()
        else:
            entry["rows"] += scan.rows
            entry["quarantined"] += scan.quarantined
            entry["sha256"] = entry["sha256"] or scan.sha256
    return list(entries.values())


def _joined(messages: list[dict[str, str]]) -> str:
    if len(messages) == 2:
        return messages[0]["content"] + "\n" + messages[1]["content"]
    return "\n".join(message["content"] for message in messages)


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class _Scanner:
    def __init__(self, file: InputFile, settings: ScanSettings, result: FileScan, counter: TokenCounter,
                 unit: UnitWriter, quarantine: IO[str]) -> None:
        self.file, self.settings, self.result, self.counter = file, settings, result, counter
        self.unit, self.quarantine = unit, quarantine
        self.rejected: list[tuple[int, str, str, str]] = []  # (line, reason, detail, raw), written at each flush

    def reject(self, line_no: int, reason: str, detail: str, raw: str | bytes) -> None:
        """Quarantine a row (its record is written at the next flush, its raw text redacted unless PII is off)."""
        raw = raw[:RAW_EXCERPT_CHARS]  # a bounded excerpt: redacted, then cut to the preview at the flush
        raw = (raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw).rstrip("\r\n")
        self.result.quarantined += 1
        self.result.reasons[reason] += 1
        self.rejected.append((line_no, reason, detail, raw))

    def _quarantine_lines(self) -> list[str]:
        """The rejected rows' records, in line order; raw texts the PII prefilter passes need no redaction."""
        rejected = sorted(self.rejected, key=lambda item: item[0])
        self.rejected.clear()
        raws = [raw for _, _, _, raw in rejected]
        if self.settings.pii != "off":
            suspects = pii.may_contain(raws) if raws else []
            raws = [pii.redact(raw, self.settings.pii_allow)[0] if suspect else raw
                    for raw, suspect in zip(raws, suspects)]
        return [json.dumps({"file": self.file.name, "line": line_no, "reason": reason, "detail": detail,
                            "raw": preview(raw)}, ensure_ascii=False) + "\n"
                for (line_no, reason, detail, _), raw in zip(rejected, raws)]

    def _pii(self, batch: list[tuple[int, Shaped, str]]) -> list[tuple[int, Shaped, str]]:
        if self.settings.pii == "off":
            return batch
        flagged = pii.may_contain([_joined(shaped.messages) for _, shaped, _ in batch])
        kept = []
        for (line_no, shaped, raw), suspect in zip(batch, flagged):
            if suspect:
                messages, found = [], Counter[str]()
                for message in shaped.messages:
                    text, kinds = pii.redact(message["content"], self.settings.pii_allow)
                    messages.append({"role": message["role"], "content": text})
                    found += kinds
                if found:
                    self.result.pii_found += found
                    self.result.pii_rows += 1
                    if self.settings.pii == "block":
                        self.reject(line_no, "pii", f"contains {', '.join(sorted(found))} (PII mode 'block')", raw)
                        continue
                    shaped = Shaped.from_messages(messages)
            kept.append((line_no, shaped, raw))
        return kept

    def _fits(self, line_no: int, shaped: Shaped, raw: str) -> bool:
        limit = self.settings.max_tokens
        if self.counter.surely_fits(shaped.messages, shaped.prompt, shaped.completion, limit):
            return True
        bound = self.counter.surely_too_long(shaped.messages, limit)
        if bound is not None:
            self.reject(line_no, "too_long", f"at least {bound} tokens (from its size, not tokenized), over the limit "
                                             f"of {limit} ({self.counter.description})", raw)
            return False
        try:
            tokens = self.counter.count(shaped.messages, shaped.prompt, shaped.completion)
        except Exception as exc:  # noqa: BLE001 - a template may raise anything for odd chats
            self.reject(line_no, "chat_template", f"the chat template cannot render this chat: {exc}", raw)
            return False
        if tokens > limit:
            self.reject(line_no, "too_long", f"{tokens} tokens, over the limit of {limit} ({self.counter.description})",
                        raw)
            return False
        return True

    def flush(self, batch: list[tuple[int, Shaped, str]]) -> None:
        encoded: list[Encoded] = []
        # Two messages of n characters have at most 4n bytes, so at most 4n + overheads tokens (see tokens).
        counter = self.counter
        quick_limit = (self.settings.max_tokens - counter.fixed_overhead - 2 * counter.per_message_overhead) // 4
        source = self.file.name + ":"
        for line_no, shaped, raw in self._pii(batch):
            junk = junk_answer(shaped.prompt, shaped.completion)
            if junk is not None:
                self.reject(line_no, junk[0], junk[1], raw)
                continue
            if (len(shaped.messages) > 2 or len(shaped.prompt) + len(shaped.completion) > quick_limit) and \
                    not self._fits(line_no, shaped, raw):
                continue
            encoded.append(encode_example(shaped, source + str(line_no)))
        self.quarantine.writelines(self._quarantine_lines())
        if not encoded:
            return
        self.result.staged += len(encoded)
        lines, digests, ids, prompt_keys, texts, prompt_chars, completion_chars, answers, facts = zip(*encoded)
        columns = np.zeros(len(lines), COLUMNS)
        columns["id"], columns["prompt_key"] = ids, prompt_keys
        columns["prompt_chars"], columns["completion_chars"] = prompt_chars, completion_chars
        settings = self.settings
        if settings.holdout == HOLDOUT_EXAMPLES:
            columns["split"] = scan_codes(split_scores(columns["id"], settings.seed), settings.validation_fraction,
                                          settings.test_fraction)
        else:
            columns["split"] = TRAIN
        for code, count in enumerate(np.bincount(columns["split"], minlength=3).tolist()):
            self.result.splits[code] += count
        self.unit.add(list(lines), columns, np.frombuffer(b"".join(digests), np.uint64).reshape(-1, 2),
                      dedup.signatures(texts), np.array(answers, np.uint64), np.array(facts, np.uint64))


def scan_file(file: InputFile, settings: ScanSettings, stage: Path) -> FileScan:
    """Read, check and stage one file or part of a file (see the module docstring); returns the counts.

    Only a file's first part hashes the whole file; `merge_file_entries` joins the parts' counts.
    """
    result = FileScan(file.name, file.format, file.size, file_sha256(file.path) if file.start == 0 else "", stage)
    counter = load_counter(settings.tokenizer_dir)
    mapper = RecordMapper(settings.columns)
    unit = UnitWriter(stage)
    with stage.with_name(stage.name + ".quarantine.jsonl").open("w", encoding="utf-8") as quarantine:
        scanner = _Scanner(file, settings, result, counter, unit, quarantine)
        batch: list[tuple[int, Shaped, str]] = []
        rejected, shape, rows = scanner.rejected, mapper.shape, 0
        for line_no, payload, raw in read_rows(file, settings.max_file_bytes, settings.max_row_bytes):
            rows += 1
            try:
                if type(payload) is dict:
                    batch.append((line_no, shape(payload), raw))
                elif isinstance(payload, RowError):
                    raise payload
                else:
                    batch.append((line_no, shape_text(payload) if isinstance(payload, str) else shape(payload), raw))
            except RowError as error:
                scanner.reject(line_no, error.reason, error.detail, raw)
            if len(batch) + len(rejected) >= BATCH_ROWS:
                scanner.flush(batch)
                batch = []
        result.rows = rows
        scanner.flush(batch)
    unit.close()
    result.tokens_counted = counter.checked
    result.token_counter = counter.description
    return result
