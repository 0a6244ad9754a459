"""The embedded runtime: execute a pipeline definition JSON on this machine, as SageMaker would.

It interprets what the definition says — step types, arguments, parameters, property references,
PropertyFiles, conditions, FailStep — and never looks at step names. Processing and Training jobs
run as subprocesses under the container contract (`jobs.py`); RegisterModel and Model steps call
the SageMaker API, which locally is the SQLite-backed stand-in.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from botocore.exceptions import ClientError

from pipelines.local.expressions import EvaluationScope, ExpressionError, evaluate, evaluate_condition, references_in
from pipelines.local.container import JobFailed
from pipelines.local.jobs import JobContext, remove_container, run_processing_job, run_training_job
from pipelines.local.s3 import LocalS3

SUCCEEDED, FAILED, NOT_EXECUTED = "Succeeded", "Failed", "NotExecuted"


class DefinitionError(ValueError):
    """A definition this runtime (or SageMaker) cannot execute."""


@dataclass
class StepRecord:
    name: str
    type: str
    status: str = "Pending"
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExecutionResult:
    pipeline_name: str
    execution_id: str
    status: str
    directory: Path
    parameters: dict[str, Any]
    steps: list[StepRecord]
    failure_reason: str | None = None

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["directory"] = str(self.directory)
        return data


@dataclass
class _PlannedStep:
    spec: dict[str, Any]
    depends_on: set[str]
    guard: tuple[str, bool] | None  # (condition step, branch) that must be taken for this step to run


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def plan_steps(definition: dict[str, Any]) -> dict[str, _PlannedStep]:
    """Flatten condition branches and compute each step's dependencies (explicit and by reference)."""
    planned: dict[str, _PlannedStep] = {}

    def visit(step: dict[str, Any], guard: tuple[str, bool] | None) -> None:
        name = step["Name"]
        if name in planned:
            raise DefinitionError(f"step name {name!r} appears twice in the definition")
        arguments = step.get("Arguments", {})
        if step["Type"] == "Condition":  # its branches' steps depend on it, not the other way round
            arguments = {"Conditions": arguments.get("Conditions", [])}
        depends = set(step.get("DependsOn", [])) | references_in(arguments)
        if guard is not None:
            depends.add(guard[0])
        planned[name] = _PlannedStep(step, depends, guard)
        if step["Type"] == "Condition":
            for child in step["Arguments"].get("IfSteps", []):
                visit(child, (name, True))
            for child in step["Arguments"].get("ElseSteps", []):
                visit(child, (name, False))

    for step in definition.get("Steps", []):
        visit(step, None)
    for name, item in planned.items():
        unknown = item.depends_on - set(planned)
        if unknown:
            raise DefinitionError(f"step {name!r} depends on unknown step(s) {sorted(unknown)}")
    return planned


