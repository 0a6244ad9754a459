"""evaluation.json's comparison pieces: metric entries, the gate's verdict (forgetting too), regressions, flips."""
from __future__ import annotations

from typing import Any

import pytest

from evaluate.compare import SuiteInfo, forgetting, metric_entry, worst_regressions
from evaluate.gate import GateError, check_gate_metric, compute_gate
from evaluate.retention import Retention
from evaluate.tasks import CaseOutcome, SuiteRun


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
    checks = gate["checks"]
    assert list(checks) == ["forgetting", "threshold", "regression", "suite_thresholds"]  # the pipeline's order
    failed = [checks[name]["message"] for name in ("threshold", "regression") if not checks[name]["passed"]]
    assert failed == gate["reasons"]  # the FailSteps' messages are the reasons, written once
    assert checks["threshold"]["bound"] == threshold and checks["regression"]["bound"] == max_regression
    assert checks["regression"]["value"] == gate_regression(value, baseline, higher)


def gate_regression(value: float, baseline: float, higher: bool) -> float:
    return max(0.0, baseline - value if higher else value - baseline)


@pytest.mark.parametrize("higher", [True, False])
def test_a_value_equal_to_its_bound_passes_every_check(higher: bool) -> None:
    metrics = _metrics(0.5, 0.6 if higher else 0.4, higher)  # 0.1 worse than the previous version
    bound = metrics["facts_m"]["regression"]
    gate = compute_gate(metrics, "facts_m", 0.5, bound, higher,
                        Retention(asked=4, known=4, lost_before=0, forgotten=[{"id": "f", "data_version": "v"}]), 0.25)
    assert gate["passed"] is True, gate["summary"]
    assert all(check["passed"] is True for check in gate["checks"].values())
    assert gate["checks"]["threshold"]["message"] == (
        f"gate metric facts_m: benchmark facts metric m = 0.5 {'>=' if higher else '<='} threshold 0.5 (GateThreshold)")
    just_over = compute_gate(metrics, "facts_m", 0.5, bound * 0.99, higher)
    assert just_over["checks"]["regression"]["passed"] is False and just_over["checks"]["threshold"]["passed"] is True


def test_comparison_with_a_bound_is_direction_aware() -> None:
    from common.bounds import meets, relation, worse_by

    assert meets(0.5, 0.5, True) and meets(0.5, 0.5, False)
    assert meets(0.6, 0.5, True) and not meets(0.6, 0.5, False)
    assert not meets(0.4, 0.5, True) and meets(0.4, 0.5, False)
    assert worse_by(0.4, 0.5, True) == pytest.approx(0.1) and worse_by(0.4, 0.5, False) == pytest.approx(-0.1)
    assert [relation(True), relation(False), relation(True, False), relation(False, False)] == [">=", "<=", "<", ">"]


def test_suite_thresholds_fail_the_gate_with_their_own_reason() -> None:
    quiz = metric_entry(0.25, 0.5, True, "quiz", "accuracy", threshold=0.4)
    ppl = metric_entry(12.0, 10.0, False, "docs", "perplexity", threshold=20.0)
    gate = compute_gate(_metrics(0.9, 0.8, True, quiz_accuracy=quiz, docs_perplexity=ppl), "facts_m", 0.5, 0.1, True)
    assert gate["passed"] is False and gate["suite_threshold_failures"] == 1
    assert gate["reasons"] == ["benchmark quiz metric accuracy = 0.25 is not >= threshold 0.4 (suite.yaml threshold)"]
    assert gate["checks"]["suite_thresholds"] == {"passed": False, "value": 1, "bound": 0, "message": gate["reasons"][0]}
    assert [name for name, check in gate["checks"].items() if not check["passed"]] == ["suite_thresholds"]
    no_gate_metric = compute_gate({"quiz_accuracy": quiz}, None, None, None, True)
    assert no_gate_metric["metric"] is None and no_gate_metric["passed"] is False
    assert no_gate_metric["checks"]["threshold"] == {"passed": True, "value": None, "bound": None,
                                                     "message": "threshold not checked (no gate metric)"}


