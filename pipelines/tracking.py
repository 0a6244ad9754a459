"""MLflow experiment tracking: one MLflow run per pipeline execution, one nested run per job step.

The control plane logs after the execution ends, from what the execution left (its job descriptions, the
training log, evaluation.json, report.html, the data report), so the local runtime and SageMaker share this one
path and the step images need no MLflow. `tracking.mlflow_uri` is a SageMaker MLflow tracking server ARN (the
sagemaker-mlflow plugin signs the calls), a server URL, a `file:` folder or a `sqlite:` store. MLflow is
imported only when a URI is set (the `tracking` extra).
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from pipelines.backend import Backend
from pipelines.config import Config
from pipelines.cost import RunCost
from pipelines.execution_jobs import TRAINING, ExecutionJobs

LOSS_LINE = re.compile(r"step (\d+)/\d+: .*?train_loss=([0-9.eE+-]+);")
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
PARAMETERS = ("TrainingStrategy", "LoraR", "LoraAlpha", "LoraDropout", "LoraTargetModules", "LearningRate", "Epochs",
              "ReplayFraction", "ReplayWeight", "EwcLambda", "L2spLambda", "Quantization", "TrainingInstanceType",
              "TrainingInstanceCount", "InputDataUri", "BaseModelUri")
HYPERPARAMETERS = ("replay_budget", "replay_budget_unit", "replay_selection", "max_steps", "batch_size",
                   "max_seq_length")
TAG_EXECUTION, TAG_PACKAGE, TAG_PIPELINE = "continuum.execution_arn", "continuum.model_package_arn", "continuum.pipeline"
METADATA_KEY = "mlflow_run_id"


def _mlflow_client(uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise RuntimeError("tracking.mlflow_uri is set but MLflow is not installed: pip install 'continuum[tracking]'"
                           ) from None
    return MlflowClient(tracking_uri=uri)


def _experiment(client: Any, config: Config) -> str:
    name = config.tracking.experiment or config.project.name
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    uri = str(config.tracking.mlflow_uri)
    location = None
    if uri.startswith("sqlite:///"):  # artifacts beside the store, not in whatever folder the command ran from
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts" / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def loss_series(lines: Iterable[str]) -> list[tuple[int, float]]:
    """(step, train_loss) of train.py's progress lines ("step 29/591: epoch=...; train_loss=...;")."""
    return [(int(m.group(1)), float(m.group(2))) for m in map(LOSS_LINE.search, lines) if m]


def training_log(backend: Backend, execution: ExecutionJobs, step: str, job_name: str) -> list[str]:
    """The training job's log: locally the run folder's job.log, on AWS its CloudWatch log streams."""
    if backend.is_local:
        assert backend.home is not None
        path = backend.home / "executions" / execution.pipeline_name / execution.execution_id / step / "job.log"
        return path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    logs = backend.client("logs")
    lines: list[str] = []
    for page in logs.get_paginator("filter_log_events").paginate(
            logGroupName=TRAINING_LOG_GROUP, logStreamNamePrefix=f"{job_name}/", filterPattern='"train_loss="'):
        lines += [event["message"] for event in page["events"]]
    return lines


def _outputs(description: dict[str, Any]) -> dict[str, str]:
    outputs = (description.get("ProcessingOutputConfig") or {}).get("Outputs", [])
    return {item["OutputName"]: item["S3Output"]["S3Uri"].rstrip("/") for item in outputs}


def _download(backend: Backend, uri: str, folder: Path) -> Path | None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body = backend.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception:  # noqa: BLE001 (an artifact the step did not write is left out of the log, not fatal)
        return None
    path = folder / key.rsplit("/", 1)[-1]
    path.write_bytes(body)
    return path


def _evaluation_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name, entry in (evaluation.get("metrics") or {}).items():
        if isinstance(entry.get("value"), (int, float)):
            metrics[f"eval.{name}"] = float(entry["value"])
        if isinstance(entry.get("delta"), (int, float)):
            metrics[f"eval.{name}.delta"] = float(entry["delta"])
    gate = evaluation.get("gate") or {}
    if isinstance(gate.get("forgetting"), (int, float)):
        metrics["forgetting"] = float(gate["forgetting"])
    return metrics


