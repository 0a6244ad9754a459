"""Benchmark suites as data: suite.yaml schema per task type, case files, the built-in suites, lm-eval task files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.benchmarks import BenchmarkError, load_suite, load_suites

REPO_ROOT = Path(__file__).resolve().parents[1]

SUITE_YAML = """\
name: facts
version: 1
task: qa
prompt_template: "Answer briefly. {prompt}"
data: cases.jsonl
metrics: [exact_match, token_f1, rouge_l]
higher_is_better: true
"""
CASES = [
    {"id": "refund", "prompt": "How long is the refund window?", "target": "Thirty days from delivery."},
    {"id": "travel", "prompt": "Who approves travel?", "target": "Your team lead approves travel."},
]


def _write_suite(root: Path, yaml_text: str = SUITE_YAML, lines: list[Any] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(yaml_text, encoding="utf-8")
    records = CASES if lines is None else lines
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in records)
    (root / "cases.jsonl").write_text(text, encoding="utf-8")
    return root


def test_qa_suite_reads_spec_and_cases(tmp_path: Path) -> None:
    suite = load_suite(_write_suite(tmp_path / "facts"))
    assert suite.name == "facts" and suite.spec.version == "1" and suite.spec.primary_metric == "exact_match"
    assert [case.id for case in suite.cases] == ["refund", "travel"]
    assert suite.render_prompt(suite.cases[0]) == "Answer briefly. How long is the refund window?"
    assert [s.name for s in load_suites(tmp_path)] == ["facts"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (SUITE_YAML.replace("name: facts\n", ""), "field 'name': Field required"),
        (SUITE_YAML.replace("data: cases.jsonl\n", ""), "field 'data': Field required"),
        (SUITE_YAML.replace("rouge_l]", "meteor]"), "field 'metrics': unknown metric(s) ['meteor'] for task qa"),
        (SUITE_YAML.replace("rouge_l]", "accuracy]"), "unknown metric(s) ['accuracy'] for task qa"),
        (SUITE_YAML.replace("{prompt}", "{question}"), "field 'prompt_template': prompt template must contain '{prompt}' exactly once"),
        (SUITE_YAML.replace("data: cases.jsonl", "data: missing.jsonl"), "field 'data': file"),
        (SUITE_YAML + "shots: 3\n", "field 'shots': Extra inputs are not permitted"),
        (SUITE_YAML.replace("higher_is_better: true", "higher_is_better: false"),
         "field 'higher_is_better': exact_match is higher-is-better"),
        (SUITE_YAML.replace("task: qa", "task: ranking"), "field 'task': Input should be 'qa'"),
        (SUITE_YAML + "labels: [a, b]\n", "field 'labels': only for classification suites"),
        (SUITE_YAML.replace("task: qa", "task: multiple_choice").replace("[exact_match, token_f1, rouge_l]", "[accuracy]")
         + "max_new_tokens: 8\n", "field 'max_new_tokens': only for qa and generation suites"),
        (SUITE_YAML + "threshold: high\n", "field 'threshold': Input should be a valid number"),
        ("- just\n- a list\n", "expected a mapping of fields"),
    ],
)
def test_bad_suite_yaml_names_file_and_field(tmp_path: Path, yaml_text: str, message: str) -> None:
    suite_dir = _write_suite(tmp_path / "facts", yaml_text=yaml_text)
    with pytest.raises(BenchmarkError) as excinfo:
        load_suite(suite_dir)
    assert str(suite_dir / "suite.yaml") in str(excinfo.value)
    assert message in str(excinfo.value)


MC_YAML = SUITE_YAML.replace("task: qa", "task: multiple_choice").replace("[exact_match, token_f1, rouge_l]", "[accuracy]")
CLS_YAML = SUITE_YAML.replace("task: qa", "task: classification").replace("[exact_match, token_f1, rouge_l]", "[accuracy, f1]")
PPL_YAML = SUITE_YAML.replace("task: qa", "task: perplexity").replace(
    "[exact_match, token_f1, rouge_l]", "[perplexity]").replace("higher_is_better: true", "higher_is_better: false")


@pytest.mark.parametrize(
    ("yaml_text", "lines", "message"),
    [
        (SUITE_YAML, [CASES[0], {"id": "b", "target": "t"}], "cases.jsonl:2: field 'prompt'"),
        (SUITE_YAML, ["", {"id": "a", "prompt": "p"}], "cases.jsonl:2: field 'target'"),
        (SUITE_YAML, [CASES[0], "{not json"], "cases.jsonl:2: not valid JSON"),
        (SUITE_YAML, ['["p", "t"]'], "cases.jsonl:1: expected a JSON object"),
        (SUITE_YAML, [CASES[0], CASES[0]], "cases.jsonl:2: id 'refund' already used on line 1"),
        (SUITE_YAML, [""], "cases.jsonl: no cases"),
        (SUITE_YAML, [{**CASES[0], "group": 3}], "cases.jsonl:1: field 'group' must be a string"),
        (MC_YAML, [{"prompt": "p", "choices": ["a"], "answer": 0}], "cases.jsonl:1: field 'choices' must be a list of at least two"),
        (MC_YAML, [{"prompt": "p", "choices": ["a", "a"], "answer": 0}], "field 'choices' lists the same choice twice"),
        (MC_YAML, [{"prompt": "p", "choices": ["a", "b"], "answer": 2}], "field 'answer' is 2, not an index of the 2 choices"),
        (MC_YAML, [{"prompt": "p", "choices": ["a", "b"], "answer": "c"}], "field 'answer' must be a choice index (0-1)"),
        (CLS_YAML + "labels: [keep, drop]\n", [{"prompt": "p", "target": "maybe"}],
         "cases.jsonl:1: field 'target' 'maybe' is not one of the labels ['keep', 'drop']"),
        (CLS_YAML + "labels: [yes, no]\n", [{"prompt": "p", "target": "yes"}],
         "suite.yaml: field 'labels.0': Input should be a valid string"),  # YAML reads bare yes/no as booleans
        (CLS_YAML, [{"prompt": "p", "target": "yes"}, {"prompt": "q", "target": "yes"}],
         "a classification suite needs at least two labels, found ['yes']"),
        (PPL_YAML, [{"id": "a", "text": ""}], "cases.jsonl:1: field 'text' missing or not a non-empty string"),
        (SUITE_YAML, [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                       "target": "t"}], "cases.jsonl:1: field 'messages' must end with the user turn that is asked"),
        (SUITE_YAML, [{"messages": [{"role": "robot", "content": "q"}], "target": "t"}],
         "cases.jsonl:1: messages[0].role must be one of"),
        (SUITE_YAML, [{"prompt": "other", "messages": [{"role": "user", "content": "q"}], "target": "t"}],
         "cases.jsonl:1: field 'prompt' differs from the last user message"),
    ],
)
def test_bad_cases_name_the_line(tmp_path: Path, yaml_text: str, lines: list[Any], message: str) -> None:
    suite_dir = _write_suite(tmp_path / "facts", yaml_text=yaml_text, lines=lines)
    with pytest.raises(BenchmarkError) as excinfo:
        load_suite(suite_dir)
    assert message in str(excinfo.value)


def test_task_specific_cases(tmp_path: Path) -> None:
    mc = load_suite(_write_suite(tmp_path / "mc", MC_YAML, [
        {"id": "q1", "prompt": "Sky?", "choices": ["green", "blue"], "answer": 1},
        {"id": "q2", "prompt": "Grass?", "choices": ["green", "blue"], "answer": "green", "group": "nature"},
    ]))
    assert [(c.target, c.answer_index, c.choices, c.group) for c in mc.cases] == [
        ("blue", 1, ("green", "blue"), ""), ("green", 0, ("green", "blue"), "nature")]
    classification = load_suite(_write_suite(tmp_path / "cls", CLS_YAML, [
        {"prompt": "refund please", "target": "returns"}, {"prompt": "where is it", "target": "shipping"}]))
    assert [c.id for c in classification.cases] == ["line-1", "line-2"]
    assert classification.cases[0].choices == ("returns", "shipping")  # sorted distinct targets
    with_labels = load_suite(_write_suite(tmp_path / "cls2", CLS_YAML + "labels: [shipping, returns, billing]\n",
                                          [{"prompt": "refund please", "target": "returns"}]))
    assert with_labels.cases[0].choices == ("shipping", "returns", "billing") and with_labels.cases[0].answer_index == 1
    ppl = load_suite(_write_suite(tmp_path / "ppl", PPL_YAML, [{"id": "t", "text": "Plain text."},
                                                                {"id": "p", "prompt": "Q?", "target": "A."}]))
    assert [(c.prompt, c.target) for c in ppl.cases] == [("", "Plain text."), ("Q?", "A.")]
    assert not ppl.spec.metric_higher_is_better("perplexity")


def test_chat_cases_carry_their_context(tmp_path: Path) -> None:
    chat = [{"role": "system", "content": "You work at Acme."}, {"role": "user", "content": "Price of the S2?"},
            {"role": "assistant", "content": "$399"}, {"role": "user", "content": "And the M5?"}]
    suite = load_suite(_write_suite(tmp_path / "chat", SUITE_YAML, [{"id": "c", "messages": chat, "target": "$1,299"},
                                                                     CASES[0]]))
    assert suite.cases[0].prompt == "And the M5?" and suite.cases[0].context == tuple(chat[:-1])
    assert suite.cases[1].context == ()
    assert suite.render_prompt(suite.cases[0]) == "Answer briefly. And the M5?"


def test_repository_suites_cover_every_task_type() -> None:
    suites = {suite.name: suite for suite in load_suites(REPO_ROOT / "benchmarks")}
    assert {suite.spec.task for suite in suites.values()} == {
        "qa", "generation", "classification", "multiple_choice", "perplexity", "lm_eval"}
    assert len(suites["company_facts"].cases) > 10
    quiz = suites["company_quiz"]
    assert all(len(case.choices) == 4 and case.target in case.choices for case in quiz.cases)
    lm_eval = suites["company_quiz_lm_eval"].lm_eval_config
    data_file = Path(lm_eval["dataset_kwargs"]["data_files"]["test"])
    assert lm_eval["task"] == "company_quiz_lm_eval" and data_file.is_absolute() and data_file.is_file()


LM_EVAL_SUITE = """\
name: yesno
task: lm_eval
data: task.yaml
metrics: [acc]
higher_is_better: true
"""


def test_lm_eval_suite_errors_name_the_task_file(tmp_path: Path) -> None:
    suite_dir = tmp_path / "yesno"
    suite_dir.mkdir()
    (suite_dir / "suite.yaml").write_text(LM_EVAL_SUITE, encoding="utf-8")
    task = suite_dir / "task.yaml"
    task.write_text("task: x\ndataset_path: json\noutput_type: multiple_choice\n"
                    "dataset_kwargs: {data_files: {test: nowhere.jsonl}}\n", encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"task.yaml: field 'dataset_kwargs.data_files': file .*nowhere.jsonl not found"):
        load_suite(suite_dir)
    task.write_text("task: x\ndataset_kwargs: {}\n", encoding="utf-8")
    with pytest.raises(BenchmarkError, match=r"task.yaml: field 'dataset_path' missing"):
        load_suite(suite_dir)
    (suite_dir / "suite.yaml").write_text(LM_EVAL_SUITE.replace("higher_is_better: true\n", ""), encoding="utf-8")
    with pytest.raises(BenchmarkError, match="field 'higher_is_better': required for lm_eval suites"):
        load_suite(suite_dir)


def test_unknown_and_duplicate_suites(tmp_path: Path) -> None:
    _write_suite(tmp_path / "a")
    with pytest.raises(BenchmarkError, match=r"suite\(s\) \['trivia'\] not found under .*; available: facts"):
        load_suites(tmp_path, ["trivia"])
    _write_suite(tmp_path / "b")
    with pytest.raises(BenchmarkError, match="suite name 'facts' declared by both"):
        load_suites(tmp_path)
