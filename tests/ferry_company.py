"""A second fictional company for tests and benchmarks: Tidewater Ferries, a coastal ferry operator.

Unlike the demo's Acme Robotics, every fact is written ONCE (one phrasing, as companies write FAQs),
in the formats a company exports: round 1 is a CSV FAQ (question,answer) and a JSONL schedule
(prompt/completion). Round 2 is a delta export: only new facts and facts whose answer changed; rounds 3-5 (LATER_ROUNDS, for the
continual-learning benchmark) are delta exports too, some changing an answer a second time.
`junk_export` is a broken export (placeholder answers, answers repeating the question, and most of
round 1 contradicted) that the prepare step must stop. Deterministic; no randomness.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

COMPANY = "Tidewater Ferries"


@dataclass(frozen=True)
class Fact:
    """One fact as exported in one round; `status`: stable | changed (round 1) or new | changed (round 2)."""

    id: str
    question: str
    answer: str
    status: str


_ROUTES = [("Port Alder", "Gull Island", "6:15 am", "40 minutes", "$18"),
           ("Port Alder", "Kelp Harbor", "7:05 am", "1 hour 10 minutes", "$26"),
           ("Gull Island", "Seal Point", "8:30 am", "25 minutes", "$12"),
           ("Kelp Harbor", "Brine Bay", "6:50 am", "55 minutes", "$22"),
           ("Seal Point", "Osprey Cove", "9:20 am", "35 minutes", "$15"),
           ("Brine Bay", "Port Alder", "5:45 am", "2 hours", "$31")]
_VESSELS = [("MV Cormorant", "420 passengers", "1998"), ("MV Heron", "310 passengers", "2005"),
            ("MV Puffin", "180 passengers", "2014"), ("MV Tern", "520 passengers", "2021")]
_POLICIES = [
    ("pets", "Can I bring my dog on the ferry?", "Yes, dogs on a leash ride free on the outer deck."),
    ("bikes", "How much does it cost to bring a bicycle?", "Bicycles cost $4 each way."),
    ("luggage", "How many bags can a foot passenger bring?", "Two bags up to 23 kg each."),
    ("checkin", "How early should I arrive before a sailing?", "Foot passengers 20 minutes, cars 45 minutes."),
    ("refund", "Can I get a refund if I cancel my booking?", "Full refund up to 24 hours before sailing."),
    ("children", "Do children pay full fare?", "Children under 5 travel free; ages 5 to 12 pay half fare."),
    ("seniors", "Is there a senior discount?", "Passengers over 65 get 30 percent off."),
    ("wifi", "Is there Wi-Fi on board?", "Free Wi-Fi on the MV Tern and MV Heron only."),
    ("food", "Can I buy food on the ferry?", "The galley sells hot meals on crossings over 45 minutes."),
    ("cars", "What is the fare for a car?", "Cars cost $48 each way, driver included."),
    ("parking", "Where can I park at Port Alder terminal?", "The long-stay lot on Quay Street, $9 per day."),
    ("lost", "How do I report lost property?", "Email lostandfound@tidewaterferries.example within 30 days."),
    ("wheelchair", "Are the ferries wheelchair accessible?", "Yes, every vessel has a lift and accessible restrooms."),
    ("cabins", "Can I book a private cabin?", "Cabins are bookable on the Brine Bay to Port Alder route only."),
    ("loyalty", "What is the Tidewater Tides loyalty program?", "Every tenth crossing is free for members."),
    ("changes", "How much does it cost to change a booking?", "Changes are free up to 2 hours before sailing."),
    ("weather", "What happens if a sailing is cancelled for weather?", "You can rebook free or get a full refund."),
    ("kayaks", "Can I bring a kayak?", "Kayaks travel on the car deck for $10."),
]
_NEW_ROUTES = [("Osprey Cove", "Gull Island", "10:40 am", "30 minutes", "$14"),
               ("Kelp Harbor", "Seal Point", "11:15 am", "50 minutes", "$19")]
_NEW_POLICIES = [
    ("ebikes", "Can I bring an electric bike?", "E-bikes travel on the car deck for $6."),
    ("drones", "Can I fly a drone from the ferry?", "No, drones are not allowed on board."),
    ("student", "Is there a student discount?", "Students with a valid card get 20 percent off."),
    ("charging", "Can I charge my electric car on board?", "The MV Tern has four car chargers."),
]
_CHANGED = {  # round-1 id -> round-2 answer
    "fare-port-alder-gull-island": "$21",
    "fare-kelp-harbor-brine-bay": "$25",
    "first-seal-point-osprey-cove": "9:50 am",
    "policy-bikes": "Bicycles cost $5 each way.",
    "policy-checkin": "Foot passengers 30 minutes, cars 60 minutes.",
    "policy-changes": "Changes cost $5 up to 2 hours before sailing.",
    "policy-wifi": "Free Wi-Fi on every vessel.",
    "vessel-mv-puffin-capacity": "200 passengers",
}

# Rounds 3-5 (the continual-learning benchmark's later exports): each a delta export of new facts and
# changed answers; some facts change a second time, and some changed facts were new in an earlier round.
LATER_ROUNDS = {
    3: {"routes": [("Brine Bay", "Gull Island", "12:30 pm", "45 minutes", "$20")],
        "vessels": [("MV Gannet", "360 passengers", "2024")],
        "policies": [("surfboards", "Can I bring a surfboard?", "Surfboards travel free in the rack on deck."),
                     ("groups", "Is there a group discount?", "Groups of 10 or more get 15 percent off.")],
        "changed": {"fare-port-alder-gull-island": "$23",
                    "duration-brine-bay-port-alder": "1 hour 50 minutes",
                    "policy-pets": "Yes, dogs on a leash ride for $3 on the outer deck.",
                    "policy-food": "The galley sells hot meals on every crossing."}},
    4: {"routes": [("Seal Point", "Brine Bay", "1:10 pm", "1 hour 5 minutes", "$24")],
        "vessels": [],
        "policies": [("motorbikes", "What is the fare for a motorbike?", "Motorbikes cost $20 each way."),
                     ("alcohol", "Can I drink alcohol on board?", "Beer and wine are sold in the galley only."),
                     ("lockers", "Are there luggage lockers at the terminal?", "Lockers at Port Alder cost $5 per day.")],
        "changed": {"first-port-alder-kelp-harbor": "6:45 am",
                    "policy-seniors": "Passengers over 65 get 40 percent off.",
                    "vessel-mv-heron-capacity": "340 passengers",
                    "policy-ebikes": "E-bikes travel on the car deck for $8.",
                    "policy-checkin": "Foot passengers 30 minutes, cars 50 minutes."}},
    5: {"routes": [("Osprey Cove", "Port Alder", "3:20 pm", "1 hour 40 minutes", "$29")],
        "vessels": [("MV Skua", "260 passengers", "2026")],
        "policies": [("horses", "Can I bring a horse?", "Horses travel in trailers on the car deck for $60.")],
        "changed": {"fare-kelp-harbor-brine-bay": "$27",
                    "policy-parking": "The long-stay lot on Quay Street, $12 per day.",
                    "policy-wifi": "Free Wi-Fi on every vessel and at every terminal.",
                    "first-gull-island-seal-point": "8:15 am",
                    "policy-surfboards": "Surfboards travel in the rack on deck for $2."}},
}
ROUNDS = (1, 2, *LATER_ROUNDS)


def _slug(text: str) -> str:
    return "-".join("".join(ch.lower() if ch.isalnum() else " " for ch in text).split())


def _route_facts(routes: list[tuple[str, str, str, str, str]]) -> list[tuple[str, str, str]]:
    facts = []
    for start, end, first, duration, fare in routes:
        key = f"{_slug(start)}-{_slug(end)}"
        facts += [(f"first-{key}", f"When is the first ferry from {start} to {end}?", first),
                  (f"duration-{key}", f"How long is the crossing from {start} to {end}?", duration),
                  (f"fare-{key}", f"What is the adult fare from {start} to {end}?", fare)]
    return facts


def _vessel_facts(vessels: list[tuple[str, str, str]] = _VESSELS) -> list[tuple[str, str, str]]:
    return [fact for name, capacity, built in vessels for fact in (
        (f"vessel-{_slug(name)}-capacity", f"How many passengers can the {name} carry?", capacity),
        (f"vessel-{_slug(name)}-built", f"What year was the {name} built?", built))]


def _round1() -> list[tuple[str, str, str]]:
    return [*_route_facts(_ROUTES), *_vessel_facts(), *((f"policy-{key}", q, a) for key, q, a in _POLICIES)]


def facts(round_no: int) -> list[Fact]:
    """The facts exported in a round (round 2: new and changed only)."""
    if round_no == 1:
        return [Fact(i, q, a, "changed" if i in _CHANGED else "stable") for i, q, a in _round1()]
    if round_no == 2:
        changed = [Fact(i, q, _CHANGED[i], "changed") for i, q, _ in _round1() if i in _CHANGED]
        new = [*_route_facts(_NEW_ROUTES), *((f"policy-{key}", q, a) for key, q, a in _NEW_POLICIES)]
        return [*(Fact(i, q, a, "new") for i, q, a in new), *changed]
    if round_no in LATER_ROUNDS:
        spec = LATER_ROUNDS[round_no]
        new = [*_route_facts(spec["routes"]), *_vessel_facts(spec["vessels"]),
               *((f"policy-{key}", q, a) for key, q, a in spec["policies"])]
        earlier = current_answers(round_no - 1)
        changed = [Fact(i, earlier[i].question, answer, "changed") for i, answer in spec["changed"].items()]
        return [*(Fact(i, q, a, "new") for i, q, a in new), *changed]
    raise ValueError(f"Tidewater Ferries has rounds {', '.join(map(str, ROUNDS))}, not {round_no}")


def current_answers(round_no: int) -> dict[str, Fact]:
    """Every fact as it stands after `round_no` (round 2's answers override round 1's), by id."""
    known = {fact.id: fact for fact in facts(1)}
    for later in range(2, round_no + 1):
        known.update({fact.id: fact for fact in facts(later)})
    return known


def write_round(round_no: int, out_dir: Path) -> Path:
    """Round 1: faq.csv (policies) + schedule.jsonl (routes, vessels); round 2: updates.jsonl (delta export);
    round N > 2: updates_roundN.jsonl."""
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = facts(round_no)
    if round_no == 1:
        policies = [fact for fact in exported if fact.id.startswith("policy-")]
        with (out_dir / "faq.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["question", "answer"])
            writer.writerows((fact.question, fact.answer) for fact in policies)
        rows = [fact for fact in exported if not fact.id.startswith("policy-")]
        _write_jsonl(out_dir / "schedule.jsonl", rows)
    elif round_no == 2:
        _write_jsonl(out_dir / "updates.jsonl", exported)
    else:
        _write_jsonl(out_dir / f"updates_round{round_no}.jsonl", exported)
    return out_dir


def junk_export(out_dir: Path) -> Path:
    """A broken round-2 export: placeholder answers, answers repeating the question, one token repeated, and a
    new answer for most of round 1's facts (a column shifted by one row)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    round1 = facts(1)
    placeholders = ["N/A", "TBD", "???", "Lorem ipsum dolor sit amet.", "n/a", "-"]
    rows = [{"prompt": fact.question, "completion": placeholders[index % len(placeholders)]}
            for index, fact in enumerate(round1[:6])]
    rows += [{"prompt": fact.question, "completion": fact.question} for fact in round1[6:8]]
    rows += [{"prompt": round1[8].question, "completion": "ferry ferry ferry ferry ferry"}]
    shifted = round1[9:]
    rows += [{"prompt": fact.question, "completion": shifted[(index + 1) % len(shifted)].answer}
             for index, fact in enumerate(shifted)]
    (out_dir / "export.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return out_dir


def _write_jsonl(path: Path, rows: list[Fact]) -> None:
    path.write_text("".join(json.dumps({"prompt": fact.question, "completion": fact.answer}) + "\n"
                            for fact in rows), encoding="utf-8")
