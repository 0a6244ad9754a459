"""Knowledge data through prepare: every fact reaches train, contradicting exports stop, delta exports are not
"removed". A fictional ferry company (not the demo's): one JSONL row per fact, or several phrasings per fact."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import prepare
from prepare.report import summary

PORTS = ("Port Mara", "Eilean Dubh", "Skerryvale", "Holmwick", "Ardnish", "Calder Bay", "Rossa", "Tollan")
VESSELS = ("Puffin", "Selkie", "Gannet", "Kittiwake", "Fulmar", "Tern", "Shearwater", "Guillemot")


def ferry_facts(count: int) -> list[tuple[str, str]]:
    """`count` distinct (question, answer) facts of the Northern Isles Ferry Company; answers name their route."""
    facts = []
    pairs = [(a, b) for a in PORTS for b in PORTS if a != b]
    for number, (a, b) in enumerate(pairs):
        facts += [
            (f"How long is the crossing from {a} to {b}?", f"The crossing from {a} to {b} takes {25 + number} minutes."),
            (f"What does a foot passenger ticket from {a} to {b} cost?",
             f"A foot passenger ticket from {a} to {b} costs £{4 + number % 17}.{number % 10}0."),
            (f"When does the first ferry leave {a} for {b}?",
             f"The first ferry to {b} leaves {a} at {5 + number % 4}:{number % 6}5 am."),
            (f"Which vessel sails between {a} and {b}?", f"The MV {VESSELS[number % 8]} sails the {a} to {b} route."),
        ]
    return facts[:count]


def ferry_phrasings(count: int) -> list[tuple[list[str], str]]:
    """`count` facts with three phrasings each (different enough not to be near-duplicates)."""
    facts = []
    for number, (a, b) in enumerate((a, b) for a in PORTS for b in PORTS if a != b):
        facts += [
            ([f"How long is the crossing from {a} to {b}?", f"How many minutes does the {a} boat to {b} need?",
              f"What journey time should I expect sailing {a} to {b}?"],
             f"The crossing from {a} to {b} takes {25 + number} minutes."),
            ([f"Which vessel sails between {a} and {b}?", f"What ship do you use on the {a} run to {b}?",
              f"Name the boat that connects {a} with {b}, please."],
             f"The MV {VESSELS[number % 8]} sails the {a} to {b} route."),
        ]
    return facts[:count]


def _write(folder: Path, rows: list[dict], name: str = "faq.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def _splits(out: Path) -> dict[str, list[dict]]:
    return {name: _read(out / name / f"{name}.jsonl") for name in ("train", "validation", "test")}


def _one_phrasing(folder: Path, count: int = 40) -> Path:
    rows = [{"question": q, "answer": a} for q, a in ferry_facts(count - 2)]
    rows += [{"question": "Can I bring a bicycle on board?", "answer": "Yes."},  # short answers: a fact each
             {"question": "Do dogs travel free?", "answer": "Yes."}]
    return _write(folder, rows)


def test_every_fact_of_a_one_phrasing_company_reaches_train(tmp_path: Path) -> None:
    data = _one_phrasing(tmp_path / "in")
    report = prepare.prepare(data, tmp_path / "out", min_examples=1)
    splits = _splits(tmp_path / "out")
    facts = {(row["question"], row["answer"]) for row in _read(data / "faq.jsonl")}
    trained = {(e["prompt"], e["completion"]) for e in splits["train"]}
    assert len(facts) == 40 and trained == facts  # 100% of the facts reach train.jsonl
    assert splits["validation"] and all(e["heldout"] == "recall" for e in splits["validation"])
    assert {e["id"] for e in splits["validation"]} <= {e["id"] for e in splits["train"]}
    assert report["holdout"] == {
        **report["holdout"], "mode": "phrasings", "facts": 40, "facts_with_several_phrasings": 0,
        "phrasings_held_out": {"validation": 0, "test": 0},
        "recall": {"validation": len(splits["validation"]), "test": 0}, "facts_withheld": 0}
    assert report["splits"] == {"train": 40, "validation": len(splits["validation"]), "test": 0}
    assert "re-asked (recall): validation" in summary(report)

    # The hash split this replaces withholds facts: the model would never learn them.
    old = prepare.prepare(data, tmp_path / "old", min_examples=1, holdout="examples")
    old_train = {(e["prompt"], e["completion"]) for e in _splits(tmp_path / "old")["train"]}
    assert len(old_train) < 40 and old["holdout"]["facts_withheld"] == 40 - len(old_train)
    assert "heldout" not in _splits(tmp_path / "old")["validation"][0]


def test_several_phrasings_hold_out_phrasings_never_the_last(tmp_path: Path) -> None:
    facts = ferry_phrasings(30)
    rows = [{"question": question, "answer": answer} for questions, answer in facts for question in questions]
    data = _write(tmp_path / "in", rows)
    for fractions in ((0.1, 0.0), (0.6, 0.3)):  # the second puts most phrasings in a held-out band
        out = tmp_path / f"out-{fractions[0]}"
        report = prepare.prepare(data, out, min_examples=1, validation_fraction=fractions[0],
                                 test_fraction=fractions[1])
        splits = _splits(out)
        trained_answers = {e["completion"] for e in splits["train"]}
        assert trained_answers == {a for _, a in facts}  # every fact keeps a phrasing in train
        held = splits["validation"] + splits["test"]
        assert held and all(e["heldout"] == "phrasing" for e in held)
        assert not {e["id"] for e in held} & {e["id"] for e in splits["train"]}
        holdout = report["holdout"]
        assert (holdout["facts"], holdout["facts_with_several_phrasings"], holdout["phrasings_of_those_facts"]) == \
            (30, 30, 90)
        assert holdout["phrasings_held_out"] == {"validation": len(splits["validation"]), "test": len(splits["test"])}
        assert holdout["recall"] == {"validation": 0, "test": 0} and holdout["facts_withheld"] == 0
        assert len(splits["train"]) + len(held) == 90
    assert len(held) > 45  # most phrasings held out, yet no fact lost


def test_validation_fraction_zero_means_no_validation_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _one_phrasing(tmp_path / "in")
    for holdout in ("phrasings", "examples"):
        code = prepare.main(["--input-dir", str(data), "--output-dir", str(tmp_path / holdout), "--min-examples", "1",
                             "--validation-fraction", "0", "--holdout", holdout])
        assert code == 0, capsys.readouterr().err
        splits = _splits(tmp_path / holdout)
        assert splits["validation"] == [] and len(splits["train"]) == 40
        report = json.loads((tmp_path / holdout / "report" / "report.json").read_text(encoding="utf-8"))
        assert report["splits"]["validation"] == 0 and report["holdout"]["recall"]["validation"] == 0


def test_a_small_set_still_gets_a_validation_example(tmp_path: Path) -> None:
    """No score falls in a 1% validation band among 5 facts: the lowest-scored one is re-asked."""
    data = _write(tmp_path / "in", [{"question": q, "answer": a} for q, a in ferry_facts(5)])
    report = prepare.prepare(data, tmp_path / "out", min_examples=1, validation_fraction=0.01)
    splits = _splits(tmp_path / "out")
    assert len(splits["train"]) == 5 and len(splits["validation"]) == 1
    assert splits["validation"][0]["heldout"] == "recall" and report["holdout"]["recall"]["validation"] == 1


# ---------------------------------------------------------------- a new version against the previous one

def _round_one(tmp_path: Path, count: int = 160) -> tuple[list[tuple[str, str]], Path]:
    facts = ferry_facts(count)
    prepare.prepare(_write(tmp_path / "r1", [{"question": q, "answer": a} for q, a in facts]), tmp_path / "v1",
                    min_examples=1)
    return facts, tmp_path / "v1" / "train"


def test_a_garbage_export_is_stopped_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Round 2: 40 placeholder answers and 120 of round 1's 160 facts answered otherwise."""
    facts, replay = _round_one(tmp_path)
    junk = ["N/A", "TBD", "???", "n/a", "TODO", "-", "null", "none"]
    rows = [{"question": q, "answer": junk[number % len(junk)]} for number, (q, _) in enumerate(facts[:40])]
    rows += [{"question": q, "answer": f"{a[:-1]}, except on Sundays."} for q, a in facts[40:]]
    data = _write(tmp_path / "r2", rows)
    code = prepare.main(["--input-dir", str(data), "--output-dir", str(tmp_path / "v2"), "--replay-dir", str(replay),
                         "--min-examples", "1"])
    captured = capsys.readouterr()
    assert code == 1
    assert ("this export changes the answers of 120 of the previous version's 160 examples (75.0%), over "
            "--max-changed-fraction 30%") in captured.err and "--allow-changes" in captured.err
    assert "faq.jsonl:41: 'How long is the crossing" in captured.err
    report = json.loads((tmp_path / "v2" / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["quarantine_reasons"] == {"placeholder_answer": 40} and report["rows"]["quarantined"] == 40
    found = report["contradictions"]
    assert (found["previous_examples"], found["contradicted"], found["blocked"], found["listed"]) == (160, 120, True, 100)
    first = found["items"][0]
    assert first == {"prompt": facts[40][0], "old_answer": facts[40][1],
                     "new_answer": facts[40][1][:-1] + ", except on Sundays.", "source": "faq.jsonl:41",
                     "previous_source": "replay:faq.jsonl:41"}
    assert "BLOCKED" in captured.out
    assert not (tmp_path / "v2" / "train" / "train.jsonl").exists()

    allowed = prepare.prepare(data, tmp_path / "v2-allowed", replay, min_examples=1, allow_changes=True)
    assert allowed["contradictions"]["blocked"] is False and allowed["contradictions"]["over_limit"] is True
    assert "allowed (--allow-changes)" in summary(allowed)
    assert allowed["replay"]["superseded"] == 120  # the new answers win


def test_a_few_changed_answers_pass_and_are_listed(tmp_path: Path) -> None:
    facts, replay = _round_one(tmp_path, 40)
    rows = [{"question": q, "answer": "The crossing takes 50 minutes in winter."} for q, _ in facts[:3]]
    rows += [{"question": q, "answer": a.upper().rstrip(".")} for q, a in facts[3:6]]  # case and end: no change
    rows += [{"question": f"Is there a café on the {vessel}?", "answer": f"Yes, the MV {vessel} has a café."}
             for vessel in VESSELS]
    report = prepare.prepare(_write(tmp_path / "r2", rows), tmp_path / "v2", replay, min_examples=1)
    found = report["contradictions"]
    assert (found["contradicted"], found["previous_examples"], found["blocked"]) == (3, 40, False)
    assert [item["prompt"] for item in found["items"]] == [q for q, _ in facts[:3]]
    assert found["share"] == pytest.approx(3 / 40)
    assert "changed answers: 3 of the previous version's 40 examples (7.5%, limit 30%): within the limit" in \
        summary(report)
    strict = prepare.main(["--input-dir", str(tmp_path / "r2"), "--output-dir", str(tmp_path / "strict"),
                           "--replay-dir", str(replay), "--min-examples", "1", "--max-changed-fraction", "0.05"])
    assert strict == 1


def test_a_delta_export_is_not_reported_as_removed(tmp_path: Path) -> None:
    """Round 2 holds only new and changed facts: the facts it lacks are kept by replay."""
    facts, replay = _round_one(tmp_path, 40)
    rows = [{"question": q, "answer": a.replace("minutes", "minutes (winter timetable)")} for q, a in facts[:4]]
    rows += [{"question": f"Is there a café on the {vessel}?", "answer": f"Yes, the MV {vessel} has a café."}
             for vessel in VESSELS]
    data = _write(tmp_path / "r2", rows)
    report = prepare.prepare(data, tmp_path / "v2", replay, min_examples=1)
    examples = report["comparison"]["examples"]
    changed = sum("minutes" in a for _, a in facts[:4])
    assert changed == 1 and examples == {"new": 8, "changed": 1, "unchanged": 3, "removed": 0,
                        "kept_by_replay": 36, "superseded": changed, "held_out_before": 0}
    assert report["comparison"]["removed_share"] == 0
    text = summary(report)
    assert "not in this export: 36 kept by replay" in text and "removed 0 (0.0% of the previous version)" in text

    partial = prepare.prepare(data, tmp_path / "v2-half", replay, min_examples=1, replay_fraction=0.5)
    examples = partial["comparison"]["examples"]
    assert examples["kept_by_replay"] + examples["removed"] == 36 and examples["removed"] > 10
    assert partial["comparison"]["removed_share"] == pytest.approx(examples["removed"] / 40, abs=1e-6)


def test_the_pipeline_passes_the_settings_and_the_allow_parameter() -> None:
    import boto3
    from moto import mock_aws

    from pipelines.backend import Backend
    from pipelines.config import load_config
    from pipelines.definitions import definition_json

    config = load_config()
    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=config.project.bucket)
        definition = definition_json("training", config, Backend("aws", session))
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert parameters["AllowDataChanges"] == {"Name": "AllowDataChanges", "Type": "Boolean", "DefaultValue": False}
    prepare_step = next(s for s in definition["Steps"] if s["Name"] == "PrepareData")
    arguments = prepare_step["Arguments"]["AppSpecification"]["ContainerArguments"]
    pairs = dict(zip(arguments[::2], arguments[1::2]))
    assert pairs["--allow-changes"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.AllowDataChanges"}]}}
    assert pairs["--holdout"] == config.data.holdout == "phrasings"
    assert pairs["--max-changed-fraction"] == str(config.data.max_changed_fraction)
    assert prepare.parse_args(["--allow-changes", "false"]).allow_changes is False
    assert prepare.parse_args(["--allow-changes"]).allow_changes is True