def _log_metrics(client: Any, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    for key, value in sorted(metrics.items()):
        client.log_metric(run_id, re.sub(r"[^\w./ -]", "_", key), value, step=step)


def track_execution(backend: Backend, config: Config, execution: ExecutionJobs, cost: RunCost | None,
                    echo: Callable[[str], None] = print) -> str | None:
    """Log one ended execution to MLflow (nothing when tracking.mlflow_uri is unset); returns the parent run id."""
    if not config.tracking.mlflow_uri:
        return None
    client = _mlflow_client(config.tracking.mlflow_uri)
    experiment = _experiment(client, config)
    status = "FINISHED" if execution.status == "Succeeded" else "FAILED"
    tags = {TAG_PIPELINE: execution.pipeline_name, TAG_EXECUTION: execution.execution_arn,
            "continuum.backend": execution.backend, "continuum.status": execution.status,
            **({TAG_PACKAGE: execution.model_package_arn} if execution.model_package_arn else {})}
    short = execution.execution_id.rsplit("/", 1)[-1]
    parent = client.create_run(experiment, run_name=f"{execution.pipeline_name} {short}", tags=tags).info.run_id
    params = {name: execution.parameters[name] for name in PARAMETERS if name in execution.parameters}
    parent_metrics: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for step, description in sorted(execution.jobs.items(), key=lambda item: str(item[1].get("CreationTime", ""))):
            folder = Path(scratch) / step
            folder.mkdir()
            child = client.create_run(experiment, run_name=step, tags={
                "mlflow.parentRunId": parent, TAG_EXECUTION: execution.execution_arn, "continuum.step": step,
                "continuum.job": description.get("TrainingJobName") or description.get("ProcessingJobName", "")}).info.run_id
            job_cost = next((job for job in (cost.jobs if cost else []) if job.step == step), None)
            if job_cost:
                client.log_param(child, "instance_type", job_cost.instance_type)
                client.log_param(child, "instance_count", job_cost.instance_count)
                _log_metrics(client, child, {"billable_seconds": job_cost.billable_seconds,
                                             **({"cost_usd": job_cost.usd} if job_cost.usd is not None else {})})
            if description["kind"] == TRAINING:
                hyper = description.get("HyperParameters") or {}
                params.update({name: str(hyper[name]).strip('"') for name in HYPERPARAMETERS if name in hyper})
                for number, loss in loss_series(training_log(backend, execution, step, description["TrainingJobName"])):
                    client.log_metric(child, "train_loss", loss, step=number)
                for item in description.get("FinalMetricDataList") or []:
                    client.log_metric(child, f"final_{item['MetricName']}", float(item["Value"]))
            outputs = _outputs(description)
            if "report" in outputs:
                report_path = _download(backend, outputs["report"] + "/report.json", folder)
                if report_path:
                    client.log_artifact(child, str(report_path), "data")
                    client.log_artifact(parent, str(report_path), "data")
                    params["data_version"] = json.loads(report_path.read_text(encoding="utf-8")).get("data_version")
            if "evaluation" in outputs:
                for name in ("evaluation.json", "report.html"):
                    path = _download(backend, f"{outputs['evaluation']}/{name}", folder)
                    if path:
                        client.log_artifact(child, str(path), "evaluation")
                        client.log_artifact(parent, str(path), "evaluation")
                        if name == "evaluation.json":
                            parent_metrics.update(_evaluation_metrics(json.loads(path.read_text(encoding="utf-8"))))
            _log_metrics(client, child, parent_metrics if "evaluation" in outputs else {})
            client.set_terminated(child, "FINISHED" if description.get("TrainingJobStatus", description.get(
                "ProcessingJobStatus")) == "Completed" else "FAILED")
    for name, value in sorted(params.items()):
        if value is not None:
            client.log_param(parent, name, value)
    if cost is not None:
        parent_metrics.update({"cost_usd": cost.usd, "training_billable_seconds": cost.training_seconds})
    _log_metrics(client, parent, parent_metrics)
    client.set_terminated(parent, status)
    echo(f"MLflow run {parent} in experiment {experiment} ({config.tracking.mlflow_uri})")
    return parent


def run_tree(uri: str, experiment: str) -> str:
    """The experiment's runs as an indented tree (parents, their nested step runs), for people and tests."""
    client = _mlflow_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return f"no MLflow experiment {experiment!r} at {uri}"
    runs = client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"], max_results=1000)
    children: dict[str, list[Any]] = {}
    for run in runs:
        children.setdefault(run.data.tags.get("mlflow.parentRunId", ""), []).append(run)
    lines = [f"experiment {experiment} ({uri})"]
    for run in children.get("", []):
        data = run.data
        lines.append(f"- {run.info.run_name} [{run.info.status}] {run.info.run_id}")
        lines.append(f"    tags: package={data.tags.get(TAG_PACKAGE, '-')} execution={data.tags.get(TAG_EXECUTION)}")
        lines.append("    params: " + ", ".join(f"{k}={v}" for k, v in sorted(data.params.items())
                                               if k not in ("InputDataUri", "BaseModelUri")))
        shown = {k: v for k, v in sorted(data.metrics.items()) if not k.startswith("eval.validation")}
        lines.append("    metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))
        artifacts = [item.path for folder in client.list_artifacts(run.info.run_id)
                     for item in (client.list_artifacts(run.info.run_id, folder.path) if folder.is_dir else [folder])]
        lines.append("    artifacts: " + ", ".join(artifacts))
        for child in sorted(children.get(run.info.run_id, []), key=lambda r: r.info.start_time):
            history = client.get_metric_history(child.info.run_id, "train_loss")
            loss = (f", train_loss over {len(history)} steps {history[0].value:.3f} -> {history[-1].value:.3f}"
                    if history else "")
            lines.append(f"    - {child.info.run_name} [{child.info.status}] "
                         f"{child.data.params.get('instance_type', '')} "
                         f"billable_seconds={child.data.metrics.get('billable_seconds', 0):g}{loss}")
    return "\n".join(lines)
