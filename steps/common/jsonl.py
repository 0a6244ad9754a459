"""JSON Lines files: write records one per line, read them back with errors that name file and line."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


MAX_LINE_BYTES = 64 * 1024 * 1024  # one record of a JSONL file written or read by the steps


class JsonlError(ValueError):
    """A JSONL file has a line that is not a JSON object; the message names file and line."""


def dumps_line(record: Mapping[str, Any]) -> str:
    """One record as a JSONL line (UTF-8 text kept readable, keys in the record's order)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write `records` to `path` (parent folders created); return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(dumps_line(record))
            count += 1
    return count


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSONL file, skipping blank lines; raise JsonlError naming file:line."""
    for _, record in iter_jsonl_lines(path):
        yield record


def iter_jsonl_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; raise JsonlError naming file:line (also for
    a line over `max_line_bytes`, found before it is read whole)."""
    path = Path(path)
    with path.open("rb") as handle:
        line_no = 0
        while raw := handle.readline(max_line_bytes + 1):
            line_no += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                raise JsonlError(f"{path}:{line_no}: line longer than {max_line_bytes:,} bytes (the limit of a "
                                 "JSONL record here)")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise JsonlError(f"{path}:{line_no}: not valid UTF-8 at byte {exc.start + 1}") from exc
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise JsonlError(f"{path}:{line_no}: not valid JSON: {exc.msg} (column {exc.colno})") from exc
            except RecursionError:
                raise JsonlError(f"{path}:{line_no}: JSON nested too deeply") from None
            if not isinstance(record, dict):
                raise JsonlError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
            yield line_no, record
