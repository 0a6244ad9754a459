"""Offline metrics for evaluation, the metrics each task type may use, and which way is better.

Text metrics compare generated answers with targets: exact match, token F1 and ROUGE-L are
fractions in [0, 1]; BLEU and chrF keep sacrebleu's 0-100 scale. Label metrics (accuracy, macro
F1, scikit-learn) compare predicted labels or choices with the right ones. Perplexity and loss
come from token log-likelihoods and are lower-is-better, as is latency.
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

MetricFn = Callable[[Sequence[str], Sequence[str]], float]
CaseMetricFn = Callable[[str, str], float]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@cache
def _rouge() -> Any:
    """rouge-score's scorer, imported on first use (it pulls in nltk, seconds of start-up)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lowercase, drop punctuation and articles, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _check_pairs(predictions: Sequence[str], targets: Sequence[str]) -> None:
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets")
    if not predictions:
        raise ValueError("no predictions to score")


def _mean_of(case_metric: CaseMetricFn) -> MetricFn:
    def mean(predictions: Sequence[str], targets: Sequence[str]) -> float:
        _check_pairs(predictions, targets)
        return sum(case_metric(p, t) for p, t in zip(predictions, targets)) / len(predictions)

    return mean


def exact_match_single(prediction: str, target: str) -> float:
    """1.0 when prediction and target are equal after normalize_answer, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(target))


def token_f1_single(prediction: str, target: str) -> float:
    """SQuAD token F1 of one prediction against one target (1.0 if both are empty)."""
    pred_tokens = normalize_answer(prediction).split()
    target_tokens = normalize_answer(target).split()
    if not pred_tokens or not target_tokens:
        return float(pred_tokens == target_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(target_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(target_tokens)
    return 2 * precision * recall / (precision + recall)


def rouge_l_single(prediction: str, target: str) -> float:
    """ROUGE-L F-measure (rouge-score, no stemming) of one pair."""
    return float(_rouge().score(target, prediction)["rougeL"].fmeasure)


def bleu_single(prediction: str, target: str) -> float:
    """Sentence BLEU (sacrebleu, 0-100) of one pair: the per-case view of corpus BLEU."""
    import sacrebleu

    return float(sacrebleu.sentence_bleu(prediction, [target]).score)


def chrf_single(prediction: str, target: str) -> float:
    """Sentence chrF (sacrebleu, 0-100) of one pair."""
    import sacrebleu

    return float(sacrebleu.sentence_chrf(prediction, [target]).score)


exact_match = _mean_of(exact_match_single)
exact_match.__doc__ = "Fraction of predictions equal to their target after normalize_answer."
token_f1 = _mean_of(token_f1_single)
token_f1.__doc__ = "Mean SQuAD token F1 over the pairs."
rouge_l = _mean_of(rouge_l_single)
rouge_l.__doc__ = "Mean ROUGE-L F-measure (rouge-score, no stemming) over the pairs."


def bleu(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults, 0-100) with one reference per prediction."""
    import sacrebleu

    _check_pairs(predictions, targets)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(targets)]).score)


def chrf(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu defaults, 0-100) with one reference per prediction."""
    import sacrebleu

    _check_pairs(predictions, targets)
    return float(sacrebleu.corpus_chrf(list(predictions), [list(targets)]).score)


def accuracy(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Classification accuracy over normalized labels (scikit-learn)."""
    from sklearn.metrics import accuracy_score

    _check_pairs(predictions, targets)
    return float(accuracy_score(_labels(targets), _labels(predictions)))


def macro_f1(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Macro-averaged F1 over normalized labels (scikit-learn, 0 for undefined classes)."""
    from sklearn.metrics import f1_score

    _check_pairs(predictions, targets)
    return float(f1_score(_labels(targets), _labels(predictions), average="macro", zero_division=0))


def _labels(texts: Sequence[str]) -> list[str]:
    return [normalize_answer(text) for text in texts]


def perplexity(mean_loss: float) -> float:
    """exp(mean token cross-entropy); inf when it overflows a float."""
    if math.isnan(mean_loss) or mean_loss < 0:
        raise ValueError(f"mean loss must be a non-negative number, got {mean_loss}")
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


# Metrics over predicted strings and targets (generated answers, predicted labels or choices).
SUITE_METRICS: Mapping[str, MetricFn] = {
    "exact_match": exact_match,
    "token_f1": token_f1,
    "rouge_l": rouge_l,
    "bleu": bleu,
    "chrf": chrf,
    "accuracy": accuracy,
    "f1": macro_f1,
}
# The per-case view of each generation metric: ranks the cases that regressed most.
CASE_METRICS: Mapping[str, CaseMetricFn] = {
    "exact_match": exact_match_single,
    "token_f1": token_f1_single,
    "rouge_l": rouge_l_single,
    "bleu": bleu_single,
    "chrf": chrf_single,
}
GENERATION_METRICS = ("exact_match", "token_f1", "rouge_l", "bleu", "chrf")
# accuracy_norm: the choice with the best log-likelihood per character wins (lm-eval's acc_norm).
TASK_METRICS: Mapping[str, tuple[str, ...]] = {
    "qa": GENERATION_METRICS,
    "generation": GENERATION_METRICS,
    "classification": ("accuracy", "f1"),
    "multiple_choice": ("accuracy", "accuracy_norm"),
    "perplexity": ("perplexity", "loss"),
}
LOWER_IS_BETTER = frozenset({"perplexity", "loss", "latency_ms"})


def higher_is_better(metric: str) -> bool:
    """The direction of a metric this module knows (lm-eval reports its own)."""
    return metric not in LOWER_IS_BETTER


def score(metric: str, predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Compute a suite metric by name (one of SUITE_METRICS)."""
    if metric not in SUITE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(SUITE_METRICS)}")
    return SUITE_METRICS[metric](predictions, targets)
