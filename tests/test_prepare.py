"""The prepare step on the demo rounds: counts, record shapes, split stability, replay."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import prepare
from prepare.records import Example
from prepare.replay import replay_stratum, sample_replay
from pipelines.demo.sample_data import benchmark_cases, facts

STEPS_DIR = Path(__file__).resolve().parents[1] / "steps"
DEMO_ALLOW = ("@acmerobotics.com", "1-800-555-0199")
FIELDS = {"id", "prompt", "completion", "source", "messages"}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _learned(train: list[dict], validation: list[dict]) -> list[dict]:
    """Every example once: train and the held-out rows (re-asked rows copy train examples)."""
    return train + [e for e in validation if e.get("heldout") != "recall"]


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
    report = prepare.prepare(sample_round_dirs[round_no], tmp_path, pii_allow=DEMO_ALLOW)
    _, train, validation, quarantine = _outputs(tmp_path)
    rows = report["rows"]
    assert rows["input"] == rows["kept"] + rows["duplicates"] + rows["quarantined"]
    assert rows["input"] == sum(entry["rows"] for entry in report["files"])
    assert (rows["duplicates"], rows["quarantined"]) == (1, 1)
    assert report["duplicates"] == {"exact": 1, "near": 0}
    assert report["quarantine_reasons"] == {bad_reason: 1} and quarantine[0]["reason"] == bad_reason
    assert report["splits"] == {"train": len(train), "validation": len(validation), "test": 0}
    examples = _learned(train, validation)
    assert len(examples) == rows["kept"]
    assert 0 < len(validation) <= 0.2 * rows["kept"]
    assert report["holdout"]["facts_withheld"] == 0
    assert all(set(example) - {"heldout"} == FIELDS for example in train + validation)
    assert {example.get("heldout") for example in validation} == {"recall", "phrasing"}
    assert len({example["id"] for example in examples}) == len(examples)
    assert all(example["messages"][-1] == {"role": "assistant", "content": example["completion"]}
               for example in examples)
    assert report["pii"] == {"mode": "redact", "found": {}, "rows": 0}

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


def test_record_shapes_map_to_prompt_completion_and_chat(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    prepare.prepare(sample_round_dirs[1], tmp_path, pii_allow=DEMO_ALLOW)
    _, train, validation, _ = _outputs(tmp_path)
    pairs = {(example["prompt"], example["completion"]) for example in train + validation}
    assert ("How do I factory reset my robot?", "Hold power for 10 seconds") in pairs  # chat
    assert ("What is the return window?", "30 days") in pairs  # question/answer
    assert ("How much does the Sweepy S2 cost?", "$399") in pairs  # instruction/output CSV
    assert ("Standard shipping takes 3-5 business days.",
            "Orders over $99 ship for free. Express shipping costs $25. We ship to 40 countries.") in pairs  # .md
    assert {(case["prompt"], case["target"]) for case in benchmark_cases()} <= pairs
    chat = next(e for e in train + validation if e["prompt"] == "How do I factory reset my robot?")
    assert chat["messages"][0]["role"] == "system" and chat["messages"][-2:] == [
        {"role": "user", "content": "How do I factory reset my robot?"},
        {"role": "assistant", "content": "Hold power for 10 seconds"}]


def test_public_contacts_need_the_allow_list(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    report = prepare.prepare(sample_round_dirs[1], tmp_path)
    _, train, validation, _ = _outputs(tmp_path)
    assert report["pii"]["found"] == {"email": 4, "phone": 4} and report["pii"]["rows"] == 7
    answers = {e["prompt"]: e["completion"] for e in train + validation}
    assert answers["What is the support email address?"] == "[EMAIL]"
    assert answers["What is the support phone number?"] == "[PHONE]"
    assert not any("acmerobotics.com" in json.dumps(e) for e in train + validation)


def test_split_is_stable_across_runs_and_file_order(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    first, second, shuffled = tmp_path / "first", tmp_path / "second", tmp_path / "shuffled"
    prepare.prepare(sample_round_dirs[1], first)
    prepare.prepare(sample_round_dirs[1], second, workers=2)
    for name in ("train/train.jsonl", "validation/validation.jsonl", "report/report.json", "train/manifest.json"):
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
    assert {e["id"] for e in train} == {e["id"] for e in original_train}
    assert {e["id"] for e in validation} == {e["id"] for e in original_validation}

    # More data does not move old examples between splits (holdout "examples"); with holdout "phrasings" held-out
    # phrasings stay held out and every fact stays in train.
    both = tmp_path / "both"
    shutil.copytree(sample_round_dirs[1], both / "round1")
    shutil.copytree(sample_round_dirs[2], both / "round2")
    for holdout in ("examples", "phrasings"):
        prepare.prepare(sample_round_dirs[1], tmp_path / f"{holdout}-before", holdout=holdout)
        prepare.prepare(both, tmp_path / f"{holdout}-grown", holdout=holdout)
        _, before_train, before_validation, _ = _outputs(tmp_path / f"{holdout}-before")
        _, grown_train, grown_validation, _ = _outputs(tmp_path / f"{holdout}-grown")
        held = {e["id"] for e in before_validation if e.get("heldout") != "recall"}
        grown_held = {e["id"] for e in grown_validation if e.get("heldout") != "recall"}
        assert held <= grown_held
        if holdout == "examples":
            assert not {e["id"] for e in before_train} & grown_held
        assert {e["completion"] for e in before_train} <= {e["completion"] for e in grown_train}


def test_test_split_and_other_seed(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    """holdout "examples": the hash split of the examples (holdout "phrasings": tests/test_data_knowledge.py)."""
    report_a = prepare.prepare(sample_round_dirs[1], tmp_path / "a", seed=1, holdout="examples")
    report_b = prepare.prepare(sample_round_dirs[1], tmp_path / "b", seed=2, holdout="examples")
    _, _, validation_a, _ = _outputs(tmp_path / "a")
    _, _, validation_b, _ = _outputs(tmp_path / "b")
    assert {e["id"] for e in validation_a} != {e["id"] for e in validation_b}
    assert report_a["data_version"] == report_b["data_version"]

    three = prepare.prepare(sample_round_dirs[1], tmp_path / "c", seed=1, test_fraction=0.2, holdout="examples")
    _, train_c, validation_c, _ = _outputs(tmp_path / "c")
    test_c = _read_jsonl(tmp_path / "c" / "test" / "test.jsonl")
    assert {e["id"] for e in validation_c} == {e["id"] for e in validation_a}  # validation is cut first
    assert 0.1 * three["rows"]["kept"] < len(test_c) < 0.3 * three["rows"]["kept"]
    assert three["splits"] == {"train": len(train_c), "validation": len(validation_c), "test": len(test_c)}
    assert not {e["id"] for e in test_c} & ({e["id"] for e in train_c} | {e["id"] for e in validation_c})
    assert three["data_version"] == report_a["data_version"]


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
    assert "sample for review:" in result.stdout
    assert all(f"[{item['source']}]" in result.stdout for item in report["sample"]) and len(report["sample"]) == 5


def test_bad_arguments_and_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert prepare.main(["--input-dir", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path)]) == 1
    assert f"input folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    for flag, value, message in (("--validation-fraction", "1.5", "must be at least 0 and below 1"),
                                 ("--holdout", "facts", "invalid choice"),
                                 ("--allow-changes", "maybe", "must be true or false"),
                                 ("--pii", "mask", "invalid choice"),
                                 ("--columns", "prompt", "FIELD=COLUMN")):
        with pytest.raises(SystemExit) as exit_info:
            prepare.main([flag, value])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert prepare.main(["--input-dir", str(tmp_path), "--columns", "answer_text=a"]) == 1
    assert "--columns names unknown field(s) ['answer_text']" in capsys.readouterr().err


# ---------------------------------------------------------------- replay (continual learning)

def _prepare_round_one(sample_round_dirs: dict[int, Path], out: Path) -> list[dict]:
    """Prepare round 1 into `out`; return its train split (the replay source of round 2)."""
    prepare.prepare(sample_round_dirs[1], out, pii_allow=DEMO_ALLOW)
    return _read_jsonl(out / "train" / "train.jsonl")


def test_replay_keeps_old_facts_and_new_answers_win(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    round_1_train = _prepare_round_one(sample_round_dirs, tmp_path / "r1")
    plain = prepare.prepare(sample_round_dirs[2], tmp_path / "plain")
    report = prepare.prepare(sample_round_dirs[2], tmp_path / "r2", replay_dir=tmp_path / "r1" / "train")
    _, plain_train, plain_validation, _ = _outputs(tmp_path / "plain")
    _, train, validation, quarantine = _outputs(tmp_path / "r2")

    old_answers = {fact.id: fact.answer for fact in facts(1)}
    changed = [fact for fact in facts(2) if fact.status == "changed"]
    changed_prompts = {question for fact in changed for question in fact.paraphrases}
    pairs = {(e["prompt"], e["completion"]) for e in train}
    validation_pairs = {(e["prompt"], e["completion"]) for e in validation if e.get("heldout") != "recall"}
    for fact in changed:
        for question in fact.paraphrases:
            assert (question, old_answers[fact.id]) not in pairs | validation_pairs
            assert ((question, fact.answer) in pairs) != ((question, fact.answer) in validation_pairs)

    superseded = [e for e in round_1_train if e["prompt"] in changed_prompts]
    replayed = [e for e in round_1_train if e["prompt"] not in changed_prompts]
    by_id = {e["id"]: e for e in train}
    for example in replayed:
        assert by_id[example["id"]] == {**example, "source": "replay:" + example["source"]}
    stable = [fact for fact in facts(1) if fact.status == "stable"]
    round_1_pairs = {(e["prompt"], e["completion"]) for e in round_1_train}
    stable_pairs = {(q, f.answer) for f in stable for q in f.paraphrases} & round_1_pairs
    assert len(stable_pairs) > 100 and stable_pairs <= pairs

    assert report["replay"] == {"available": len(round_1_train), "sampled": len(round_1_train),
                                "superseded": len(superseded), "quarantined": 0, "used": len(replayed),
                                "fraction": 1.0}
    assert len(superseded) >= len(changed)
    assert report["rows"] == plain["rows"] and report["quarantine_reasons"] == plain["quarantine_reasons"]
    assert {e["id"] for e in validation} == {e["id"] for e in plain_validation}
    assert not any(e["source"].startswith("replay:") for e in validation)
    assert {e["id"] for e in train} == {e["id"] for e in plain_train} | {e["id"] for e in replayed}
    assert report["splits"]["train"] == len(plain_train) + len(replayed)
    assert report["data_version"] != plain["data_version"]
    assert quarantine == _read_jsonl(tmp_path / "plain" / "report" / "quarantine.jsonl")


def test_replay_fraction_samples_each_source_file_stably(sample_round_dirs: dict[int, Path], tmp_path: Path) -> None:
    round_1_train = _prepare_round_one(sample_round_dirs, tmp_path / "r1")
    replay_dir = tmp_path / "r1" / "train"
    first = prepare.prepare(sample_round_dirs[2], tmp_path / "a", replay_dir=replay_dir, replay_fraction=0.5)
    prepare.prepare(sample_round_dirs[2], tmp_path / "b", replay_dir=replay_dir, replay_fraction=0.5)
    for name in ("train/train.jsonl", "validation/validation.jsonl", "report/report.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    per_file: dict[str, int] = {}
    for example in round_1_train:
        stratum = example["source"].rsplit(":", 1)[0]
        per_file[stratum] = per_file.get(stratum, 0) + 1
    assert set(per_file) == {"product_catalog.csv", "support_faq.jsonl", "exports/support_chats.jsonl", "policies.md"}
    examples = [Example(**e) for e in round_1_train]
    sampled = sample_replay(examples, 0.5, seed=42)
    sampled_per_file: dict[str, int] = {}
    for example in sampled:
        sampled_per_file[replay_stratum(example.source)] = sampled_per_file.get(replay_stratum(example.source), 0) + 1
    assert sampled_per_file == {name: max(1, round(0.5 * count)) for name, count in per_file.items()}
    assert {e.id for e in sample_replay(examples, 0.5, seed=7)} != {e.id for e in sampled}

    replay = first["replay"]
    assert replay["available"] == len(round_1_train) and replay["sampled"] == len(sampled)
    assert replay["sampled"] == replay["superseded"] + replay["used"] and replay["fraction"] == 0.5
    replayed_ids = {e["id"] for e in _read_jsonl(tmp_path / "a" / "train" / "train.jsonl")
                    if e["source"].startswith("replay:")}
    assert len(replayed_ids) == replay["used"] and replayed_ids <= {e.id for e in sampled}


def test_marker_only_or_missing_replay_dir_means_no_replay(sample_round_dirs: dict[int, Path],
                                                           tmp_path: Path) -> None:
    marker_dir = tmp_path / "replay"
    (marker_dir / "nested").mkdir(parents=True)
    (marker_dir / "_EMPTY").write_bytes(b"")
    (marker_dir / "nested" / "notes.txt").write_text("not a replay file {", encoding="utf-8")
    prepare.prepare(sample_round_dirs[2], tmp_path / "plain")
    zeros = {"available": 0, "sampled": 0, "superseded": 0, "quarantined": 0, "used": 0, "fraction": 0.0}
    for name, replay_dir in (("marker", marker_dir), ("missing", tmp_path / "nowhere")):
        report = prepare.prepare(sample_round_dirs[2], tmp_path / name, replay_dir=replay_dir)
        assert report["replay"] == zeros
        for output in ("train/train.jsonl", "validation/validation.jsonl", "report/report.json",
                       "report/quarantine.jsonl"):
            assert (tmp_path / name / output).read_bytes() == (tmp_path / "plain" / output).read_bytes()


def test_bad_replay_lines_are_quarantined_apart_from_new_rows(sample_round_dirs: dict[int, Path],
                                                              tmp_path: Path) -> None:
    round_1_train = _prepare_round_one(sample_round_dirs, tmp_path / "r1")
    plain = prepare.prepare(sample_round_dirs[2], tmp_path / "plain")
    _, plain_train, plain_validation, _ = _outputs(tmp_path / "plain")
    asked_again = {e["prompt"] for e in plain_train + plain_validation}
    good = [json.dumps(e) for e in round_1_train if e["prompt"] not in asked_again][:5]
    replay_file = tmp_path / "replay" / "v1" / "train.jsonl"
    replay_file.parent.mkdir(parents=True)
    replay_file.write_text("\n".join([
        *good,                                                                  # 1-5 usable
        '{"id": "x1", "prompt": "Broken", ',                                    # 6
        "",                                                                     # blank: not a line
        '{"id": "x2", "prompt": "No answer?", "source": "faq.jsonl:9"}',        # 8
        '{"id": "x3", "prompt": 7, "completion": "seven", "source": "a:1"}',    # 9
        good[0],                                                                # 10 repeated id: read once
    ]) + "\n", encoding="utf-8")
    report = prepare.prepare(sample_round_dirs[2], tmp_path / "out", replay_dir=tmp_path / "replay")
    _, train, validation, quarantine = _outputs(tmp_path / "out")

    replay_rows = [row for row in quarantine if row["file"].startswith("replay:")]
    assert [(row["file"], row["line"], row["reason"]) for row in replay_rows] == [
        ("replay:v1/train.jsonl", 6, "malformed_json"), ("replay:v1/train.jsonl", 8, "missing_field"),
        ("replay:v1/train.jsonl", 9, "non_string_field")]
    assert replay_rows[1]["detail"] == "missing field 'completion'"
    assert [row for row in quarantine if not row["file"].startswith("replay:")] == \
        _read_jsonl(tmp_path / "plain" / "report" / "quarantine.jsonl")
    assert report["rows"] == plain["rows"]
    assert report["replay"] == {"available": 5, "sampled": 5, "superseded": 0, "quarantined": 3, "used": 5,
                                "fraction": 1.0}
    assert {e["id"] for e in train if e["source"].startswith("replay:")} == {json.loads(g)["id"] for g in good}
    assert len(train) == plain["splits"]["train"] + 5 and len(validation) == plain["splits"]["validation"]


def test_min_examples_counts_replay_but_new_data_is_required(sample_round_dirs: dict[int, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    round_1_train = _prepare_round_one(sample_round_dirs, tmp_path / "r1")
    replay_dir = str(tmp_path / "r1" / "train")
    base = ["--input-dir", str(sample_round_dirs[2]), "--min-examples", "300"]
    assert prepare.main([*base, "--output-dir", str(tmp_path / "alone")]) == 1
    assert "only 154 usable example(s) remain, fewer than --min-examples 300" in capsys.readouterr().err
    assert prepare.main([*base, "--output-dir", str(tmp_path / "with"), "--replay-dir", replay_dir]) == 0
    assert f"sampled {len(round_1_train)} |" in capsys.readouterr().out

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "faq.jsonl").write_text('{"question": "Half a line', encoding="utf-8")
    code = prepare.main(["--input-dir", str(only_bad), "--output-dir", str(tmp_path / "nothing"),
                         "--min-examples", "1", "--max-reject-rate", "1", "--replay-dir", replay_dir])
    captured = capsys.readouterr()
    assert code == 1
    assert "no new usable example, nothing new to learn from" in captured.err and "1 quarantined" in captured.err
    report = json.loads((tmp_path / "nothing" / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["rows"]["kept"] == 0 and report["replay"]["used"] == len(round_1_train)
    assert not (tmp_path / "nothing" / "train" / "train.jsonl").exists()
    assert not (tmp_path / "nothing" / "train" / "manifest.json").exists()
