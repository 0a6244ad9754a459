"""Drift judgement on real cases: a 30% topic shift alarms, polite rephrasing does not, refusals and empty answers
are read through one normalisation, and the thresholds are calibrated and recorded (bench/drift_quality.py
measures the alarm rates over many seeds)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import ferry_company
import monitor
from monitor.baseline import BaselineError, build_baseline
from monitor.checks import input_drift_checks, output_checks, score_prompts, verdict
from monitor.features import extract
from monitor.text import is_refusal, normalise
from pipelines.demo.sample_data import facts

FERRY = [(f.question, f.answer) for round_no in (1, 2) for f in ferry_company.facts(round_no)]
ACME = [(q, f.answer) for round_no in (1, 2) for f in facts(round_no) for q in f.paraphrases]
ELSEWHERE = ["How do I make a sourdough starter?", "Who painted the ceiling of the Sistine Chapel?",
             "Write a haiku about rain.", "What are the symptoms of the flu?", "How do I change a car tyre?",
             "Explain how vaccines work.", "Which stocks should I buy this year?", "What is the plot of Hamlet?",
             "How do I unclog a kitchen sink?", "Recommend a good science fiction novel.",
             "How many calories are in a banana?", "What time zone is Tokyo in?"]
OPENERS = ["Hello, ", "Hi there! ", "Good evening. ", "Excuse me - ", ""]
REQUESTS = ["could you tell me {q}", "would you happen to know {q}", "{Q}", "I need to know: {q}"]
ENDINGS = [" Thanks a lot!", " Thank you!", " Cheers", ""]


def _traffic(training: list[tuple[str, str]], rows: int, seed: int, shifted=None, share: float = 0.0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [shifted(rng) if shifted and rng.random() < share else rng.choice(training) for _ in range(rows)]


def _judge(baseline, pairs: list[tuple[str, str]]) -> tuple[str, set[str]]:
    features = extract([p for p, _ in pairs], [a for _, a in pairs])
    results = input_drift_checks(baseline, score_prompts(baseline, features), features.rows) + \
        output_checks(baseline, features, {})
    return verdict(results, features.rows, int(baseline.thresholds["min_rows"])), {r.name for r in results if r.violated}


@pytest.fixture(scope="module")
def ferry_baseline():
    return build_baseline([p for p, _ in FERRY], [a for _, a in FERRY])


def test_one_normal_form_for_every_signal() -> None:
    assert normalise("I\u2019M  S\uff4f\uff52\uff52\uff59,\u00a0I CAN\u2019T help\u200b.") == "i'm sorry, i can't help."
    for refusal in ("I\u2019m sorry, I can\u2019t help with that.", "I'M SORRY, I CAN'T ANSWER THAT.",
                    "\uff29\u2019\uff4d \uff53\uff4f\uff52\uff52\uff59", "Unfortunately, I cannot assist with this.",
                    "As an AI, I don\u2018t have access to that."):
        assert is_refusal(normalise(refusal)), refusal
    assert not is_refusal(normalise("Cars cost $48 each way, driver included."))
    features = extract(["q"] * 5, ["", " \n", "\u00a0", "\u200b\u200b", "\u3000"])
    assert features.empty.all() and features.response_length.tolist() == [0] * 5


def test_a_30_percent_topic_shift_alarms_and_rephrasing_does_not(ferry_baseline) -> None:
    def elsewhere(rng: random.Random) -> tuple[str, str]:
        return rng.choice(ELSEWHERE), rng.choice(FERRY)[1]

    def polite(rng: random.Random) -> tuple[str, str]:
        question, answer = rng.choice(FERRY)
        asked = rng.choice(REQUESTS).format(q=question[0].lower() + question[1:], Q=question)
        return rng.choice(OPENERS) + asked + rng.choice(ENDINGS), answer

    assert _judge(ferry_baseline, _traffic(FERRY, 1000, 1, elsewhere, 0.3)) == ("drift", {"topic_coverage"})
    assert _judge(ferry_baseline, _traffic(FERRY, 1000, 2, polite, 1.0)) == ("ok", set())
    assert _judge(ferry_baseline, _traffic(FERRY, 1000, 3)) == ("ok", set())
    assert _judge(ferry_baseline, _traffic(FERRY, 30, 4)) == ("ok", set())  # tiny traffic: no alarm


def test_other_scripts_and_pasted_documents_alarm(ferry_baseline) -> None:
    def foreign(rng: random.Random) -> tuple[str, str]:
        return rng.choice(["¿Cuándo sale el ferry a Gull Island?", "Сколько стоит билет?", "船票多少钱？",
                           "Gibt es eine Ermäßigung für Kinder?"]), "x"

    def document(rng: random.Random) -> tuple[str, str]:
        return "Please summarise: " + " ".join(rng.choice(FERRY)[0] for _ in range(rng.randint(10, 20))), "x"

    assert "unseen_letters" in _judge(ferry_baseline, _traffic(FERRY, 600, 5, foreign, 0.3))[1]
    assert "prompt_length" in _judge(ferry_baseline, _traffic(FERRY, 600, 6, document, 0.3))[1]


def test_typographic_refusals_and_invisible_empty_answers_are_counted(ferry_baseline) -> None:
    def refused(rng: random.Random) -> tuple[str, str]:
        return rng.choice(FERRY)[0], rng.choice(["I\u2019m sorry, I can\u2019t help with that.",
                                                 "I\u2019M UNABLE TO ANSWER THAT."])

    def blank(rng: random.Random) -> tuple[str, str]:
        return rng.choice(FERRY)[0], rng.choice(["\u200b", "\u00a0", " \n"])

    assert _judge(ferry_baseline, _traffic(FERRY, 500, 7, refused, 0.2)) == ("degraded", {"refusal_rate"})
    assert _judge(ferry_baseline, _traffic(FERRY, 500, 8, blank, 0.2))[1] >= {"empty_rate"}


def test_thresholds_are_calibrated_on_the_baseline_and_recorded(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "t.jsonl").write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n"
                                                        for p, c in ACME), encoding="utf-8")
    for name, extra in (("default", []), ("wider", ["--threshold", "outlier_quantile=0.2", "--seed", "3"])):
        assert monitor.main(["baseline", "--train-dir", str(tmp_path / "train"), "--output-dir",
                             str(tmp_path / name), *extra]) == 0
    default, wider = (json.loads((tmp_path / name / "constraints.json").read_text())["continuum_constraints"]
                      for name in ("default", "wider"))
    record = default["calibration"]["topic_coverage_threshold"]
    assert record["folds"] == 5 and record["quantile"] == 0.05 and record["seed"] == 0
    assert record["scored_prompts"] == len({p for p, _ in ACME}) and record["training_prompts"] == len(ACME)
    assert "cross-fitting" in record["method"]
    assert wider["calibration"]["topic_coverage_threshold"]["seed"] == 3
    assert 0 < default["topic_coverage_threshold"] < wider["topic_coverage_threshold"] < 1  # a quantile, not a constant
    assert default["prompt_length_threshold"] == pytest.approx(
        3.0 * default["calibration"]["prompt_length_threshold"]["length_at_quantile"])
    with pytest.raises(BaselineError, match="at least 2 are needed to calibrate"):
        build_baseline(["same question?"] * 3, ["a"] * 3)
