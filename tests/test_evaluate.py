"""Benchmark suite loading, the gate, and the evaluate step end to end on the tiny model."""
from __future__ import annotations

import json
import math
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

import evaluate
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
    {"id": "price", "prompt": "What does the Sweepy S2 cost?", "target": "$299"},
    {"id": "wifi", "prompt": "Which Wi-Fi bands are supported?", "target": "2.4 GHz only"},
    {"id": "hours", "prompt": "When is support open?", "target": "Weekdays 9 to 5."},
    {"id": "warranty", "prompt": "How long is the warranty?", "target": "Two years."},
]
VALIDATION = [
    {"id": "v1", "prompt": "What is the Rover X1?", "completion": "A warehouse robot.", "source": "faq"},
    {"id": "v2", "prompt": "Who approves travel?", "completion": "Your team lead.", "source": "faq"},
    {"id": "v3", "prompt": "How long is the refund window for opened items that were shipped?",
     "completion": "Thirty days from delivery, minus a restocking fee.", "source": "policy"},
    {"id": "v4", "prompt": "Is the Mower M5 waterproof?", "completion": "Yes.", "source": "product"},
]


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def _write_suite(root: Path, yaml_text: str = SUITE_YAML, cases: list[dict[str, Any]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "suite.yaml").write_text(yaml_text, encoding="utf-8")
    _write_jsonl(root / "cases.jsonl", CASES if cases is None else cases)
    return root


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval-inputs")
    _write_suite(root / "benchmarks" / "facts")
    _write_jsonl(root / "validation" / "validation.jsonl", VALIDATION)
    return {"benchmarks": root / "benchmarks", "validation": root / "validation"}


@pytest.fixture(scope="module")
def perturbed_model_archive(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model with seeded noise on every weight, packed like SageMaker's model.tar.gz."""
    import torch
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("perturbed")
    model_dir = root / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    model.save_pretrained(model_dir)
    metadata = {"base_model": "tiny", "prompt_template": "Q: {prompt}\nA: ", "hyperparameters": {}, "metrics": {}}
    (model_dir / "continuum.json").write_text(json.dumps(metadata), encoding="utf-8")
    archive = root / "input" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive.parent


@pytest.fixture(scope="module")
def loaded_tiny(tiny_model_dir: Path) -> evaluate.LoadedModel:
    return evaluate.load_model(tiny_model_dir, "candidate", max_seq_length=1024)


def _run(argv: list[str], output_dir: Path) -> tuple[int, dict[str, Any]]:
    code = evaluate.main([*argv, "--output-dir", str(output_dir), "--max-new-tokens", "8", "--batch-size", "4"])
    report_path = output_dir / "evaluation.json"
    return code, json.loads(report_path.read_text()) if report_path.exists() else {}


# ---------------------------------------------------------------- suites


def test_load_suite_reads_spec_and_cases(eval_inputs: dict[str, Path]) -> None:
    suite = load_suite(eval_inputs["benchmarks"] / "facts")
    assert suite.name == "facts" and suite.spec.version == "1"
    assert suite.spec.metrics == ["exact_match", "token_f1", "rouge_l"]
    assert [case.id for case in suite.cases] == [case["id"] for case in CASES]
    assert suite.render_prompt(suite.cases[0]) == "Answer briefly. How long is the refund window?"
    assert [s.name for s in load_suites(eval_inputs["benchmarks"])] == ["facts"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (SUITE_YAML.replace("name: facts\n", ""), "field 'name': Field required"),
        (SUITE_YAML.replace('prompt_template: "Answer briefly. {prompt}"\n', ""), "field 'prompt_template': Field required"),
        (SUITE_YAML.replace("data: cases.jsonl\n", ""), "field 'data': Field required"),
        (SUITE_YAML.replace("rouge_l]", "meteor]"), "field 'metrics': Value error, unknown metric(s) ['meteor']"),
        (SUITE_YAML.replace("{prompt}", "{question}"), "field 'prompt_template': Value error, prompt template must"),
        (SUITE_YAML.replace("data: cases.jsonl", "data: missing.jsonl"), "field 'data': file"),
        (SUITE_YAML + "shots: 3\n", "field 'shots': Extra inputs are not permitted"),
        ("- just\n- a list\n", "expected a mapping of fields"),
    ],
)
def test_bad_suite_yaml_names_file_and_field(tmp_path: Path, yaml_text: str, message: str) -> None:
    suite_dir = _write_suite(tmp_path / "facts", yaml_text=yaml_text)
    with pytest.raises(BenchmarkError) as excinfo:
        load_suite(suite_dir)
    assert str(suite_dir / "suite.yaml") in str(excinfo.value)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "prompt": "p", "target": "t"}', '{"id": "b", "target": "t"}'], "cases.jsonl:2: field 'prompt'"),
        (['', '{"id": "a", "prompt": "p"}'], "cases.jsonl:2: field 'target'"),
        (['{"id": "a", "prompt": "p", "target": ""}'], "cases.jsonl:1: field 'target'"),
        (['{"id": "a", "prompt": "p", "target": "t"}', "{not json"], "cases.jsonl:2: not valid JSON"),
        (['["p", "t"]'], "cases.jsonl:1: expected a JSON object"),
        (['{"id": "a", "prompt": "p", "target": "t"}'] * 2, "cases.jsonl:2: id 'a' already used on line 1"),
        ([""], "cases.jsonl: no cases"),
    ],
)
def test_bad_cases_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    suite_dir = _write_suite(tmp_path / "facts")
    (suite_dir / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BenchmarkError) as excinfo:
        load_suite(suite_dir)
    assert message in str(excinfo.value)


