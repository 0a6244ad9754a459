"""MLflow tracking: an ended execution becomes one MLflow run with a nested run per job step (params, training loss
per step, evaluation metrics and deltas, forgetting, artifacts, links), and the registered version carries the run
id. The AWS path here (job descriptions from a botocore Stubber, artifacts in moto's S3, the training log from a
stubbed CloudWatch Logs); the local path is the budget run of tests/test_cost.py and `continuum demo --mlflow-uri`."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from pipelines.backend import Backend, RunOutcome
from pipelines.config import load_config
from pipelines.run_records import after_run
from pipelines.tracking import loss_series, run_tree, track_execution

pytest.importorskip("mlflow", reason="the `tracking` extra")

ACCOUNT = "arn:aws:sagemaker:us-east-1:123456789012"
BUCKET = "continuum-demo-artifacts"
STARTED = datetime(2026, 11, 3, 9, 0, tzinfo=timezone.utc)
EVALUATION = {"metrics": {"company_facts_token_f1": {"value": 0.91, "baseline": 0.62, "delta": 0.29,
                                                     "higher_is_better": True}},
              "gate": {"forgetting": 0.03, "passed": True}}
LOSS_LINES = ["step 10/30: epoch=1.000000; train_loss=2.500000;", "penalty ewc=0.1",
              "step 20/30: epoch=2.000000; train_loss=1.250000;", "step 30/30: epoch=3.000000; train_loss=0.500000;"]


class _Session:
    def __init__(self, **clients: Any) -> None:
        self.clients = clients

    def client(self, service: str, **_: Any) -> Any:
        return self.clients[service]


def _processing(name: str, output: str, uri: str, seconds: int) -> dict[str, Any]:
    return {"ProcessingJobName": name, "ProcessingJobArn": f"{ACCOUNT}:processing-job/{name}",
            "ProcessingJobStatus": "Completed", "CreationTime": STARTED, "AppSpecification": {"ImageUri": "image"},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                                      "VolumeSizeInGB": 30}},
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": output, "S3Output": {
                "S3Uri": uri, "LocalPath": "/opt/ml/processing/out", "S3UploadMode": "EndOfJob"}}]},
            "ProcessingStartTime": STARTED, "ProcessingEndTime": STARTED + timedelta(seconds=seconds)}


def _stub_round(stub: Stubber, logs: Stubber, execution_id: str, version: int) -> str:
    """The SageMaker calls for one execution: prepare → train → evaluate → register (version `version`)."""
    arn = f"{ACCOUNT}:pipeline/continuum-demo-training/execution/{execution_id}"
    prefix = f"s3://{BUCKET}/continuum-demo-training/{execution_id}"
    package = f"{ACCOUNT}:model-package/continuum-demo-models/{version}"
    train_job = f"pipelines-{execution_id}-trainmodel"
    stub.add_response("describe_pipeline_execution", {
        "PipelineExecutionArn": arn, "PipelineExecutionStatus": "Succeeded", "CreationTime": STARTED},
        {"PipelineExecutionArn": arn})
    stub.add_response("list_pipeline_parameters_for_execution", {"PipelineParameters": [
        {"Name": "TrainingStrategy", "Value": "replay,ewc"}, {"Name": "LoraR", "Value": "16"},
        {"Name": "LearningRate", "Value": "0.0002"}, {"Name": "ReplayFraction", "Value": "1.0"}]},
        {"PipelineExecutionArn": arn})
    stub.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        {"StepName": "PrepareData", "StepStatus": "Succeeded",
         "Metadata": {"ProcessingJob": {"Arn": f"{ACCOUNT}:processing-job/pipelines-{execution_id}-preparedata"}}},
        {"StepName": "TrainModel", "StepStatus": "Succeeded",
         "Metadata": {"TrainingJob": {"Arn": f"{ACCOUNT}:training-job/{train_job}"}}},
        {"StepName": "EvaluateModel", "StepStatus": "Succeeded",
         "Metadata": {"ProcessingJob": {"Arn": f"{ACCOUNT}:processing-job/pipelines-{execution_id}-evaluatemodel"}}},
        {"StepName": "RegisterModel-RegisterModel", "StepStatus": "Succeeded",
         "Metadata": {"RegisterModel": {"Arn": package}}}]}, {"PipelineExecutionArn": arn})
    stub.add_response("describe_processing_job", _processing(
        f"pipelines-{execution_id}-preparedata", "report", f"{prefix}/PrepareData/output/report", 120),
        {"ProcessingJobName": f"pipelines-{execution_id}-preparedata"})
    stub.add_response("describe_training_job", {
        "TrainingJobName": train_job, "TrainingJobArn": f"{ACCOUNT}:training-job/{train_job}",
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/model.tar.gz"}, "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed", "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400}, "CreationTime": STARTED + timedelta(minutes=3),
        "HyperParameters": {"replay_budget": "0.1", "replay_budget_unit": '"examples"', "lora_r": "16"},
        "FinalMetricDataList": [{"MetricName": "train_loss", "Value": 0.5, "Timestamp": STARTED}],
        "TrainingTimeInSeconds": 1200, "BillableTimeInSeconds": 1200}, {"TrainingJobName": train_job})
    stub.add_response("describe_processing_job", _processing(
        f"pipelines-{execution_id}-evaluatemodel", "evaluation", f"{prefix}/EvaluateModel/output/evaluation", 300),
        {"ProcessingJobName": f"pipelines-{execution_id}-evaluatemodel"})
    logs.add_response("filter_log_events", {"events": [{"message": line} for line in LOSS_LINES]},
                      {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamNamePrefix": f"{train_job}/",
                       "filterPattern": '"train_loss="'})
    stub.add_response("update_model_package", {"ModelPackageArn": package},
                      {"ModelPackageArn": package, "CustomerMetadataProperties": ANY})
    return arn


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two rounds of an AWS execution logged to one SQLite MLflow store, as `continuum run --aws` does."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = load_config(overrides={"tracking.mlflow_uri": uri})
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        logs = boto3.client("logs", region_name="us-east-1")
        updates: list[dict[str, Any]] = []
        sagemaker.meta.events.register("provide-client-params.sagemaker.UpdateModelPackage",
                                       lambda params, **_: updates.append(dict(params)))
        backend = Backend("aws", _Session(sagemaker=sagemaker, s3=s3, logs=logs))
        lines: list[str] = []
        executions = []
        for version, execution_id in ((1, "round0000001"), (2, "round0000002")):
            prefix = f"continuum-demo-training/{execution_id}"
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}/PrepareData/output/report/report.json",
                          Body=json.dumps({"data_version": f"data-v{version}", "rows": {"kept": 40}}))
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}/EvaluateModel/output/evaluation/evaluation.json",
                          Body=json.dumps(EVALUATION))
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}/EvaluateModel/output/evaluation/report.html",
                          Body=b"<html>report</html>")
            with Stubber(sagemaker) as stub, Stubber(logs) as logs_stub:
                arn = _stub_round(stub, logs_stub, execution_id, version)
                after_run("training", config, backend, RunOutcome("continuum-demo-training", arn, "Succeeded"),
                          lines.append)
                stub.assert_no_pending_responses()
                logs_stub.assert_no_pending_responses()
            executions.append(arn)
        yield {"uri": uri, "config": config, "lines": lines, "updates": updates, "executions": executions,
               "backend": backend}


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_each_execution_is_one_run_with_a_nested_run_per_job_step(tracked: dict[str, Any]) -> None:
    assert not [line for line in tracked["lines"] if line.startswith("warning")], tracked["lines"]
    client = _client(tracked["uri"])
    experiment = client.get_experiment_by_name("continuum-demo")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert [run.data.tags["continuum.execution_arn"] for run in parents] == tracked["executions"]
    first = parents[0]
    assert first.info.status == "FINISHED"
    assert first.data.tags["continuum.model_package_arn"].endswith("model-package/continuum-demo-models/1")
    assert {key: first.data.params[key] for key in ("TrainingStrategy", "LoraR", "LearningRate", "data_version",
                                                    "replay_budget", "replay_budget_unit")} == {
        "TrainingStrategy": "replay,ewc", "LoraR": "16", "LearningRate": "0.0002", "data_version": "data-v1",
        "replay_budget": "0.1", "replay_budget_unit": "examples"}
    assert parents[1].data.params["data_version"] == "data-v2"
    metrics = first.data.metrics
    assert metrics["eval.company_facts_token_f1"] == 0.91 and metrics["eval.company_facts_token_f1.delta"] == 0.29
    assert metrics["forgetting"] == 0.03 and metrics["training_billable_seconds"] == 1200
    assert metrics["cost_usd"] == pytest.approx(1.515 * 1200 / 3600 + 0.23 * 420 / 3600, abs=1e-4)

    children = {run.info.run_name: run for run in runs if run.data.tags.get("mlflow.parentRunId") == first.info.run_id}
    assert set(children) == {"PrepareData", "TrainModel", "EvaluateModel"}
    assert children["TrainModel"].data.params["instance_type"] == "ml.g5.2xlarge"
    assert children["EvaluateModel"].data.metrics["billable_seconds"] == 300
    history = client.get_metric_history(children["TrainModel"].info.run_id, "train_loss")
    assert [(point.step, point.value) for point in history] == [(10, 2.5), (20, 1.25), (30, 0.5)]

    def artifacts(run_id: str) -> set[str]:
        return {item.path for folder in client.list_artifacts(run_id) for item in client.list_artifacts(run_id, folder.path)}

    assert artifacts(first.info.run_id) == {"data/report.json", "evaluation/evaluation.json", "evaluation/report.html"}
    assert artifacts(children["PrepareData"].info.run_id) == {"data/report.json"}
    local = Path(client.download_artifacts(first.info.run_id, "evaluation/evaluation.json"))
    assert json.loads(local.read_text(encoding="utf-8")) == EVALUATION


def test_the_registered_version_carries_the_mlflow_run_id_and_its_cost(tracked: dict[str, Any]) -> None:
    client = _client(tracked["uri"])
    experiment = client.get_experiment_by_name("continuum-demo")
    parents = [run for run in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
               if "mlflow.parentRunId" not in run.data.tags]
    assert [update["CustomerMetadataProperties"]["mlflow_run_id"] for update in tracked["updates"]] == [
        run.info.run_id for run in parents]
    assert tracked["updates"][0]["CustomerMetadataProperties"]["cost_usd"] == f"{parents[0].data.metrics['cost_usd']:.4f}"


def test_the_run_tree_shows_both_rounds(tracked: dict[str, Any]) -> None:
    tree = run_tree(tracked["uri"], "continuum-demo")
    assert tree.count("- continuum-demo-training round000000") == 2
    assert "train_loss over 3 steps 2.500 -> 0.500" in tree and "model-package/continuum-demo-models/2" in tree


def test_no_uri_no_tracking_and_a_missing_mlflow_is_named(tracked: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.execution_jobs import ExecutionJobs

    execution = ExecutionJobs("p", "id", "arn", "Succeeded", STARTED, {}, {}, None, "aws")
    assert track_execution(tracked["backend"], load_config(), execution, None) is None
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(RuntimeError, match=r"pip install 'continuum\[tracking\]'"):
        track_execution(tracked["backend"], tracked["config"], execution, None)


def test_loss_lines_are_train_pys_progress_lines() -> None:
    assert loss_series(LOSS_LINES + ["step x/3: train_loss=1;", "eval_loss=0.2;"]) == [(10, 2.5), (20, 1.25), (30, 0.5)]
