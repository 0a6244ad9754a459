"""Offline text metrics for evaluation: each takes predictions and targets, returns one float.

Exact match, token F1, ROUGE-L, accuracy and F1 are fractions in [0, 1]; BLEU and chrF keep
sacrebleu's 0-100 scale. All are higher-is-better; perplexity comes from a mean loss.
"""
from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import sacrebleu
from rouge_score import rouge_scorer
from sklearn.metrics import accuracy_score, f1_score

MetricFn = Callable[[Sequence[str], Sequence[str]], float]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


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


def exact_match(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Fraction of predictions equal to their target after normalize_answer."""
    _check_pairs(predictions, targets)
    hits = sum(normalize_answer(p) == normalize_answer(t) for p, t in zip(predictions, targets))
    return hits / len(predictions)


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


def token_f1(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Mean SQuAD token F1 over the pairs."""
    _check_pairs(predictions, targets)
    return sum(token_f1_single(p, t) for p, t in zip(predictions, targets)) / len(predictions)


def rouge_l(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (rouge-score, no stemming) over the pairs."""
    _check_pairs(predictions, targets)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    scores = [scorer.score(t, p)["rougeL"].fmeasure for p, t in zip(predictions, targets)]
    return sum(scores) / len(scores)


def bleu(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults, 0-100) with one reference per prediction."""
    _check_pairs(predictions, targets)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(targets)]).score)


def chrf(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu defaults, 0-100) with one reference per prediction."""
    _check_pairs(predictions, targets)
    return float(sacrebleu.corpus_chrf(list(predictions), [list(targets)]).score)


def accuracy(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Classification accuracy over normalized labels (scikit-learn)."""
    _check_pairs(predictions, targets)
    return float(accuracy_score(_labels(targets), _labels(predictions)))


def macro_f1(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Macro-averaged F1 over normalized labels (scikit-learn, 0 for undefined classes)."""
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


SUITE_METRICS: Mapping[str, MetricFn] = {
    "exact_match": exact_match,
    "token_f1": token_f1,
    "rouge_l": rouge_l,
    "bleu": bleu,
    "chrf": chrf,
    "accuracy": accuracy,
    "f1": macro_f1,
}


def score(metric: str, predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Compute a suite metric by name (one of SUITE_METRICS)."""
    if metric not in SUITE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(SUITE_METRICS)}")
    return SUITE_METRICS[metric](predictions, targets)
