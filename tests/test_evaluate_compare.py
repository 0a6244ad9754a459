"""evaluation.json's comparison pieces: metric entries, the gate's verdict, regressions, flips, retention."""
from __future__ import annotations

import hashlib

from pathlib import Path
from typing import Any

import pytest
import yaml

from common.benchmarks import load_suite
from common.eval_compare import SuiteInfo, forgetting, metric_entry, worst_regressions
from common.eval_gate import GateError, check_gate_metric, compute_gate
from common.eval_retention import build_retention_suite, next_history, source_group
from common.eval_tasks import CaseOutcome, SuiteRun


def test_metric_entry_delta_regression_and_threshold() -> None:
    assert metric_entry(0.5, 0.75, True, "facts", "token_f1", 0.6) == {
        "value": 0.5, "baseline": 0.75, "delta": -0.25, "regression": 0.25, "higher_is_better": True,
        "suite": "facts", "metric": "token_f1", "threshold": 0.6, "passed": False,
    }
    assert metric_entry(0.9, 0.75, True)["regression"] == 0.0
    assert metric_entry(2.5, 2.0, False)["regression"] == 0.5
    assert metric_entry(1.5, 2.0, False, threshold=1.5)["passed"] is True
    assert metric_entry(1.0, None, True) == {
        "value": 1.0, "baseline": None, "delta": None, "regression": 0.0, "higher_is_better": True,
        "suite": "", "metric": "", "threshold": None, "passed": None,
    }


def _metrics(value: float, baseline: float, higher: bool, **extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"facts_m": metric_entry(value, baseline, higher, "facts", "m"), **extra}


@pytest.mark.parametrize(
    ("value", "baseline", "higher", "threshold", "max_regression", "reasons"),
    [
        (0.60, 0.50, True, 0.5, 0.0, []),
        (0.40, 0.50, True, 0.5, 0.2, ["benchmark facts metric m = 0.4 is not >= threshold 0.5 (GateThreshold)"]),
        (0.55, 0.75, True, 0.5, 0.1,
         ["benchmark facts metric m = 0.55 regressed by 0.2 vs baseline 0.75 (MaxRegression 0.1)"]),
        (0.55, 0.60, True, 0.5, 0.1, []),
        (0.30, 0.75, True, 0.5, 0.1, ["is not >= threshold 0.5", "regressed by 0.45"]),
        (2.0, 1.5, False, 2.5, 0.25, ["benchmark facts metric m = 2 regressed by 0.5 vs baseline 1.5 (MaxRegression 0.25)"]),
        (3.0, 3.5, False, 2.5, 0.0, ["benchmark facts metric m = 3 is not <= threshold 2.5 (GateThreshold)"]),
        (0.1, 0.9, True, None, None, []),
    ],
)
def test_compute_gate(value: float, baseline: float, higher: bool, threshold: float | None,
                      max_regression: float | None, reasons: list[str]) -> None:
    gate = compute_gate(_metrics(value, baseline, higher), "facts_m", threshold, max_regression, higher)
    assert gate["passed"] is (not reasons)
    assert len(gate["reasons"]) == len(reasons) and gate["suite_threshold_failures"] == 0
    for reason, part in zip(gate["reasons"], reasons):
        assert part in reason
    assert gate["summary"] == ("; ".join(gate["reasons"]) if reasons else "all checks passed")


def test_suite_thresholds_fail_the_gate_with_their_own_reason() -> None:
    quiz = metric_entry(0.25, 0.5, True, "quiz", "accuracy", threshold=0.4)
    ppl = metric_entry(12.0, 10.0, False, "docs", "perplexity", threshold=20.0)
    gate = compute_gate(_metrics(0.9, 0.8, True, quiz_accuracy=quiz, docs_perplexity=ppl), "facts_m", 0.5, 0.1, True)
    assert gate["passed"] is False and gate["suite_threshold_failures"] == 1
    assert gate["reasons"] == ["benchmark quiz metric accuracy = 0.25 is not >= threshold 0.4 (suite.yaml threshold)"]
    no_gate_metric = compute_gate({"quiz_accuracy": quiz}, None, None, None, True)
    assert no_gate_metric["metric"] is None and no_gate_metric["passed"] is False


