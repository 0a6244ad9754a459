"""Cost per run and budgets: prices from the dated table (config overrides), the actual cost from SageMaker's job
descriptions (botocore Stubber: requests and responses checked against the service model), endpoint hours, the
estimate from earlier runs, and a budget that stops a real local run before training."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.backend import Backend, local_backend
from pipelines.config import load_config
from pipelines.cost import (
    JobCost, RunCost, endpoint_costs, endpoint_warning, estimate_run, month_to_date, price_table, run_cost)
from pipelines.execution_jobs import ExecutionJobs, execution_jobs

ACCOUNT = "arn:aws:sagemaker:us-east-1:123456789012"
EXECUTION = f"{ACCOUNT}:pipeline/continuum-demo-training/execution/abc123def456"
PACKAGE = f"{ACCOUNT}:model-package/continuum-demo-models/3"
STARTED = datetime(2026, 11, 3, 9, 0, tzinfo=timezone.utc)
METADATA_VALUE = re.compile(r"^[\w .:/=+\-@]*$")  # SageMaker's CustomerMetadata pattern (\w for letters/digits)


class _Session:
    """A boto3 session whose clients are the test's (stubbed) ones."""

    def __init__(self, **clients: Any) -> None:
        self.clients = clients

    def client(self, service: str, **_: Any) -> Any:
        return self.clients[service]


def _sagemaker() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _stub_execution(stub: Stubber) -> None:
    """One SageMaker execution: prepare (processing, 10 min) and managed-spot training on 2 x ml.g5.2xlarge that ran
    an hour and billed half of it."""
    stub.add_response("describe_pipeline_execution", {
        "PipelineExecutionArn": EXECUTION, "PipelineExecutionStatus": "Succeeded", "CreationTime": STARTED},
        {"PipelineExecutionArn": EXECUTION})
    stub.add_response("list_pipeline_parameters_for_execution", {"PipelineParameters": [
        {"Name": "InputDataUri", "Value": "s3://bucket/continuum-demo/data/v1"},
        {"Name": "TrainingInstanceType", "Value": "ml.g5.2xlarge"}]}, {"PipelineExecutionArn": EXECUTION})
    stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        {"StepName": "PrepareData", "StepStatus": "Succeeded",
         "Metadata": {"ProcessingJob": {"Arn": f"{ACCOUNT}:processing-job/pipelines-abc-preparedata-1"}}},
        {"StepName": "TrainModel", "StepStatus": "Succeeded",
         "Metadata": {"TrainingJob": {"Arn": f"{ACCOUNT}:training-job/pipelines-abc-trainmodel-1"}}},
        {"StepName": "RegisterModel-RegisterModel", "StepStatus": "Succeeded",
         "Metadata": {"RegisterModel": {"Arn": PACKAGE}}}]}, {"PipelineExecutionArn": EXECUTION})
    stub.add_response("describe_processing_job", {
        "ProcessingJobName": "pipelines-abc-preparedata-1", "ProcessingJobArn": f"{ACCOUNT}:processing-job/x",
        "ProcessingJobStatus": "Completed", "CreationTime": STARTED, "AppSpecification": {"ImageUri": "image"},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                                  "VolumeSizeInGB": 30}},
        "ProcessingStartTime": STARTED, "ProcessingEndTime": STARTED + timedelta(minutes=10)},
        {"ProcessingJobName": "pipelines-abc-preparedata-1"})
    stub.add_response("describe_training_job", {
        "TrainingJobName": "pipelines-abc-trainmodel-1", "TrainingJobArn": f"{ACCOUNT}:training-job/x",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/model.tar.gz"}, "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed", "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 172800},
        "CreationTime": STARTED, "EnableManagedSpotTraining": True,
        "TrainingTimeInSeconds": 3600, "BillableTimeInSeconds": 1800},
        {"TrainingJobName": "pipelines-abc-trainmodel-1"})


