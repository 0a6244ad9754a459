"""The evaluate step end to end on the tiny model: evaluation.json, cases.jsonl, report.html, lm-eval, the inventory."""
from __future__ import annotations

import json
import math
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

import evaluate
from evaluate.model import load_model

REPO_ROOT = Path(__file__).resolve().parents[1]

VALIDATION = [
    {"id": "v1", "prompt": "What is the Rover X1?", "completion": "A warehouse robot.", "source": "faq"},
    {"id": "v2", "prompt": "Who approves travel?", "completion": "Your team lead.", "source": "faq"},
    {"id": "v3", "prompt": "How long is the refund window for opened items that were shipped?",
     "completion": "Thirty days from delivery, minus a restocking fee.", "source": "policy"},
    {"id": "v4", "prompt": "Is the Mower M5 waterproof?", "completion": "Yes.", "source": "product"},
]
PREVIOUS_INVENTORY = [  # the previous version's knowledge inventory (two earlier data versions)
    {"id": "e1", "prompt": "What is the Rover X1?", "completion": "A warehouse robot.", "source": "faq.jsonl:1",
     "data_version": "d1", "known": True, "checked_in": "d2"},
    {"id": "e2", "prompt": "Who approves travel?", "completion": "The CEO.", "source": "faq.jsonl:2",
     "data_version": "d1", "known": True, "checked_in": "d2"},  # superseded by the current train split
    {"id": "e3", "prompt": "What is the warranty?", "completion": "Two years.", "source": "policies.md:7",
     "data_version": "d2", "known": True, "checked_in": "d2"},
    {"id": "e4", "prompt": "Where is the Rover X1 built?", "completion": "In Ohio.", "source": "faq.jsonl:9",
     "data_version": "d2", "known": False, "checked_in": "d2"},
]
TRAIN = [  # this version's train split: a changed answer, a new fact and a replayed row
    {"id": "n1", "prompt": "Who approves travel?", "completion": "Your team lead.", "source": "faq.jsonl:2"},
    {"id": "n2", "prompt": "Is the Mower M5 waterproof?", "completion": "Yes.", "source": "product.csv:3"},
    {"id": "e3", "prompt": "What is the warranty?", "completion": "Two years.", "source": "replay:policies.md:7"},
]


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval-inputs")
    for name in ("company_facts", "company_quiz"):
        shutil.copytree(REPO_ROOT / "benchmarks" / name, root / "benchmarks" / name)
    _write_jsonl(root / "validation" / "validation.jsonl", VALIDATION)
    _write_jsonl(root / "inventory" / "inventory.jsonl", PREVIOUS_INVENTORY)
    _write_jsonl(root / "train" / "train.jsonl", TRAIN)
    (root / "inventory" / "_EMPTY").write_text("marker files are ignored\n", encoding="utf-8")
    (root / "report").mkdir()
    (root / "report" / "report.json").write_text(json.dumps({"data_version": "abc123", "rows": {"kept": 4}}))
    return {name: root / name for name in ("benchmarks", "validation", "inventory", "train", "report")}


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
    metadata = {"base_model": "tiny", "prompt_template": "Q: {prompt}\nA: ", "hyperparameters": {"lora_r": 4},
                "metrics": {}}
    (model_dir / "continuum.json").write_text(json.dumps(metadata), encoding="utf-8")
    archive = root / "input" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive.parent


def _run(argv: list[str], output_dir: Path) -> tuple[int, dict[str, Any]]:
    code = evaluate.main([*argv, "--output-dir", str(output_dir), "--max-new-tokens", "8"])
    report_path = output_dir / "evaluation.json"
    return code, json.loads(report_path.read_text()) if report_path.exists() else {}


def _inputs(eval_inputs: dict[str, Path], suites: str = "company_facts") -> list[str]:
    return ["--validation-dir", str(eval_inputs["validation"]), "--benchmarks-dir", str(eval_inputs["benchmarks"]),
            "--suites", suites]


