"""Processing and training jobs of a definition, run as local subprocesses of the same scripts.

Input is the step's resolved `Arguments` (a CreateProcessingJob / CreateTrainingJob request);
output is what Describe* would return, which later steps read as the step's properties.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pipelines.local.container import ContainerRoot, JobFailed, host_environment, run_process
from pipelines.local.requirements import REQUIREMENTS_FILE, check_requirements_file, check_source_archive, skip_pip_install
from pipelines.local.s3 import LocalS3


PROCESSING_CODE_DIR = "/opt/ml/processing/input/code"


@dataclass(frozen=True)
class JobContext:
    """Where a job runs and what it can reach."""

    job_name: str
    job_dir: Path
    s3: LocalS3
    runtime_env: dict[str, str]
    echo: Callable[[str], None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _environment(request: dict[str, Any], job_name: str) -> dict[str, str]:
    """The request's Environment, a map of strings as CreateProcessingJob/CreateTrainingJob take it."""
    environment = request.get("Environment", {})
    wrong = {key: value for key, value in environment.items() if not isinstance(value, str)}
    if wrong:
        raise JobFailed(f"{job_name}: Environment values must be strings, got "
                        + ", ".join(f"{key}={value!r} ({type(value).__name__})" for key, value in wrong.items()))
    return environment


def _run_job(command: list[str], cwd: Path, environment: dict[str, str], context: JobContext,
             container: ContainerRoot, reason_file: str) -> list[str]:
    """Run the job's process; a failed job's reason is what it wrote to `reason_file` (SageMaker's
    /opt/ml/output/failure or /opt/ml/output/message), else its last error line."""
    reason_path = container.host_path(reason_file)
    reason_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return run_process(command, cwd, environment, context.job_dir / "job.log", context.echo)
    except JobFailed as exc:
        written = reason_path.read_text(encoding="utf-8", errors="replace").strip() if reason_path.is_file() else ""
        failed = JobFailed(f"{written[:900]} ({exc})" if written else str(exc))
        failed.failure_reason = written or str(exc)  # type: ignore[attr-defined]
        raise failed from exc


def run_processing_job(request: dict[str, Any], context: JobContext) -> dict[str, Any]:
    created = _now()
    container = ContainerRoot(context.job_dir / "container")
    container.root.mkdir(parents=True, exist_ok=True)
    environment_variables = _environment(request, context.job_name)
    for item in request.get("ProcessingInputs", []):
        _download_processing_input(item, container, context.s3)
    outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for item in outputs:
        container.host_path(item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)

    app = request["AppSpecification"]
    entrypoint = [container.remap(part) for part in app.get("ContainerEntrypoint", [])]
    if not entrypoint:
        raise JobFailed(f"{context.job_name}: AppSpecification.ContainerEntrypoint is required to run locally")
    if Path(entrypoint[0]).name in {"bash", "sh"} and len(entrypoint) > 1 and Path(entrypoint[1]).is_file():
        source = container.host_path(f"{PROCESSING_CODE_DIR}/sourcedir.tar.gz")  # FrameworkProcessor's code input
        if source.is_file():
            check_source_archive(source)
        entrypoint[1] = str(container.remap_script(Path(entrypoint[1]), skip_pip_install))
    if Path(entrypoint[0]).name in {"python", "python3"}:
        entrypoint[0] = sys.executable
    command = entrypoint + [container.remap(str(arg)) for arg in app.get("ContainerArguments", [])]
    environment = host_environment(environment_variables, context.runtime_env)
    job_started = _now()
    _run_job(command, container.root, environment, context, container, "/opt/ml/output/message")
    job_ended = _now()

    for item in outputs:
        local_dir = container.host_path(item["S3Output"]["LocalPath"])
        context.s3.upload_dir(local_dir, item["S3Output"]["S3Uri"])
    return {
        **request,
        "ProcessingJobName": context.job_name,
        "ProcessingJobArn": f"arn:aws:sagemaker:local:000000000000:processing-job/{context.job_name.lower()}",
        "ProcessingJobStatus": "Completed",
        "ExitMessage": "",
        "CreationTime": created,
        "ProcessingStartTime": job_started,
        "ProcessingEndTime": job_ended,
        "LastModifiedTime": _now(),
    }


def _download_processing_input(item: dict[str, Any], container: ContainerRoot, s3: LocalS3) -> None:
    name = item.get("InputName", "?")
    source = item.get("S3Input")
    if source is None:
        raise JobFailed(f"processing input {name!r}: only S3Input is supported locally (not DatasetDefinition)")
    if source.get("S3DataType", "S3Prefix") != "S3Prefix":
        raise JobFailed(f"processing input {name!r}: S3DataType {source['S3DataType']!r} is not supported locally")
    destination = container.host_path(source["LocalPath"])
    destination.mkdir(parents=True, exist_ok=True)
    s3.download_prefix(source["S3Uri"], destination)