def test_repository_suites_load_and_name_the_default_gate_metric() -> None:
    suites = load_suites(REPO_ROOT / "benchmarks")
    by_name = {suite.name: suite for suite in suites}
    assert "company_facts" in by_name and len(by_name["company_facts"].cases) > 10
    assert "company_facts_token_f1" in evaluate.metric_directions(suites)


def test_unknown_suite_lists_available(eval_inputs: dict[str, Path]) -> None:
    with pytest.raises(BenchmarkError, match=r"suite\(s\) \['trivia'\] not found under .*; available: facts"):
        load_suites(eval_inputs["benchmarks"], ["trivia"])


# ---------------------------------------------------------------- gate and report pieces


def _metrics(value: float, baseline: float, higher_is_better: bool) -> dict[str, dict[str, Any]]:
    return {"m": evaluate.metric_entry(value, baseline, higher_is_better)}


def test_metric_entry_delta_and_regression() -> None:
    assert evaluate.metric_entry(0.5, 0.75, True) == {
        "value": 0.5, "baseline": 0.75, "delta": -0.25, "regression": 0.25, "higher_is_better": True,
    }
    assert evaluate.metric_entry(0.9, 0.75, True)["regression"] == 0.0
    assert evaluate.metric_entry(2.5, 2.0, False)["regression"] == 0.5
    assert evaluate.metric_entry(1.5, 2.0, False)["regression"] == 0.0
    assert evaluate.metric_entry(1.0, None, True) == {
        "value": 1.0, "baseline": None, "delta": None, "regression": 0.0, "higher_is_better": True,
    }


@pytest.mark.parametrize(
    ("value", "baseline", "higher", "threshold", "max_regression", "passed", "reason_parts"),
    [
        (0.60, 0.50, True, 0.5, 0.0, True, []),
        (0.40, 0.50, True, 0.5, 0.2, False, ["m = 0.4 is not >= threshold 0.5"]),
        (0.55, 0.75, True, 0.5, 0.1, False, ["m regressed by 0.2 vs baseline 0.75 (max allowed 0.1)"]),
        (0.55, 0.60, True, 0.5, 0.1, True, []),
        (0.30, 0.75, True, 0.5, 0.1, False, ["not >= threshold 0.5", "regressed by 0.45"]),
        (2.0, 1.5, False, 2.5, 0.25, False, ["m regressed by 0.5 vs baseline 1.5 (max allowed 0.25)"]),
        (3.0, 3.5, False, 2.5, 0.0, False, ["m = 3 is not <= threshold 2.5"]),
        (2.0, 2.1, False, 2.5, 0.0, True, []),
        (0.1, 0.9, True, None, None, True, []),
    ],
)
def test_compute_gate(
    value: float, baseline: float, higher: bool, threshold: float | None, max_regression: float | None,
    passed: bool, reason_parts: list[str],
) -> None:
    gate = evaluate.compute_gate(_metrics(value, baseline, higher), "m", threshold, max_regression, higher)
    assert gate["passed"] is passed
    assert (gate["metric"], gate["threshold"], gate["max_regression"], gate["higher_is_better"]) == (
        "m", threshold, max_regression, higher,
    )
    assert len(gate["reasons"]) == len(reason_parts)
    for reason, part in zip(gate["reasons"], reason_parts):
        assert part in reason


