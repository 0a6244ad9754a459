"""Benchmark cases: one JSON object per line, checked against the suite's task type.

- qa, generation:   {"id", "prompt", "target"}
- classification:   {"id", "prompt", "target"}; target is one of the suite's labels (default: the
                    distinct targets of the file, at least two)
- multiple_choice:  {"id", "prompt", "choices": [str, ...], "answer": index or the right choice}
- perplexity:       {"id", "text"} (the whole text is scored) or {"id", "prompt", "target"}
                    (the target is scored after the prompt)
Optional on every case: "group" (a label for breakdowns in the report). "id" defaults to line-N.
A case that continues a chat gives "messages" ([{"role", "content"}, ...], ending with the user turn
that is asked) instead of "prompt": the model sees the whole chat, rendered as training renders it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.jsonl import JsonlError, iter_jsonl_lines
from common.prompting import Message, check_messages


class CaseError(ValueError):
    """A case file that cannot be used; the message names file and line."""


@dataclass(frozen=True)
class BenchmarkCase:
    """One benchmark question: prompt, reference answer and, when the task scores options, the options."""

    id: str
    prompt: str
    target: str
    choices: tuple[str, ...] = ()
    group: str = ""
    context: tuple[Message, ...] = ()  # a chat's system message and earlier turns, before `prompt`

    @property
    def answer_index(self) -> int:
        """Position of the target among the choices (multiple choice and classification)."""
        return self.choices.index(self.target)


def load_cases(path: Path, task: str, labels: list[str] | None = None) -> tuple[BenchmarkCase, ...]:
    """Every case of the JSONL file at path, checked for `task`; errors name file:line and field."""
    records = list(_records(path))
    if not records:
        raise CaseError(f"{path}: no cases")
    cases: list[BenchmarkCase] = []
    seen_ids: dict[str, int] = {}
    for line_no, record in records:
        case = _parse(f"{path}:{line_no}", line_no, record, task)
        if case.id in seen_ids:
            raise CaseError(f"{path}:{line_no}: id {case.id!r} already used on line {seen_ids[case.id]}")
        seen_ids[case.id] = line_no
        cases.append(case)
    if task == "classification":
        cases = _with_labels(path, records, cases, labels)
    return tuple(cases)


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        return list(iter_jsonl_lines(path))
    except JsonlError as exc:
        raise CaseError(str(exc)) from exc


def _text(where: str, record: dict[str, Any], field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str) or not value.strip():
        raise CaseError(f"{where}: field '{field}' missing or not a non-empty string")
    return value


def _parse(where: str, line_no: int, record: dict[str, Any], task: str) -> BenchmarkCase:
    case_id = record.get("id", f"line-{line_no}")
    if not isinstance(case_id, (str, int)) or isinstance(case_id, bool):
        raise CaseError(f"{where}: field 'id' must be a string")
    group = record.get("group", "")
    if not isinstance(group, str):
        raise CaseError(f"{where}: field 'group' must be a string")
    common = {"id": str(case_id), "group": group}
    if task == "perplexity" and "text" in record:
        return BenchmarkCase(prompt="", target=_text(where, record, "text"), **common)
    prompt, context = _prompt(where, record)
    if task == "multiple_choice":
        choices = _choices(where, record)
        return BenchmarkCase(prompt=prompt, target=_answer(where, record, choices), choices=choices, context=context,
                             **common)
    return BenchmarkCase(prompt=prompt, target=_text(where, record, "target"), context=context, **common)


def _prompt(where: str, record: dict[str, Any]) -> tuple[str, tuple[Message, ...]]:
    """(the question asked, the chat before it): from "messages" when the case has them, else "prompt"."""
    if "messages" not in record:
        return _text(where, record, "prompt"), ()
    try:
        messages = check_messages(record["messages"])
    except ValueError as exc:
        raise CaseError(f"{where}: {exc}") from exc
    if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        raise CaseError(f"{where}: field 'messages' must end with the user turn that is asked")
    if "prompt" in record and record["prompt"] != messages[-1]["content"]:
        raise CaseError(f"{where}: field 'prompt' differs from the last user message; give one or the other")
    return messages[-1]["content"], tuple(messages[:-1])


def _choices(where: str, record: dict[str, Any]) -> tuple[str, ...]:
    choices = record.get("choices")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c.strip() for c in choices):
        raise CaseError(f"{where}: field 'choices' must be a list of at least two non-empty strings")
    if len(set(choices)) != len(choices):
        raise CaseError(f"{where}: field 'choices' lists the same choice twice")
    return tuple(choices)


def _answer(where: str, record: dict[str, Any], choices: tuple[str, ...]) -> str:
    answer = record.get("answer")
    if isinstance(answer, int) and not isinstance(answer, bool):
        if not 0 <= answer < len(choices):
            raise CaseError(f"{where}: field 'answer' is {answer}, not an index of the {len(choices)} choices")
        return choices[answer]
    if isinstance(answer, str) and answer in choices:
        return answer
    raise CaseError(f"{where}: field 'answer' must be a choice index (0-{len(choices) - 1}) or one of the choices")


def _with_labels(
    path: Path, records: list[tuple[int, dict[str, Any]]], cases: list[BenchmarkCase], labels: list[str] | None
) -> list[BenchmarkCase]:
    """Classification cases carry the label set as their choices; an unknown target is an error."""
    label_set = tuple(labels) if labels else tuple(sorted({case.target for case in cases}))
    if len(label_set) < 2:
        raise CaseError(f"{path}: a classification suite needs at least two labels, found {list(label_set)}")
    for (line_no, _), case in zip(records, cases):
        if case.target not in label_set:
            raise CaseError(f"{path}:{line_no}: field 'target' {case.target!r} is not one of the labels {list(label_set)}")
    return [BenchmarkCase(case.id, case.prompt, case.target, label_set, case.group, case.context) for case in cases]
