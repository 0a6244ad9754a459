"""Folding lm-evaluation-harness results (named standard tasks and suites) into our suite results."""
from __future__ import annotations

import pytest

from evaluate.lm_harness import LmEvalTask, fold_results, split_metric_key


def _results() -> dict:
    """The shape lm-eval 0.4 returns from simple_evaluate (trimmed): a generation task with two filters."""
    return {
        "results": {"gsm8k": {
            "alias": "gsm8k", "sample_len": 2,
            "exact_match,strict-match": 0.5, "exact_match_stderr,strict-match": 0.5,
            "exact_match,flexible-extract": 1.0, "exact_match_stderr,flexible-extract": "N/A",
        }},
        "higher_is_better": {"gsm8k": {"exact_match": True}},
        "samples": {"gsm8k": [
            {"doc_id": 1, "target": "7", "arguments": [("Q: 3+4?\nA:", {"until": ["\n"]})], "filtered_resps": ["7"],
             "metrics": ["exact_match"], "exact_match": 1.0},
            {"doc_id": 0, "target": "2", "arguments": [("Q: 1+1?\nA:", {"until": ["\n"]})], "filtered_resps": [" 3 "],
             "metrics": ["exact_match"], "exact_match": 0.0},
        ]},
    }


def test_metric_names_drop_stderr_and_keep_filters() -> None:
    assert split_metric_key("acc,none") == ("acc", "acc")
    assert split_metric_key("exact_match,strict-match") == ("exact_match_strict_match", "exact_match")
    assert split_metric_key("acc_stderr,none") is None and split_metric_key("alias") is None


def test_named_task_keeps_every_metric_with_lm_evals_direction() -> None:
    run = fold_results(LmEvalTask("gsm8k", None, None), _results(), seconds=2.0)
    assert run.metrics == {"exact_match_strict_match": 0.5, "exact_match_flexible_extract": 1.0}
    assert run.directions == {"exact_match_strict_match": True, "exact_match_flexible_extract": True}
    assert [(o.id, o.prompt, o.target, o.prediction, o.correct) for o in run.outcomes] == [
        ("0", "Q: 1+1?\nA:", "2", "3", False), ("1", "Q: 3+4?\nA:", "7", "7", True)]
    assert run.latency_ms == pytest.approx(1000.0)


def test_suite_task_keeps_its_listed_metrics_and_names_missing_ones() -> None:
    results = _results()
    run = fold_results(LmEvalTask("gsm8k", {"task": "gsm8k"}, ("exact_match_flexible_extract",)), results, seconds=1.0)
    assert run.metrics == {"exact_match_flexible_extract": 1.0}
    with pytest.raises(ValueError, match=r"lm-eval task 'gsm8k' reports .*'exact_match_strict_match'.*, not \['acc'\]"):
        fold_results(LmEvalTask("gsm8k", {"task": "gsm8k"}, ("acc",)), results, seconds=1.0)
    with pytest.raises(ValueError, match="lm-eval task 'mmlu' produced no results"):
        fold_results(LmEvalTask("mmlu", None, None), results, seconds=1.0)