def test_missing_gate_metric_lists_available(eval_inputs: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--model-dir", str(tmp_path / "nowhere"), "--baseline-dir", str(tmp_path / "nowhere"),
            "--validation-dir", str(eval_inputs["validation"]), "--benchmarks-dir", str(eval_inputs["benchmarks"]),
            "--output-dir", str(tmp_path / "out")]
    assert evaluate.main([*argv, "--gate-metric", "facts_bleu"]) == 2
    err = capsys.readouterr().err
    assert "gate metric 'facts_bleu' is not produced by this evaluation; available: validation_loss, " \
           "validation_perplexity, facts_exact_match, facts_token_f1, facts_rouge_l" in err
    assert evaluate.main([*argv, "--gate-metric", "validation_loss"]) == 2
    assert "'validation_loss' is lower-is-better: pass --gate-lower-is-better" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_validation_line_is_named(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "val" / "validation.jsonl", [VALIDATION[0], {"id": "x", "prompt": "p"}])
    with pytest.raises(evaluate.EvaluationError, match=r"validation.jsonl:2: field 'completion' is missing or not a string"):
        evaluate.read_validation_examples(tmp_path / "val")
    with pytest.raises(evaluate.EvaluationError, match="no \\*.jsonl validation files"):
        evaluate.read_validation_examples(tmp_path / "empty")


