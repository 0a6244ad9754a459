"""Run one benchmark suite (or the validation split) against one loaded model.

qa / generation: batched greedy generation, scored with text metrics. classification /
multiple_choice: every option scored by log-likelihood in one packed forward pass per question;
the most likely option is the answer (accuracy_norm: per character). perplexity: token
log-likelihood of the target (after the prompt) or of the whole text.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from common.benchmarks import BenchmarkSuite
from common.cases import BenchmarkCase
from evaluate.generation import encode_prompts, generate_from_ids
from evaluate.model import LoadedModel
from evaluate.remote import RemoteModel, chat_for
from evaluate.scoring import ContinuationScore, ScoringRequest, score_requests
from common.examples import IGNORE_INDEX, encode_example
from common.metrics import CASE_METRICS, accuracy, macro_f1, perplexity, score
from common.prompting import format_prompt, render_conversation


@dataclass(frozen=True)
class BatchSettings:
    """How much work one forward pass or generate call may take."""

    max_new_tokens: int = 32
    max_batch_size: int = 64
    max_batch_tokens: int = 4096


@dataclass(frozen=True)
class CaseOutcome:
    """What a model did on one case: its answer and the per-case scores used to rank regressions."""

    id: str
    prompt: str
    target: str
    prediction: str
    scores: dict[str, float]
    correct: bool | None
    group: str = ""


@dataclass(frozen=True)
class SuiteRun:
    """One model's results on one suite. `seconds`: the time spent answering or scoring the cases
    (tokenizing, model passes), not computing metrics (whose libraries' first use would otherwise land
    in the latency of whichever model is measured first)."""

    metrics: dict[str, float]
    outcomes: tuple[CaseOutcome, ...]
    seconds: float
    truncated: int = 0
    directions: dict[str, bool] = field(default_factory=dict)  # only where the metric's owner says (lm-eval)

    @property
    def latency_ms(self) -> float:
        return self.seconds * 1000 / max(1, len(self.outcomes))


clock: Callable[[], float] = time.perf_counter  # what `SuiteRun.seconds` is measured with (tests inject one)

# Suite metrics that are the plain mean of the per-case scores (metrics.py): computed once per case, averaged here.
MEANS_OF_CASE_SCORES = frozenset({"exact_match", "token_f1", "rouge_l"})
_TaskResult = tuple[list[CaseOutcome], dict[str, float], int, float]  # outcomes, metrics, truncated cases, model s


def run_suite(loaded: LoadedModel, suite: BenchmarkSuite, settings: BatchSettings) -> SuiteRun:
    """Every case of a (non lm_eval) suite, scored with the suite's metrics."""
    task = suite.spec.task
    if task in ("qa", "generation"):
        outcomes, metrics, truncated, seconds = _generation(loaded, suite, settings)
    elif task in ("classification", "multiple_choice"):
        outcomes, metrics, truncated, seconds = _choices(loaded, suite, settings)
    elif task == "perplexity":
        outcomes, metrics, truncated, seconds = _perplexity(loaded, suite, settings)
    else:
        raise ValueError(f"suite {suite.name}: task {task!r} is run by the lm-eval integration, not here")
    return SuiteRun(metrics, tuple(outcomes), seconds, truncated)


def _templated(loaded: LoadedModel, suite: BenchmarkSuite, case: BenchmarkCase) -> str:
    """The text the model continues: the suite's prompt in the model's template, after the case's chat if it has one."""
    if case.context:
        return render_conversation(loaded.conversation, [*case.context, {"role": "user", "content": suite.render_prompt(case)}])
    return format_prompt(loaded.template, suite.render_prompt(case))


def _outcome(case: BenchmarkCase, prediction: str, scores: dict[str, float], correct: bool | None) -> CaseOutcome:
    return CaseOutcome(case.id, case.prompt, case.target, prediction, scores, correct, case.group)


def _generation(loaded: LoadedModel, suite: BenchmarkSuite, settings: BatchSettings) -> _TaskResult:
    started = clock()
    new_tokens = suite.spec.max_new_tokens or settings.max_new_tokens
    if isinstance(loaded, RemoteModel):  # a Bedrock model: asked the case's chat, its own template applies
        predictions, truncated = loaded.generate([chat_for(suite, case) for case in suite.cases], new_tokens), 0
    else:
        encoded, truncated = encode_prompts(loaded, [_templated(loaded, suite, case) for case in suite.cases],
                                            new_tokens)
        predictions = generate_from_ids(loaded, encoded, new_tokens, settings.max_batch_tokens,
                                        settings.max_batch_size)
    seconds = clock() - started
    targets = [case.target for case in suite.cases]
    metrics, case_scores = text_scores(predictions, targets, suite.spec.metrics)
    outcomes = [_outcome(case, prediction, {name: scores[name] for name in suite.spec.metrics},
                         scores["exact_match"] == 1.0)
                for case, prediction, scores in zip(suite.cases, predictions, case_scores)]
    return outcomes, metrics, truncated, seconds


