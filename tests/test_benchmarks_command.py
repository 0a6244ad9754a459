"""`continuum benchmarks validate`: schema and data, then a run of every suite on a reference model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines.cli import main as cli_main
from pipelines.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = load_config()


def test_validate_runs_every_suite_on_the_reference_model(
    tiny_model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    suites = tmp_path / "suites"
    for name in ("company_quiz", "policy_perplexity", "support_routing"):
        shutil.copytree(REPO_ROOT / "benchmarks" / name, suites / name)
    out = tmp_path / "out"
    code = cli_main(["benchmarks", "validate", str(suites), "--model", str(tiny_model_dir), "--output-dir", str(out),
                     "--max-new-tokens", "4"])
    printed = capfd.readouterr().out
    assert code == 0, printed
    assert f"every suite loads and runs on {tiny_model_dir}" in printed
    assert "company_quiz: 35 cases, accuracy " in printed and "support_routing: 20 cases, accuracy " in printed
    assert "policy_perplexity: 12 cases, perplexity " in printed
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert set(evaluation["suites"]) == {"company_quiz", "policy_perplexity", "support_routing"}
    assert (out / "report.html").is_file() and f"report: {out / 'report.html'}" in printed


def test_validate_names_the_broken_field_and_reads_s3(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken" / "quiz"
    shutil.copytree(REPO_ROOT / "benchmarks" / "company_quiz", broken)
    with (broken / "cases.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('{"id": "bad", "prompt": "p", "choices": ["a", "b"], "answer": 5}\n')
    assert cli_main(["benchmarks", "validate", str(broken), "--no-run"]) == 2
    assert "cases.jsonl:36: field 'answer' is 5, not an index of the 2 choices" in capfd.readouterr().err

    from pipelines.backend import local_backend
    from pipelines.local.s3 import LocalS3

    home = tmp_path / "home"
    local_backend(CONFIG, home)
    prefix = f"s3://{CONFIG.project.bucket}/custom-benchmarks"
    store = LocalS3(home / "s3")
    for path in (REPO_ROOT / "benchmarks" / "support_answers").iterdir():
        store.put_file(f"{prefix}/support_answers/{path.name}", path)
    assert cli_main(["--home", str(home), "benchmarks", "validate", prefix, "--no-run"]) == 0
    printed = capfd.readouterr().out
    assert "support_answers: generation (built-in), 12 cases, metrics chrf, rouge_l, bleu" in printed
    assert "schema and data OK (not run: --no-run)" in printed
    assert cli_main(["benchmarks", "validate", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capfd.readouterr().out
