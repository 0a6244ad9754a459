"""Benchmark cases the data now answers differently: the newest export is the newest word on a fact.

A suite written against an earlier data version can ask a question whose answer a later export
changed (a fare, a policy). Scoring against the old target would punish the model for learning the
new answer and make a correct round look like a regression. So a qa or generation case whose
question, in the same chat context (`question_key`), the training data answers differently is
scored against the data's answer (this export's rows before replayed ones), and every such case is
reported (suite, case id, the suite's target, the data's answer, its source) for the suite's owner
to update. Cases the data does not ask, or answers the same way, are untouched. The evaluate step
and the deploy smoke test both apply this, with the same data.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from common.benchmarks import BenchmarkSuite
from common.inventory import REPLAY_PREFIX, chat_context, question_key
from common.metrics import normalize_answer

ANSWERED_TASKS = ("qa", "generation")


def data_answers(examples: Iterable[Mapping[str, Any]], keys: set[str]) -> dict[str, list[tuple[str, str]]]:
    """(answer, source) pairs the data gives to each question key in `keys`, this export's first."""
    found: dict[str, list[tuple[str, str]]] = {}
    for example in examples:
        key = question_key(example["prompt"], chat_context(example.get("messages")))
        if key in keys:
            found.setdefault(key, []).append((example["completion"], str(example.get("source") or "")))
    for answers in found.values():
        answers.sort(key=lambda pair: pair[1].startswith(REPLAY_PREFIX))
    return found


def refresh_targets(suites: list[BenchmarkSuite], examples: Iterable[Mapping[str, Any]],
                    ) -> tuple[list[BenchmarkSuite], list[dict[str, str]]]:
    """The suites with each case the data answers differently re-targeted, and one record per such case."""
    keyed = {id(case): question_key(case.prompt, case.context)
             for suite in suites if suite.spec.task in ANSWERED_TASKS for case in suite.cases}
    answers = data_answers(examples, set(keyed.values())) if keyed else {}
    refreshed, updates = [], []
    for suite in suites:
        cases = []
        for case in suite.cases:
            given = answers.get(keyed.get(id(case), ""), [])
            if given and normalize_answer(case.target) not in {normalize_answer(answer) for answer, _ in given}:
                updates.append({"suite": suite.name, "id": case.id, "prompt": case.prompt, "suite_target": case.target,
                                "data_answer": given[0][0], "source": given[0][1]})
                case = dataclasses.replace(case, target=given[0][0])
            cases.append(case)
        refreshed.append(dataclasses.replace(suite, cases=tuple(cases)) if cases != list(suite.cases) else suite)
    return refreshed, updates
