"""The knowledge inventory and the retention check on hand-made data: merging, superseding, sampling, forgetting."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluate.gate import compute_gate
from common.inventory import (
    INVENTORY_FILE,
    SUMMARY_FILE,
    Item,
    answered_right,
    merge,
    read_inventory,
    summarize,
    write_inventory,
)
from evaluate.retention import (
    KNOWN_METRIC,
    check_suite,
    compare_retention,
    inventory_section,
    judge,
    next_items,
    plan_round,
    stratified,
)
from evaluate.tasks import CaseOutcome, SuiteRun


def _row(id_: str, prompt: str, completion: str, source: str = "faq.jsonl:1", **extra: Any) -> dict[str, Any]:
    return {"id": id_, "prompt": prompt, "completion": completion, "source": source, **extra}


def _item(id_: str, version: str, known: bool | None = True, prompt: str | None = None, answer: str = "yes") -> Item:
    return Item(id_, prompt or f"Question {id_}?", answer, "faq.jsonl:1", version, known=known,
                checked_in=None if known is None else version)


def _answers(suite_items: list[Item], answers: dict[str, str]) -> SuiteRun:
    """A judged run in which the model answers each item as `answers` says (else with the trained answer)."""
    outcomes = tuple(CaseOutcome(item.id, item.prompt, item.completion, answers.get(item.id, item.completion), {}, None,
                                 item.data_version) for item in suite_items)
    return judge(SuiteRun({}, outcomes, seconds=0.1))


def test_answered_right_is_the_one_rule() -> None:
    assert answered_right("The 30 days!", "30 days")  # case, punctuation and articles do not count
    assert not answered_right("31 days", "30 days") and not answered_right("30 days or more", "30 days")
    long = "returns are accepted within thirty days of delivery with the original receipt"
    assert answered_right(long.replace("original", "first"), long)  # twelve words: one may differ
    assert not answered_right(long.replace("thirty", "ten").replace("original", "first"), long)


def test_merge_supersedes_changed_answers_skips_replay_and_keeps_first_versions() -> None:
    previous = [
        _item("a", "v1", prompt="What is the return window?", answer="30 days"),
        _item("b", "v1", prompt="How much is the Sweepy S2?", answer="$399"),
        _item("c", "v1", known=False, prompt="Which Wi-Fi bands?", answer="2.4 GHz only"),
    ]
    train = [
        _row("n1", "How much is the Sweepy S2? ", "$349", "catalog.csv:9"),  # new answer: b is superseded
        _row("c", "Which Wi-Fi bands?", "2.4 GHz only", "replay:faq.jsonl:3"),  # replayed: already in the inventory
        _row("a", "What is the return window?", "30 days", "faq.jsonl:2"),  # restated: a keeps version v1
        _row("n2", "Who makes the Rover?", "Acme", "faq.jsonl:4"),
        _row("n2", "Who makes the Rover?", "Acme", "faq.jsonl:5"),  # the same example twice
    ]
    merged = merge(previous, train, "v2")
    assert [(item.id, item.data_version, item.known) for item in merged.items] == [
        ("a", "v1", True), ("c", "v1", False), ("n1", "v2", None), ("n2", "v2", None)]
    assert (merged.added, merged.superseded, merged.repeated, merged.replayed) == (2, 1, 2, 1)


def test_chat_items_keep_their_context_and_supersede_only_in_it(tmp_path: Path) -> None:
    def chat(id_: str, system: str, answer: str) -> dict[str, Any]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": "How fast is it?"},
                    {"role": "assistant", "content": answer}]
        return _row(id_, "How fast is it?", answer, messages=messages)

    first = merge([], [chat("m", "Product: Mower M5.", "8 km/h"), chat("r", "Product: Rover X1.", "12 km/h")], "v1")
    second = merge(first.items, [chat("r2", "Product: Rover X1.", "14 km/h")], "v2")
    assert [item.id for item in second.items] == ["m", "r2"] and second.superseded == 1
    assert second.items[0].context == ({"role": "system", "content": "Product: Mower M5."},)
    write_inventory(tmp_path, second.items, summarize(second.items))
    assert read_inventory(tmp_path) == second.items  # the chat survives the round trip


def test_inventory_files_round_trip_with_a_summary(tmp_path: Path) -> None:
    items = [_item("a", "v1"), _item("b", "v1", known=False), _item("c", "v2", known=None)]
    write_inventory(tmp_path / "inv", items, summarize(items))
    assert read_inventory(tmp_path / "inv") == items
    lines = [json.loads(line) for line in (tmp_path / "inv" / INVENTORY_FILE).read_text().splitlines()]
    assert lines[2] == {"id": "c", "prompt": "Question c?", "completion": "yes", "source": "faq.jsonl:1",
                        "data_version": "v2", "known": None, "checked_in": None}
    summary = json.loads((tmp_path / "inv" / SUMMARY_FILE).read_text())
    assert (summary["items"], summary["checked"], summary["known"], summary["data_versions"]) == (3, 2, 1, 2)
    assert summary["by_data_version"] == {"v1": {"items": 2, "checked": 2, "known": 1},
                                          "v2": {"items": 1, "checked": 0, "known": 0}}
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "_EMPTY").write_text("first version\n")
    assert read_inventory(tmp_path / "empty") == [] and read_inventory(None) == []


def test_sampling_is_stratified_deterministic_and_rotates_with_the_round() -> None:
    items = [*(_item(f"a{n}", "v1") for n in range(6)), _item("b0", "v2")]
    chosen = stratified(items, 2, "round-3")
    assert [item.data_version for item in chosen] == ["v1", "v2"]  # the small version still gets its turn
    assert stratified(items, 2, "round-3") == chosen  # deterministic
    assert {item.id for item in stratified(items, 7, "x")} == {item.id for item in items}
    draws = {tuple(item.id for item in stratified(items[:6], 2, f"round-{n}")) for n in range(8)}
    assert len(draws) > 1  # another round draws other items
    assert [item.data_version for item in stratified(items, 2, "r", newest_first=True)] == ["v2", "v1"]


def test_round_plan_reasks_known_items_and_covers_unchecked_ones_first() -> None:
    previous = [*(_item(f"k{n}", "v1") for n in range(4)), _item("w", "v1", known=False), _item("u", "v1", known=None)]
    merged = merge(previous, [_row(f"n{n}", f"New {n}?", "ok") for n in range(3)], "v2")
    plan = plan_round(previous, merged, "v2", max_retention=3, max_coverage=5)
    assert len(plan.retention) == 3 and all(item.known is True for item in plan.retention)
    assert (plan.previous_items, plan.previous_known) == (6, 4)
    # Never checked first (newest version first, then v1's), then the one last answered wrong.
    assert {item.id for item in plan.coverage[:4]} == {"n0", "n1", "n2", "u"}
    assert plan.coverage[4].id == "w"
    assert plan_round(previous, merged, "v2", 0, 0).retention == ()


def test_forgetting_counts_what_the_previous_version_still_knows() -> None:
    items = [_item(f"k{n}", "v1") for n in range(5)]
    candidate = _answers(items, {"k0": "no", "k1": "no idea"})
    baseline = _answers(items, {"k1": "no idea"})  # k1 was lost before this round: not the candidate's doing
    result = compare_retention(items, candidate, baseline)
    assert (result.asked, result.known, result.lost_before, len(result.forgotten)) == (5, 4, 1, 1)
    assert result.share == pytest.approx(0.25)
    assert result.forgotten == [{"id": "k0", "prompt": "Question k0?", "expected": "yes", "candidate": "no",
                                 "baseline": "yes", "data_version": "v1", "source": "faq.jsonl:1"}]
    assert candidate.metrics[KNOWN_METRIC] == pytest.approx(0.6)
    without_baseline = compare_retention(items, candidate, None)
    assert (without_baseline.known, len(without_baseline.forgotten)) == (5, 2)


def test_a_model_that_forgot_trips_the_gate_and_a_model_that_kept_passes() -> None:
    """Round 1 learns ten facts; a round-2 model that answers eight of them wrong is stopped by MaxForgetting."""
    round_one = merge([], [_row(f"f{n}", f"What is fact {n}?", f"value {n}") for n in range(10)], "v1")
    plan_one = plan_round([], round_one, "v1", 64, 64)
    assert plan_one.retention == () and len(plan_one.coverage) == 10
    inventory = next_items(plan_one, None, _answers(list(plan_one.coverage), {"f9": "no idea"}))
    assert sum(item.known is True for item in inventory) == 9 and all(i.checked_in == "v1" for i in inventory)

    new_facts = [_row(f"g{n}", f"What is new fact {n}?", f"new value {n}") for n in range(5)]
    plan_two = plan_round(inventory, merge(inventory, new_facts, "v2"), "v2", 64, 64)
    asked = list(plan_two.retention)
    assert len(asked) == 9 and {item.id for item in plan_two.coverage} == {"f9", *(f"g{n}" for n in range(5))}
    baseline = _answers(asked, {})

    naive = _answers(asked, {item.id: "new value 0" for item in asked[:8]})
    forgot = compare_retention(asked, naive, baseline)
    gate = compute_gate({}, None, None, None, True, forgot, 0.1)
    assert gate["passed"] is False and gate["forgetting_failures"] == 1
    assert (gate["forgetting"], gate["forgotten_items"], gate["known_items_asked"]) == (pytest.approx(8 / 9), 8, 9)
    assert gate["reasons"][0].startswith("the candidate forgot 8 of 9 items the previous version knew: forgetting "
                                         "0.8889 > MaxForgetting 0.1 (data version(s) v1)")

    kept = compare_retention(asked, _answers(asked, {asked[0].id: "no idea"}), baseline)
    assert compute_gate({}, None, None, None, True, kept, 0.2)["passed"] is True
    first_version = compute_gate({}, None, None, None, True, None, 0.0)
    assert first_version["passed"] is True and first_version["forgetting"] == 0.0

    section = inventory_section(plan_two, forgot, next_items(plan_two, naive, None), 0.1)
    assert section["retention"]["forgotten"] == 8 and len(section["retention"]["forgotten_items"]) == 8
    assert section["merge"] == {"added": 5, "superseded": 0, "repeated": 0, "replayed_rows": 0}
    assert section["next"]["known"] == 1 and section["next"]["items"] == 15  # 8 forgotten now known: false


def test_check_suites_ask_in_context_grouped_by_data_version() -> None:
    item = Item("m", "How fast is it?", "8 km/h", "chats.jsonl:1", "v1",
                context=({"role": "system", "content": "Product: Mower M5."},), known=True, checked_in="v1")
    suite = check_suite("retention", [item], "re-asked")
    assert suite is not None and suite.spec.task == "qa" and suite.spec.metrics == ["token_f1", "exact_match"]
    (case,) = suite.cases
    assert (case.id, case.group, case.context) == ("m", "v1", item.context)
    assert check_suite("retention", [], "nothing") is None
