"""Both pipeline definitions end to end on the embedded runtime with the tiny model (two demo rounds, run once per
session by tests/demo_homes.py; this module reads its own copies of the home after round 1 and after round 2)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from pipelines.backend import Backend, local_backend
from pipelines.config import load_config
from pipelines.definitions import definition_json
from pipelines.demo.run_demo import DemoSummary, demo_config, tiny_base_model_builder
from pipelines.local.capture import read_capture_records
from pipelines.local.s3 import LocalS3
from pipelines.registry_ops import list_versions
from pipelines.staging import stage_training_inputs

if TYPE_CHECKING:
    from demo_homes import DemoSnapshot

CONFIG = load_config()
GROUP = CONFIG.model.model_package_group


@pytest.fixture(scope="module")
def round_one_home(demo_rounds: dict[int, DemoSnapshot], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The home as the demo's first round left it (a copy of the session's, tests/demo_homes.py)."""
    return demo_rounds[1].copy_to(tmp_path_factory.mktemp("demo-round-one"))


@pytest.fixture(scope="module")
def round_one_backend(round_one_home: Path) -> Backend:
    return local_backend(CONFIG, round_one_home)


@pytest.fixture(scope="module")
def home(demo_rounds: dict[int, DemoSnapshot], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The home after both demo rounds (a copy of the session's; its name is what test_permissions_observed reads)."""
    root = demo_rounds[2].copy_to(tmp_path_factory.mktemp("continuum-home"))
    yield root
    backend = local_backend(CONFIG, root)
    sagemaker = backend.client("sagemaker")
    for page in sagemaker.get_paginator("list_endpoints").paginate():
        for endpoint in page["Endpoints"]:
            sagemaker.delete_endpoint(EndpointName=endpoint["EndpointName"])


@pytest.fixture(scope="module")
def backend(home: Path) -> Backend:
    return local_backend(CONFIG, home)


@pytest.fixture(scope="module")
def round_one(demo_rounds: dict[int, DemoSnapshot], round_one_home: Path) -> DemoSummary:
    return demo_rounds[1].summary_in(round_one_home)


@pytest.fixture(scope="module")
def round_two(demo_rounds: dict[int, DemoSnapshot], home: Path) -> DemoSummary:
    return demo_rounds[2].summary_in(home)


def _step_statuses(summary: DemoSummary) -> dict[str, str]:
    return {step["name"]: step["status"] for step in summary.training.steps}


def test_round_one_runs_every_step_and_registers_version_one(round_one: DemoSummary, round_one_backend: Backend) -> None:
    assert _step_statuses(round_one) == {
        "ResolveBaseline": "Succeeded",
        "PrepareData": "Succeeded",
        "CheckInputData": "Succeeded",
        "CheckDataChanged": "Succeeded",
        "TrainModel": "Succeeded",
        "EvaluateModel": "Succeeded",
        "CheckQualityThreshold": "Succeeded",
        "CheckForgetting": "Succeeded",
        "CheckNoRegression": "Succeeded",
        "RegisterModel-RegisterModel": "Succeeded",
    }  # the FailSteps never started, so they are not listed (as in ListPipelineExecutionSteps)
    versions = list_versions(round_one_backend.client("sagemaker"), GROUP)
    assert [(v.version, v.approval_status) for v in versions] == [(1, "Approved")]
    train = next(step for step in round_one.training.steps if step["name"] == "TrainModel")
    assert train["metrics"]["train_loss"] < 2.0
    assert versions[0].model_data_url == train["model_artifacts"]


def test_lineage_records_the_data_version(round_one: DemoSummary, round_one_home: Path) -> None:
    assert round_one.version is not None
    metadata = round_one.version.metadata
    reports = [json.loads(path.read_text()) for path in (round_one_home / "s3").rglob("report/report.json")]
    assert metadata["data_version"] in {report["data_version"] for report in reports}
    assert metadata["training_data_uri"].startswith(f"{CONFIG.s3_prefix}/data/")
    assert metadata["parent_model_package_arn"] == "none"


def test_evaluation_json_follows_the_contract(round_one: DemoSummary) -> None:
    assert round_one.evaluation_path is not None
    evaluation = json.loads(round_one.evaluation_path.read_text())
    gate_metric = CONFIG.evaluation.gate.metric
    assert set(evaluation) >= {"metrics", "suites", "gate"}
    for name, metric in evaluation["metrics"].items():
        assert set(metric) >= {"value", "baseline", "delta", "higher_is_better", "regression"}, name
        assert metric["delta"] == pytest.approx(metric["value"] - metric["baseline"])
    gate = evaluation["metrics"][gate_metric]
    assert gate["value"] >= CONFIG.evaluation.gate.threshold
    assert gate["value"] > gate["baseline"], "fine-tuning must beat the untrained base model"
    assert evaluation["gate"]["passed"] is True


def test_endpoint_answers_and_captures_traffic(round_one: DemoSummary, round_one_home: Path) -> None:
    assert len(round_one.answers) == 4
    assert all(item["answer"] for item in round_one.answers)
    correct = sum(item["expected"].lower() in item["answer"].lower() for item in round_one.answers)
    assert correct >= 2, round_one.answers
    records = list(read_capture_records(LocalS3(round_one_home / "s3"), f"{CONFIG.s3_prefix}/data-capture",
                                        CONFIG.deploy.endpoint_name))
    prompts = [json.loads(r["captureData"]["endpointInput"]["data"])["inputs"] for r in records]
    for item in round_one.answers:
        assert item["question"] in prompts
    assert all(r["captureData"]["endpointOutput"]["observedContentType"].startswith("application/json") for r in records)


def test_round_two_trains_from_version_one_and_compares_against_it(round_two: DemoSummary, round_one: DemoSummary) -> None:
    assert round_two.round_no == 2
    assert round_one.version is not None and round_two.version is not None
    assert round_two.version.version == 2
    assert round_two.version.metadata["parent_model_package_arn"] == round_one.version.arn
    assert round_two.version.metadata["start_model_uri"] == round_one.version.model_data_url
    assert round_two.version.metadata["data_version"] != round_one.version.metadata["data_version"]
    evaluation = json.loads(round_two.evaluation_path.read_text())  # type: ignore[union-attr]
    round_one_evaluation = json.loads(round_one.evaluation_path.read_text())  # type: ignore[union-attr]
    gate_metric = CONFIG.evaluation.gate.metric
    # The baseline of round 2 is version 1, scored again on the same cases.
    assert evaluation["metrics"][gate_metric]["baseline"] == pytest.approx(
        round_one_evaluation["metrics"][gate_metric]["value"], abs=1e-6
    )



def _inventory(home: Path, uri: str) -> list[dict]:
    path = LocalS3(home / "s3").path(uri.rstrip("/") + "/inventory.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_knowledge_inventory_carries_round_one_into_round_two(round_two: DemoSummary, round_one: DemoSummary,
                                                                  home: Path) -> None:
    """Round 1's inventory holds its train split with verdicts; round 2 re-asks what version 1 knew."""
    assert round_one.version is not None and round_two.version is not None
    versions = [round_one.version.metadata["data_version"], round_two.version.metadata["data_version"]]
    first = _inventory(home, round_one.version.metadata["inventory_uri"])
    second = _inventory(home, round_two.version.metadata["inventory_uri"])
    assert first and {row["data_version"] for row in first} == {versions[0]}
    assert sum(row["known"] is True for row in first) > len(first) // 2, "round 1 learned most of its facts"
    assert {row["data_version"] for row in second} == set(versions)
    evaluation = json.loads(round_two.evaluation_path.read_text())  # type: ignore[union-attr]
    round_one_evaluation = json.loads(round_one.evaluation_path.read_text())  # type: ignore[union-attr]
    assert round_one_evaluation["inventory"]["retention"] is None and round_one_evaluation["gate"]["forgetting"] == 0.0
    inventory = evaluation["inventory"]
    assert inventory["previous"] == {"items": len(first), "known": sum(row["known"] is True for row in first)}
    assert inventory["merge"]["superseded"] > 0  # round 2 changes answers: version 1's are dropped
    assert len(second) == len(first) - inventory["merge"]["superseded"] + inventory["merge"]["added"]
    retention = inventory["retention"]
    assert retention["asked"] == min(CONFIG.evaluation.retention_max_cases, inventory["previous"]["known"])
    assert retention["known"] >= retention["asked"] - 2  # version 1 still answers what it answered before
    gate = evaluation["gate"]
    assert gate["forgetting"] == evaluation["metrics"]["forgetting"]["value"] == retention["forgetting"]
    assert gate["forgetting"] <= CONFIG.evaluation.gate.max_forgetting  # the default strategy keeps round 1
    asked = {case["id"] for case in evaluation["suites"]["retention"]["examples"]}
    assert asked <= {row["id"] for row in first if row["known"]}


def test_definition_change_changes_the_local_run(round_two: DemoSummary, backend: Backend) -> None:
    """Raise the gate's threshold inside the definition JSON: the same run now ends in the FailStep."""
    from pipelines.local.api_server import LocalApiServer, subprocess_env
    from pipelines.local.runtime import LocalPipelineRuntime

    config = demo_config(2)
    definition = definition_json("training", config, backend)
    for parameter in definition["Parameters"]:
        if parameter["Name"] == "GateThreshold":
            parameter["DefaultValue"] = 1.5
    assert backend.home is not None
    staged = stage_training_inputs(backend, config, tiny_base_model_builder(backend.home))
    assert backend.home is not None
    lines: list[str] = []
    with LocalApiServer(backend.local_api) as url:
        runtime = LocalPipelineRuntime(backend.home, backend.client("sagemaker"), subprocess_env(url, region="us-east-1"),
                                       lines.append)
        result = runtime.execute(definition, config.training_pipeline_name, {**staged.parameters(), "Epochs": 1})
    assert result.status == "Failed"
    assert result.step("FailQualityThreshold").status == "Failed"
    assert "RegisterModel-RegisterModel" not in {step.name for step in result.steps}  # never started
    assert CONFIG.evaluation.gate.metric in (result.failure_reason or "")
    assert "1.5" in (result.failure_reason or "")
    versions = list_versions(backend.client("sagemaker"), GROUP)
    assert [v.version for v in versions] == [2, 1]


def test_production_and_monitoring_after_round_two(round_two: DemoSummary, home: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """Both stages serve version 2 (production by a blue/green update); the monitor pipeline checks staging's traffic."""
    from pipelines.cli import main as cli_main

    staging = CONFIG.deploy.endpoint_name
    assert cli_main(["--home", str(home), "monitor", "run", "--endpoint", staging]) == 0
    capsys.readouterr()
    reports = list((home / "s3").rglob(f"monitoring/reports/{staging}/*/report.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["rows"] >= 2 * 67 and report["unreadable_records"]["count"] == 0  # two rounds of benchmarks
    assert report["verdict"] in ("ok", "drift", "degraded") and report["service_metrics"]["error_rate"] == 0.0
    violations = json.loads((reports[0].parent / "constraint_violations.json").read_text())["violations"]
    assert sorted(v.get("feature_name") or v["metric_name"] for v in violations) == sorted(report["violations"])

    assert cli_main(["--home", str(home), "status", "--json"]) == 0
    output = capsys.readouterr().out
    rows = {row["stage"]: row for row in json.loads(output[output.index("["):output.rindex("]") + 1])}
    assert (rows["staging"]["version"], rows["production"]["version"]) == (2, 2)
    assert rows["production"]["traffic"] == "100% v2" and rows["staging"]["drift"]["verdict"] == report["verdict"]
    assert round_two.deploy is not None
    record = json.loads(next((home / "s3").rglob(
        f"{CONFIG.deploy_pipeline_name}/{round_two.deploy.execution_id}/DeployProduction/**/deployment.json")).read_text())
    assert record["action"] == "updated" and record["deployment_config"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"]["Type"] == CONFIG.deploy.production.traffic_routing  # type: ignore[union-attr]
