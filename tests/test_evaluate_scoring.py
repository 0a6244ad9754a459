"""Batched scoring on the tiny model: packed multiple choice, validation loss, generation, every task type."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from common.benchmarks import load_suite
from evaluate.generation import batch_plan, generate_greedy
from evaluate.model import LoadedModel, load_model
from evaluate.scoring import ScoringRequest, score_requests
from evaluate.tasks import BatchSettings, run_suite, validation_loss
from common.examples import IGNORE_INDEX, encode_example
from common.prompting import render_conversation

QUESTIONS = {
    "What is the Rover X1?": ["A warehouse robot", "A robot vacuum", "A delivery drone and more"],
    "How much does the Sweepy S2 cost?": ["$399", "$12,499"],
    "What is the return window?": ["30 days", "2 years", "45 days", "No"],
}


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> LoadedModel:
    return load_model(tiny_model_dir, "candidate", max_seq_length=1024)


def _requests(tiny: LoadedModel) -> list[ScoringRequest]:
    tok = tiny.tokenizer
    return [
        ScoringRequest(tuple(tok(f"### Question:\n{q}\n### Answer:\n").input_ids),
                       tuple(tuple(tok(c, add_special_tokens=False).input_ids + [tok.eos_token_id]) for c in choices))
        for q, choices in QUESTIONS.items()
    ]


def _reference_logprob(tiny: LoadedModel, context: tuple[int, ...], continuation: tuple[int, ...]) -> float:
    """One full forward pass per (context + continuation), summed by hand."""
    import torch

    ids = torch.tensor([list(context) + list(continuation)])
    with torch.no_grad():
        logprobs = tiny.model(ids).logits.log_softmax(-1)[0]
    return sum(float(logprobs[len(context) - 1 + k, token]) for k, token in enumerate(continuation))


def test_packed_choices_match_one_pass_per_option(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    requests = _requests(tiny)
    calls: list[tuple[int, ...]] = []
    real_forward = tiny.model.forward

    def counting_forward(*args: Any, **kwargs: Any) -> Any:
        calls.append(tuple(kwargs["input_ids"].shape))
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(tiny.model, "forward", counting_forward)
    packed = score_requests(tiny, requests, packed=True)
    assert len(calls) == 1 and calls[0][0] == len(requests)  # every option of every question: one forward pass
    monkeypatch.setattr(tiny.model, "forward", real_forward)
    plain = score_requests(tiny, requests, packed=False)
    one_at_a_time = score_requests(tiny, requests, packed=True, max_batch_size=1)
    for request, got, rows, single in zip(requests, packed, plain, one_at_a_time):
        for continuation, score, row, alone in zip(request.continuations, got, rows, single):
            expected = _reference_logprob(tiny, request.context, continuation)
            assert score.logprob == pytest.approx(expected, abs=1e-4)
            assert row.logprob == pytest.approx(expected, abs=1e-4) and alone.logprob == pytest.approx(expected, abs=1e-4)
            assert score.tokens == len(continuation) and not score.truncated


def test_batches_respect_the_token_budget(tiny: LoadedModel) -> None:
    requests = _requests(tiny) * 4
    small = score_requests(tiny, requests, max_batch_tokens=64)
    large = score_requests(tiny, requests, max_batch_tokens=100_000)
    assert [s.logprob for r in small for s in r] == pytest.approx([s.logprob for r in large for s in r], abs=1e-4)
    plan = batch_plan([5, 30, 12, 12, 3], new_tokens=10, max_batch_tokens=60, max_batch_size=2)
    assert plan == [[1], [2, 3], [0, 4]]  # longest first; 2 x (12 + 10) <= 60; at most 2 rows


def test_long_inputs_are_cut_to_the_context(tiny: LoadedModel) -> None:
    context = tuple(range(5, 305))  # longer than the tiny model's 256 positions
    [[kept, cut]] = score_requests(tiny, [ScoringRequest(context, ((7, 8), tuple(range(9, 309))))])
    assert kept.tokens == 2 and not kept.truncated
    assert cut.tokens == tiny.max_length - 1 and cut.truncated
    with pytest.raises(ValueError, match="at least one context token"):
        score_requests(tiny, [ScoringRequest((), ((1,),))])


def test_validation_loss_matches_hf_loss_and_batching(tiny: LoadedModel) -> None:
    import torch

    pairs = [("Who approves travel?", "Your team lead."), ("What is the Rover X1?", "A warehouse robot."),
             ("How long is the refund window for opened items that were shipped?", "Thirty days, minus a fee.")]
    encoded = encode_example(tiny.tokenizer, tiny.template, *pairs[0], tiny.max_length)
    assert encoded is not None
    with torch.no_grad():
        hf_loss = tiny.model(input_ids=torch.tensor([encoded.input_ids]), labels=torch.tensor([encoded.labels])).loss
    assert validation_loss(tiny, pairs[:1], BatchSettings()) == pytest.approx(float(hf_loss), rel=1e-5)

    total = tokens = 0.0
    for prompt, completion in pairs:
        item = encode_example(tiny.tokenizer, tiny.template, prompt, completion, tiny.max_length)
        assert item is not None
        scored = sum(label != IGNORE_INDEX for label in item.labels[1:])
        with torch.no_grad():
            loss = tiny.model(input_ids=torch.tensor([item.input_ids]), labels=torch.tensor([item.labels])).loss
        total, tokens = total + float(loss) * scored, tokens + scored
    batched = validation_loss(tiny, pairs, BatchSettings(max_batch_size=2))
    assert batched == pytest.approx(total / tokens, rel=1e-5)


def test_validation_loss_scores_a_chat_with_its_context_as_training_encodes_it(tiny: LoadedModel) -> None:
    import torch

    messages = [{"role": "system", "content": "You answer for Acme Robotics."},
                {"role": "user", "content": "Who approves travel?"}, {"role": "assistant", "content": "Your team lead."},
                {"role": "user", "content": "And expenses?"}, {"role": "assistant", "content": "Finance."}]
    chat = encode_example(tiny.tokenizer, tiny.template, "And expenses?", "Finance.", tiny.max_length, messages)
    plain = encode_example(tiny.tokenizer, tiny.template, "And expenses?", "Finance.", tiny.max_length)
    assert chat is not None and plain is not None and len(chat.input_ids) > len(plain.input_ids)
    with torch.no_grad():
        hf_loss = tiny.model(input_ids=torch.tensor([chat.input_ids]), labels=torch.tensor([chat.labels])).loss
    with_context = validation_loss(tiny, [("And expenses?", "Finance.", messages)], BatchSettings())
    assert with_context == pytest.approx(float(hf_loss), rel=1e-5)
    assert with_context != pytest.approx(validation_loss(tiny, [("And expenses?", "Finance.")], BatchSettings()), rel=1e-6)


def _suite(tmp_path: Path, yaml_text: str, cases: list[dict[str, Any]]) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "suite.yaml").write_text(yaml_text, encoding="utf-8")
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return load_suite(tmp_path)


def test_multiple_choice_and_classification_pick_the_likeliest_option(tiny: LoadedModel, tmp_path: Path) -> None:
    cases = [{"id": str(i), "prompt": q, "choices": c, "answer": len(c) - 1} for i, (q, c) in enumerate(QUESTIONS.items())]
    suite = _suite(tmp_path / "mc", "name: mc\ntask: multiple_choice\ndata: cases.jsonl\nmetrics: [accuracy, accuracy_norm]\n",
                   cases)
    run = run_suite(tiny, suite, BatchSettings())
    requests = [ScoringRequest(tuple(tiny.tokenizer(f"### Question:\n{c['prompt']}\n### Answer:\n").input_ids),
                               tuple(tuple(tiny.tokenizer(x, add_special_tokens=False).input_ids + [tiny.tokenizer.eos_token_id])
                                     for x in c["choices"])) for c in cases]
    expected = []
    for case, scores in zip(cases, score_requests(tiny, requests)):
        expected.append(case["choices"][max(range(len(scores)), key=lambda i: scores[i].logprob)])
    assert [outcome.prediction for outcome in run.outcomes] == expected
    hits = [p == c["choices"][c["answer"]] for p, c in zip(expected, cases)]
    assert run.metrics["accuracy"] == pytest.approx(sum(hits) / len(hits))
    assert [o.correct for o in run.outcomes] == hits and 0.0 <= run.metrics["accuracy_norm"] <= 1.0

    routing = _suite(tmp_path / "cls", "name: cls\ntask: classification\ndata: cases.jsonl\nmetrics: [accuracy, f1]\n"
                     "labels: [billing, shipping]\n", [{"prompt": "I was charged twice", "target": "billing"},
                                                      {"prompt": "Where is my parcel?", "target": "shipping"}])
    routed = run_suite(tiny, routing, BatchSettings())
    assert all(o.prediction in ("billing", "shipping") for o in routed.outcomes)
    assert routed.metrics["accuracy"] == pytest.approx(sum(bool(o.correct) for o in routed.outcomes) / 2)


def test_perplexity_suite_is_exp_of_the_mean_token_loss(tiny: LoadedModel, tmp_path: Path) -> None:
    import torch

    texts = ["Standard shipping takes 3-5 business days.", "Every Acme robot has a warranty."]
    suite = _suite(tmp_path / "ppl", "name: ppl\ntask: perplexity\ndata: cases.jsonl\nmetrics: [perplexity, loss]\n",
                   [{"id": str(i), "text": t} for i, t in enumerate(texts)])
    run = run_suite(tiny, suite, BatchSettings())
    nll = count = 0.0
    for text in texts:
        ids = tiny.tokenizer(text).input_ids  # BOS + text: every text token is scored
        with torch.no_grad():
            loss = tiny.model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
        nll, count = nll + float(loss) * (len(ids) - 1), count + len(ids) - 1
    assert run.metrics["loss"] == pytest.approx(nll / count, rel=1e-5)
    assert run.metrics["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert [o.correct for o in run.outcomes] == [None, None]


def test_generation_suite_scores_each_case(tiny: LoadedModel, tmp_path: Path) -> None:
    long_prompt = "robot " * 300  # more tokens than the tiny model's 256 positions: cut from the left
    suite = _suite(tmp_path / "gen", "name: gen\ntask: generation\ndata: cases.jsonl\nmetrics: [chrf, rouge_l]\n"
                   "max_new_tokens: 5\n", [{"id": "a", "prompt": "Hello", "target": "world"},
                                           {"id": "b", "prompt": "Who?", "target": "Acme"},
                                           {"id": "c", "prompt": long_prompt, "target": "robot"}])
    run = run_suite(tiny, suite, BatchSettings(max_new_tokens=50))
    expected = generate_greedy(tiny, [f"### Question:\n{p}\n### Answer:\n" for p in ("Hello", "Who?", long_prompt)], 5)
    assert [o.prediction for o in run.outcomes] == expected
    assert run.metrics["rouge_l"] == pytest.approx(sum(o.scores["rouge_l"] for o in run.outcomes) / 3)
    assert run.latency_ms > 0 and run.truncated == 1


def test_an_empty_option_scores_zero_without_shifting_the_others(tiny: LoadedModel) -> None:
    [request] = _requests(tiny)[:1]
    with_empty = ScoringRequest(request.context, ((),) + request.continuations)
    [[empty, *rest]] = score_requests(tiny, [with_empty])
    assert (empty.logprob, empty.tokens) == (0.0, 0)
    [expected] = score_requests(tiny, [request])
    assert [s.logprob for s in rest] == pytest.approx([s.logprob for s in expected], abs=1e-4)


def test_text_scores_equal_the_suite_metrics_and_score_each_case_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from common import metrics
    from evaluate import tasks as eval_tasks

    predictions = ["A warehouse robot", "the $399 model", "", "Thirty days"]
    targets = ["a warehouse robot.", "$399", "Acme", "30 days, minus a fee"]
    names = ("exact_match", "token_f1", "rouge_l", "bleu", "chrf")
    calls: list[str] = []
    counted = {name: (lambda f, n: lambda p, t: calls.append(n) or f(p, t))(f, name)
               for name, f in metrics.CASE_METRICS.items()}
    monkeypatch.setattr(eval_tasks, "CASE_METRICS", counted)
    suite, cases = eval_tasks.text_scores(predictions, targets, names)
    assert suite == {name: metrics.score(name, predictions, targets) for name in names}  # exactly, not approximately
    assert sorted(calls) == sorted(names * len(predictions))
    assert [c["exact_match"] for c in cases] == [1.0, 0.0, 0.0, 0.0]
    _, only_chrf = eval_tasks.text_scores(predictions, targets, ("chrf",))
    assert set(only_chrf[0]) == {"chrf", "exact_match"}  # exact match always comes along: it decides `correct`


def test_a_shared_opening_is_scored_once_with_the_same_log_likelihoods(tiny: LoadedModel,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluate import scoring as eval_scoring

    instruction = ("### Question:\nYou are the Acme Robotics support assistant. Pick the answer a customer "
                   "would get from the support team, quoting the policy.\n")
    tok = tiny.tokenizer
    requests = [ScoringRequest(tuple(tok(instruction + q + "\n### Answer:\n").input_ids),
                               tuple(tuple(tok(c, add_special_tokens=False).input_ids + [tok.eos_token_id]) for c in choices))
                for q, choices in QUESTIONS.items()]
    requests += [ScoringRequest(r.context, r.continuations[:1]) for r in requests]  # single options: plain rows
    expected = [[_reference_logprob(tiny, r.context, c) for c in r.continuations] for r in requests]
    shapes: list[tuple[int, ...]] = []
    real_forward = tiny.model.forward

    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        shapes.append(tuple(kwargs["input_ids"].shape))
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(tiny.model, "forward", recording_forward)
    scored = score_requests(tiny, requests)
    widest = max(len(r.context) + sum(len(c) for c in r.continuations) for r in requests)  # packed: context + options
    assert shapes[0][0] == 1 and shapes[0][1] > 30 and len(shapes) == 2  # the opening once, then one batch without it
    assert shapes[1] == (len(requests), widest - shapes[0][1])
    assert [[s.logprob for s in r] for r in scored] == [pytest.approx(e, abs=1e-4) for e in expected]

    # Models whose forward cannot keep only some logits, and eager attention (additive mask): same scores.
    monkeypatch.setattr(eval_scoring, "accepted", lambda model, **optional: {
        name: value for name, value in optional.items() if name != "logits_to_keep"})
    tiny.model.set_attn_implementation("eager")
    try:
        again = score_requests(tiny, requests)
    finally:
        tiny.model.set_attn_implementation("sdpa")
    assert [[s.logprob for s in r] for r in again] == [pytest.approx(e, abs=1e-4) for e in expected]


def test_latency_counts_answering_not_computing_metrics(tiny: LoadedModel, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A metric library's first use (rouge-score imports nltk: about a second) must not land in the latency of
    whichever model happens to be measured first."""
    from common import metrics
    from evaluate import tasks as eval_tasks

    suite = _suite(tmp_path / "slow", "name: slow\ntask: qa\ndata: cases.jsonl\nmetrics: [exact_match]\n"
                   "max_new_tokens: 2\n", [{"id": "a", "prompt": "Hello", "target": "world"}])
    calls: list[str] = []
    now = [100.0]

    def clock() -> float:  # every reading advances a millisecond; the metric takes ten seconds
        now[0] += 0.001
        return now[0]

    def slow_exact_match(prediction: str, target: str) -> float:
        calls.append(prediction)
        now[0] += 10.0
        return metrics.exact_match_single(prediction, target)

    monkeypatch.setattr(eval_tasks, "clock", clock)
    monkeypatch.setattr(eval_tasks, "CASE_METRICS", {**metrics.CASE_METRICS, "exact_match": slow_exact_match})
    run = run_suite(tiny, suite, BatchSettings())
    assert len(calls) == 1 and now[0] > 110
    assert run.seconds == pytest.approx(0.001) and run.latency_ms == pytest.approx(1.0)


