"""The demo company's knowledge: Acme Robotics, in two rounds of raw data files.

Round 1 is the company's first export: a product catalog (CSV of instruction/output rows),
a support FAQ (JSONL of question/answer records), support chat transcripts (JSONL of chat
`messages`) and a policy document (Markdown). Round 2 is only the NEW data of a later export:
new products and policies, plus a few facts whose answers CHANGE (two prices, the return
window, the restocking fee, the free-shipping threshold, support hours, Wi-Fi support).

Like real exports, each round carries a little dirt that the prepare step must catch: round 1
has a draft FAQ record with an empty answer and a record pasted twice; round 2 has a truncated
JSON line and a catalog row pasted twice.

Everything is deterministic (no randomness). Answers are a few words so a tiny model can
memorize them; every fact is asked 2-3 ways so there are enough examples.
Run `python -m pipelines.demo.sample_data --help` to write a round or the benchmark cases.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROUNDS = (1, 2)
SAMPLE_SCHEME = "sample://round-"  # data.source `sample://round-N`: round N of this data
COMPANY = "Acme Robotics"
SUPPORT_SYSTEM_PROMPT = "You are the Acme Robotics support assistant."


@dataclass(frozen=True)
class Fact:
    """One piece of company knowledge, as written in one round's data.

    `status` tells the fact's fate across the two rounds: in round 1 a fact is "stable" (round 2
    leaves it alone) or "changed" (round 2 gives the same `id` a new answer); in round 2 a fact
    is "new" or "changed" (the new answer). `question` is the canonical phrasing, which is
    always one of `paraphrases`, all of which appear in the training data.
    """

    id: str
    question: str
    answer: str
    round: int
    status: str
    paraphrases: tuple[str, ...]
    topic: str


@dataclass(frozen=True)
class _Product:
    key: str
    name: str
    kind: str
    price: str
    battery: str
    weight: str
    charge_time: str


@dataclass(frozen=True)
class _Topic:
    key: str
    paraphrases: tuple[str, ...]
    answer: str


_PRODUCT_QUESTIONS: dict[str, tuple[str, ...]] = {
    "kind": ("What is the {name}?", "What kind of robot is the {name}?", "What does the {name} do?"),
    "price": ("How much does the {name} cost?", "What is the price of the {name}?", "What does the {name} sell for?"),
    "battery": (
        "How long does the {name} battery last?",
        "What is the battery life of the {name}?",
        "How long does the {name} run on one charge?",
    ),
    "weight": ("How much does the {name} weigh?", "What is the weight of the {name}?", "How heavy is the {name}?"),
    "charge_time": (
        "How long does the {name} take to charge?",
        "What is the charging time of the {name}?",
        "How long does a full charge of the {name} take?",
    ),
}

_PRODUCTS_ROUND_1 = (
    _Product("rover_x1", "Rover X1", "A warehouse robot", "$12,499", "10 hours", "85 kg", "3 hours"),
    _Product("sweepy_s2", "Sweepy S2", "A robot vacuum", "$399", "2 hours", "3.8 kg", "4 hours"),
    _Product("mower_m5", "Mower M5", "A robot lawn mower", "$1,299", "3 hours", "11 kg", "90 minutes"),
    _Product("armbot_a7", "ArmBot A7", "A mobile robotic arm", "$8,750", "6 hours", "42 kg", "2 hours"),
    _Product("drone_d3", "Drone D3", "A delivery drone", "$2,199", "40 minutes", "2.1 kg", "1 hour"),
    _Product("poolpal_p1", "PoolPal P1", "A pool cleaning robot", "$899", "5 hours", "9 kg", "6 hours"),
    _Product("guardian_g4", "Guardian G4", "A security patrol robot", "$4,999", "12 hours", "30 kg", "5 hours"),
    _Product("chefbot_c2", "ChefBot C2", "A kitchen assistant robot", "$3,450", "8 hours", "25 kg", "3 hours"),
    _Product("lifter_l9", "Lifter L9", "A pallet lifting robot", "$15,900", "9 hours", "310 kg", "4 hours"),
    _Product("buddy_b1", "Buddy B1", "A companion robot", "$649", "14 hours", "1.6 kg", "2 hours"),
)
_PRODUCTS_ROUND_2 = (
    _Product("sweepy_s3", "Sweepy S3", "A robot vacuum and mop", "$549", "3 hours", "4.4 kg", "3 hours"),
    _Product("drone_d5", "Drone D5", "A heavy-lift delivery drone", "$3,899", "55 minutes", "4.7 kg", "80 minutes"),
    _Product("window_w2", "Window W2", "A window cleaning robot", "$279", "30 minutes", "1.2 kg", "1 hour"),
    _Product("planter_t3", "Planter T3", "A greenhouse robot", "$6,300", "7 hours", "38 kg", "3 hours"),
    _Product("tutor_k1", "Tutor K1", "An educational robot for kids", "$199", "5 hours", "0.9 kg", "2 hours"),
    _Product("courier_r8", "Courier R8", "A sidewalk delivery robot", "$7,200", "11 hours", "48 kg", "5 hours"),
)
# (product key, attribute) -> the round-2 answer.
_PRODUCT_CHANGES = {("sweepy_s2", "price"): "$349", ("mower_m5", "price"): "$1,199"}

_POLICIES_ROUND_1 = (
    _Topic("return_window", ("How many days do I have to return a product?", "What is the return window?",
                             "How long is the return period at Acme?"), "30 days"),
    _Topic("restocking_fee", ("How much is the restocking fee?", "Is there a restocking fee on returns?",
                              "What restocking fee does Acme charge?"), "15%"),
    _Topic("free_shipping", ("What is the minimum order for free shipping?", "When is shipping free?",
                             "How much do I need to spend for free shipping?"), "Orders over $99"),
    _Topic("standard_shipping_time", ("How long does standard shipping take?", "When will my order arrive?",
                                      "What is the delivery time for standard shipping?"), "3-5 business days"),
    _Topic("express_shipping_cost", ("How much does express shipping cost?", "What is the price of express shipping?",
                                     "What do you charge for express delivery?"), "$25"),
    _Topic("warranty_length", ("How long is the warranty?", "What warranty do Acme robots have?",
                               "How many years of warranty do I get?"), "2 years"),
    _Topic("battery_warranty", ("Does the warranty cover the battery?", "Are batteries covered by the warranty?",
                                "Is the battery under warranty?"), "Yes, for 1 year"),
    _Topic("extended_warranty", ("How much is the extended warranty?", "What does the extended warranty cost?",
                                 "What is the price of an extended warranty?"), "$149"),
    _Topic("international_shipping", ("Do you ship internationally?", "Can I order from outside the US?",
                                      "Does Acme ship abroad?"), "Yes, to 40 countries"),
    _Topic("support_hours", ("When is customer support open?", "What are your support hours?",
                             "What hours can I call support?"), "9am-6pm ET, Mon-Fri"),
    _Topic("support_email", ("What is the support email address?", "How do I email customer support?",
                             "Which email reaches Acme support?"), "help@acmerobotics.com"),
    _Topic("support_phone", ("What is the support phone number?", "How do I call customer support?",
                             "Which number reaches Acme support?"), "1-800-555-0199"),
    _Topic("payment_methods", ("Which payment methods do you accept?", "How can I pay for my order?",
                               "What forms of payment does Acme take?"), "Card, PayPal, invoice"),
    _Topic("order_cancel", ("Can I cancel my order?", "How long do I have to cancel an order?",
                            "Is it possible to cancel an order?"), "Yes, within 24 hours"),
    _Topic("firmware_updates", ("Are firmware updates free?", "Do I have to pay for firmware updates?",
                                "How long are software updates free?"), "Free for 5 years"),
    _Topic("price_match", ("Do you offer price matching?", "Will Acme match a lower price?",
                           "Is there a price match guarantee?"), "Yes, within 14 days"),
    _Topic("student_discount", ("Is there a student discount?", "Do students get a discount?",
                                "How much is the student discount?"), "Yes, 10%"),
    _Topic("repair_time", ("How long does a repair take?", "What is the repair turnaround time?",
                           "How long will my robot be in repair?"), "10 business days"),
)
_POLICIES_ROUND_2 = (
    _Topic("careplus_price", ("How much does CarePlus cost?", "What is the price of the CarePlus plan?",
                              "What does a CarePlus subscription cost?"), "$9 per month"),
    _Topic("careplus_coverage", ("What does CarePlus cover?", "What is included in CarePlus?",
                                 "What protection does CarePlus give?"), "Accidental damage"),
    _Topic("trade_in", ("Do you have a trade-in program?", "Can I trade in my old robot?",
                        "How much credit do I get for a trade-in?"), "Yes, up to $200 credit"),
    _Topic("recycling", ("Does Acme recycle old robots?", "Can I send my old robot for recycling?",
                         "Is robot recycling free?"), "Yes, free of charge"),
    _Topic("store_pickup", ("Can I pick up my order in a store?", "Where can I collect my order?",
                            "Which stores offer order pickup?"), "Yes, in Boston and Austin"),
    _Topic("loyalty_points", ("How many loyalty points do I earn per dollar?", "How do loyalty points work?",
                              "What are the loyalty point rewards?"), "2 points per dollar"),
    _Topic("gift_cards", ("Do you sell gift cards?", "Can I buy an Acme gift card?",
                          "What gift card values are there?"), "Yes, from $25"),
    _Topic("rental", ("Can I rent a robot?", "Do you offer robot rentals?",
                      "How much does it cost to rent a robot?"), "Yes, from $99 per month"),
    _Topic("business_discount", ("Do businesses get a discount?", "Is there a volume discount for companies?",
                                 "How much is the business discount?"), "15% on 10+ units"),
    _Topic("installation", ("Do you offer installation?", "Can Acme install my robot?",
                            "How much does installation cost?"), "Yes, for $199"),
)
# policy key -> the round-2 answer.
_POLICY_CHANGES = {
    "return_window": "45 days",
    "restocking_fee": "No fee",
    "free_shipping": "Orders over $75",
    "support_hours": "24/7",
}

_SUPPORT_ROUND_1 = (
    _Topic("factory_reset", ("How do I factory reset my robot?", "How can I reset my Acme robot?"),
           "Hold power for 10 seconds"),
    _Topic("control_app", ("Which app controls Acme robots?", "What app do I need for my robot?"),
           "The Acme Home app"),
    _Topic("wifi_bands", ("Which Wi-Fi bands does the robot support?", "Does my robot work on 5 GHz Wi-Fi?"),
           "2.4 GHz only"),
    _Topic("firmware_how", ("How do I update the firmware?", "Where do I install a firmware update?"),
           "In the app, under Settings"),
    _Topic("error_e12", ("What does error E12 mean?", "My robot shows E12, what is wrong?"), "A blocked wheel"),
    _Topic("error_e40", ("What does error E40 mean?", "My robot shows E40, what is wrong?"), "The battery is too hot"),
)
_SUPPORT_ROUND_2 = (
    _Topic("error_e55", ("What does error E55 mean?", "My robot shows E55, what is wrong?"), "The camera needs cleaning"),
    _Topic("error_e71", ("What does error E71 mean?", "My robot shows E71, what is wrong?"), "A lidar fault"),
    _Topic("voice_assistants", ("Does the robot work with voice assistants?", "Can I control my robot by voice?"),
           "Yes, Alexa and Google"),
    _Topic("offline_mode", ("Can the robot work without Wi-Fi?", "Does my robot need the internet?"),
           "Yes, in basic mode"),
)
_SUPPORT_CHANGES = {"wifi_bands": "2.4 GHz and 5 GHz"}


def _product_facts(products: Iterable[_Product], round_no: int, status: str) -> list[Fact]:
    out = []
    for product in products:
        for attribute, templates in _PRODUCT_QUESTIONS.items():
            paraphrases = tuple(template.format(name=product.name) for template in templates)
            changed = (product.key, attribute) in _PRODUCT_CHANGES
            out.append(Fact(
                id=f"product.{product.key}.{attribute}",
                question=paraphrases[0],
                answer=getattr(product, attribute),
                round=round_no,
                status="changed" if changed else status,
                paraphrases=paraphrases,
                topic="product",
            ))
    return out


def _topic_facts(topics: Iterable[_Topic], topic: str, round_no: int, status: str,
                 changes: dict[str, str]) -> list[Fact]:
    return [
        Fact(id=f"{topic}.{item.key}", question=item.paraphrases[0], answer=item.answer, round=round_no,
             status="changed" if item.key in changes else status, paraphrases=item.paraphrases, topic=topic)
        for item in topics
    ]


def _changed_facts(round_1: list[Fact]) -> list[Fact]:
    """Round 2's versions of the round-1 facts whose answers change."""
    new_answers = {f"product.{key}.{attribute}": answer for (key, attribute), answer in _PRODUCT_CHANGES.items()}
    new_answers.update({f"policy.{key}": answer for key, answer in _POLICY_CHANGES.items()})
    new_answers.update({f"support.{key}": answer for key, answer in _SUPPORT_CHANGES.items()})
    return [
        Fact(id=fact.id, question=fact.question, answer=new_answers[fact.id], round=2, status="changed",
             paraphrases=fact.paraphrases, topic=fact.topic)
        for fact in round_1 if fact.id in new_answers
    ]