def test_forgetting_fails_the_gate_beside_the_gate_metric_and_only_past_its_bound() -> None:
    forgot = Retention(asked=10, known=8, lost_before=2, forgotten=[
        {"id": f"f{n}", "data_version": "0123456789abcdef"} for n in range(2)])
    metrics = _metrics(0.9, 0.8, True)
    gate = compute_gate(metrics, "facts_m", 0.5, 0.1, True, forgot, 0.2)
    assert gate["passed"] is False and gate["forgetting_failures"] == 1 and gate["suite_threshold_failures"] == 0
    assert gate["reasons"] == ["the candidate forgot 2 of 8 items the previous version knew: forgetting 0.25 > "
                               "MaxForgetting 0.2 (data version(s) 0123456789ab) - report.html lists the forgotten items; to keep more, train again with a "
                               "larger ReplayBudget (training.continual.replay_budget; 1 replays the whole history)"]
    assert gate["checks"]["forgetting"] == {"passed": False, "value": 0.25, "bound": 0.2, "message": gate["reasons"][0]}
    assert (gate["forgetting"], gate["forgotten_items"], gate["known_items_asked"]) == (0.25, 2, 8)
    assert compute_gate(metrics, "facts_m", 0.5, 0.1, True, forgot, 0.25)["passed"] is True
    assert compute_gate(metrics, "facts_m", 0.5, 0.1, True, forgot, None)["forgetting_failures"] == 0
    first_version = compute_gate(metrics, "facts_m", 0.5, 0.1, True, None, 0.0)
    assert first_version["passed"] is True and first_version["forgetting"] == 0.0


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


def test_every_check_says_what_it_compared() -> None:
    """Each check's {passed, value, bound, message} on every branch: the words the FailSteps show."""
    from evaluate.gate import forgetting_check, regression_check, suite_thresholds_check, threshold_check

    entry = metric_entry(0.55, 0.6, True, "facts", "m")
    assert forgetting_check(None, None) == {"passed": True, "value": 0.0, "bound": None,
                                            "message": "forgetting not checked (no MaxForgetting)"}
    assert forgetting_check(None, 0.1) == {"passed": True, "value": 0.0, "bound": 0.1,
                                           "message": "forgetting 0 <= MaxForgetting 0.1 (0 of 0 known items forgotten)"}
    some = Retention(asked=5, known=4, lost_before=1, forgotten=[{"id": "a", "data_version": "bbbbbbbbbbbbbbbb"}])
    assert forgetting_check(some, 0.25) == {"passed": True, "value": 0.25, "bound": 0.25,
                                            "message": "forgetting 0.25 <= MaxForgetting 0.25 (1 of 4 known items forgotten)"}
    more = Retention(asked=4, known=4, lost_before=0, forgotten=[
        {"id": "a", "data_version": "bbbbbbbbbbbbbbbb"}, {"id": "b", "data_version": "aaaaaaaaaaaaaaaa"},
        {"id": "c", "data_version": "bbbbbbbbbbbbXXXX"}])
    assert forgetting_check(more, 0.5)["message"] == (
        "the candidate forgot 3 of 4 items the previous version knew: forgetting 0.75 > MaxForgetting 0.5 "
        "(data version(s) aaaaaaaaaaaa, bbbbbbbbbbbb) - report.html lists the forgotten items; to keep more, train again with a larger "
        "ReplayBudget (training.continual.replay_budget; 1 replays the whole history)")

    assert threshold_check("m", None, 0.5, True) == {"passed": True, "value": None, "bound": 0.5,
                                                     "message": "threshold not checked (no gate metric)"}
    assert threshold_check("m", entry, None, True) == {"passed": True, "value": 0.55, "bound": None,
                                                       "message": "threshold not checked (no GateThreshold)"}
    assert threshold_check("m", entry, 0.5, True) == {
        "passed": True, "value": 0.55, "bound": 0.5,
        "message": "gate metric m: benchmark facts metric m = 0.55 >= threshold 0.5 (GateThreshold)"}
    assert threshold_check("m", entry, 0.5, False)["message"] == \
        "gate metric m: benchmark facts metric m = 0.55 is not <= threshold 0.5 (GateThreshold)"

    assert regression_check("m", None, 0.1) == {"passed": True, "value": None, "bound": 0.1,
                                                "message": "regression not checked (no gate metric)"}
    assert regression_check("m", entry, None) == {"passed": True, "value": pytest.approx(0.05), "bound": None,
                                                  "message": "regression not checked (no MaxRegression)"}
    assert regression_check("m", entry, 0.1) == {
        "passed": True, "value": pytest.approx(0.05), "bound": 0.1,
        "message": "gate metric m: benchmark facts metric m = 0.55 regression 0.05 vs baseline 0.6 <= MaxRegression 0.1"}
    assert regression_check("m", entry, 0.01)["message"] == \
        "gate metric m: benchmark facts metric m = 0.55 regressed by 0.05 vs baseline 0.6 (MaxRegression 0.01)"
    first = metric_entry(0.55, None, True, "facts", "m")
    assert regression_check("m", first, 0.1)["message"] == \
        "gate metric m: benchmark facts metric m = 0.55 regression 0 vs no baseline <= MaxRegression 0.1"

    met = {"a": metric_entry(0.9, None, True, "a", "x", threshold=0.5), "b": metric_entry(1.0, None, False, "b", "y", 2.0),
           "c": metric_entry(0.1, None, True, "c", "z")}
    assert suite_thresholds_check(met) == {"passed": True, "value": 0, "bound": 0, "message": "2 suite threshold(s) met"}
    missed = {**met, "a": metric_entry(0.4, None, True, "a", "x", 0.5), "b": metric_entry(3.0, None, False, "b", "y", 2.0)}
    assert suite_thresholds_check(missed) == {
        "passed": False, "value": 2, "bound": 0,
        "message": "benchmark a metric x = 0.4 is not >= threshold 0.5 (suite.yaml threshold); "
                   "benchmark b metric y = 3 is not <= threshold 2 (suite.yaml threshold)"}


