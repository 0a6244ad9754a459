"""The demo company's two rounds of data and the company_facts benchmark generated from them."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from pipelines.demo.sample_data import (
    benchmark_cases,
    benchmark_cases_jsonl,
    corpus_texts,
    facts,
    write_round,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SUITE_DIR = REPO_ROOT / "benchmarks" / "company_facts"


def _raw_pairs(round_dir: Path) -> set[tuple[str, str]]:
    """(question, answer) pairs as written in a round's JSONL and CSV files."""
    pairs: set[tuple[str, str]] = set()
    for path in round_dir.rglob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "messages" in record:
                pairs.add((record["messages"][1]["content"], record["messages"][2]["content"]))
            else:
                pairs.add((record["question"], record["answer"]))
    for path in round_dir.rglob("*.csv"):
        with path.open(encoding="utf-8", newline="") as handle:
            pairs.update((row["instruction"], row["output"]) for row in csv.DictReader(handle))
    return pairs


def test_write_round_is_deterministic(tmp_path: Path) -> None:
    for round_no in (1, 2):
        first = write_round(round_no, tmp_path / "a" / str(round_no))
        second = write_round(round_no, tmp_path / "b" / str(round_no))
        assert [p.relative_to(tmp_path / "a" / str(round_no)) for p in first] == \
               [p.relative_to(tmp_path / "b" / str(round_no)) for p in second]
        assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert facts(1) == facts(1) and facts(2) == facts(2)
    assert corpus_texts() == corpus_texts()


def test_rounds_mix_formats_and_sizes(sample_round_dirs: dict[int, Path]) -> None:
    for round_no, round_dir in sample_round_dirs.items():
        suffixes = {path.suffix for path in round_dir.rglob("*") if path.is_file()}
        assert {".jsonl", ".csv"} <= suffixes and suffixes & {".md", ".txt"}
        examples = sum(len(fact.paraphrases) for fact in facts(round_no))
        assert 140 <= examples <= 250, (round_no, examples)


def test_facts_are_short_and_paraphrased() -> None:
    for round_no in (1, 2):
        round_facts = facts(round_no)
        assert len({fact.id for fact in round_facts}) == len(round_facts)
        for fact in round_facts:
            assert fact.round == round_no
            assert 2 <= len(fact.paraphrases) <= 3 and len(set(fact.paraphrases)) == len(fact.paraphrases)
            assert fact.question == fact.paraphrases[0]
            assert 1 <= len(fact.answer.split()) <= 6, fact.answer
    assert {fact.status for fact in facts(1)} == {"stable", "changed"}
    assert {fact.status for fact in facts(2)} == {"new", "changed"}
    with pytest.raises(ValueError, match="unknown round 3"):
        facts(3)


def test_round_two_changes_answers(sample_round_dirs: dict[int, Path]) -> None:
    old = {fact.id: fact for fact in facts(1)}
    changed = [fact for fact in facts(2) if fact.status == "changed"]
    assert len(changed) >= 4
    for fact in changed:
        assert old[fact.id].status == "changed"
        assert old[fact.id].question == fact.question
        assert old[fact.id].answer != fact.answer
    assert {fact.id for fact in facts(1) if fact.status == "changed"} == {fact.id for fact in changed}
    new_answers = {fact.id: fact.answer for fact in changed}
    assert (old["policy.return_window"].answer, new_answers["policy.return_window"]) == ("30 days", "45 days")
    assert (old["product.sweepy_s2.price"].answer, new_answers["product.sweepy_s2.price"]) == ("$399", "$349")
    assert not {fact.id for fact in facts(2) if fact.status == "new"} & set(old)

    round_1, round_2 = _raw_pairs(sample_round_dirs[1]), _raw_pairs(sample_round_dirs[2])
    for fact in changed:
        for question in fact.paraphrases:
            assert (question, old[fact.id].answer) in round_1 and (question, old[fact.id].answer) not in round_2
            assert (question, fact.answer) in round_2
    document = (sample_round_dirs[2] / "policy_changes_2026.txt").read_text(encoding="utf-8")
    assert "45 days" in document and "30 days" not in document


def test_every_fact_phrasing_is_in_its_round_data(sample_round_dirs: dict[int, Path]) -> None:
    for round_no, round_dir in sample_round_dirs.items():
        pairs = _raw_pairs(round_dir)
        for fact in facts(round_no):
            assert {(question, fact.answer) for question in fact.paraphrases} <= pairs, fact.id


def test_corpus_covers_both_rounds() -> None:
    texts = set(corpus_texts())
    for round_no in (1, 2):
        for fact in facts(round_no):
            assert fact.answer in texts and set(fact.paraphrases) <= texts
    assert any("45 days" in text for text in texts) and any("30 days" in text for text in texts)


def test_committed_benchmark_matches_generator() -> None:
    assert (SUITE_DIR / "cases.jsonl").read_text(encoding="utf-8") == benchmark_cases_jsonl()
    suite = yaml.safe_load((SUITE_DIR / "suite.yaml").read_text(encoding="utf-8"))
    assert suite["name"] == "company_facts" and suite["task"] == "qa" and suite["data"] == "cases.jsonl"
    assert suite["metrics"] == ["exact_match", "token_f1", "rouge_l"] and suite["higher_is_better"] is True
    assert "{prompt}" in suite["prompt_template"]


def test_benchmark_asks_stable_round_one_facts_as_trained(sample_round_dirs: dict[int, Path]) -> None:
    cases = benchmark_cases()
    stable = {fact.id: fact for fact in facts(1) if fact.status == "stable"}
    assert [case["id"] for case in cases] == list(stable)
    assert not {case["id"] for case in cases} & {fact.id for fact in facts(2)}
    round_1 = _raw_pairs(sample_round_dirs[1])
    for case in cases:
        assert set(case) == {"id", "prompt", "target"}
        assert case["target"] == stable[case["id"]].answer
        assert (case["prompt"], case["target"]) in round_1