def test_forgetting_fails_the_gate_when_the_retention_metric_drops_too_far() -> None:
    retention = metric_entry(0.55, 0.8, True, "retention", "token_f1")
    metrics = _metrics(0.9, 0.8, True, retention_token_f1=retention)
    gate = compute_gate(metrics, "facts_m", 0.5, 0.1, True, "retention_token_f1", 0.2)
    assert gate["passed"] is False and gate["forgetting_failures"] == 1 and gate["suite_threshold_failures"] == 0
    assert gate["reasons"] == ["benchmark retention metric token_f1 = 0.55 regressed by 0.25 vs baseline 0.8: earlier "
                               "data versions' knowledge forgotten (MaxForgetting 0.2)"]
    assert compute_gate(metrics, "facts_m", 0.5, 0.1, True, "retention_token_f1", 0.25)["passed"] is True
    assert compute_gate(metrics, "facts_m", 0.5, 0.1, True, "retention_token_f1", None)["forgetting_failures"] == 0
    first_version = compute_gate(_metrics(0.9, 0.8, True), "facts_m", 0.5, 0.1, True, "retention_token_f1", 0.0)
    assert first_version["passed"] is True and first_version["forgetting_metric"] is None


def test_gate_metric_must_exist_and_point_the_right_way() -> None:
    directions = {"validation_loss": False, "facts_token_f1": True}
    with pytest.raises(GateError, match="gate metric 'facts_bleu' is not produced .*available: validation_loss, facts_token_f1"):
        check_gate_metric("facts_bleu", True, directions)
    with pytest.raises(GateError, match="'validation_loss' is lower-is-better: pass --gate-lower-is-better"):
        check_gate_metric("validation_loss", True, directions)
    with pytest.raises(GateError, match="drop --gate-lower-is-better"):
        check_gate_metric("facts_token_f1", False, directions)


def _run(scores: list[float], correct: list[bool | None], predictions: list[str] | None = None) -> SuiteRun:
    outcomes = tuple(
        CaseOutcome(f"c{i}", f"prompt {i}", f"target {i}", (predictions or [f"answer {i}"] * len(scores))[i],
                    {"token_f1": score}, ok)
        for i, (score, ok) in enumerate(zip(scores, correct))
    )
    return SuiteRun({"token_f1": sum(scores) / len(scores)}, outcomes, seconds=0.5)


def test_worst_regressions_put_flips_first_then_the_biggest_drop() -> None:
    info = SuiteInfo("facts", "qa", "1", "built-in", ("token_f1",), {"token_f1": True})
    baseline = _run([1.0, 0.9, 0.2, 0.5], [True, False, False, False])
    candidate = _run([0.8, 0.1, 0.6, 0.5], [False, False, False, False], ["wrong", "worse", "better", "same"])
    found = worst_regressions(info, candidate, baseline, limit=5)
    assert [(item["id"], item["flipped"]) for item in found] == [("c0", True), ("c1", False)]
    assert found[1]["worse_by"] == pytest.approx(0.8) and found[0]["candidate"] == "wrong"
    assert worst_regressions(info, candidate, baseline, limit=1)[0]["id"] == "c0"
    assert forgetting(candidate, baseline) == {"kept": 0, "forgotten": 1, "learned": 0, "still_wrong": 3}
    assert forgetting(_run([0.0], [None]), _run([0.0], [None])) is None


def _example(id_: str, prompt: str, completion: str, source: str = "faq.jsonl:3") -> dict[str, str]:
    return {"id": id_, "prompt": prompt, "completion": completion, "source": source}


def test_retention_suite_drops_superseded_answers_and_caps(tmp_path: Path) -> None:
    earlier = [
        _example("a", "What is the return window?", "30 days", "replay:policies.md:4"),
        _example("b", "How much is the Sweepy S2?", "$399", "catalog.csv:9"),
        _example("c", "What is the return window? ", "30 days!", "faq.jsonl:1"),  # same prompt once normalized
        _example("d", "Which Wi-Fi bands?", "2.4 GHz only"),
    ]
    current = [
        _example("n1", "How much is the Sweepy S2?", "$349", "catalog.csv:9"),  # new answer: b is superseded
        _example("n2", "Which Wi-Fi bands?", "2.4 GHz only", "replay:faq.jsonl:3"),  # replayed copy: not new data
        _example("n3", "What is the return window?", "30 days", "faq.jsonl:2"),  # same answer restated: a stays
    ]
    suite, counts = build_retention_suite(earlier, current, max_cases=10, folder=tmp_path / "retention")
    assert suite is not None
    assert counts.as_dict() == {"available": 4, "superseded": 1, "duplicates": 1, "capped": 0, "used": 2,
                                "data_versions": 1}
    assert sorted((case.id, case.group) for case in suite.cases) == [("a", "policies.md"), ("d", "faq.jsonl")]
    assert suite.spec.task == "qa" and suite.spec.primary_metric == "token_f1"
    on_disk = load_suite(tmp_path / "retention")
    assert [case.target for case in on_disk.cases] == [case.target for case in suite.cases]
    assert yaml.safe_load((tmp_path / "retention" / "suite.yaml").read_text())["name"] == "retention"

    capped, capped_counts = build_retention_suite(earlier, current, max_cases=1, folder=tmp_path / "capped")
    assert capped is not None and len(capped.cases) == 1 and capped_counts.capped == 1
    again, _ = build_retention_suite(list(reversed(earlier)), current, max_cases=1, folder=tmp_path / "again")
    assert again is not None and again.cases == capped.cases  # the cap is a stable hash, not file order
    nothing, none_counts = build_retention_suite([], current, max_cases=10, folder=tmp_path / "none")
    assert nothing is None and none_counts.used == 0 and not (tmp_path / "none").exists()
    assert source_group("replay:exports/chats.jsonl:12") == "exports/chats.jsonl" and source_group("") == "unknown"