def text_scores(predictions: Sequence[str], targets: Sequence[str],
                names: Sequence[str]) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Suite metrics, and per-case scores (these and exact_match) of generated answers. Each per-case score is
    computed once; a suite metric that is their mean (MEANS_OF_CASE_SCORES) is averaged from them."""
    wanted = list(dict.fromkeys([*names, "exact_match"]))
    case_scores = [{name: CASE_METRICS[name](prediction, target) for name in wanted}
                   for prediction, target in zip(predictions, targets)]
    metrics = {
        name: sum(scores[name] for scores in case_scores) / len(case_scores)
        if name in MEANS_OF_CASE_SCORES and case_scores else score(name, predictions, targets)
        for name in names
    }
    return metrics, case_scores


def _token_ids(loaded: LoadedModel, texts: Sequence[str], special: bool) -> list[tuple[int, ...]]:
    """Token ids of many texts in one tokenizer call (with BOS when `special`)."""
    if not texts:
        return []
    return [tuple(ids) for ids in loaded.tokenizer(list(texts), add_special_tokens=special)["input_ids"]]


def _answers_ids(loaded: LoadedModel, texts: Sequence[str], with_eos: bool) -> list[tuple[int, ...]]:
    eos = loaded.tokenizer.eos_token_id
    suffix = (eos,) if with_eos and eos is not None else ()
    return [ids + suffix for ids in _token_ids(loaded, texts, special=False)]


def _choices(loaded: LoadedModel, suite: BenchmarkSuite, settings: BatchSettings) -> _TaskResult:
    """Options are scored as complete answers (followed by EOS), the way training encodes completions."""
    started = clock()
    contexts = _token_ids(loaded, [_templated(loaded, suite, case) for case in suite.cases], special=True)
    # Options repeat across cases (a classification suite's labels, a quiz's shared distractors): each
    # distinct text is tokenized once.
    distinct = list(dict.fromkeys(choice for case in suite.cases for choice in case.choices))
    option_ids = dict(zip(distinct, _answers_ids(loaded, distinct, with_eos=True)))
    options = iter([option_ids[choice] for case in suite.cases for choice in case.choices])
    requests = [ScoringRequest(context, tuple(next(options) for _ in case.choices))
                for case, context in zip(suite.cases, contexts)]
    scored = score_requests(loaded, requests, settings.max_batch_tokens, settings.max_batch_size)
    seconds = clock() - started
    best, best_norm = [], []
    for case, scores in zip(suite.cases, scored):
        best.append(case.choices[max(range(len(scores)), key=lambda i: scores[i].logprob)])
        best_norm.append(case.choices[max(range(len(scores)), key=lambda i: scores[i].logprob / len(case.choices[i]))])
    targets = [case.target for case in suite.cases]
    available = {
        "accuracy": lambda: accuracy(best, targets),
        "accuracy_norm": lambda: accuracy(best_norm, targets),
        "f1": lambda: macro_f1(best, targets),
    }
    metrics = {name: available[name]() for name in suite.spec.metrics}
    outcomes = [
        _outcome(case, prediction, {"accuracy": float(prediction == case.target),
                                    "accuracy_norm": float(normed == case.target),
                                    "target_logprob": scores[case.answer_index].logprob}, prediction == case.target)
        for case, prediction, normed, scores in zip(suite.cases, best, best_norm, scored)
    ]
    return outcomes, metrics, sum(any(s.truncated for s in scores) for scores in scored), seconds


def _perplexity(loaded: LoadedModel, suite: BenchmarkSuite, settings: BatchSettings) -> _TaskResult:
    """Prompted cases score target + EOS after the templated prompt; plain texts are scored whole after BOS."""
    started = clock()
    prompted = [case for case in suite.cases if case.prompt]
    contexts = iter(_token_ids(loaded, [_templated(loaded, suite, case) for case in prompted], special=True))
    answers = iter(_answers_ids(loaded, [case.target for case in prompted], with_eos=True))
    texts = iter(_answers_ids(loaded, [case.target for case in suite.cases if not case.prompt], with_eos=False))
    requests = [ScoringRequest(next(contexts), (next(answers),)) if case.prompt
                else ScoringRequest((loaded.start_id,), (next(texts),)) for case in suite.cases]
    scored = [scores[0] for scores in score_requests(loaded, requests, settings.max_batch_tokens, settings.max_batch_size)]
    seconds = clock() - started
    loss = mean_loss(scored)
    metrics = {"loss": loss, "perplexity": perplexity(loss)}
    outcomes = [
        _outcome(case, "", {"loss": -item.logprob / max(1, item.tokens)}, None) for case, item in zip(suite.cases, scored)
    ]
    truncated = sum(item.truncated for item in scored)
    return outcomes, {name: metrics[name] for name in suite.spec.metrics}, truncated, seconds


def mean_loss(scores: Sequence[ContinuationScore]) -> float:
    """Mean negative log-likelihood per scored token over all continuations."""
    tokens = sum(item.tokens for item in scores)
    if tokens == 0:
        raise ValueError("no tokens were scored")
    return -sum(item.logprob for item in scores) / tokens


ValidationExample = tuple[str, str] | tuple[str, str, list[dict[str, str]] | None]


def validation_loss(loaded: LoadedModel, examples: Sequence[ValidationExample], settings: BatchSettings) -> float:
    """Mean cross-entropy over all completion tokens of (prompt, completion[, messages]) examples, encoded exactly as
    training does (a chat's context included)."""
    fmt = loaded.conversation
    requests = []
    for prompt, completion, *chat in examples:
        encoded = encode_example(loaded.tokenizer, fmt, prompt, completion, loaded.max_length, chat[0] if chat else None)
        if encoded is None:
            continue
        split = max(1, next(i for i, label in enumerate(encoded.labels) if label != IGNORE_INDEX))
        requests.append(ScoringRequest(tuple(encoded.input_ids[:split]), (tuple(encoded.input_ids[split:]),)))
    if not requests:
        raise ValueError(
            f"no completion tokens left to score within {loaded.max_length} tokens; "
            "the validation prompts are too long (raise --max-seq-length)"
        )
    scores = score_requests(loaded, requests, settings.max_batch_tokens, settings.max_batch_size)
    return mean_loss([items[0] for items in scores])