def resolve_parameters(definition: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Typed parameter values: the definition's defaults, then the execution's overrides."""
    declared = {item["Name"]: item for item in definition.get("Parameters", [])}
    unknown = set(overrides or {}) - set(declared)
    if unknown:
        raise DefinitionError(f"unknown pipeline parameter(s) {sorted(unknown)}; declared: {sorted(declared)}")
    values: dict[str, Any] = {}
    for name, item in declared.items():
        raw = (overrides or {}).get(name, item.get("DefaultValue"))
        if raw is None:
            raise DefinitionError(f"pipeline parameter {name!r} has no default and no value was given")
        values[name] = _typed(name, item.get("Type", "String"), raw)
        allowed = item.get("EnumValues")
        if allowed and values[name] not in allowed:
            raise DefinitionError(f"pipeline parameter {name!r}={values[name]!r} is not one of {allowed}")
    return values


def _typed(name: str, kind: str, raw: Any) -> Any:
    try:
        if kind == "Integer":
            return int(raw)
        if kind == "Float":
            return float(raw)
        if kind == "Boolean":
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() not in {"true", "false"}:
                raise ValueError(raw)
            return str(raw).lower() == "true"
        return str(raw)
    except ValueError as exc:
        raise DefinitionError(f"pipeline parameter {name!r}: {raw!r} is not a valid {kind}") from exc


class LocalPipelineRuntime:
    """Runs definitions against local S3 (a folder) and the local SageMaker API stand-in."""

    def __init__(
        self,
        home: Path,
        sagemaker_client: Any,
        job_env: dict[str, str],
        echo: Callable[[str], None] = print,
        keep_containers: bool = False,
    ) -> None:
        self.home = home
        self.s3 = LocalS3(home / "s3")
        self.sagemaker = sagemaker_client
        self.job_env = job_env
        self.echo = echo
        self.keep_containers = keep_containers

    def execute(
        self, definition: dict[str, Any] | str, pipeline_name: str, parameters: dict[str, Any] | None = None
    ) -> ExecutionResult:
        document = json.loads(definition) if isinstance(definition, str) else definition
        plan = plan_steps(document)
        execution_id = secrets.token_hex(6)
        directory = self.home / "executions" / pipeline_name / execution_id
        directory.mkdir(parents=True)
        (directory / "definition.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
        values = resolve_parameters(document, parameters)
        scope = EvaluationScope(
            parameters=values,
            execution={
                "PipelineExecutionId": execution_id,
                "PipelineName": pipeline_name,
                "PipelineExecutionArn": f"arn:aws:sagemaker:local:000000000000:pipeline/{pipeline_name}/execution/{execution_id}",
                "StartDateTime": _now(),
                "CurrentDateTime": _now(),
            },
            property_files={
                name: {pf["PropertyFileName"]: pf for pf in item.spec.get("PropertyFiles", [])}
                for name, item in plan.items()
            },
            read_s3_text=lambda uri: self.s3.get_bytes(uri).decode("utf-8"),
        )
        records = {name: StepRecord(name=name, type=item.spec["Type"]) for name, item in plan.items()}
        result = ExecutionResult(pipeline_name, execution_id, "Executing", directory, values, list(records.values()))
        self.echo(f"pipeline {pipeline_name} execution {execution_id} ({len(plan)} steps) → {directory}")
        self._save(result)
        self._run_plan(plan, records, scope, result)
        self._save(result)
        return result

    def _run_plan(
        self, plan: dict[str, _PlannedStep], records: dict[str, StepRecord], scope: EvaluationScope, result: ExecutionResult
    ) -> None:
        outcomes: dict[str, bool] = {}
        pending = list(plan)  # definition order breaks ties, as in the console's graph
        while pending:
            ready = [name for name in pending if all(records[dep].status in (SUCCEEDED, NOT_EXECUTED) for dep in plan[name].depends_on)]
            if not ready:
                raise DefinitionError(f"dependency cycle among steps {pending}")
            name = ready[0]
            pending.remove(name)
            item, record = plan[name], records[name]
            skipped_dependency = any(records[dep].status == NOT_EXECUTED for dep in item.depends_on)
            branch_not_taken = item.guard is not None and outcomes.get(item.guard[0]) is not item.guard[1]
            if skipped_dependency or branch_not_taken:
                record.status = NOT_EXECUTED
                continue
            if not self._run_step(item.spec, record, scope, outcomes, result):
                for other in pending:
                    records[other].status = NOT_EXECUTED
                result.status = FAILED
                return
            self._save(result)
        result.status = SUCCEEDED

    def _run_step(
        self,
        spec: dict[str, Any],
        record: StepRecord,
        scope: EvaluationScope,
        outcomes: dict[str, bool],
        result: ExecutionResult,
    ) -> bool:
        name, kind = spec["Name"], spec["Type"]
        record.status, record.started = "Executing", _now()
        started = time.monotonic()
        self.echo(f"▶ {name} ({kind})")
        try:
            if kind == "Condition":
                outcome = all(
                    evaluate_condition(condition, scope, f"{name}.Conditions[{index}]")
                    for index, condition in enumerate(spec["Arguments"]["Conditions"])
                )
                outcomes[name] = outcome
                scope.step_properties[name] = {"Outcome": str(outcome).lower()}
                record.metadata = {"outcome": outcome}
                self.echo(f"  condition is {outcome}")
            elif kind == "Fail":
                message = str(evaluate(spec["Arguments"].get("ErrorMessage", ""), scope, f"{name}.ErrorMessage"))
                record.failure_reason = message
                result.failure_reason = message
                self._finish(record, started, FAILED)
                self.echo(f"✗ {name}")  # the message is the execution's failure reason, which the caller prints
                return False
            else:
                arguments = evaluate(spec["Arguments"], scope, f"{name}.Arguments")
                scope.step_properties[name] = self._run_action(name, kind, arguments, result, record)
        except (JobFailed, ExpressionError, DefinitionError, ClientError, OSError, ValueError) as exc:
            message = f"{name}: {exc}"
            record.failure_reason = message
            result.failure_reason = message
            self._finish(record, started, FAILED)
            self.echo(f"✗ {name} ({record.seconds:.1f}s)")  # the caller prints the failure reason
            return False
        self._finish(record, started, SUCCEEDED)
        self.echo(f"✓ {name} ({record.seconds:.1f}s)")
        return True

    def _run_action(
        self, name: str, kind: str, arguments: dict[str, Any], result: ExecutionResult, record: StepRecord
    ) -> dict[str, Any]:
        if kind in ("Processing", "Training"):
            job_name = f"pipelines-{result.execution_id}-{name}"[:54] + "-" + secrets.token_hex(4)
            context = JobContext(
                job_name=job_name,
                job_dir=result.directory / name,
                s3=self.s3,
                runtime_env=self.job_env,
                echo=lambda line: self.echo(f"  │ {line}"),
            )
            runner = run_processing_job if kind == "Processing" else run_training_job
            properties = runner(arguments, context)
            if not self.keep_containers:
                remove_container(context.job_dir)
            record.metadata = {"job_name": job_name, "log": str(context.job_dir / "job.log")}
            if kind == "Training":
                record.metadata["model_artifacts"] = properties["ModelArtifacts"]["S3ModelArtifacts"]
                record.metadata["metrics"] = {m["MetricName"]: m["Value"] for m in properties["FinalMetricDataList"]}
            return properties
        if kind == "RegisterModel":
            return self._register_model(arguments, record)
        if kind == "Model":
            model_name = f"pipelines-{result.execution_id}-{name}"[:58] + "-" + secrets.token_hex(2)
            response = self.sagemaker.create_model(ModelName=model_name, **arguments)
            record.metadata = {"model_name": model_name}
            return {"ModelName": model_name, **response}
        raise DefinitionError(f"step type {kind!r} is not supported by the local runtime")

    def _register_model(self, arguments: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        group = arguments.get("ModelPackageGroupName")
        if group:
            try:
                self.sagemaker.describe_model_package_group(ModelPackageGroupName=group)
            except ClientError:
                # SageMaker Pipelines creates the group on first registration.
                self.sagemaker.create_model_package_group(ModelPackageGroupName=group)
        response = self.sagemaker.create_model_package(**arguments)
        arn = response["ModelPackageArn"]
        record.metadata = {"model_package_arn": arn}
        self.echo(f"  registered {arn}")
        return {"ModelPackageArn": arn}

    @staticmethod
    def _finish(record: StepRecord, started: float, status: str) -> None:
        record.status = status
        record.ended = _now()
        record.seconds = round(time.monotonic() - started, 2)

    @staticmethod
    def _save(result: ExecutionResult) -> None:
        (result.directory / "execution.json").write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
