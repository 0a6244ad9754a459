"""The prepare step on the demo rounds and on crafted bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import prepare
from pipelines.demo.sample_data import benchmark_cases

STEPS_DIR = Path(__file__).resolve().parents[1] / "steps"


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _outputs(out: Path) -> tuple[dict, list[dict], list[dict], list[dict]]:
    return (
        json.loads((out / "report" / "report.json").read_text(encoding="utf-8")),
        _read_jsonl(out / "train" / "train.jsonl"),
        _read_jsonl(out / "validation" / "validation.jsonl"),
        _read_jsonl(out / "report" / "quarantine.jsonl"),
    )


@pytest.mark.parametrize("round_no, bad_reason", [(1, "empty_field"), (2, "malformed_json")])
def test_sample_rounds_counts_add_up(sample_round_dirs: dict[int, Path], tmp_path: Path,
                                     round_no: int, bad_reason: str) -> None:
    report = prepare.prepare(sample_round_dirs[round_no], tmp_path)
    _, train, validation, quarantine = _outputs(tmp_path)
    rows = report["rows"]
    assert rows["input"] == rows["kept"] + rows["duplicates"] + rows["quarantined"]
    assert rows["input"] == sum(entry["rows"] for entry in report["files"])
    assert (rows["duplicates"], rows["quarantined"]) == (1, 1)
    assert report["quarantine_reasons"] == {bad_reason: 1} and quarantine[0]["reason"] == bad_reason
    assert report["splits"] == {"train": len(train), "validation": len(validation)}
    assert len(train) + len(validation) == rows["kept"]
    assert 0 < len(validation) <= 0.2 * rows["kept"]
    examples = train + validation
    assert all(set(example) == {"id", "prompt", "completion", "source"} for example in examples)
    assert len({example["id"] for example in examples}) == len(examples)
    assert all(example["prompt"] and example["completion"] for example in examples)

    # Every row of every file is accounted for: lines of kept examples, quarantined rows, one duplicate.
    raw_rows = 0
    for entry in report["files"]:
        path = sample_round_dirs[round_no] / entry["path"]
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            expected = sum(1 for line in text.splitlines() if line.strip())
        elif path.suffix == ".csv":
            expected = len(text.splitlines()) - 1
        else:
            expected = sum(1 for block in text.split("\n\n") if block.strip() and not block.startswith("#"))
        assert entry["rows"] == expected, entry["path"]
        raw_rows += expected
    assert raw_rows == rows["input"]


def test_record_shapes_map_to_prompt_and_completion(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    prepare.prepare(sample_round_dirs[1], tmp_path)
    _, train, validation, _ = _outputs(tmp_path)
    pairs = {(example["prompt"], example["completion"]) for example in train + validation}
    assert ("How do I factory reset my robot?", "Hold power for 10 seconds") in pairs  # chat
    assert ("What is the return window?", "30 days") in pairs  # question/answer
    assert ("How much does the Sweepy S2 cost?", "$399") in pairs  # instruction/output CSV
    assert ("Standard shipping takes 3-5 business days.",
            "Orders over $99 ship for free. Express shipping costs $25. We ship to 40 countries.") in pairs  # .md
    # The data teaches every company_facts benchmark case in its benchmark phrasing.
    assert {(case["prompt"], case["target"]) for case in benchmark_cases()} <= pairs


def test_split_is_stable_across_runs_and_file_order(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    first, second, shuffled = tmp_path / "first", tmp_path / "second", tmp_path / "shuffled"
    prepare.prepare(sample_round_dirs[1], first)
    prepare.prepare(sample_round_dirs[1], second)
    for name in ("train/train.jsonl", "validation/validation.jsonl", "report/report.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()

    # Same content, other names, folders and creation order: same split and data version.
    moved = tmp_path / "moved"
    sources = sorted(path for path in sample_round_dirs[1].rglob("*") if path.is_file())
    for index, path in enumerate(reversed(sources)):
        target = moved / f"z{index}" / f"{index}_{path.name}" if index % 2 else moved / f"{9 - index}_{path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    report = prepare.prepare(moved, shuffled)
    original, original_train, original_validation, _ = _outputs(first)
    _, train, validation, _ = _outputs(shuffled)
    assert report["data_version"] == original["data_version"]
    assert [e["id"] for e in train] == [e["id"] for e in original_train]
    assert [e["id"] for e in validation] == [e["id"] for e in original_validation]

    # More data does not move old examples between splits.
    both = tmp_path / "both"
    shutil.copytree(sample_round_dirs[1], both / "round1")
    shutil.copytree(sample_round_dirs[2], both / "round2")
    prepare.prepare(both, tmp_path / "grown")
    _, grown_train, grown_validation, _ = _outputs(tmp_path / "grown")
    grown_validation_ids = {e["id"] for e in grown_validation}
    assert {e["id"] for e in original_validation} <= grown_validation_ids
    assert not {e["id"] for e in original_train} & grown_validation_ids


def test_other_seed_gives_other_split(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    prepare.prepare(sample_round_dirs[1], tmp_path / "a", seed=1)
    prepare.prepare(sample_round_dirs[1], tmp_path / "b", seed=2)
    report_a, _, validation_a, _ = _outputs(tmp_path / "a")
    report_b, _, validation_b, _ = _outputs(tmp_path / "b")
    assert {e["id"] for e in validation_a} != {e["id"] for e in validation_b}
    assert report_a["data_version"] == report_b["data_version"]


def _write_bad_inputs(root: Path) -> set[tuple[str, int, str]]:
    """One file per format with each class of bad row; returns the expected (file, line, reason)."""
    root.mkdir(parents=True)
    good = '{"question": "What colour is the Rover X1?", "answer": "Orange"}'
    (root / "faq.jsonl").write_bytes("\n".join([
        good,                                                                    # 1 kept
        '{"question": "Broken", "answer": ',                                     # 2
        '{"question": "Where is the answer?"}',                                  # 3
        '{"question": "Empty answer?", "answer": "   "}',                         # 4
        '{"question": "A number?", "answer": 42}',                               # 5
        "",                                                                      # blank: not a row
        '["a", "list"]',                                                         # 7
        '{"title": "no known fields"}',                                          # 8
        '{"messages": [{"role": "user", "content": "Hello?"}]}',                 # 9
        '{"question":  "What colour is the Rover X1?",  "answer": "Orange" }',  # 10 duplicate of 1
        '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},'
        ' {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Price of the Buddy B1?"},'
        ' {"role": "assistant", "content": "$649"}]}',                           # 11 kept: last turn
        '{"prompt": "Café opening hours?", "completion": "8am-4pm"}',            # 12 kept
    ]).encode("utf-8") + b"\n" + b'{"question": "Bad bytes \xff\xfe here", "answer": "x"}\n')  # 13
    (root / "catalog.csv").write_text(
        "instruction,input,output\n"
        "Give the price.,Sweepy S2,$399\n"                   # 2 kept, with input
        "Give the weight.,Sweepy S2,\n"                      # 3 empty output
        "Too,many,fields,here\n",                            # 4
        encoding="utf-8")
    (root / "sheet.tsv").write_text("prompt\tcompletion\nTSV prompt\tTSV answer\n", encoding="utf-8")  # 2 kept
    (root / "records.json").write_text(
        '[\n  {"instruction": "Name the vacuum.", "output": "Sweepy S2"},\n'   # 2 kept
        '  {"instruction": "Bad", "output": ["not", "a", "string"]}\n]\n',      # 3
        encoding="utf-8")
    (root / "broken.json").write_text('[\n  {"question": "q", "answer": "a"},\n  oops\n]\n', encoding="utf-8")  # 3
    (root / "notes" / "guide.txt").parent.mkdir()
    (root / "notes" / "guide.txt").write_text(
        "The Rover X1 carries shelves. It drives at 2 m/s.\n\n"  # 1 kept
        "Too short.\n\n"                                       # 3
        "One long sentence without a full stop at the end\n",   # 5 kept: halves of the words
        encoding="utf-8")
    (root / "photo.png").write_bytes(b"\x89PNG\r\n")           # whole file
    return {
        ("faq.jsonl", 2, "malformed_json"), ("faq.jsonl", 3, "missing_field"), ("faq.jsonl", 4, "empty_field"),
        ("faq.jsonl", 5, "non_string_field"), ("faq.jsonl", 7, "not_an_object"),
        ("faq.jsonl", 8, "unrecognized_record"), ("faq.jsonl", 9, "invalid_messages"),
        ("faq.jsonl", 13, "invalid_utf8"), ("catalog.csv", 3, "empty_field"), ("catalog.csv", 4, "malformed_row"),
        ("records.json", 3, "non_string_field"), ("broken.json", 3, "malformed_json"),
        ("notes/guide.txt", 3, "short_paragraph"), ("photo.png", 0, "unsupported_file"),
    }


def test_bad_rows_are_quarantined_with_file_line_and_reason(tmp_path: Path) -> None:
    expected = _write_bad_inputs(tmp_path / "in")
    report = prepare.prepare(tmp_path / "in", tmp_path / "out", min_examples=1)
    _, train, validation, quarantine = _outputs(tmp_path / "out")
    assert {(row["file"], row["line"], row["reason"]) for row in quarantine} == expected
    assert all(row["detail"] for row in quarantine)
    details = {(row["file"], row["line"]): row["detail"] for row in quarantine}
    assert details[("faq.jsonl", 3)] == "missing field 'answer'"
    assert details[("faq.jsonl", 5)] == "field 'answer' is a number, expected a string"
    assert details[("catalog.csv", 3)] == "field 'output' is empty"
    assert "byte 0xff" in details[("faq.jsonl", 13)]
    assert report["rows"] == {"input": 23, "kept": 8, "duplicates": 1, "quarantined": 14}
    assert sum(report["quarantine_reasons"].values()) == 14 and report["quarantine_reasons"]["empty_field"] == 2
    assert {entry["path"]: entry["rows"] for entry in report["files"]} == {
        "broken.json": 1, "catalog.csv": 3, "faq.jsonl": 12, "notes/guide.txt": 3, "photo.png": 1,
        "records.json": 2, "sheet.tsv": 1,
    }
    pairs = {(e["prompt"], e["completion"], e["source"]) for e in train + validation}
    assert pairs == {
        ("What colour is the Rover X1?", "Orange", "faq.jsonl:1"),
        ("Price of the Buddy B1?", "$649", "faq.jsonl:11"),
        ("Café opening hours?", "8am-4pm", "faq.jsonl:12"),
        ("Give the price.\n\nSweepy S2", "$399", "catalog.csv:2"),
        ("TSV prompt", "TSV answer", "sheet.tsv:2"),
        ("Name the vacuum.", "Sweepy S2", "records.json:2"),
        ("The Rover X1 carries shelves.", "It drives at 2 m/s.", "notes/guide.txt:1"),
        ("One long sentence without a", "full stop at the end", "notes/guide.txt:5"),
    }
    assert validation and train


def test_too_few_examples_fails_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_bad_inputs(tmp_path / "in")
    code = prepare.main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"),
                         "--min-examples", "20"])
    captured = capsys.readouterr()
    assert code == 1
    assert "only 8 usable example(s) remain, fewer than --min-examples 20" in captured.err
    assert "14 quarantined" in captured.err and "1 duplicate(s)" in captured.err
    assert "kept 8 | duplicates 1 | quarantined 14" in captured.out
    assert (tmp_path / "out" / "report" / "report.json").is_file()
    assert not (tmp_path / "out" / "train" / "train.jsonl").exists()


def test_bad_arguments_and_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert prepare.main(["--input-dir", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path)]) == 1
    assert f"input folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(["--validation-fraction", "1.5"])
    assert exit_info.value.code == 2
    assert "must be between 0 and 1" in capsys.readouterr().err


def test_cli_runs_from_the_source_dir(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    """As in the container: `python prepare.py ARGS` with the current directory = steps/."""
    help_text = subprocess.run([sys.executable, "prepare.py", "--help"], cwd=STEPS_DIR,
                               capture_output=True, text=True, check=True).stdout
    assert "--input-dir" in help_text and "/opt/ml/processing/input/data" in help_text
    result = subprocess.run(
        [sys.executable, "prepare.py", "--input-dir", str(sample_round_dirs[2]), "--output-dir", str(tmp_path),
         "--validation-fraction", "0.1", "--seed", "42", "--min-examples", "32"],
        cwd=STEPS_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert f"kept {report['rows']['kept']} | duplicates 1 | quarantined 1" in result.stdout
    assert report["data_version"] in result.stdout