def test_same_model_as_baseline_gives_zero_deltas(
    tiny_model_dir: Path, eval_inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _run(
        ["--model-dir", str(tiny_model_dir), "--baseline-dir", str(tiny_model_dir), *_inputs(eval_inputs, "company_facts,company_quiz"),
         "--inventory-dir", str(eval_inputs["inventory"]), "--train-dir", str(eval_inputs["train"]),
         "--inventory-output-dir", str(tmp_path / "inventory"),
         "--data-report-dir", str(eval_inputs["report"]), "--baseline-version", "3",
         "--baseline-model-package-arn", "arn:aws:sagemaker:us-east-1:1:model-package/g/3",
         "--gate-metric", "company_facts_rouge_l", "--gate-threshold", "0", "--gate-max-regression", "0"],
        tmp_path / "out",
    )
    assert code == 0
    assert {"metrics", "suites", "gate", "inventory", "forgetting", "lineage", "report"} <= set(report)
    assert list(report["metrics"]) == [
        "validation_loss", "validation_perplexity", "company_facts_exact_match", "company_facts_token_f1",
        "company_facts_rouge_l", "company_facts_latency_ms", "company_quiz_accuracy", "company_quiz_accuracy_norm", "company_quiz_latency_ms",
        "retention_known_recall", "retention_token_f1", "retention_exact_match", "retention_latency_ms", "forgetting",
    ]
    for name, entry in report["metrics"].items():
        assert {"value", "baseline", "delta", "regression", "higher_is_better", "suite", "metric"} <= set(entry)
        if not name.endswith("latency_ms"):
            assert entry["delta"] == 0.0 and entry["regression"] == 0.0 and entry["value"] == entry["baseline"], name
        assert entry["higher_is_better"] is not (name.startswith("validation_") or name.endswith("latency_ms")
                                                 or name == "forgetting")
    f1 = report["metrics"]["company_facts_token_f1"]
    assert f1["suite"] == "company_facts" and f1["metric"] == "token_f1"
    loss = report["metrics"]["validation_loss"]["value"]
    assert 0 < loss < 20 and report["metrics"]["validation_perplexity"]["value"] == pytest.approx(math.exp(loss))

    cases_file = [json.loads(line) for line in (REPO_ROOT / "benchmarks/company_facts/cases.jsonl").read_text().splitlines()]
    facts = report["suites"]["company_facts"]
    assert facts["cases"] == len(cases_file) and facts["task"] == "qa" and facts["origin"] == "built-in"
    assert facts["metrics"]["candidate"] == facts["metrics"]["baseline"]
    assert [ex["id"] for ex in facts["examples"]] == [case["id"] for case in cases_file[:5]]
    assert all(ex["candidate"] == ex["baseline"] for ex in facts["examples"]) and facts["worst_regressions"] == []
    assert report["suites"]["company_quiz"]["forgetting"]["forgotten"] == 0
    # The inventory: e2 is superseded by the new answer; the known e1 and e3 (two data versions) are re-asked
    # to both models; the new n1, n2 and the wrong-last-time e4 are asked to the candidate; the replayed e3 is
    # not new. The next inventory keeps every item with this round's verdict.
    inventory = report["inventory"]
    assert inventory["previous"] == {"items": 4, "known": 3} and inventory["coverage_checks"] == 3
    assert inventory["merge"] == {"added": 2, "superseded": 1, "repeated": 0, "replayed_rows": 1}
    retention = inventory["retention"]
    assert retention["asked"] == 2 and retention["known"] + retention["lost_before"] == 2
    assert retention["forgotten"] == 0 and retention["forgetting"] == 0.0  # the same model forgets nothing
    assert report["metrics"]["forgetting"]["value"] == report["metrics"]["forgetting"]["baseline"] == 0.0
    assert set(report["suites"]["retention"]["groups"]) == {"d1", "d2"}
    items = [json.loads(line) for line in (tmp_path / "inventory" / "inventory.jsonl").read_text().splitlines()]
    assert [(row["id"], row["data_version"], row["checked_in"]) for row in items] == [
        ("e1", "d1", "abc123"), ("e3", "d2", "abc123"), ("e4", "d2", "abc123"), ("n1", "abc123", "abc123"),
        ("n2", "abc123", "abc123")]
    summary = json.loads((tmp_path / "inventory" / "summary.json").read_text())
    assert (summary["items"], summary["checked"]) == (5, 5) and inventory["next"]["items"] == 5
    assert report["gate"]["passed"] is True and report["gate"]["suite_threshold_failures"] == 0
    lineage = report["lineage"]
    assert lineage["data"] == {"data_version": "abc123", "rows": {"kept": 4}}
    assert lineage["baseline"]["version"] == 3 and lineage["baseline"]["described_as"] == "version 3"
    assert lineage["benchmarks"]["company_facts"]["cases"] == len(cases_file)

    cases = [json.loads(line) for line in (tmp_path / "out" / "cases.jsonl").read_text().splitlines()]
    assert len(cases) == len(cases_file) + 35 + 2 + 3
    assert {c["suite"] for c in cases} == {"company_facts", "company_quiz", "retention", "inventory_check"}
    assert all(c["baseline"] is None for c in cases if c["suite"] == "inventory_check")
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Gate passed" in html and "candidate vs version 3" in html and "data:image/png;base64," in html
    assert "This version&#x27;s inventory: 5 items" in html or "This version's inventory: 5 items" in html
    out = capsys.readouterr().out
    assert "validation_loss" in out and "company_facts_rouge_l" in out and "PASSED" in out


def test_perturbed_archive_candidate_differs_from_baseline(
    tiny_model_dir: Path, perturbed_model_archive: Path, eval_inputs: dict[str, Path], tmp_path: Path
) -> None:
    code, report = _run(
        ["--model-dir", str(perturbed_model_archive), "--baseline-dir", str(tiny_model_dir), *_inputs(eval_inputs),
         "--gate-metric", "validation_loss", "--gate-lower-is-better", "--gate-threshold", "0.5",
         "--gate-max-regression", "0"],
        tmp_path / "out",
    )
    assert code == 0  # a failed check does not fail the step: the pipeline's ConditionSteps read gate.checks
    metrics = report["metrics"]
    assert metrics["validation_loss"]["delta"] != 0.0 and metrics["validation_perplexity"]["delta"] != 0.0
    for name, entry in metrics.items():
        assert entry["delta"] == entry["value"] - entry["baseline"], name
        worse_by = -entry["delta"] if entry["higher_is_better"] else entry["delta"]
        assert entry["regression"] == max(0.0, worse_by), name
    assert any(ex["candidate"] != ex["baseline"] for ex in report["suites"]["company_facts"]["examples"])
    gate = report["gate"]
    assert gate["passed"] is False and gate["higher_is_better"] is False
    assert gate["reasons"][0].startswith("gate metric validation_loss: benchmark validation metric loss = ")
    assert "is not <= threshold 0.5 (GateThreshold)" in gate["reasons"][0]
    assert (len(gate["reasons"]) == 2) == (metrics["validation_loss"]["regression"] > 0)
    checks = gate["checks"]
    assert checks["threshold"] == {"passed": False, "value": metrics["validation_loss"]["value"], "bound": 0.5,
                                   "message": gate["reasons"][0]}
    assert checks["regression"]["passed"] is (metrics["validation_loss"]["regression"] == 0)
    assert checks["forgetting"]["passed"] is True and checks["suite_thresholds"]["passed"] is True
    assert report["lineage"]["candidate"]["hyperparameters"] == {"lora_r": 4}


def test_archive_metadata_sets_the_prompt_template(perturbed_model_archive: Path) -> None:
    loaded = load_model(perturbed_model_archive / "model.tar.gz", "candidate", max_seq_length=4096)
    assert loaded.template == "Q: {prompt}\nA: "
    assert loaded.max_length == 256  # capped by the model's max_position_embeddings


def test_no_baseline_no_validation_no_gate(tiny_model_dir: Path, eval_inputs: dict[str, Path], tmp_path: Path) -> None:
    code, report = _run(["--model-dir", str(tiny_model_dir), "--baseline-dir", "", "--validation-dir", "",
                         "--benchmarks-dir", str(eval_inputs["benchmarks"]), "--suites", "company_quiz"],
                        tmp_path / "out")
    assert code == 0
    assert "validation_loss" not in report["metrics"]
    for entry in report["metrics"].values():
        assert entry["baseline"] is None and entry["delta"] is None and entry["regression"] == 0.0
    assert report["suites"]["company_quiz"]["metrics"]["baseline"] is None and report["inventory"] is None
    assert report["gate"]["metric"] is None and report["gate"]["passed"] is True


def test_lm_eval_suite_and_custom_suites_fold_into_the_report(
    tiny_model_dir: Path, eval_inputs: dict[str, Path], tmp_path: Path
) -> None:
    custom = tmp_path / "custom"
    shutil.copytree(REPO_ROOT / "benchmarks" / "company_quiz_lm_eval", custom / "company_quiz_lm_eval")
    shutil.copytree(REPO_ROOT / "benchmarks" / "policy_perplexity", custom / "policy_perplexity")
    code, report = _run(["--model-dir", str(tiny_model_dir), "--baseline-dir", "", "--validation-dir", "",
                         "--benchmarks-dir", str(eval_inputs["benchmarks"]), "--suites", "company_quiz",
                         "--custom-benchmarks-dir", str(custom), "--gate-metric", "company_quiz_lm_eval_acc",
                         "--gate-threshold", "0"], tmp_path / "out")
    assert code == 0
    lm = report["suites"]["company_quiz_lm_eval"]
    assert lm["origin"] == "custom" and lm["task"] == "lm_eval" and lm["cases"] == 12
    cases = [json.loads(line) for line in (tmp_path / "out" / "cases.jsonl").read_text().splitlines()]
    per_doc = [c["candidate_scores"]["acc"] for c in cases if c["suite"] == "company_quiz_lm_eval"]
    assert report["metrics"]["company_quiz_lm_eval_acc"]["value"] == pytest.approx(sum(per_doc) / len(per_doc))
    assert all(c["candidate"] in ("Yes", "No") for c in cases if c["suite"] == "company_quiz_lm_eval")
    assert report["metrics"]["policy_perplexity_perplexity"]["higher_is_better"] is False
    assert report["metrics"]["policy_perplexity_perplexity"]["value"] > 1.0


def test_input_errors_are_named_before_any_model_loads(
    eval_inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model-dir", str(tmp_path / "nowhere"), "--baseline-dir", str(tmp_path / "nowhere"), *_inputs(eval_inputs),
            "--output-dir", str(tmp_path / "out")]
    assert evaluate.main([*argv, "--gate-metric", "company_facts_bleu"]) == 2
    assert ("gate metric 'company_facts_bleu' is not produced by this evaluation; available: validation_loss, "
            "validation_perplexity, company_facts_exact_match, company_facts_token_f1, company_facts_rouge_l, "
            "company_facts_latency_ms") in capsys.readouterr().err
    assert evaluate.main([*argv, "--gate-metric", "validation_loss"]) == 2
    assert "'validation_loss' is lower-is-better: pass --gate-lower-is-better" in capsys.readouterr().err
    assert evaluate.main([*argv, "--custom-benchmarks-dir", str(eval_inputs["benchmarks"])]) == 2
    assert "suite name(s) ['company_facts'] used twice" in capsys.readouterr().err
    assert evaluate.main([*argv, "--custom-benchmarks-dir", str(tmp_path)]) == 2
    assert "no suite.yaml found (custom benchmarks)" in capsys.readouterr().err
    assert evaluate.main(argv) == 2
    assert f"candidate model: {tmp_path / 'nowhere'}: no such model directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    _write_jsonl(tmp_path / "val" / "validation.jsonl", [VALIDATION[0], {"id": "x", "prompt": "p"}])
    with pytest.raises(evaluate.EvaluationError, match=r"validation.jsonl:2: field 'completion' is missing or not a string"):
        evaluate.read_validation_examples(tmp_path / "val")
    with pytest.raises(evaluate.EvaluationError, match="no \\*.jsonl validation files"):
        evaluate.read_validation_examples(tmp_path / "empty")


def test_check_suites_only_and_help(eval_inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate.main(["--check-suites-only", "--validation-dir", "", "--benchmarks-dir", str(eval_inputs["benchmarks"])]) == 0
    out = capsys.readouterr().out
    assert "company_quiz: multiple_choice (built-in), 35 cases, metrics accuracy, accuracy_norm" in out
    assert "company_facts: qa (built-in), 67 cases, metrics exact_match, token_f1, rouge_l" in out
    with pytest.raises(SystemExit) as excinfo:
        evaluate.main(["--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model-dir", "--baseline-dir", "--suites", "--inventory-dir", "--lm-eval-tasks", "--gate-lower-is-better"):
        assert flag in out


def test_an_empty_validation_split_means_no_validation_loss(tmp_path: Path) -> None:
    """data.validation_fraction 0: prepare writes an empty split; a missing split is still an error."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "validation.jsonl").write_text("")
    assert evaluate.read_validation_examples(tmp_path / "empty") == []
    with pytest.raises(evaluate.EvaluationError, match="no \\*.jsonl validation files found"):
        evaluate.read_validation_examples(tmp_path / "missing")
