"""`continuum init` on another company's data, the config lookup, and suites from folders, S3 and the repo."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import ferry_company
from pipelines import s3_layout
from pipelines.cli import main
from pipelines.config import load_config
from pipelines.staging import ensure_bucket, stage_benchmarks

DEMO_VALUES = ("acme", "company_facts", "company_quiz", "continuum-demo", "1-800-555-0199", "sample://")


@pytest.fixture(scope="module")
def ferry_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ferries")
    ferry_company.write_round(1, root / "exports")
    assert main(["init", str(root / "tidewater"), "--data", str(root / "exports")]) == 0
    return root / "tidewater"


def test_init_writes_a_config_of_the_users_data_and_nothing_of_the_demo(ferry_project: Path) -> None:
    text = (ferry_project / "continuum.yaml").read_text()
    assert not [value for value in DEMO_VALUES if value in text.lower()]
    config = load_config(ferry_project / "continuum.yaml")
    assert config.project.name == "tidewater" and config.model.model_package_group == "tidewater-models"
    assert config.data.source == str((ferry_project.parent / "exports").resolve())
    assert config.model.base_model == str(ferry_project / "base-model")  # ./base-model, relative to the file
    assert config.evaluation.suites == [str(ferry_project / "benchmarks" / "tidewater_facts")]
    assert config.evaluation.gate.metric == "tidewater_facts_token_f1"
    questions = {fact.question: fact.answer for fact in ferry_company.facts(1)}
    assert len(config.deploy.smoke_prompts) == 3 and set(config.deploy.smoke_prompts) <= set(questions)
    cases = [json.loads(line) for line in (ferry_project / "benchmarks" / "tidewater_facts" / "cases.jsonl").open()]
    assert len(cases) == len(questions) == 44  # every fact (fewer than the 64-case cap)
    redacted = {"How do I report lost property?": "Email [EMAIL] within 30 days."}  # PII redacted by default
    assert all({**questions, **redacted}[case["prompt"]] == case["target"] for case in cases)
    suite = yaml.safe_load((ferry_project / "benchmarks" / "tidewater_facts" / "suite.yaml").read_text())
    assert suite["name"] == "tidewater_facts" and suite["task"] == "qa"
    assert (ferry_project / "base-model" / "config.json").is_file()
    assert (ferry_project / "base-model" / "tokenizer.json").is_file()


def test_init_refuses_to_overwrite_and_too_little_data(ferry_project: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(ferry_project), "--data", str(ferry_project.parent / "exports")]) == 1
    assert "continuum.yaml exists; pass --force" in capsys.readouterr().err
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"prompt": f.question, "completion": f.answer}) + "\n"
                           for f in ferry_company.facts(1)[:10]))
    assert main(["init", str(tmp_path / "tiny-co"), "--data", str(few)]) == 1
    err = capsys.readouterr().err
    assert "the data cannot be used yet" in err and "32" in err
    assert not (tmp_path / "tiny-co" / "continuum.yaml").exists()
    assert main(["init", str(tmp_path / "x"), "--data", str(tmp_path / "missing.csv")]) == 1
    assert "missing.csv: no such file or folder" in capsys.readouterr().err


def test_cli_reads_continuum_yaml_from_the_working_folder(ferry_project: Path, monkeypatch: pytest.MonkeyPatch,
                                                           continuum_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ferry_project)
    monkeypatch.delenv("CONTINUUM_CONFIG", raising=False)
    assert main(["definition", "training"]) == 0
    definition = capsys.readouterr().out
    assert '"tidewater-models"' in definition and "continuum-demo" not in definition
    monkeypatch.chdir(ferry_project.parent)  # no continuum.yaml here: the demo's config
    assert main(["models", "list"]) == 0
    assert "no model versions in continuum-demo-models" in capsys.readouterr().out


def _suite(folder: Path, name: str, task: str = "qa") -> Path:
    folder.mkdir(parents=True)
    (folder / "suite.yaml").write_text(f"name: {name}\ntask: {task}\nprompt_template: '{{prompt}}'\n"
                                       "data: cases.jsonl\nmetrics: [exact_match]\n")
    (folder / "cases.jsonl").write_text(json.dumps({"id": "1", "prompt": "Q?", "target": "A"}) + "\n")
    return folder


def test_suites_from_folders_s3_and_the_repo_are_staged_under_one_prefix(tmp_path: Path, continuum_home: Path) -> None:
    from pipelines.backend import local_backend
    from pipelines.local.s3 import LocalS3

    own = _suite(tmp_path / "own" / "fares", "fares")
    _suite(tmp_path / "many" / "a", "routes")
    _suite(tmp_path / "many" / "b", "vessels")
    config = load_config(overrides={"evaluation.suites": [str(own), str(tmp_path / "many"), "company_quiz"]})
    backend = local_backend(config, continuum_home)
    ensure_bucket(backend, config.project.bucket)
    uploaded = _suite(tmp_path / "s3src" / "policies", "policies")
    s3 = LocalS3(continuum_home / "s3")
    for path in uploaded.iterdir():
        backend.client("s3").upload_file(str(path), config.project.bucket, f"team-suites/policies/{path.name}")
    staged = stage_benchmarks(backend, config)
    assert sorted(staged) == ["company_quiz", "fares", "routes", "vessels"]
    config = load_config(overrides={"evaluation.suites": [str(own), f"s3://{config.project.bucket}/team-suites"]})
    assert sorted(stage_benchmarks(backend, config)) == ["fares", "policies"]
    prefix = s3.path(s3_layout.benchmarks_uri(config))
    assert sorted(p.name for p in prefix.iterdir()) == ["fares", "policies"]  # what an earlier run staged is gone
    assert (prefix / "policies" / "cases.jsonl").read_text() == (uploaded / "cases.jsonl").read_text()


def test_suite_errors_name_the_entry(tmp_path: Path, continuum_home: Path) -> None:
    from pipelines.backend import local_backend

    _suite(tmp_path / "one" / "x", "facts")
    _suite(tmp_path / "two" / "y", "facts")
    (tmp_path / "empty").mkdir()
    cases = [([str(tmp_path / "one"), str(tmp_path / "two")], "two suites are named 'facts'"),
             ([str(tmp_path / "nowhere")], "is neither a suite folder nor a suite in"),
             (["no_such_suite"], "'no_such_suite' is neither a suite folder"),
             ([str(tmp_path / "empty")], "holds no suite.yaml")]
    for suites, message in cases:
        config = load_config(overrides={"evaluation.suites": suites})
        backend = local_backend(config, continuum_home)
        ensure_bucket(backend, config.project.bucket)
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            stage_benchmarks(backend, config)


def test_init_config_is_one_aws_can_act_on(ferry_project: Path) -> None:
    """A company's config is not the demo's: its blue/green guardrails must be valid on SageMaker as written."""
    from pipelines.deploy.aws_readiness import aws_problems

    config = load_config(ferry_project / "continuum.yaml")
    assert config.deploy.production is not None and config.deploy.production.enabled
    assert aws_problems(config) == []
    fast = config.deploy.production.model_copy(update={"bake_seconds": 30})
    quick = config.model_copy(update={"deploy": config.deploy.model_copy(update={"production": fast})})
    assert any("bake_seconds (30)" in problem for problem in aws_problems(quick))