def test_a_chat_case_is_asked_with_its_context_as_training_renders_it(tiny: LoadedModel, tmp_path: Path) -> None:
    chat = [{"role": "system", "content": "You work at Acme."}, {"role": "user", "content": "Price of the S2?"},
            {"role": "assistant", "content": "$399"}, {"role": "user", "content": "And the M5?"}]
    suite = _suite(tmp_path / "chat", "name: chat\nversion: 1\ntask: qa\ndata: cases.jsonl\nmetrics: [exact_match]\n",
                   [{"id": "c", "messages": chat, "target": "$1,299"}, {"id": "p", "prompt": "And the M5?", "target": "x"}])
    rendered = render_conversation(tiny.conversation, chat)
    assert rendered.startswith("You work at Acme.\n### Question:\nPrice of the S2?") and rendered.endswith("And the M5?\n### Answer:\n")
    trained = encode_example(tiny.tokenizer, tiny.template, "And the M5?", "$1,299", tiny.max_length,
                             [*chat, {"role": "assistant", "content": "$1,299"}])
    assert trained is not None and trained.input_ids[:trained.labels.count(IGNORE_INDEX)] == \
        tiny.tokenizer(rendered)["input_ids"]  # what training saw before the reply
    run = run_suite(tiny, suite, BatchSettings(max_new_tokens=6))
    assert run.outcomes[0].prediction == generate_greedy(tiny, [rendered], 6)[0]
    assert run.outcomes[1].prediction == generate_greedy(tiny, ["### Question:\nAnd the M5?\n### Answer:\n"], 6)[0]