def run_training_job(request: dict[str, Any], context: JobContext) -> dict[str, Any]:
    created = _now()
    container = ContainerRoot(context.job_dir / "container")
    container.root.mkdir(parents=True, exist_ok=True)
    environment_variables = _environment(request, context.job_name)
    hyperparameters = {key: _decode_hyperparameter(value) for key, value in request.get("HyperParameters", {}).items()}
    program = hyperparameters.get("sagemaker_program")
    submit_directory = hyperparameters.get("sagemaker_submit_directory")
    if not program or not submit_directory:
        raise JobFailed(
            f"{context.job_name}: a local training job needs the sagemaker_program and "
            "sagemaker_submit_directory hyperparameters (a framework estimator with entry_point/source_dir)"
        )
    code_dir = container.host_path("/opt/ml/code")
    _unpack_source(context.s3, str(submit_directory), code_dir, context.job_dir)
    check_requirements_file(code_dir / REQUIREMENTS_FILE)  # the training toolkit would pip-install it

    channels = []
    for channel in request.get("InputDataConfig", []):
        name = channel["ChannelName"]
        uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
        target = container.host_path(f"/opt/ml/input/data/{name}")
        target.mkdir(parents=True, exist_ok=True)
        context.s3.download_prefix(uri, target)
        channels.append(name)
    model_dir = container.host_path("/opt/ml/model")
    output_data_dir = container.host_path("/opt/ml/output/data")
    checkpoint_config = request.get("CheckpointConfig", {})
    checkpoint_dir = container.host_path(checkpoint_config.get("LocalPath", "/opt/ml/checkpoints"))
    for folder in (model_dir, output_data_dir, checkpoint_dir):
        folder.mkdir(parents=True, exist_ok=True)
    checkpoint_uri = checkpoint_config.get("S3Uri")
    if checkpoint_uri:  # as SageMaker does: the job starts with what an earlier attempt left in S3
        context.s3.download_prefix(checkpoint_uri.rstrip("/") + "/", checkpoint_dir, allow_empty=True)

    user_hyperparameters = {key: value for key, value in hyperparameters.items() if not key.startswith("sagemaker_")}
    environment = host_environment(
        environment_variables,
        {**context.runtime_env,
         **_training_env(container, channels, user_hyperparameters, str(program), model_dir, checkpoint_dir)},
    )
    command = [sys.executable, str(program), *_cli_arguments(user_hyperparameters)]
    job_started, started = _now(), time.monotonic()
    try:
        lines = _run_job(command, code_dir, environment, context, container, "/opt/ml/output/failure")
    finally:
        if checkpoint_uri:  # kept in S3 whether the job finished or was stopped, for a restart to resume
            context.s3.upload_dir(checkpoint_dir, checkpoint_uri)

    job_output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + f"/{context.job_name}/output"
    model_artifact = f"{job_output}/model.tar.gz"
    context.s3.put_file(model_artifact, _tar_directory(model_dir, context.job_dir / "model.tar.gz"))
    context.s3.put_file(f"{job_output}/output.tar.gz", _tar_directory(output_data_dir, context.job_dir / "output.tar.gz"))
    metrics = _final_metrics(lines, request.get("AlgorithmSpecification", {}).get("MetricDefinitions", []))
    seconds = max(1, round(time.monotonic() - started))  # Describe reports whole seconds
    return {
        **request,
        "TrainingJobName": context.job_name,
        "TrainingJobArn": f"arn:aws:sagemaker:local:000000000000:training-job/{context.job_name.lower()}",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": model_artifact},
        "FinalMetricDataList": [{"MetricName": name, "Value": value} for name, value in metrics.items()],
        "CreationTime": created,
        "TrainingStartTime": job_started,
        "TrainingEndTime": _now(),
        "LastModifiedTime": _now(),
        "TrainingTimeInSeconds": seconds,
        "BillableTimeInSeconds": seconds,
    }


def _decode_hyperparameter(value: Any) -> Any:
    """Hyperparameters travel as strings, JSON-encoded by the SDK (`"\\"train.py\\""`, `"8"`)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _cli_arguments(hyperparameters: dict[str, Any]) -> list[str]:
    """As the SageMaker training toolkit passes them: `--name value`, collections as JSON."""
    arguments: list[str] = []
    for key, value in hyperparameters.items():
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        arguments += [f"--{key}", text]
    return arguments


def _training_env(
    container: ContainerRoot, channels: list[str], hyperparameters: dict[str, Any], program: str, model_dir: Path,
    checkpoint_dir: Path,
) -> dict[str, str]:
    env = {
        "SM_MODEL_DIR": str(model_dir),
        "SM_INPUT_DIR": str(container.host_path("/opt/ml/input")),
        "SM_INPUT_DATA_CONFIG_DIR": str(container.host_path("/opt/ml/input/config")),
        "SM_OUTPUT_DIR": str(container.host_path("/opt/ml/output")),
        "SM_OUTPUT_DATA_DIR": str(container.host_path("/opt/ml/output/data")),
        "SM_CHECKPOINT_DIR": str(checkpoint_dir),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(hyperparameters),
        "SM_USER_ENTRY_POINT": program,
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_CURRENT_HOST": "algo-1",
        "SM_NUM_GPUS": "0",
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
    }
    for channel in channels:
        env[f"SM_CHANNEL_{channel.upper()}"] = str(container.host_path(f"/opt/ml/input/data/{channel}"))
    for key, value in hyperparameters.items():
        env[f"SM_HP_{key.upper()}"] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return env


def _unpack_source(s3: LocalS3, uri: str, code_dir: Path, job_dir: Path) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    archive = job_dir / "sourcedir.tar.gz"
    archive.write_bytes(s3.get_bytes(uri))
    code_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(code_dir, filter="data")


def _tar_directory(directory: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return archive


def _final_metrics(lines: list[str], definitions: list[dict[str, str]]) -> dict[str, float]:
    """The last value each metric definition's regex matched in the job's output."""
    metrics: dict[str, float] = {}
    for definition in definitions:
        pattern = re.compile(definition["Regex"])
        for line in lines:
            for match in pattern.finditer(line):
                try:
                    metrics[definition["Name"]] = float(match.group(1))
                except (ValueError, IndexError):
                    continue
    return metrics


def remove_container(job_dir: Path) -> None:
    """Free the disk a finished job's container folder used (its outputs are in S3 by then)."""
    shutil.rmtree(job_dir / "container", ignore_errors=True)
