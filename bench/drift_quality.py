"""Drift check judgement: alarm rates of `monitor.py check` on traffic scenarios, on two companies' baselines.

For each domain (the demo's Acme Robotics; Acme trained on two of each fact's three phrasings while
users ask all three; the second domain, Tidewater Ferries from tests/ferry_company.py) the training questions and answers become a baseline (`monitor.py baseline`);
then each scenario writes captured traffic in SageMaker's format (the local endpoint's capture
writer) and runs the check (`monitor.run_check`, no CloudWatch), once per seed. An alarm is any
violation (verdict `drift` or `degraded`). Prints the alarm rate per scenario next to its target and
exits 1 when a target is missed.

The traffic here is written independently of the detector: its own polite phrasings, off-topic
questions, other languages, pasted documents and refusal spellings; nothing is read from
steps/monitor/.

    python bench/drift_quality.py [--seeds 10] [--records 2000] [--domain acme|acme_unseen|ferry ...] [--scenario NAME ...]
    python bench/drift_quality.py --model-likelihood   # the tiny served model's likelihood on the same scenarios
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "steps"))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import ferry_company  # noqa: E402  (tests/ferry_company.py: the second domain)
from pipelines.demo import sample_data  # noqa: E402
from pipelines.local.capture import CaptureWriter, Exchange, build_capture_record  # noqa: E402
from pipelines.local.s3 import LocalS3  # noqa: E402

import monitor  # noqa: E402  (steps/monitor/)

CAPTURE = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": "s3://bench/capture",
           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
           "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}
Pair = tuple[str, str]


# ------------------------------------------------------------------------------------------ the domains
@dataclass(frozen=True)
class Domain:
    name: str
    training: list[Pair]  # (prompt, completion) as the prepare step's train split has them
    asked: list[Pair] | None = None  # what users ask in the domain (default: the training questions)

    @property
    def questions(self) -> list[Pair]:
        return self.asked or self.training

    @property
    def names(self) -> list[str]:
        """Proper names in the questions (capitalised words after the first), for questions in other languages."""
        found = set()
        for prompt, _ in self.training:
            for match in re.finditer(r"(?<=\s)((?:[A-Z][\w-]*\s?){1,3})", prompt):
                found.add(match.group(1).strip(" ?"))
        return sorted(n for n in found if len(n) > 2)


def acme() -> Domain:
    facts = [fact for round_no in sample_data.ROUNDS for fact in sample_data.facts(round_no)]
    return Domain("acme", [(question, fact.answer) for fact in facts for question in fact.paraphrases])


def acme_unseen() -> Domain:
    """Acme trained on all but the last phrasing of each fact; users ask every phrasing (a third are new)."""
    facts = [fact for round_no in sample_data.ROUNDS for fact in sample_data.facts(round_no)]
    return Domain("acme_unseen", [(q, fact.answer) for fact in facts for q in fact.paraphrases[:-1]],
                  [(q, fact.answer) for fact in facts for q in fact.paraphrases])


def ferry() -> Domain:
    facts = [fact for round_no in (1, 2) for fact in ferry_company.facts(round_no)]
    return Domain("ferry", [(fact.question, fact.answer) for fact in facts])


DOMAINS: dict[str, Callable[[], Domain]] = {"acme": acme, "acme_unseen": acme_unseen, "ferry": ferry}


# ------------------------------------------------------------------------------------------ traffic pieces
GREETINGS = ["Hi, ", "Hello! ", "Hey there, ", "Good morning. ", "Good afternoon, ", "Excuse me, ", "Hi team, ",
             "Sorry to bother you, but ", "Quick question: ", ""]
ASKS = ["could you tell me {q}", "can you please tell me {q}", "would you mind telling me {q}",
        "I was wondering, {q}", "I'd like to know: {q}", "do you happen to know {q}", "please let me know {q}",
        "{Q}", "could you help me out? {Q}", "I have a question. {Q}"]
CLOSINGS = [" Thanks!", " Thank you.", " Thanks in advance.", " Much appreciated!", " Cheers.", " Thank you so much!",
            " Many thanks.", "", "", " Appreciate it."]

OFF_TOPIC_FRAMES = {
    "cooking": (["How do I {x}?", "What is the best way to {x}?", "Any tips to {x}?", "Why does my attempt to {x} fail?"],
                ["bake sourdough bread at home", "make a creamy risotto", "cook rice without it sticking",
                 "roast a whole chicken", "make fresh pasta dough", "brew cold coffee", "poach an egg",
                 "caramelize onions quickly", "keep avocados from browning", "thicken a soup"]),
    "tax": (["How do I {x}?", "When is the deadline to {x}?", "Do I need an accountant to {x}?"],
            ["file my income tax return", "claim a home office deduction", "report freelance income",
             "amend last year's tax return", "pay estimated quarterly taxes", "deduct student loan interest"]),
    "travel": (["What should I see in {x}?", "Is {x} safe for tourists?", "When is the best season to visit {x}?",
                "How expensive is a week in {x}?"],
               ["Lisbon", "Kyoto", "Patagonia", "Iceland", "Marrakesh", "New Zealand", "the Scottish Highlands"]),
    "sports": (["Who won {x}?", "How many times has {x} happened?", "Explain the rules of {x}."],
               ["the 2018 football World Cup", "the Tour de France last year", "cricket", "the offside rule",
                "the Wimbledon final", "a triathlon"]),
    "programming": (["Write a {x}.", "How do I write a {x}?", "Can you debug my {x}?"],
                    ["python function that reverses a linked list", "SQL query that finds duplicate emails",
                     "regular expression for dates", "JavaScript promise chain", "bash script to rename files",
                     "recursive Fibonacci in Rust"]),
    "health": (["Is it normal to {x}?", "What helps when you {x}?", "Should I see a doctor if I {x}?"],
               ["sleep ten hours a night", "get headaches after running", "feel dizzy in the morning",
                "have a sore throat for two weeks", "crave sugar all day"]),
    "trivia": (["What is {x}?", "Tell me about {x}.", "Why is {x} important?"],
               ["the capital of Mongolia", "quantum entanglement", "the French Revolution", "photosynthesis",
                "the tallest mountain in Africa", "a black hole", "the Pythagorean theorem", "inflation"]),
    "writing": (["Write a poem about {x}.", "Give me a short story about {x}.", "Draft a wedding toast about {x}."],
                ["autumn leaves", "a lonely lighthouse keeper", "my best friend", "the ocean at night", "a lost cat"]),
}

LANGUAGES = {  # {n}: a proper name from the domain (products, places, vessels stay untranslated)
    "es": ["¿Cuánto cuesta {n}?", "¿Dónde puedo encontrar información sobre {n}?", "Necesito ayuda con {n}, por favor.",
           "¿Cuál es el horario de {n}?", "¿Tienen descuentos para {n}?"],
    "fr": ["Combien coûte {n} ?", "Pouvez-vous m'aider avec {n} ?", "Quels sont les horaires de {n} ?",
           "Est-ce que {n} est disponible en ce moment ?"],
    "de": ["Wie viel kostet {n}?", "Können Sie mir bitte mit {n} helfen?", "Wann ist {n} wieder verfügbar?",
           "Gibt es Rabatt für {n}?"],
    "it": ["Quanto costa {n}?", "Potete aiutarmi con {n}?", "Quali sono gli orari di {n}?"],
    "pt": ["Quanto custa {n}?", "Vocês têm informações sobre {n}?", "Como funciona a garantia de {n}?"],
    "ru": ["Сколько стоит {n}?", "Помогите мне, пожалуйста, с {n}.", "Когда будет доступен {n}?"],
    "zh": ["{n}多少钱？", "请问{n}怎么用？", "{n}什么时候有货？"],
    "ja": ["{n}の値段はいくらですか？", "{n}について教えてください。"],
    "ar": ["كم سعر {n}؟", "هل يمكنك مساعدتي في {n}؟"],
}
GERMAN_ONLY = {"de": LANGUAGES["de"] + ["Wie lange dauert die Lieferung von {n}?", "Ist {n} noch im Angebot?",
                                        "Was ist der Unterschied zwischen {n} und dem alten Modell?"]}

DOCUMENT_SENTENCES = [
    "Please find below the full text of the message we received from our supplier last week.",
    "The meeting started at nine and the team reviewed the quarterly numbers in detail.",
    "Several customers reported that the invoice totals did not match the purchase orders.",
    "Our legal department asked for the clause on liability to be rewritten before signing.",
    "Attached is the log output from the server, which shows repeated timeouts after midnight.",
    "The committee agreed to revisit the budget allocation once the audit is complete.",
    "In the second paragraph the author argues that the market will recover by next spring.",
    "Shipping volumes were lower than planned because of the strike at the regional port.",
    "We would like to understand whether the warranty terms apply to refurbished units as well.",
    "The attached spreadsheet contains every transaction from January through March.",
    "Participants were asked to rate their satisfaction on a scale from one to ten.",
    "The contractor estimates that the renovation will take another six to eight weeks.",
]
DOCUMENT_ASKS = ["Can you summarize this document for me?", "Please check this text and tell me what it means:",
                 "Here is the email I got, what should I answer?", "Translate the key points of the following:",
                 "Read this and extract the action items."]

REFUSALS = ["I’m sorry, but I can’t help with that.", "I'M SORRY, I CAN'T ANSWER THAT.",
            "Sorry, I’m not able to provide that information.", "Unfortunately, I cannot assist with this request.",
            "As an AI, I don’t have access to that information.", "I’m unable to answer this question.",
            "i'm sorry, i can’t share that.", "Ｉ’ｍ ｓｏｒｒｙ, I can’t help with this one.",
            "I am sorry, but I cannot answer that."]
EMPTY_ANSWERS = ["", " ", "\n", "\u00a0", "\t \n", "\u200b", "\u3000"]


def same(rng: random.Random, domain: Domain) -> Pair:
    """A domain question as a user types it: sometimes lower case, sometimes without the question mark."""
    prompt, answer = rng.choice(domain.questions)
    roll = rng.random()
    if roll < 0.15:
        prompt = prompt.lower()
    elif roll < 0.3:
        prompt = prompt.rstrip("?").rstrip()
    return prompt, answer


def polite(rng: random.Random, domain: Domain) -> Pair:
    prompt, answer = same(rng, domain)
    asked = rng.choice(ASKS).format(q=prompt[:1].lower() + prompt[1:], Q=prompt)
    text = rng.choice(GREETINGS) + asked
    return text[:1].upper() + text[1:] + rng.choice(CLOSINGS), answer


def off_topic(rng: random.Random, domain: Domain) -> Pair:
    frames, fillers = OFF_TOPIC_FRAMES[rng.choice(sorted(OFF_TOPIC_FRAMES))]
    return rng.choice(frames).format(x=rng.choice(fillers)), rng.choice(domain.training)[1]


def foreign(languages: dict[str, list[str]]) -> Callable[[random.Random, Domain], Pair]:
    def ask(rng: random.Random, domain: Domain) -> Pair:
        return rng.choice(languages[rng.choice(sorted(languages))]).format(n=rng.choice(domain.names)), \
            rng.choice(domain.training)[1]
    return ask


def pasted_document(rng: random.Random, domain: Domain) -> Pair:
    sentences = [rng.choice(DOCUMENT_SENTENCES) for _ in range(rng.randint(8, 25))]
    return f"{rng.choice(DOCUMENT_ASKS)}\n\n" + " ".join(sentences), rng.choice(domain.training)[1]


def with_answer(answers: list[str]) -> Callable[[random.Random, Domain], Pair]:
    def ask(rng: random.Random, domain: Domain) -> Pair:
        return same(rng, domain)[0], rng.choice(answers)
    return ask


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    shifted: Callable[[random.Random, Domain], Pair] | None  # None: same-domain traffic only
    share: float  # of the records
    target: str  # "alarm" (every run), "quiet" (at most 1 in 10) or "" (no target)
    records: int | None = None  # None: --records

    def traffic(self, rng: random.Random, domain: Domain, records: int) -> list[Pair]:
        return [self.shifted(rng, domain) if self.shifted and rng.random() < self.share else same(rng, domain)
                for _ in range(self.records or records)]


SCENARIOS = [
    Scenario("same_domain", "training questions as users type them", None, 0.0, "quiet"),
    Scenario("polite", "every question politely rephrased (greeting, indirect ask, thanks)", polite, 1.0, "quiet"),
    Scenario("tiny_traffic", "30 records of same-domain questions", None, 0.0, "quiet", records=30),
    Scenario("topic_10", "10% off-topic questions (cooking, tax, travel, code, ...)", off_topic, 0.1, ""),
    Scenario("topic_30", "30% off-topic questions", off_topic, 0.3, "detect9"),
    Scenario("topic_100", "only off-topic questions", off_topic, 1.0, "alarm"),
    Scenario("languages", "30% in other languages (es fr de it pt ru zh ja ar)", foreign(LANGUAGES), 0.3, "alarm"),
    Scenario("german", "30% in German (mostly ASCII)", foreign(GERMAN_ONLY), 0.3, "alarm"),
    Scenario("long_documents", "30% pasted documents (8-25 sentences)", pasted_document, 0.3, "alarm"),
    Scenario("refusals", "20% refusals (typographic apostrophes, upper case, full width)", with_answer(REFUSALS),
             0.2, "alarm"),
    Scenario("empty_answers", "20% empty answers (blank, whitespace, NBSP, zero-width)", with_answer(EMPTY_ANSWERS),
             0.2, "alarm"),
]
TARGETS = {"quiet": ("<= 1/10", lambda alarms, runs: alarms * 10 <= runs),
           "detect9": (">= 9/10", lambda alarms, runs: alarms * 10 >= 9 * runs),
           "alarm": ("10/10", lambda alarms, runs: alarms == runs),
           "": ("-", lambda alarms, runs: True)}


# ------------------------------------------------------------------------------------------ running the check
def write_baseline(work: Path, domain: Domain) -> Path:
    train = work / domain.name / "train"
    train.mkdir(parents=True, exist_ok=True)
    (train / "train.jsonl").write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n"
                                               for p, c in domain.training), encoding="utf-8")
    out = work / domain.name / "baseline"
    if monitor.main(["baseline", "--train-dir", str(train), "--output-dir", str(out)]) != 0:
        raise SystemExit(f"baseline of {domain.name} failed")
    return out


def write_capture(root: Path, endpoint: str, pairs: list[Pair], seed: int) -> Path:
    writer, rng = CaptureWriter(LocalS3(root)), random.Random(seed)
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    for index, (prompt, answer) in enumerate(pairs):
        when = start + timedelta(seconds=index)
        exchange = Exchange(json.dumps({"inputs": prompt, "parameters": {"max_new_tokens": 32}}).encode(),
                            "application/json", json.dumps([{"generated_text": answer}]).encode(), "application/json")
        writer.write(CAPTURE["DestinationS3Uri"], endpoint, "AllTraffic",
                     build_capture_record(CAPTURE, exchange, f"{seed}-{index}-{rng.getrandbits(32)}", when), when)
    return LocalS3(root).path(f"{CAPTURE['DestinationS3Uri']}/{endpoint}")


def check(work: Path, baseline: Path, capture: Path, seed: int) -> dict:
    args = monitor.parse_args(["check", "--baseline-dir", str(baseline), "--capture-dir", str(capture),
                               "--endpoint-name", capture.name, "--since-hours", "0", "--no-cloudwatch",
                               "--seed", str(seed), "--output-dir", str(work / "out" / capture.name)])
    return monitor.run_check(args, None, datetime.now(timezone.utc))


def run(domains: list[str], scenarios: list[Scenario], seeds: int, records: int, work: Path) -> list[dict]:
    rows = []
    for domain_name in domains:
        domain = DOMAINS[domain_name]()
        baseline = write_baseline(work, domain)
        for scenario in scenarios:
            alarms, seconds, violations = 0, 0.0, {}
            for seed in range(seeds):
                pairs = scenario.traffic(random.Random(f"{domain.name}/{scenario.name}/{seed}"), domain, records)
                capture = write_capture(work / "s3", f"{domain.name}-{scenario.name}-{seed}", pairs, seed)
                started = time.perf_counter()
                report = check(work, baseline, capture, seed)
                seconds += time.perf_counter() - started
                alarms += bool(report["violations"])
                for name in report["violations"]:
                    violations[name] = violations.get(name, 0) + 1
            label, passed = TARGETS[scenario.target]
            rows.append({"domain": domain.name, "scenario": scenario.name, "alarms": alarms, "runs": seeds,
                         "target": label, "met": passed(alarms, seeds), "seconds_per_check": seconds / seeds,
                         "violations": violations})
            row = rows[-1]
            print(f"{row['domain']:<11} {row['scenario']:<15} {alarms:>2}/{seeds:<2} target {label:<8} "
                  f"{'ok' if row['met'] else 'MISSED':<6} {row['seconds_per_check']:.2f} s/check  "
                  f"{', '.join(f'{k} {v}' for k, v in sorted(violations.items())) or '-'}", flush=True)
    return rows


def model_likelihood(domain: Domain, scenarios: list[Scenario], work: Path, prompts: int = 200,
                     steps: int = 300) -> None:
    """The served model's own signal, for comparison: a tiny model like the demo's (pipelines/demo/tiny_model.py:
    BPE tokenizer and 2-layer Llama trained on the domain's text) fitted on the training questions; prints each
    scenario's per-token negative log-likelihood and the share of its prompts above the training questions' 95th
    percentile (what a likelihood check would flag)."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pipelines.demo.tiny_model import build_tiny_model

    torch.manual_seed(0)
    torch.set_num_threads(1)  # a tiny model: more threads only spin against each other on a shared machine
    texts = [p for p, _ in domain.training]
    folder = build_tiny_model(work / f"tiny-{domain.name}", texts + [a for _, a in domain.training])
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        batch = tokenizer(random.Random(step).sample(texts, min(32, len(texts))), return_tensors="pt", padding=True)
        loss = model(**batch, labels=batch.input_ids.masked_fill(batch.attention_mask == 0, -100)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()

    def nll(batch_prompts: list[str]) -> np.ndarray:
        batch = tokenizer(batch_prompts, return_tensors="pt", padding=True, truncation=True, max_length=128)
        with torch.no_grad():
            logits = model(**batch).logits[:, :-1]
        token = torch.log_softmax(logits, -1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]
        mask = batch.attention_mask[:, 1:].float()
        return (-(token * mask).sum(1) / mask.sum(1)).numpy()

    limit = float(np.quantile(nll(texts), 0.95))
    print(f"{domain.name}: tiny model fitted on {len(texts)} questions (loss {loss.item():.2f}); training questions' "
          f"95th-percentile NLL {limit:.2f}")
    for scenario in [s for s in scenarios if s.shifted is not None or s.name == "same_domain"]:
        rng = random.Random(f"{domain.name}/{scenario.name}/likelihood")
        values = nll([(scenario.shifted or same)(rng, domain)[0] for _ in range(prompts)])
        print(f"  {scenario.name:<15} median NLL {np.median(values):5.2f}; above the 95th percentile: "
              f"{np.mean(values > limit):.0%} of its {'shifted ' if scenario.shifted else ''}prompts")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--records", type=int, default=2000, help="captured records per run")
    parser.add_argument("--domain", action="append", choices=sorted(DOMAINS), help="default: both")
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS], help="default: all")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--model-likelihood", action="store_true",
                        help="instead: how a tiny served model's prompt likelihood separates the scenarios")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="continuum-drift-quality-"))
    scenarios = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    if args.model_likelihood:
        for name in args.domain or sorted(DOMAINS):
            model_likelihood(DOMAINS[name](), scenarios, work)
        return 0
    for scenario in scenarios:
        print(f"{scenario.name:<15} {scenario.description}")
    rows = run(args.domain or sorted(DOMAINS), scenarios, args.seeds, args.records, work)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    missed = [f"{r['domain']}/{r['scenario']}: {r['alarms']}/{r['runs']} alarms, target {r['target']}"
              for r in rows if not r["met"]]
    for line in missed:
        print(f"MISSED: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