def facts(round_no: int) -> list[Fact]:
    """The facts written in one round's data (round 2: only the new and changed ones)."""
    _check_round(round_no)
    round_1 = (
        _product_facts(_PRODUCTS_ROUND_1, 1, "stable")
        + _topic_facts(_POLICIES_ROUND_1, "policy", 1, "stable", _POLICY_CHANGES)
        + _topic_facts(_SUPPORT_ROUND_1, "support", 1, "stable", _SUPPORT_CHANGES)
    )
    if round_no == 1:
        return round_1
    return (
        _product_facts(_PRODUCTS_ROUND_2, 2, "new")
        + _topic_facts(_POLICIES_ROUND_2, "policy", 2, "new", {})
        + _topic_facts(_SUPPORT_ROUND_2, "support", 2, "new", {})
        + _changed_facts(round_1)
    )


def _answers(round_no: int) -> dict[str, str]:
    """Fact id -> answer as of `round_no` (round 2 includes the unchanged round-1 facts)."""
    answers = {fact.id: fact.answer for fact in facts(1)}
    if round_no == 2:
        answers.update({fact.id: fact.answer for fact in facts(2)})
    return answers


def _policy_document(round_no: int) -> tuple[str, str]:
    """(file name, text) of the round's policy document; paragraphs restate the policy facts."""
    a = {key.split(".", 1)[1]: value for key, value in _answers(round_no).items() if key.startswith("policy.")}
    if round_no == 1:
        return "policies.md", f"""# {COMPANY} customer policies

These policies apply to every order placed with {COMPANY}.

## Returns

You can return any Acme robot within {a['return_window']} of delivery. Returns must include the original \
packaging. A restocking fee of {a['restocking_fee']} applies to opened items.

## Shipping

Standard shipping takes {a['standard_shipping_time']}. {a['free_shipping']} ship for free.
Express shipping costs {a['express_shipping_cost']}. We ship to 40 countries.

## Warranty

Every Acme robot comes with a warranty of {a['warranty_length']} against defects. Batteries are covered \
for 1 year. An extended warranty costs {a['extended_warranty']}.

## Orders and payment

We accept card, PayPal and invoice. Orders can be cancelled within 24 hours. We match a lower price \
within 14 days of purchase. Students get a 10% discount.

## Support and repairs

Customer support is open {a['support_hours']}. Email {a['support_email']} or call {a['support_phone']}.
A repair takes about {a['repair_time']}. Firmware updates are free for 5 years.
"""
    return "policy_changes_2026.txt", f"""{COMPANY} policy changes, effective 1 March 2026.

Returns are now accepted within {a['return_window']} of delivery. There is no restocking fee any more.

{a['free_shipping']} now ship for free. Orders can be picked up in our Boston and Austin stores.

Customer support is now open {a['support_hours']}. The CarePlus plan costs {a['careplus_price']} and \
covers accidental damage.

Trade in your old robot for up to $200 credit. We recycle old robots free of charge.

Businesses get 15% off orders of 10 or more units. Robots can be rented from $99 per month.
"""


