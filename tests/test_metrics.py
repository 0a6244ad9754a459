"""Offline metrics against values computed by hand."""
from __future__ import annotations

import math

import pytest

from common import metrics


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Cat!", "cat"),
        ("  a  quick,   brown fox. ", "quick brown fox"),
        ("An apple and THE pear", "apple and pear"),
        ("Thirty days (from delivery)", "thirty days from delivery"),
        ("theatre is another word", "theatre is another word"),
    ],
)
def test_normalize_answer(text: str, normalized: str) -> None:
    assert metrics.normalize_answer(text) == normalized


def test_exact_match_is_normalized_and_averaged() -> None:
    predictions = ["The refund window is 30 days.", "thirty days", "Blue"]
    targets = ["refund window is 30 days", "30 days", "blue!"]
    assert metrics.exact_match(predictions, targets) == pytest.approx(2 / 3)


def test_token_f1_single_by_hand() -> None:
    # "cat sat" vs "cat sat down": precision 2/2, recall 2/3 -> F1 = 0.8
    assert metrics.token_f1_single("The cat sat!", "a cat sat down") == pytest.approx(0.8)
    # repeated tokens count with multiplicity: "x x y" vs "x y y" overlap 1 (x) + 1 (y) -> P = R = 2/3
    assert metrics.token_f1_single("x x y", "x y y") == pytest.approx(2 / 3)
    assert metrics.token_f1_single("completely different", "nothing shared") == 0.0
    assert metrics.token_f1_single("the", "a") == 1.0  # both normalize to empty
    assert metrics.token_f1_single("word", "the") == 0.0


def test_token_f1_mean() -> None:
    assert metrics.token_f1(["cat sat", "dog"], ["cat sat down", "dog"]) == pytest.approx((0.8 + 1.0) / 2)


def test_rouge_l_by_hand() -> None:
    # LCS of "the cat sat on the mat" / "the cat sat on a mat" is 5 tokens of 6 each: F = 5/6
    assert metrics.rouge_l(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(5 / 6)
    # "a b c d" vs "a c": LCS 2, P = 2/4, R = 2/2 -> F = 2/3; mean with an exact pair (1.0)
    assert metrics.rouge_l(["a b c d", "same"], ["a c", "same"]) == pytest.approx((2 / 3 + 1.0) / 2)


def test_bleu_by_hand() -> None:
    # n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (no brevity penalty)
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert metrics.bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(expected)
    assert metrics.bleu(["one two three four"], ["one two three four"]) == pytest.approx(100.0)


def test_chrf_bounds() -> None:
    assert metrics.chrf(["hello world"], ["hello world"]) == pytest.approx(100.0)
    assert metrics.chrf(["abc"], ["xyz"]) == 0.0
    partial = metrics.chrf(["hello word"], ["hello world"])
    assert 0.0 < partial < 100.0


def test_accuracy_and_macro_f1_by_hand() -> None:
    predictions = ["Positive", "negative.", "positive", "neutral"]
    targets = ["positive", "negative", "negative", "neutral"]
    assert metrics.accuracy(predictions, targets) == pytest.approx(0.75)
    # per class F1: positive P=1/2 R=1 -> 2/3; negative P=1 R=1/2 -> 2/3; neutral 1 -> macro 7/9
    assert metrics.macro_f1(predictions, targets) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_perplexity() -> None:
    assert metrics.perplexity(0.0) == 1.0
    assert metrics.perplexity(math.log(20.0)) == pytest.approx(20.0)
    assert metrics.perplexity(1e6) == math.inf
    with pytest.raises(ValueError, match="non-negative"):
        metrics.perplexity(float("nan"))
    with pytest.raises(ValueError, match="non-negative"):
        metrics.perplexity(-0.5)


def test_score_by_name_and_bad_inputs() -> None:
    assert metrics.score("exact_match", ["x"], ["x"]) == 1.0
    assert set(metrics.SUITE_METRICS) == {"exact_match", "token_f1", "rouge_l", "bleu", "chrf", "accuracy", "f1"}
    with pytest.raises(ValueError, match="unknown metric 'meteor'; known: exact_match"):
        metrics.score("meteor", ["x"], ["x"])
    with pytest.raises(ValueError, match="2 predictions but 1 targets"):
        metrics.token_f1(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no predictions"):
        metrics.rouge_l([], [])


@pytest.mark.parametrize("name", ["exact_match", "token_f1", "rouge_l", "chrf"])
def test_case_metrics_average_to_the_suite_metric(name: str) -> None:
    predictions = ["the cat sat on the mat", "thirty days", "blue sky", "x"]
    targets = ["the cat sat on a mat", "30 days", "Blue sky!", "y"]
    per_case = [metrics.CASE_METRICS[name](p, t) for p, t in zip(predictions, targets)]
    if name == "chrf":  # corpus chrF pools character n-gram statistics, so it is not the mean of sentence scores
        assert 0.0 < per_case[2] < 100.0 and per_case[3] == 0.0
        assert metrics.chrf_single("blue sky", "blue sky") == pytest.approx(100.0)
    else:
        assert metrics.score(name, predictions, targets) == pytest.approx(sum(per_case) / len(per_case))
    assert metrics.bleu_single("one two three four", "one two three four") == pytest.approx(100.0)


def test_task_metrics_and_directions() -> None:
    assert set(metrics.TASK_METRICS) == {"qa", "generation", "classification", "multiple_choice", "perplexity"}
    assert metrics.TASK_METRICS["multiple_choice"] == ("accuracy", "accuracy_norm")
    for name in ("perplexity", "loss", "latency_ms"):
        assert metrics.higher_is_better(name) is False
    for name in ("exact_match", "bleu", "accuracy", "accuracy_norm", "f1"):
        assert metrics.higher_is_better(name) is True