def test_gate_report_fields() -> None:
    some = Retention(asked=5, known=4, lost_before=1, forgotten=[{"id": "a", "data_version": "v"}])
    gate = compute_gate(_metrics(0.55, 0.75, True), "facts_m", 0.5, 0.1, True, some, 0.5)
    assert {key: value for key, value in gate.items() if key != "checks"} == {
        "metric": "facts_m", "threshold": 0.5, "max_regression": 0.1, "higher_is_better": True, "forgetting": 0.25,
        "forgotten_items": 1, "known_items_asked": 4, "max_forgetting": 0.5, "passed": False,
        "reasons": ["gate metric facts_m: benchmark facts metric m = 0.55 regressed by 0.2 vs baseline 0.75 "
                    "(MaxRegression 0.1)"],
        "suite_threshold_failures": 0, "forgetting_failures": 0,
        "summary": "gate metric facts_m: benchmark facts metric m = 0.55 regressed by 0.2 vs baseline 0.75 "
                   "(MaxRegression 0.1)"}
    first = compute_gate(_metrics(0.55, 0.75, False), "facts_m", None, None, False)
    assert (first["forgotten_items"], first["known_items_asked"], first["higher_is_better"]) == (0, 0, False)


def test_gate_metric_errors_say_which_way_it_points() -> None:
    directions = {"validation_loss": False, "facts_token_f1": True}
    with pytest.raises(GateError, match=r"^gate metric 'validation_loss' is lower-is-better: pass --gate-lower-is-better$"):
        check_gate_metric("validation_loss", True, directions)
    with pytest.raises(GateError, match=r"^gate metric 'facts_token_f1' is higher-is-better: drop --gate-lower-is-better$"):
        check_gate_metric("facts_token_f1", False, directions)
    check_gate_metric("facts_token_f1", True, directions)  # agrees: no error


def test_format_table() -> None:
    from evaluate.gate import format_table

    metrics = {"facts_token_f1": metric_entry(0.55, 0.6, True, "facts", "token_f1", 0.5),
               "docs_perplexity": metric_entry(12.0, None, False, "docs", "perplexity", 10.0),
               "quiz": metric_entry(0.7, 0.7, True, "quiz", "accuracy")}
    rows = ("metric            candidate    baseline       delta  better  threshold\n"
            "facts_token_f1       0.5500      0.6000     -0.0500  higher  0.5 ok\n"
            "docs_perplexity     12.0000           -           -  lower   10 FAILED\n"
            "quiz                 0.7000      0.7000     +0.0000  higher  \n")
    failed = "FAILED: benchmark docs metric perplexity = 12 is not <= threshold 10 (suite.yaml threshold)"

    def table(*gate: Any, only: tuple[str, ...] = tuple(metrics)) -> str:
        chosen = {name: metrics[name] for name in only}
        return format_table({"metrics": chosen, "gate": compute_gate(chosen, *gate)})

    assert table("facts_token_f1", 0.5, 0.1, True) == rows + f"gate facts_token_f1 (threshold >= 0.5, regression <= 0.1): {failed}"
    assert table("facts_token_f1", None, None, True) == \
        rows + f"gate facts_token_f1 (threshold not checked, regression not checked): {failed}"
    assert table(None, None, None, True) == rows + f"gate: no --gate-metric; suite thresholds {failed}"
    assert table("docs_perplexity", 20.0, 1.0, False, only=("docs_perplexity",)) == (
        "metric            candidate    baseline       delta  better  threshold\n"
        "docs_perplexity     12.0000           -           -  lower   10 FAILED\n"
        f"gate docs_perplexity (threshold <= 20.0, regression <= 1.0): {failed}")
    assert table("quiz", 0.5, None, True, only=("quiz",)) == (
        "metric   candidate    baseline       delta  better  threshold\n"
        "quiz        0.7000      0.7000     +0.0000  higher  \n"
        "gate quiz (threshold >= 0.5, regression not checked): PASSED")