def test_the_actual_cost_is_billable_seconds_times_instances_times_the_list_price() -> None:
    config = load_config()
    client = _sagemaker()
    with Stubber(client) as stub:
        _stub_execution(stub)
        execution = execution_jobs(Backend("aws", _Session(sagemaker=client)), "", EXECUTION)
        stub.assert_no_pending_responses()
    assert (execution.pipeline_name, execution.status, execution.model_package_arn) == (
        "continuum-demo-training", "Succeeded", PACKAGE)
    cost = run_cost(execution, price_table(config), config)
    jobs = {job.step: job for job in cost.jobs}
    train, prepare = jobs["TrainModel"], jobs["PrepareData"]
    assert (train.instance_type, train.instance_count, train.billable_seconds, train.run_seconds) == (
        "ml.g5.2xlarge", 2, 1800, 3600)
    assert train.spot_savings == 0.5
    assert train.usd == pytest.approx(1.515 * 2 * 0.5)
    assert prepare.billable_seconds == 600 and prepare.usd == pytest.approx(0.23 / 6, abs=1e-4)
    assert cost.usd == pytest.approx(1.515 + 0.23 / 6, abs=1e-4)
    assert "2025-06-01" in cost.basis and "us-east-1" in cost.basis and "local" not in cost.basis
    metadata = cost.as_metadata()
    assert metadata["cost_usd"] == f"{cost.usd:.4f}" and metadata["cost_training_billable_seconds"] == "1800"
    assert all(METADATA_VALUE.match(value) and 0 < len(value) <= 256 for value in metadata.values())
    assert month_to_date([cost], datetime(2026, 11, 30, tzinfo=timezone.utc)) == cost.usd
    assert month_to_date([cost], datetime(2026, 12, 1, tzinfo=timezone.utc)) == 0


def test_config_prices_override_the_table_and_a_bad_table_names_its_entry(tmp_path: Path) -> None:
    base = load_config()
    assert price_table(base).price("training", "ml.g5.2xlarge") == 1.515
    config = load_config(overrides={"cost.prices": {"training": {"ml.g5.2xlarge": 1.0, "ml.trn1.2xlarge": 1.5}}})
    table = price_table(config)
    assert table.price("training", "ml.g5.2xlarge") == 1.0 and table.price("training", "ml.trn1.2xlarge") == 1.5
    assert table.price("processing", "ml.m5.xlarge") == 0.23 and "config overrides" in table.date
    bad = tmp_path / "prices.yaml"
    bad.write_text("date: x\nregion: us-east-1\nsource: s\ntraining: {ml.m5.xlarge: -1}\nprocessing: {}\nhosting: {}\n")
    with pytest.raises(ValueError, match=r"prices.yaml: training.ml.m5.xlarge: a price is a non-negative number"):
        price_table(base, bad)
    with pytest.raises(Exception, match="cost.prices.hosting"):
        load_config(overrides={"cost.prices": {"hosting": {"ml.g5.xlarge": "cheap"}}})


def _history_run(train_seconds: int, prepare_seconds: int, status: str = "Succeeded") -> RunCost:
    execution = ExecutionJobs("p", "id", "arn", status, STARTED, {}, {}, None, "aws")
    return RunCost(execution, [
        JobCost("TrainModel", "training", "ml.g5.2xlarge", 1, train_seconds, train_seconds, 1.515 * train_seconds / 3600),
        JobCost("PrepareData", "processing", "ml.m5.xlarge", 1, prepare_seconds, prepare_seconds,
                0.23 * prepare_seconds / 3600)], "basis")


def test_the_estimate_scales_earlier_runs_seconds_per_byte_to_this_runs_data() -> None:
    config = load_config()
    table = price_table(config)
    history = [(_history_run(1000, 100), 1_000_000), (_history_run(3000, 300), 2_000_000)]  # 4000 s / 3 MB
    estimate = estimate_run(config, table, {"TrainingInstanceType": "ml.g5.2xlarge"}, 3_000_000, history)
    assert estimate.training_seconds == pytest.approx(4000)
    assert estimate.usd == pytest.approx(1.515 * 4000 / 3600 + 0.23 * 200 / 3600, abs=1e-4)
    assert "of the last 2 runs" in estimate.describe() and "PrepareData" in estimate.describe()
    two = estimate_run(config, table, {"TrainingInstanceType": "ml.g5.2xlarge", "TrainingInstanceCount": 2},
                       3_000_000, history)
    assert two.usd > estimate.usd  # two instances bill twice the training seconds

    cold = estimate_run(config, table, {}, 3_000_000, [])
    assert cold.training_seconds == config.training.max_run_seconds
    assert cold.usd == pytest.approx(1.515 * config.training.max_run_seconds / 3600, abs=1e-3)
    assert "training.max_run_seconds" in cold.describe()
    with pytest.raises(ValueError, match=r"cost.prices.training.ml.trn1.2xlarge"):
        estimate_run(config, table, {"TrainingInstanceType": "ml.trn1.2xlarge"}, 1, history)