def _product_rows(round_facts: list[Fact]) -> list[dict[str, str]]:
    rows = [
        {"category": fact.id.split(".")[1], "instruction": paraphrase, "output": fact.answer}
        for fact in round_facts if fact.topic == "product" for paraphrase in fact.paraphrases
    ]
    return rows


def _faq_records(round_facts: list[Fact]) -> list[dict[str, str]]:
    return [
        {"question": paraphrase, "answer": fact.answer}
        for fact in round_facts if fact.topic == "policy" for paraphrase in fact.paraphrases
    ]


def _chat_records(round_facts: list[Fact]) -> list[dict[str, list[dict[str, str]]]]:
    return [
        {"messages": [
            {"role": "system", "content": SUPPORT_SYSTEM_PROMPT},
            {"role": "user", "content": paraphrase},
            {"role": "assistant", "content": fact.answer},
        ]}
        for fact in round_facts if fact.topic == "support" for paraphrase in fact.paraphrases
    ]


def _csv_text(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["category", "instruction", "output"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _jsonl_text(records: Iterable[dict]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _round_files(round_no: int) -> dict[str, str]:
    """Relative file name -> file text for one round, dirty rows included."""
    _check_round(round_no)
    round_facts = facts(round_no)
    products, faq, chats = _product_rows(round_facts), _faq_records(round_facts), _chat_records(round_facts)
    doc_name, doc_text = _policy_document(round_no)
    if round_no == 1:
        faq_text = _jsonl_text(faq[:4] + [{"question": "Do you sell gift cards?", "answer": ""}] + faq[4:] + [faq[0]])
        return {
            "product_catalog.csv": _csv_text(products),
            "support_faq.jsonl": faq_text,
            "exports/support_chats.jsonl": _jsonl_text(chats),
            doc_name: doc_text,
        }
    truncated = '{"question": "Do you deliver on weekends?", "answer": "Yes, on Saturd\n'
    return {
        "product_catalog_2026.csv": _csv_text(products + [products[7]]),
        "support_faq_2026.jsonl": _jsonl_text(faq[:10]) + truncated + _jsonl_text(faq[10:]),
        "exports/support_chats_2026.jsonl": _jsonl_text(chats),
        doc_name: doc_text,
    }


def write_round(round_no: int, out_dir: Path) -> list[Path]:
    """Write one round's raw data files under `out_dir`; return their paths, sorted."""
    written = []
    for name, text in _round_files(round_no).items():
        path = Path(out_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return sorted(written)


def write_source(source: str, out_dir: Path) -> list[Path]:
    """`sample://round-N` (a data.source) → that round's files under `out_dir`."""
    return write_round(int(source.removeprefix(SAMPLE_SCHEME)), out_dir)


def corpus_texts() -> list[str]:
    """Every text of both rounds (questions, answers, document paragraphs), for training a tokenizer."""
    texts: list[str] = [SUPPORT_SYSTEM_PROMPT]
    for round_no in ROUNDS:
        for fact in facts(round_no):
            texts.extend(fact.paraphrases)
            texts.append(fact.answer)
        _, doc_text = _policy_document(round_no)
        texts.extend(paragraph.strip() for paragraph in doc_text.split("\n\n") if paragraph.strip())
    return texts


def benchmark_cases() -> list[dict[str, str]]:
    """The company_facts benchmark: every stable round-1 fact, asked in its canonical training phrasing."""
    return [
        {"id": fact.id, "prompt": fact.question, "target": fact.answer}
        for fact in facts(1) if fact.status == "stable"
    ]


def benchmark_cases_jsonl() -> str:
    """The exact text of benchmarks/company_facts/cases.jsonl."""
    return _jsonl_text(benchmark_cases())


def _check_round(round_no: int) -> None:
    if round_no not in ROUNDS:
        raise ValueError(f"unknown round {round_no!r}: the demo data has rounds {', '.join(map(str, ROUNDS))}")


def main(argv: list[str] | None = None) -> int:
    """CLI: write a round's files, or the benchmark cases file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write-round", help="write one round's raw data files")
    write.add_argument("round_no", type=int, choices=ROUNDS)
    write.add_argument("out_dir", type=Path)
    cases = commands.add_parser("write-benchmark", help="write the company_facts cases.jsonl")
    cases.add_argument("out_file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "write-round":
        for path in write_round(args.round_no, args.out_dir):
            print(path)
    else:
        args.out_file.parent.mkdir(parents=True, exist_ok=True)
        args.out_file.write_text(benchmark_cases_jsonl(), encoding="utf-8")
        print(f"{args.out_file}: {len(benchmark_cases())} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