def test_help_works(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        evaluate.main(["--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model-dir", "--baseline-dir", "--suites", "--gate-metric", "--gate-lower-is-better"):
        assert flag in out


# ---------------------------------------------------------------- measuring on the tiny model


def test_loss_masks_the_prompt_and_matches_hf_loss(loaded_tiny: evaluate.LoadedModel) -> None:
    import torch

    tokenizer = loaded_tiny.tokenizer
    example = evaluate.ValidationExample(prompt="Who approves travel?", completion="Your team lead.")
    encoded = evaluate.tokenize_for_loss(loaded_tiny, example)
    assert encoded is not None
    input_ids, labels = encoded.input_ids, encoded.labels
    completion = tokenizer("Your team lead.", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert input_ids[0] == tokenizer.bos_token_id
    assert input_ids[-len(completion):] == completion == labels[-len(completion):]
    assert set(labels[: -len(completion)]) == {evaluate.IGNORE_INDEX}
    assert tokenizer.decode(input_ids[: -len(completion)], skip_special_tokens=True) == (
        "### Question:\nWho approves travel?\n### Answer:\n"
    )

    with torch.no_grad():
        hf_loss = loaded_tiny.model(input_ids=torch.tensor([input_ids]), labels=torch.tensor([labels])).loss
    assert evaluate.validation_loss(loaded_tiny, [example], batch_size=1) == pytest.approx(float(hf_loss), rel=1e-5)


def test_padded_batches_give_the_same_loss(loaded_tiny: evaluate.LoadedModel) -> None:
    examples = [evaluate.ValidationExample(r["prompt"], r["completion"]) for r in VALIDATION]
    one_by_one = evaluate.validation_loss(loaded_tiny, examples, batch_size=1)
    batched = evaluate.validation_loss(loaded_tiny, examples, batch_size=4)
    assert batched == pytest.approx(one_by_one, rel=1e-5)


def test_generation_is_batched_with_left_padding(loaded_tiny: evaluate.LoadedModel,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = [f"### Question:\n{case['prompt']}\n### Answer:\n" for case in CASES] + ["Hi"]
    unbatched = evaluate.generate(loaded_tiny, prompts, max_new_tokens=6, batch_size=1)

    calls: list[int] = []
    real_generate = loaded_tiny.model.generate

    def counting_generate(**kwargs: Any) -> Any:
        calls.append(int(kwargs["input_ids"].shape[0]))
        return real_generate(**kwargs)

    monkeypatch.setattr(loaded_tiny.model, "generate", counting_generate)
    batched = evaluate.generate(loaded_tiny, prompts, max_new_tokens=6, batch_size=3)
    assert calls == [3, 3, 1]
    assert batched == unbatched
    assert len(batched) == len(prompts) and all(isinstance(text, str) for text in batched)


# ---------------------------------------------------------------- end to end


def test_same_model_as_baseline_gives_zero_deltas(
    tiny_model_dir: Path, eval_inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _run(
        ["--model-dir", str(tiny_model_dir), "--baseline-dir", str(tiny_model_dir),
         "--validation-dir", str(eval_inputs["validation"]), "--benchmarks-dir", str(eval_inputs["benchmarks"]),
         "--suites", "facts", "--gate-metric", "facts_rouge_l", "--gate-threshold", "0",
         "--gate-max-regression", "0"],
        tmp_path / "out",
    )
    assert code == 0
    assert set(report) == {"metrics", "suites", "gate"}
    assert list(report["metrics"]) == [
        "validation_loss", "validation_perplexity", "facts_exact_match", "facts_token_f1", "facts_rouge_l",
    ]
    for name, entry in report["metrics"].items():
        assert set(entry) == {"value", "baseline", "delta", "regression", "higher_is_better"}
        assert entry["delta"] == 0.0 and entry["regression"] == 0.0, name
        assert entry["value"] == entry["baseline"]
        assert entry["higher_is_better"] is not name.startswith("validation_")
    loss = report["metrics"]["validation_loss"]["value"]
    assert 0 < loss < 20
    assert report["metrics"]["validation_perplexity"]["value"] == pytest.approx(math.exp(loss))

    suite = report["suites"]["facts"]
    assert suite["cases"] == len(CASES)
    assert suite["metrics"]["candidate"] == suite["metrics"]["baseline"]
    assert suite["metrics"]["candidate"]["rouge_l"] == report["metrics"]["facts_rouge_l"]["value"]
    assert [ex["id"] for ex in suite["examples"]] == [case["id"] for case in CASES[:5]]
    for example, case in zip(suite["examples"], CASES):
        assert (example["prompt"], example["target"]) == (case["prompt"], case["target"])
        assert example["candidate"] == example["baseline"]
    assert suite["latency_ms_per_example"]["candidate"] > 0 and suite["latency_ms_per_example"]["baseline"] > 0
    assert report["gate"] == {
        "metric": "facts_rouge_l", "threshold": 0.0, "max_regression": 0.0, "higher_is_better": True,
        "passed": True, "reasons": [],
    }
    out = capsys.readouterr().out
    assert "validation_loss" in out and "facts_rouge_l" in out and "PASSED" in out


def test_perturbed_archive_candidate_differs_from_baseline(
    tiny_model_dir: Path, perturbed_model_archive: Path, eval_inputs: dict[str, Path], tmp_path: Path
) -> None:
    code, report = _run(
        ["--model-dir", str(perturbed_model_archive), "--baseline-dir", str(tiny_model_dir),
         "--validation-dir", str(eval_inputs["validation"]), "--benchmarks-dir", str(eval_inputs["benchmarks"]),
         "--gate-metric", "validation_loss", "--gate-lower-is-better", "--gate-threshold", "0.5",
         "--gate-max-regression", "0"],
        tmp_path / "out",
    )
    assert code == 0  # the gate is informational; the pipeline's ConditionStep decides
    metrics = report["metrics"]
    assert metrics["validation_loss"]["delta"] != 0.0
    assert metrics["validation_perplexity"]["delta"] != 0.0
    for name, entry in metrics.items():
        assert entry["delta"] == entry["value"] - entry["baseline"], name
        worse_by = -entry["delta"] if entry["higher_is_better"] else entry["delta"]
        assert entry["regression"] == max(0.0, worse_by), name
    suite = report["suites"]["facts"]
    assert any(ex["candidate"] != ex["baseline"] for ex in suite["examples"])

    gate = report["gate"]
    assert gate["passed"] is False and gate["higher_is_better"] is False
    assert gate["reasons"][0].startswith("validation_loss = ") and "is not <= threshold 0.5" in gate["reasons"][0]
    assert (len(gate["reasons"]) == 2) == (metrics["validation_loss"]["regression"] > 0)


def test_archive_metadata_sets_the_prompt_template(perturbed_model_archive: Path) -> None:
    loaded = evaluate.load_model(perturbed_model_archive / "model.tar.gz", "candidate", max_seq_length=4096)
    assert loaded.template == "Q: {prompt}\nA: "
    assert loaded.max_length == 256  # capped by the model's max_position_embeddings


def test_no_baseline_and_no_gate(tiny_model_dir: Path, eval_inputs: dict[str, Path], tmp_path: Path) -> None:
    code, report = _run(
        ["--model-dir", str(tiny_model_dir), "--baseline-dir", "",
         "--validation-dir", str(eval_inputs["validation"]), "--benchmarks-dir", str(eval_inputs["benchmarks"])],
        tmp_path / "out",
    )
    assert code == 0
    for entry in report["metrics"].values():
        assert entry["baseline"] is None and entry["delta"] is None and entry["regression"] == 0.0
    assert report["suites"]["facts"]["metrics"]["baseline"] is None
    assert report["gate"]["metric"] is None and report["gate"]["passed"] is True