def test_endpoint_hours_per_stage_and_the_monthly_warning() -> None:
    config = load_config(overrides={"cost.budget.endpoints_monthly_warn_usd": 500})
    client = _sagemaker()
    created = datetime.now(timezone.utc) - timedelta(hours=10)
    with Stubber(client) as stub:
        stub.add_response("describe_endpoint", {
            "EndpointName": "continuum-demo-staging", "EndpointArn": f"{ACCOUNT}:endpoint/continuum-demo-staging",
            "EndpointConfigName": "staging-config-3", "EndpointStatus": "InService", "CreationTime": created,
            "LastModifiedTime": created, "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": 1}]},
            {"EndpointName": "continuum-demo-staging"})
        stub.add_response("describe_endpoint_config", {
            "EndpointConfigName": "staging-config-3", "EndpointConfigArn": f"{ACCOUNT}:endpoint-config/staging-config-3",
            "CreationTime": created, "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": "m", "InstanceType": "ml.g5.xlarge",
                 "InitialInstanceCount": 1}]}, {"EndpointConfigName": "staging-config-3"})
        stub.add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint continuum-demo-prod",
                              expected_params={"EndpointName": "continuum-demo-prod"})
        costs = endpoint_costs(Backend("aws", _Session(sagemaker=client)), config, price_table(config))
        stub.assert_no_pending_responses()
    assert [(c.stage, c.name, c.variants) for c in costs] == [
        ("staging", "continuum-demo-staging", [("ml.g5.xlarge", 1)])]
    assert costs[0].hours == pytest.approx(10, abs=0.05)
    assert costs[0].usd_so_far == pytest.approx(14.08, abs=0.1)
    assert costs[0].usd_per_month == pytest.approx(1.408 * 730)
    warning = endpoint_warning(costs, config)
    assert warning and "$1,027.84 a month" in warning and "endpoints_monthly_warn_usd $500.00" in warning
    assert endpoint_warning(costs, load_config(overrides={"cost.budget.endpoints_monthly_warn_usd": 2000})) is None
    assert endpoint_warning(costs, load_config()) is None