def _versioned(id_: str, version: str, prompt: str | None = None, completion: str = "yes") -> dict[str, str]:
    return {**_example(id_, prompt or f"Question {id_}?", completion), "data_version": version}


def test_retention_cases_are_shared_across_data_versions_oldest_first(tmp_path: Path) -> None:
    """Five v1 examples, one v2 example, cap 2: v2 still gets a case (round-robin), not the hash's v1 favourites."""
    earlier = [*(_versioned(f"a{n}", "v1") for n in range(5)), _versioned("b0", "v2")]
    suite, counts = build_retention_suite(earlier, [], max_cases=2, folder=tmp_path / "rr")
    assert suite is not None and counts.used == 2 and counts.capped == 4 and counts.data_versions == 2
    assert "b0" in {case.id for case in suite.cases}
    # The same prompt in two versions with the same answer: the oldest version's example is the one kept.
    repeated = [_versioned("old", "v1", "Same question?"), _versioned("new", "v2", "same question")]
    suite, counts = build_retention_suite(repeated, [], max_cases=5, folder=tmp_path / "dup")
    assert suite is not None and [case.id for case in suite.cases] == ["old"] and counts.duplicates == 1


def test_next_history_drops_superseded_tags_the_test_split_and_caps_per_version() -> None:
    earlier = [_versioned("a", "v1", "Price of S2?", "$399"), _versioned("b", "v1"), _versioned("c", "v2")]
    current = [_example("n1", "Price of S2?", "$349"), _example("n2", "Question z?", "no", "replay:x.jsonl:1")]
    test = [_example("t1", "Question t1?", "ok"), _example("b", "Question b?", "yes"), _example("t2", "Question t2?", "ok")]
    history = next_history(earlier, current, test, "v3", per_version=5)
    assert [(row["id"], row["data_version"]) for row in history] == [("b", "v1"), ("c", "v2"), ("t1", "v3"), ("t2", "v3")]
    assert set(history[2]) == {"id", "prompt", "completion", "source", "data_version"}
    capped = next_history(earlier, current, test, "v3", per_version=1)
    assert [row["data_version"] for row in capped] == ["v1", "v2", "v3"]
    assert capped[2]["id"] == min(("t1", "t2"), key=lambda i: hashlib.sha256(f"retention:{i}".encode()).hexdigest())


def test_chat_examples_become_retention_cases_with_their_context(tmp_path: Path) -> None:
    def chat(id_: str, system: str, answer: str) -> dict[str, Any]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": "How fast is it?"},
                    {"role": "assistant", "content": answer}]
        return {**_example(id_, "How fast is it?", answer), "messages": messages, "data_version": "v1"}

    earlier = [chat("m", "Product: Mower M5.", "8 km/h"), chat("r", "Product: Rover X1.", "12 km/h")]
    current = [chat("r2", "Product: Rover X1.", "14 km/h")]  # the Rover's answer changed; the Mower's did not
    suite, counts = build_retention_suite(earlier, current, max_cases=10, folder=tmp_path / "chat")
    assert suite is not None and counts.superseded == 1 and counts.duplicates == 0
    (case,) = suite.cases
    assert case.id == "m" and case.prompt == "How fast is it?"
    assert case.context == ({"role": "system", "content": "Product: Mower M5."},)
    assert load_suite(tmp_path / "chat").cases == suite.cases  # cases.jsonl keeps the chat
