"""Input formats and record shapes, and one test per class of bad input (quarantined row or step error)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prepare

GOOD = [{"question": f"What is fact number {index} about the Rover X{index}?", "answer": f"It is {index * 7} cm"}
        for index in range(40)]


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _run(folder: Path, out: Path, **settings: object) -> tuple[dict, list[dict], list[dict]]:
    report = prepare.prepare(folder, out, **{"max_reject_rate": 1.0, "min_examples": 1, **settings})
    examples = _read(out / "train" / "train.jsonl") + [e for e in _read(out / "validation" / "validation.jsonl")
                                                       if e.get("heldout") != "recall"]  # re-asked: trained
    return report, examples, _read(out / "report" / "quarantine.jsonl")


def _accounted(report: dict) -> None:
    rows = report["rows"]
    assert rows["input"] == rows["kept"] + rows["duplicates"] + rows["quarantined"]
    assert rows["input"] == sum(entry["rows"] for entry in report["files"])
    assert rows["quarantined"] == sum(report["quarantine_reasons"].values())


def test_every_format_and_shape_is_read(tmp_path: Path) -> None:
    data = tmp_path / "in"
    (data / "nested").mkdir(parents=True)
    (data / "faq.jsonl.gz").write_bytes(gzip.compress(_jsonl([{"question": "Gzipped question?", "answer": "Yes"}])
                                                      .encode()))
    (data / "array.json").write_text(json.dumps([{"prompt": "Array prompt", "completion": "Array answer"}]))
    (data / "wrapped.json").write_text(json.dumps({"data": [{"instruction": "Wrapped", "input": "in data",
                                                             "output": "Unwrapped"}]}, indent=2))
    (data / "one_chat.json").write_text(json.dumps({"messages": [{"role": "user", "content": "One chat file?"},
                                                                 {"role": "assistant", "content": "Yes"}]}))
    (data / "keyed.json").write_text(json.dumps({"q1": {"question": "Keyed one?", "answer": "One"},
                                                 "q2": {"question": "Keyed two?", "answer": "Two"}}, indent=1))
    (data / "sheet.csv").write_text('prompt,completion\n"Quoted, with comma","Line one\nline two"\n')
    (data / "sheet.tsv.gz").write_bytes(gzip.compress(b"question\tanswer\nTSV question?\tTSV answer\n"))
    (data / "nested" / "notes.txt").write_text("The dock charges the robot. It takes two hours.\n")
    (data / "guide.md").write_text("# Title\n\nThe map has five rooms. Rooms can be renamed.\n")
    (data / "chats.ndjson").write_text(_jsonl([
        {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "ShareGPT hi?"},
                           {"from": "gpt", "value": "ShareGPT hello"}]},
        {"text": "Raw text records split like paragraphs. The rest is the completion."},
        {"query": "Mapped column?", "response": "Mapped answer", "system": "You are support."},
    ]))
    pq.write_table(pa.table({"question": ["Parquet question?"], "answer": ["Parquet answer"]}), data / "t.parquet")

    report, examples, quarantine = _run(data, tmp_path / "out", columns={"prompt": "query", "completion": "response"})
    assert quarantine == []
    _accounted(report)
    by_prompt = {e["prompt"]: e for e in examples}
    assert {e["prompt"]: e["completion"] for e in examples} == {
        "Gzipped question?": "Yes", "Array prompt": "Array answer", "Wrapped\n\nin data": "Unwrapped",
        "Keyed one?": "One", "Keyed two?": "Two", "Quoted, with comma": "Line one\nline two",
        "TSV question?": "TSV answer", "The dock charges the robot.": "It takes two hours.",
        "The map has five rooms.": "Rooms can be renamed.", "ShareGPT hi?": "ShareGPT hello",
        "Raw text records split like paragraphs.": "The rest is the completion.", "Mapped column?": "Mapped answer",
        "Parquet question?": "Parquet answer", "One chat file?": "Yes",
    }
    assert by_prompt["ShareGPT hi?"]["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "ShareGPT hi?"},
        {"role": "assistant", "content": "ShareGPT hello"}]
    assert by_prompt["Mapped column?"]["messages"][0] == {"role": "system", "content": "You are support."}
    assert by_prompt["Keyed two?"]["source"] == "keyed.json:6"  # where its object starts
    assert by_prompt["Quoted, with comma"]["source"] == "sheet.csv:2"
    assert by_prompt["Parquet question?"]["source"] == "t.parquet:1"
    assert {entry["path"]: entry["format"] for entry in report["files"]}["sheet.tsv.gz"] == "tsv"


def _bad_file(name: str, content: bytes) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / name).write_bytes(content)
    return write


def _faq_with(line: str | bytes) -> Callable[[Path], None]:
    """faq.jsonl: 40 good records, then the bad line (line 41)."""
    def write(folder: Path) -> None:
        bad = line if isinstance(line, bytes) else line.encode("utf-8")
        (folder / "faq.jsonl").write_bytes(_jsonl(GOOD).encode("utf-8") + bad + b"\n")
    return write


# (class, writer, settings, (file, line, reason), detail substring)
BAD_INPUTS = [
    ("wrong_encoding", _bad_file("utf16.jsonl", '{"question": "q", "answer": "a"}\n'.encode("utf-16")), {},
     ("utf16.jsonl", 0, "wrong_encoding"), "UTF-16 LE (byte-order mark FF FE); save it as UTF-8"),
    ("stray_bom", _faq_with('\ufeff{"question": "Concatenated?", "answer": "yes"}'), {},
     ("faq.jsonl", 41, "stray_bom"), "byte-order mark (U+FEFF)"),
    ("invalid_utf8", _faq_with(b'{"question": "Bad \xff bytes", "answer": "x"}'), {},
     ("faq.jsonl", 41, "invalid_utf8"), "byte 0xff at column 19"),
    ("malformed_json", _faq_with('{"question": "Cut off", "answer": '), {},
     ("faq.jsonl", 41, "malformed_json"), "not valid JSON: Expecting value (column 35)"),
    ("malformed_json_document", _bad_file("faq.json", b'[\n  {"question": "Fine?", "answer": "yes"},\n'
                                                      b'  {"question": "Broken?", "answer": yes}\n]\n'), {},
     ("faq.json", 3, "malformed_json"), "not valid JSON: Expecting value (column 37)"),
    ("malformed_json_object", _bad_file("faq.json", b'{"data": [\n\n\n  {"question": "Cut off", "answer": '), {},
     ("faq.json", 4, "malformed_json"), "not valid JSON: Expecting value (column 37)"),
    ("not_an_object", _faq_with('["a", "list"]'), {}, ("faq.jsonl", 41, "not_an_object"), "got an array"),
    ("missing_field", _faq_with('{"question": "Where is the answer?"}'), {},
     ("faq.jsonl", 41, "missing_field"), "missing field 'answer'"),
    ("non_string_field", _faq_with('{"question": "A number?", "answer": 42}'), {},
     ("faq.jsonl", 41, "non_string_field"), "field 'answer' is a number, expected a string"),
    ("empty_record", _faq_with('{"question": " ", "answer": ""}'), {},
     ("faq.jsonl", 41, "empty_record"), "record has no content"),
    ("empty_field", _faq_with('{"question": "Empty answer?", "answer": "   "}'), {},
     ("faq.jsonl", 41, "empty_field"), "field 'answer' is empty"),
    ("unrecognized_record", _faq_with('{"title": "no known fields"}'), {},
     ("faq.jsonl", 41, "unrecognized_record"), "found ['title']"),
    ("invalid_messages", _faq_with('{"messages": [{"role": "user", "content": "Hello?"}]}'), {},
     ("faq.jsonl", 41, "invalid_messages"), "has no assistant message"),
    ("too_long", _faq_with(json.dumps({"question": "Long?", "answer": "word " * 300})), {"max_tokens": 200},
     ("faq.jsonl", 41, "too_long"), "over the limit of 200"),
    ("file_too_large", _bad_file("huge.jsonl", _jsonl(GOOD * 30).encode()), {"max_file_mb": 0.05},
     ("huge.jsonl", 0, "file_too_large"), "over the limit of 52,428"),
    ("unsupported_file", _bad_file("photo.png", b"\x89PNG\r\n"), {},
     ("photo.png", 0, "unsupported_file"), "unsupported file type '.png'"),
    ("malformed_row", _bad_file("sheet.csv", b"question,answer\nToo,many,fields\n"), {},
     ("sheet.csv", 2, "malformed_row"), "row has 3 fields, the header has 2"),
    ("short_paragraph", _bad_file("notes.txt", b"Too short.\n"), {},
     ("notes.txt", 1, "short_paragraph"), "text has 2 word(s)"),
    ("pii", _faq_with('{"question": "My card?", "answer": "It is 4111 1111 1111 1111"}'), {"pii": "block"},
     ("faq.jsonl", 41, "pii"), "contains card"),
]


@pytest.mark.parametrize("writer, settings, where, detail", [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_quarantined_with_file_line_and_reason(tmp_path: Path, writer: Callable[[Path], None],
                                                            settings: dict, where: tuple[str, int, str],
                                                            detail: str) -> None:
    data = tmp_path / "in"
    data.mkdir()
    writer(data)
    if not (data / "faq.jsonl").exists():
        (data / "faq.jsonl").write_text(_jsonl(GOOD), encoding="utf-8")
    report, examples, quarantine = _run(data, tmp_path / "out", **settings)
    assert [(row["file"], row["line"], row["reason"]) for row in quarantine] == [where]
    assert detail in quarantine[0]["detail"]
    assert report["quarantine_reasons"] == {where[2]: 1}
    assert report["rows"]["quarantined"] == 1 and report["rows"]["kept"] == len(examples) == len(GOOD)
    _accounted(report)
    assert "4111" not in quarantine[0]["raw"]  # quarantined text is redacted too


def test_too_few_examples_fails_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "faq.jsonl").write_text(_jsonl(GOOD[:5]) + '{"question": "x"}\n', encoding="utf-8")
    code = prepare.main(["--input-dir", str(data), "--output-dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1
    assert "only 5 usable example(s) remain, fewer than --min-examples 32" in captured.err
    assert "1 quarantined" in captured.err and "kept 5 | duplicates 0 | quarantined 1" in captured.out
    assert (tmp_path / "out" / "report" / "report.json").is_file()
    assert not (tmp_path / "out" / "train" / "train.jsonl").exists()


def test_reject_rate_over_the_limit_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "faq.jsonl").write_text(_jsonl(GOOD) + '{"question": "x"}\n' * 20, encoding="utf-8")
    arguments = ["--input-dir", str(data), "--output-dir", str(tmp_path / "out"), "--min-examples", "1"]
    assert prepare.main([*arguments, "--max-reject-rate", "0.2"]) == 1
    assert "20 of 60 rows quarantined (33.3%), over --max-reject-rate 20%" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["reject_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert len(_read(tmp_path / "out" / "report" / "quarantine.jsonl")) == 20
    assert prepare.main([*arguments, "--max-reject-rate", "0.4"]) == 0


def test_nothing_usable_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in"
    data.mkdir()
    (data / "faq.jsonl").write_text(_jsonl(GOOD[:3] * 2), encoding="utf-8")
    (data / "broken.jsonl").write_text("{\n", encoding="utf-8")
    assert prepare.main(["--input-dir", str(data), "--output-dir", str(tmp_path / "ok"), "--min-examples", "3"]) == 0
    capsys.readouterr()
    (data / "faq.jsonl").unlink()
    assert prepare.main(["--input-dir", str(data), "--output-dir", str(tmp_path / "out"), "--min-examples", "1",
                         "--max-reject-rate", "1"]) == 1
    assert "no new usable example, nothing new to learn from: 1 rows read from 1 file(s), 1 quarantined" \
        in capsys.readouterr().err


def test_every_row_is_accounted_for(tmp_path: Path) -> None:
    """A mixed folder: kept + duplicates + quarantined = input, per file and in total; nothing silent."""
    data = tmp_path / "in"
    data.mkdir()
    lines = [json.dumps(record) for record in GOOD]
    lines += [lines[0], lines[1].replace(":", ":  "), '{"question": "x"}', "{", json.dumps(GOOD[2]).upper()]
    (data / "a.jsonl").write_text("\n".join(lines) + "\n\n\n", encoding="utf-8")
    (data / "b.csv").write_text("question,answer\n" + "".join(f"Q{i}?,A {i}\n" for i in range(10)) + "Q0?,A 0\n",
                                encoding="utf-8")
    report, examples, quarantine = _run(data, tmp_path / "out")
    _accounted(report)
    assert report["rows"] == {"input": 56, "kept": 50, "duplicates": 4, "quarantined": 2}
    assert report["duplicates"] == {"exact": 3, "near": 1}
    assert {entry["path"]: entry["rows"] for entry in report["files"]} == {"a.jsonl": 45, "b.csv": 11}
    assert len(examples) == 50 and len(quarantine) == 2


def test_big_jsonl_files_are_read_in_parts_in_parallel_with_the_same_result(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "in"
    data.mkdir()
    records = [{"question": f"Question {i} about part {i % 7}?", "answer": f"Answer {i * 3}"} for i in range(300)]
    lines = [json.dumps(record) for record in records]
    lines[150] = '{"question": "broken'
    (data / "big.jsonl").write_text("\ufeff" + "\n".join(lines + lines[:5]) + "\n", encoding="utf-8")
    whole = prepare.prepare(data, tmp_path / "whole", min_examples=1)
    monkeypatch.setattr(prepare.run, "PART_BYTES", 1500)
    monkeypatch.setattr(prepare.run, "PARALLEL_MIN_BYTES", 0)
    parts = prepare.prepare(data, tmp_path / "parts", min_examples=1, workers=2)
    assert parts == whole
    assert whole["rows"] == {"input": 305, "kept": 299, "duplicates": 5, "quarantined": 1}
    for name in ("train/train.jsonl", "validation/validation.jsonl", "report/quarantine.jsonl"):
        assert (tmp_path / "parts" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert _read(tmp_path / "parts" / "report" / "quarantine.jsonl")[0]["line"] == 151