@pytest.fixture(scope="module")
def budget_stop(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real local training run of the demo's round 1 under a $0.50 run budget, with MLflow tracking on: no earlier
    run, so its estimate is the training job's MaxRuntimeInSeconds at the list price, over the limit."""
    from pipelines.demo.run_demo import demo_config
    from pipelines.execution import run_pipeline
    from pipelines.staging import stage_training_inputs

    folder = tmp_path_factory.mktemp("budget")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = demo_config(1, load_config(overrides={"cost.budget.per_run_usd": 0.5,
                                                   "tracking.mlflow_uri": uri}))
    backend = local_backend(config, folder / "home")
    staged = stage_training_inputs(backend, config, lambda: tiny_model_dir)
    lines: list[str] = []
    outcome = run_pipeline("training", config, backend, staged.parameters(), lines.append)
    return {"outcome": outcome, "lines": lines, "home": folder / "home", "uri": uri, "config": config,
            "backend": backend}


def test_a_run_over_its_budget_stops_before_training_naming_the_estimate_and_the_limit(
        budget_stop: dict[str, Any]) -> None:
    outcome, config = budget_stop["outcome"], budget_stop["config"]
    statuses = {step["name"]: step["status"] for step in outcome.steps}
    assert outcome.status == "Failed", "\n".join(budget_stop["lines"][-30:])
    assert statuses["PrepareData"] == "Succeeded" and statuses["FailRunBudget"] == "Failed"
    assert not {"TrainModel", "EvaluateModel"} & set(statuses)  # never started
    expected = round(1.515 * config.training.max_run_seconds / 3600, 4)
    assert f"the estimated cost of this run, ${expected}" in outcome.failure_reason
    assert "passes the limit of $0.5 (cost.budget.per_run_usd)" in outcome.failure_reason
    text = "\n".join(budget_stop["lines"])
    assert f"cost estimate: ${expected:,.4f}" in text and "training.max_run_seconds" in text


def test_continuum_cost_lists_the_run_with_its_jobs(budget_stop: dict[str, Any],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from pipelines.cli import main

    outcome = budget_stop["outcome"]
    assert main(["--home", str(budget_stop["home"]), "cost", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    [run] = summary["runs"]
    assert (run["execution"], run["status"], run["backend"], run["model_version"]) == (
        outcome.execution_id, "Failed", "local", "-")
    steps = {job["step"]: job for job in run["jobs"]}
    assert set(steps) == {"ResolveBaseline", "PrepareData"}
    seconds = {step["name"]: step["seconds"] for step in outcome.steps}
    assert abs(steps["PrepareData"]["billable_seconds"] - seconds["PrepareData"]) <= 1
    assert run["usd"] == pytest.approx(sum(job["usd"] for job in run["jobs"]))
    assert summary["budget"]["per_run_usd"] is None  # the default config's; the run above had its own
    assert main(["--home", str(budget_stop["home"]), "cost"]) == 0
    text = capsys.readouterr().out
    assert outcome.execution_id in text and "PrepareData       ml.m5.xlarge x1" in text


def _steps(steps: list[dict[str, Any]], depth: int = 0) -> list[tuple[int, str]]:
    found = []
    for step in steps:
        found.append((depth, step["Name"]))
        if step["Type"] == "Condition":
            found += _steps(step["Arguments"]["IfSteps"], depth + 1) + _steps(step["Arguments"]["ElseSteps"], depth + 1)
    return found


def _find(steps: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for step in steps:
        if step["Name"] == name:
            return step
        if step["Type"] == "Condition":
            for branch in ("IfSteps", "ElseSteps"):
                try:
                    return _find(step["Arguments"][branch], name)
                except KeyError:
                    pass
    raise KeyError(name)


def test_the_budget_steps_guard_training_only_when_a_limit_is_set(moto_backend: Backend) -> None:
    import json

    from pipelines.definitions import build_pipeline

    plain = json.loads(build_pipeline("training", load_config(), moto_backend).definition())
    assert not {"CostEstimateUsd", "MonthProjectedUsd"} & {p["Name"] for p in plain["Parameters"]}
    assert not any("Budget" in name for _, name in _steps(plain["Steps"]))

    config = load_config(overrides={"cost.budget.per_run_usd": 20, "cost.budget.per_month_usd": 300})
    definition = json.loads(build_pipeline("training", config, moto_backend).definition())
    assert {"CostEstimateUsd", "MonthProjectedUsd"} <= {p["Name"] for p in definition["Parameters"]}
    depth = dict((name, level) for level, name in _steps(definition["Steps"]))
    assert depth["CheckDataChanged"] < depth["CheckRunBudget"] < depth["CheckMonthBudget"] < depth["TrainModel"]
    assert depth["FailRunBudget"] == depth["CheckMonthBudget"] and depth["FailMonthBudget"] == depth["TrainModel"]
    message = json.dumps(_find(definition["Steps"], "FailMonthBudget")["Arguments"]["ErrorMessage"])
    assert "this month's runs plus this run's estimate" in message and "cost.budget.per_month_usd" in message
    assert '"Get": "Parameters.MonthProjectedUsd"' in message


def test_before_a_run_the_budget_parameters_carry_the_estimate_and_the_month(tmp_path: Path) -> None:
    from pipelines.run_records import before_run

    config = load_config(overrides={"cost.budget.per_month_usd": 100})
    backend = local_backend(config, tmp_path)
    lines: list[str] = []
    parameters = before_run("training", config, backend, {"LoraR": 8}, lines.append)
    cold = round(1.515 * config.training.max_run_seconds / 3600, 4)
    assert parameters == {"CostEstimateUsd": cold, "MonthProjectedUsd": cold, "LoraR": 8}
    assert lines and lines[0].startswith(f"cost estimate: ${cold:,.4f}")
    assert before_run("training", load_config(), backend, {"LoraR": 8}, lines.append) == {"LoraR": 8}
    assert before_run("deploy", config, backend, {}, lines.append) == {}


def test_the_stopped_run_is_logged_to_mlflow_as_failed_with_its_steps(budget_stop: dict[str, Any]) -> None:
    """The local path of pipelines/tracking.py (the AWS path: tests/test_tracking.py)."""
    pytest.importorskip("mlflow", reason="the `tracking` extra")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=budget_stop["uri"])
    experiment = client.get_experiment_by_name("continuum-demo")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    outcome = budget_stop["outcome"]
    assert parent.info.status == "FAILED" and parent.data.tags["continuum.status"] == "Failed"
    assert parent.data.tags["continuum.execution_arn"].endswith(f"/execution/{outcome.execution_id}")
    assert "continuum.model_package_arn" not in parent.data.tags  # nothing registered
    assert len(parent.data.params["data_version"]) == 64 and parent.data.params["TrainingStrategy"]
    assert {run.info.run_name for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id} == {
        "ResolveBaseline", "PrepareData"}
    assert [item.path for item in client.list_artifacts(parent.info.run_id, "data")] == ["data/report.json"]
