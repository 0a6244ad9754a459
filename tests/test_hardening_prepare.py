"""Issue 14, items 2 and 7 (prepare): rows and files are bounded while reading, before parsing or tokenizing;
over-long rows are quarantined with their size and reports carry bounded excerpts; a FIFO is named."""
from __future__ import annotations

import contextlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest

import prepare
from prepare.readers import LongLine, bounded_lines
from prepare.run import PrepareError

QUESTIONS = [{"prompt": f"What is the return window for order type {n}?",
              "completion": f"Orders of type {n} can be returned within {n + 10} days."} for n in range(40)]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def _quarantined(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "report" / "quarantine.jsonl").read_text().splitlines()]


def test_a_huge_row_is_quarantined_while_reading_with_its_size(tmp_path: Path) -> None:
    """The issue's case at 24 MB: quarantined as row_too_large before parsing, in bounded memory, and neither
    report.json nor quarantine.jsonl holds more than an excerpt of it."""
    data = tmp_path / "data" / "faq.jsonl"
    _write_jsonl(data, QUESTIONS)
    with data.open("a", encoding="utf-8") as handle:
        handle.write('{"prompt": "Tell me everything.", "completion": "' + "QmF0dGVyaWVz" * 2_000_000 + '"}\n')
    tracemalloc.start()
    try:
        report = prepare.prepare(data.parent, tmp_path / "out", min_examples=1, workers=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024  # the 24 MB line was never held whole (1 MB row limit)
    [row] = [row for row in _quarantined(tmp_path / "out") if row["line"] == 41]
    assert row["reason"] == "row_too_large"
    assert row["detail"].startswith("row is 24,000,0") and "over the limit of 1,048,576" in row["detail"]
    assert len(row["raw"]) <= 303
    assert report["quarantine_reasons"] == {"row_too_large": 1} and report["rows"]["kept"] == 40
    assert (tmp_path / "out" / "report" / "report.json").stat().st_size < 50_000


@pytest.mark.parametrize(("name", "content"), [
    ("notes.txt", "Intro paragraph.\n\n" + ("A very long paragraph line. " * 2000 + "\n") * 30 + "\nLast one.\n"),
    ("table.csv", "prompt,completion\nHi?,Hello there friend.\n" + "Long?," + "x" * 120_000 + "\n"),
    ("array.json", json.dumps([{"prompt": "Short?", "completion": "Yes it is short."},
                               {"prompt": "Long?", "completion": "word " * 300_000}])),
])
def test_every_format_bounds_its_rows(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / name).write_text(content, encoding="utf-8")
    with contextlib.suppress(PrepareError):  # a file of nothing but quarantined rows fails the step
        prepare.prepare(tmp_path / "data", tmp_path / "out", min_examples=1, max_row_mb=0.1, max_reject_rate=1.0,
                        workers=1)
    rows = _quarantined(tmp_path / "out")
    too_large = [row for row in rows if row["reason"] in ("row_too_large", "malformed_row")]
    assert len(too_large) == 1 and all(len(row["raw"]) <= 303 for row in rows), rows
    assert "over the limit of" in too_large[0]["detail"] or "field larger than field limit" in too_large[0]["detail"]


def test_bounded_lines_reads_past_a_long_line_a_chunk_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"short\n" + b"y" * 5_000_000 + b"\nafter\n" + b"z" * 3000)
    with path.open("rb") as handle:
        lines = list(bounded_lines(handle, 1000))
    assert lines[0] == b"short\n" and lines[2] == b"after\n"
    assert isinstance(lines[1], LongLine) and lines[1].size == 5_000_001 and len(lines[1].head) <= 1200
    assert isinstance(lines[3], LongLine) and lines[3].size == 3000  # the last line, without a line break


def test_a_long_row_under_the_byte_limit_is_too_long_without_tokenizing(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Under the row limit but far over the token limit: rejected from its size (the vocabulary's longest piece),
    and without a tokenizer a single 300 KB word is no longer counted as one token."""
    data = _write_jsonl(tmp_path / "data" / "faq.jsonl",
                        QUESTIONS + [{"prompt": "Blob?", "completion": "QmF0dGVyaWVz" * 25_000}])
    prepare.prepare(data.parent, tmp_path / "tok", tokenizer_dir=tiny_model_dir, min_examples=1, workers=1)
    [row] = [row for row in _quarantined(tmp_path / "tok") if row["line"] == 41]
    assert row["reason"] == "too_long" and "(from its size, not tokenized)" in row["detail"]
    prepare.prepare(data.parent, tmp_path / "est", min_examples=1, workers=1)
    [row] = [row for row in _quarantined(tmp_path / "est") if row["line"] == 41]
    assert row["reason"] == "too_long" and int(row["detail"].split()[0]) > 18_000  # 16 letters a token at most


def test_report_sample_carries_excerpts_only(tmp_path: Path) -> None:
    long_answer = "The warranty covers the battery, the motors and the frame for two years. " * 40
    records = [{"prompt": f"Question {n}?", "completion": long_answer + str(n)} for n in range(12)]
    data = _write_jsonl(tmp_path / "data" / "faq.jsonl", records)
    report = prepare.prepare(data.parent, tmp_path / "out", min_examples=1, max_tokens=4096, workers=1)
    assert report["sample"] and all(len(item["completion"]) <= 303 for item in report["sample"])
    assert all(item["completion"].endswith("...") for item in report["sample"])


def test_a_fifo_is_named_not_called_an_empty_folder(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(PrepareError, match=rf"{fifo} is a FIFO \(named pipe\), not a data file"):
        prepare.prepare(fifo, tmp_path / "out")
    folder = tmp_path / "data"
    _write_jsonl(folder / "faq.jsonl", QUESTIONS)
    os.mkfifo(folder / "more.jsonl")
    with pytest.raises(PrepareError, match="more.jsonl is a FIFO"):
        prepare.prepare(folder, tmp_path / "out")
