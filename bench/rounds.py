"""Five rounds of company data for the continual-learning benchmark (bench/forgetting.py), per domain.

- demo: Acme Robotics (pipelines/demo/sample_data.py) rounds 1-2, then rounds 3-5 written here the
  same way (new products, policies and support answers asked 2-3 ways; some earlier answers change,
  some for the second time, some that were new in an earlier round);
- ferries: Tidewater Ferries (tests/ferry_company.py), one phrasing per fact, rounds 1-5.
A round's facts are `new` or `changed` (round 1: all new); `current(k)` is every fact as it stands
after round k and `superseded(k)` every answer a fact had before (what must not come back).
"""
from __future__ import annotations

import json
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

import ferry_company  # noqa: E402
from pipelines.demo import sample_data as demo  # noqa: E402

ROUNDS = 5


@dataclass(frozen=True)
class RoundFact:
    """A fact as one round exports it: every phrasing is trained; `system` is a chat's system prompt."""

    id: str
    phrasings: tuple[str, ...]
    answer: str
    status: str  # new | changed
    system: str | None = None


_P = demo._Product
_T = demo._Topic
_DEMO_LATER = {
    3: {"products": (_P("vacbot_v9", "VacBot V9", "A stair climbing vacuum", "$799", "4 hours", "5.2 kg", "3 hours"),
                     _P("patrol_p2", "Patrol P2", "A parking lot patrol robot", "$5,400", "16 hours", "55 kg", "6 hours")),
        "policies": (_T("bulk_returns", ("Can businesses return bulk orders?", "Are bulk orders returnable?"),
                        "Yes, within 60 days"),),
        "support": (_T("error_e88", ("What does error E88 mean?", "My robot shows E88, what is wrong?"),
                       "A loose bumper"),),
        "changed": {"product.rover_x1.price": "$11,999", "product.sweepy_s2.price": "$329",
                    "policy.warranty_length": "3 years", "support.error_e12": "A blocked brush"}},
    4: {"products": (_P("grill_g1", "Grill G1", "A grill cleaning robot", "$189", "2 hours", "1.4 kg", "90 minutes"),
                     _P("hauler_h4", "Hauler H4", "A farm cart robot", "$9,800", "10 hours", "120 kg", "5 hours")),
        "policies": (_T("gift_wrap", ("Do you offer gift wrapping?", "Can my order be gift wrapped?"), "Yes, for $5"),),
        "support": (_T("error_e93", ("What does error E93 mean?", "My robot shows E93, what is wrong?"),
                       "A motor overload"),),
        "changed": {"product.drone_d5.price": "$3,599", "policy.express_shipping_cost": "$19",
                    "policy.return_window": "60 days", "product.buddy_b1.battery": "16 hours"}},
    5: {"products": (_P("nanny_n3", "Nanny N3", "A baby monitor robot", "$459", "20 hours", "2.3 kg", "3 hours"),
                     _P("scout_s6", "Scout S6", "A pipe inspection robot", "$11,200", "4 hours", "7 kg", "2 hours")),
        "policies": (_T("referral", ("Is there a referral bonus?", "Do I get credit for referring a friend?"),
                        "Yes, $50 credit"),),
        "support": (_T("error_e97", ("What does error E97 mean?", "My robot shows E97, what is wrong?"),
                       "A dirty charging contact"),),
        "changed": {"product.mower_m5.price": "$1,099", "policy.support_email": "care@acmerobotics.com",
                    "product.vacbot_v9.price": "$749", "support.control_app": "The Acme Hub app"}},
}


class Domain(ABC):
    """A company's five rounds: facts per round, raw files per round, tokenizer corpus."""

    name = ""

    @abstractmethod
    def facts(self, round_no: int) -> list[RoundFact]:
        """The facts round `round_no` adds or changes."""

    @abstractmethod
    def write_round(self, round_no: int, out_dir: Path) -> None:
        """Round `round_no`'s raw export files into `out_dir`."""

    def current(self, round_no: int) -> dict[str, RoundFact]:
        """Every fact as it stands after `round_no`, by id."""
        known: dict[str, RoundFact] = {}
        for k in range(1, round_no + 1):
            known.update({fact.id: fact for fact in self.facts(k)})
        return known

    def superseded(self, round_no: int) -> dict[str, set[str]]:
        """Every answer a fact had before its current one (up to `round_no`), by id."""
        history: dict[str, list[str]] = {}
        for k in range(1, round_no + 1):
            for fact in self.facts(k):
                history.setdefault(fact.id, []).append(fact.answer)
        return {i: set(answers[:-1]) - {answers[-1]} for i, answers in history.items() if len(answers) > 1}

    def corpus(self) -> list[str]:
        texts: list[str] = []
        for k in range(1, ROUNDS + 1):
            for fact in self.facts(k):
                texts += [*fact.phrasings, fact.answer, *([fact.system] if fact.system else [])]
        return texts


class DemoDomain(Domain):
    name = "demo"

    @staticmethod
    def _convert(fact: demo.Fact, status: str) -> RoundFact:
        system = demo.SUPPORT_SYSTEM_PROMPT if fact.topic == "support" else None
        return RoundFact(fact.id, tuple(fact.paraphrases), fact.answer, status, system)

    def facts(self, round_no: int) -> list[RoundFact]:
        if round_no == 1:
            return [self._convert(fact, "new") for fact in demo.facts(1)]
        if round_no == 2:
            return [self._convert(fact, fact.status) for fact in demo.facts(2)]
        spec = _DEMO_LATER[round_no]
        new = (demo._product_facts(spec["products"], round_no, "new")
               + demo._topic_facts(spec["policies"], "policy", round_no, "new", {})
               + demo._topic_facts(spec["support"], "support", round_no, "new", {}))
        earlier = self.current(round_no - 1)
        changed = [RoundFact(i, earlier[i].phrasings, answer, "changed", earlier[i].system)
                   for i, answer in spec["changed"].items()]
        return [*(self._convert(fact, "new") for fact in new), *changed]

    def write_round(self, round_no: int, out_dir: Path) -> None:
        if round_no <= 2:
            demo.write_round(round_no, out_dir)
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for fact in self.facts(round_no):
            for phrasing in fact.phrasings:
                if fact.system:
                    rows.append({"messages": [{"role": "system", "content": fact.system},
                                              {"role": "user", "content": phrasing},
                                              {"role": "assistant", "content": fact.answer}]})
                else:
                    rows.append({"prompt": phrasing, "completion": fact.answer})
        (out_dir / f"acme_update_round{round_no}.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    def corpus(self) -> list[str]:
        return [*demo.corpus_texts(), *super().corpus()]


class FerryDomain(Domain):
    name = "ferries"

    def facts(self, round_no: int) -> list[RoundFact]:
        return [RoundFact(fact.id, (fact.question,), fact.answer, "new" if round_no == 1 else fact.status)
                for fact in ferry_company.facts(round_no)]

    def write_round(self, round_no: int, out_dir: Path) -> None:
        ferry_company.write_round(round_no, out_dir)


DOMAINS: dict[str, Domain] = {"demo": DemoDomain(), "ferries": FerryDomain()}
