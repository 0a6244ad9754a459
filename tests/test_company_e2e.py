"""A second company end to end through the CLI, as a new user runs it: Tidewater Ferries (not the demo).

init → round 1 → approve → deploy (staging, gated on the company's own suite) → a deploy whose gate
metric no suite gives stops before any endpoint changes → round 2, a delta export with changed
facts (default strategy passes the forgetting check) → a naive round 2 is blocked by the forgetting
check itself → a junk export is stopped in prepare.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import pytest
import yaml

import ferry_company
from pipelines.backend import local_backend
from pipelines.cli import main
from pipelines.config import load_config
from pipelines.registry_ops import list_versions

NAME = "tidewater"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("tidewater")
    for round_no in (1, 2):
        ferry_company.write_round(round_no, root / f"round-{round_no}")
    ferry_company.junk_export(root / "junk")
    patch = pytest.MonkeyPatch()
    patch.setenv("CONTINUUM_HOME", str(root / "home"))
    patch.delenv("CONTINUUM_CONFIG", raising=False)
    assert main(["init", str(root / NAME), "--data", str(root / "round-1")]) == 0
    patch.chdir(root / NAME)
    yield root / NAME
    config = load_config(root / NAME / "continuum.yaml")
    sagemaker = local_backend(config, root / "home").client("sagemaker")
    for endpoint in sagemaker.list_endpoints()["Endpoints"]:
        sagemaker.delete_endpoint(EndpointName=endpoint["EndpointName"])
    patch.undo()


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _execution(home: Path, pipeline: str, output: str) -> dict:
    execution_id = re.findall(rf"^{pipeline} (\w+): ", output, flags=re.M)[-1]  # the CLI's closing line
    return json.loads((home / "executions" / pipeline / execution_id / "execution.json").read_text())


def _statuses(execution: dict) -> dict[str, str]:
    return {step["name"]: step["status"] for step in execution["steps"]}


def _evaluation(home: Path, execution: dict) -> dict:
    found = list((home / "s3").glob(f"*/*/{execution['execution_id']}/EvaluateModel/output/evaluation/evaluation.json"))
    return json.loads(found[0].read_text())


@pytest.fixture(scope="module")
def round_one(project: Path) -> dict:
    code = main(["run"])
    assert code == 0
    home = project.parent / "home"
    runs = sorted((home / "executions" / f"{NAME}-training").iterdir())
    return json.loads((runs[-1] / "execution.json").read_text())


def test_round_one_passes_the_gate_on_the_companys_own_suite(project: Path, round_one: dict) -> None:
    statuses = _statuses(round_one)
    assert round_one["status"] == "Succeeded" and statuses["RegisterModel-RegisterModel"] == "Succeeded"
    evaluation = _evaluation(project.parent / "home", round_one)
    f1 = evaluation["metrics"][f"{NAME}_facts_token_f1"]
    assert f1["value"] >= 0.5 > f1["baseline"]  # learned the company's facts; the tiny base model knew none
    inventory = evaluation["inventory"]["next"]
    assert inventory["items"] == 44  # every fact reached training: one phrasing each, none withheld
    assert inventory["known"] >= 0.6 * 44


def test_deploy_gates_on_the_users_suite_and_a_bad_gate_metric_changes_no_endpoint(
        project: Path, round_one: dict, capsys: pytest.CaptureFixture[str]) -> None:
    home = project.parent / "home"
    assert _cli(capsys, "models", "approve")[0] == 0
    code, out = _cli(capsys, "deploy", "--param", "PromoteToProduction=false")
    assert code == 0, out
    execution = _execution(home, f"{NAME}-deploy", out)
    assert _statuses(execution)["CheckSmokeSuites"] == "Succeeded"
    smoke = next((home / "s3").glob(f"*/*/{execution['execution_id']}/SmokeTest/output/smoke/smoke.json"))
    live = json.loads(smoke.read_text())
    assert live["benchmarks"][f"{NAME}_facts"]["cases"] == 44 and live["gate"]["metric"] == f"{NAME}_facts_token_f1"
    sagemaker = local_backend(load_config("continuum.yaml"), home).client("sagemaker")
    serving = sagemaker.describe_endpoint(EndpointName=f"{NAME}-staging")["EndpointConfigName"]

    raw = yaml.safe_load(Path("continuum.yaml").read_text())
    raw["evaluation"]["gate"]["metric"] = "borealis_facts_token_f1"
    Path("broken.yaml").write_text(yaml.safe_dump(raw))
    code, out = _cli(capsys, "deploy", "--config", "broken.yaml", "--param", "PromoteToProduction=false")
    assert code == 1
    assert "'borealis_facts_token_f1' is not produced through the endpoint" in out
    statuses = _statuses(_execution(home, f"{NAME}-deploy", out))
    assert statuses["CheckSmokeSuites"] == "Failed" and statuses.get("DeployEndpoint") != "Succeeded"
    assert sagemaker.describe_endpoint(EndpointName=f"{NAME}-staging")["EndpointConfigName"] == serving


def test_round_two_delta_export_keeps_what_version_one_knew(project: Path, round_one: dict,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    home = project.parent / "home"
    code, out = _cli(capsys, "run", "--data", str(project.parent / "round-2"))
    assert code == 0, out
    execution = _execution(home, f"{NAME}-training", out)
    evaluation = _evaluation(home, execution)
    assert evaluation["gate"]["known_items_asked"] > 0 and evaluation["gate"]["forgetting"] <= 0.1
    changed = {fact.question: fact.answer for fact in ferry_company.facts(2) if fact.status == "changed"}
    updated = {u["prompt"]: u["data_answer"] for u in evaluation["suite_targets_updated"] if u["suite"] == f"{NAME}_facts"}
    assert updated == changed  # the suite's stale targets are scored against the new answers, and listed
    prepare_log = (home / "executions" / f"{NAME}-training" / execution["execution_id"] / "PrepareData" / "job.log")
    assert "kept by replay" in prepare_log.read_text()
    sagemaker = local_backend(load_config("continuum.yaml"), home).client("sagemaker")
    assert [v.version for v in list_versions(sagemaker, f"{NAME}-models")] == [2, 1]


def test_naive_round_two_is_blocked_by_the_forgetting_check(project: Path, round_one: dict,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    home = project.parent / "home"
    code, out = _cli(capsys, "run", "--data", str(project.parent / "round-2"), "--param", "TrainingStrategy=naive")
    assert code == 1
    execution = _execution(home, f"{NAME}-training", out)
    statuses = _statuses(execution)
    assert statuses["CheckForgetting"] == "Succeeded" and statuses["FailForgetting"] == "Failed"
    evaluation = _evaluation(home, execution)
    assert evaluation["gate"]["forgetting"] > 0.5
    assert "Gate failed: the candidate forgot" in out and "MaxForgetting 0.1" in out


def test_a_junk_export_is_stopped_in_prepare(project: Path, round_one: dict, capsys: pytest.CaptureFixture[str]) -> None:
    home = project.parent / "home"
    code, out = _cli(capsys, "run", "--data", str(project.parent / "junk"))
    assert code == 1
    statuses = _statuses(_execution(home, f"{NAME}-training", out))
    assert statuses["PrepareData"] == "Failed" and statuses.get("TrainModel") != "Succeeded"
    assert "this export changes the answers of" in out and "AllowDataChanges=true" in out
