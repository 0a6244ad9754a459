"""The embedded runtime: execute a pipeline definition JSON on this machine, as SageMaker would.

It interprets what the definition says — step types, arguments, parameters, property references,
PropertyFiles, conditions, FailStep, CacheConfig, RetryPolicies — and never looks at step names. The
definition is validated first (`validation.py`, as CreatePipeline does); independent steps run at the
same time (`scheduler.py`). Processing and Training jobs run as subprocesses under the container
contract (`jobs.py`); RegisterModel and Model steps call the SageMaker API, which locally is the
SQLite-backed stand-in. An execution can be retried from its failed steps (`retry`, SageMaker's
RetryPipelineExecution) or run selectively (`execute(selective=...)`, SelectiveExecutionConfig).
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipelines.local import scheduler
from pipelines.local.caching import CacheHit, StepCache, cache_key
from pipelines.local.executions import (
    EXECUTION_FAILURE_REASON_MAX, HEARTBEAT_SECONDS, STEP_FAILURE_REASON_MAX, find_execution, now_iso,
    read_execution, runner_identity, write_json)
from pipelines.local.expressions import EvaluationScope, evaluate, evaluate_condition
from pipelines.local.jobs import JobContext, remove_container, run_processing_job, run_training_job
from pipelines.local.retries import exception_type, parse_policies, policy_for
from pipelines.local.s3 import LocalS3
from pipelines.local.selective import check_reference, needed_from_reference, selected_steps
from pipelines.local.validation import (
    DefinitionError, PlannedStep, plan_steps, resolve_parameters, validate_definition)

__all__ = ["DefinitionError", "ExecutionResult", "LocalPipelineRuntime", "StepRecord", "plan_steps",
           "resolve_parameters"]
SUCCEEDED, FAILED, EXECUTING = "Succeeded", "Failed", "Executing"
ACCOUNT_ARN = "arn:aws:sagemaker:local:000000000000"


@dataclass
class StepRecord:
    """One started step, as ListPipelineExecutionSteps reports it (StepStatus values: Starting, Executing,
    Stopping, Stopped, Failed, Succeeded; steps that never started are not listed)."""

    name: str
    type: str
    status: str = "Starting"
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    failure_reason: str | None = None
    attempts: int = 0
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
    events: list[dict[str, Any]] = field(default_factory=list)  # step start/end in the order they happened
    selective_execution_config: dict[str, Any] | None = None
    runner: dict[str, Any] | None = None

    @property
    def execution_arn(self) -> str:
        return f"{ACCOUNT_ARN}:pipeline/{self.pipeline_name}/execution/{self.execution_id}"

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["directory"] = str(self.directory)
        data["execution_arn"] = self.execution_arn
        return data


def default_parallelism() -> int:
    """Steps at once when no ParallelismConfiguration is given: one per CPU (SageMaker's own limit is 50)."""
    return max(1, min(50, os.cpu_count() or 1))


class _Run:
    """The mutable state of one execution while it runs (shared by the step threads)."""

    def __init__(self, result: ExecutionResult, plan: dict[str, PlannedStep], scope: EvaluationScope,
                 properties: dict[str, Any]) -> None:
        self.result, self.plan, self.scope, self.properties = result, plan, scope, properties
        self.lock = threading.RLock()
        self.running: set[str] = set()
        self.stopped = threading.Event()


class LocalPipelineRuntime:
    """Runs definitions against local S3 (a folder) and the local SageMaker API stand-in."""

    def __init__(
        self,
        home: Path,
        sagemaker_client: Any,
        job_env: dict[str, str],
        echo: Callable[[str], None] = print,
        keep_containers: bool = False,
        parallelism: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.home = home
        self.s3 = LocalS3(home / "s3")
        self.sagemaker = sagemaker_client
        self.job_env = job_env
        self.echo = echo
        self.keep_containers = keep_containers
        self.parallelism = parallelism or default_parallelism()
        self.sleep = sleep  # a retry's wait (tests record it instead of waiting)
        self.cache = StepCache(home / "cache")

    # -- starting -------------------------------------------------------------------------------------------------

    def execute(
        self, definition: dict[str, Any] | str, pipeline_name: str, parameters: dict[str, Any] | None = None,
        selective: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Validate, then run one execution. `selective`: a SelectiveExecutionConfig (`SelectedSteps`,
        `SourcePipelineExecutionArn`) — only the selected steps run, the rest come from the reference."""
        document = json.loads(definition) if isinstance(definition, str) else definition
        validate_definition(document)
        plan = plan_steps(document)
        values = resolve_parameters(document, parameters)
        done: dict[str, str] = {}
        properties: dict[str, Any] = {}
        if selective is not None:
            done, properties = self._selection(selective, plan)
        execution_id = secrets.token_hex(6)
        directory = self.home / "executions" / pipeline_name / execution_id
        directory.mkdir(parents=True)
        (directory / "definition.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
        result = ExecutionResult(pipeline_name, execution_id, EXECUTING, directory, values, [],
                                 selective_execution_config=selective)
        self.echo(f"pipeline {pipeline_name} execution {execution_id} ({len(plan)} steps) → {directory}")
        return self._run(result, plan, properties, done, now_iso())

    def retry(self, execution: str) -> ExecutionResult:
        """RetryPipelineExecution: run a Failed execution again from its failed steps, keeping what succeeded
        (same execution id, parameters and definition)."""
        directory = find_execution(self.home, execution)
        record = read_execution(directory / "execution.json")
        if record["status"] not in ("Failed", "Stopped"):
            raise DefinitionError(f"execution {record['execution_id']} is {record['status']}: only a Failed or "
                                  "Stopped execution can be retried")
        document = json.loads((directory / "definition.json").read_text(encoding="utf-8"))
        validate_definition(document)
        plan = plan_steps(document)
        properties_path = directory / "properties.json"
        properties = json.loads(properties_path.read_text(encoding="utf-8")) if properties_path.is_file() else {}
        kept = [StepRecord(**step) for step in record["steps"] if step["status"] == SUCCEEDED and step["name"] in properties]
        done = {name: scheduler.SUCCEEDED for name in properties if name in plan}  # run here, or a reference's
        selected = {item["StepName"] for item in (record.get("selective_execution_config") or {}).get("SelectedSteps", [])}
        if selected:  # a selective execution retried stays selective
            done.update({name: scheduler.SKIPPED for name in plan if name not in selected and name not in done})
        result = ExecutionResult(record["pipeline_name"], record["execution_id"], EXECUTING, directory,
                                 record["parameters"], kept, events=record.get("events", []),
                                 selective_execution_config=record.get("selective_execution_config"))
        self.echo(f"retrying {result.pipeline_name} execution {result.execution_id}: {len(kept)} step(s) kept, "
                  f"running the rest")
        started = (record.get("runner") or {}).get("started") or now_iso()
        return self._run(result, plan, {name: properties[name] for name in done}, done, started)

    def _selection(self, selective: dict[str, Any], plan: dict[str, PlannedStep]) -> tuple[dict[str, str], dict]:
        chosen = selected_steps(selective, plan)
        needed = needed_from_reference(chosen, plan)
        reference, reference_properties = None, {}
        arn = selective.get("SourcePipelineExecutionArn")
        if arn:
            reference_dir = find_execution(self.home, arn)
            reference = read_execution(reference_dir / "execution.json")
            path = reference_dir / "properties.json"
            reference_properties = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        check_reference(chosen, needed, reference)
        succeeded = {step["name"] for step in (reference or {}).get("steps", []) if step.get("status") == SUCCEEDED}
        done = {name: (scheduler.SUCCEEDED if name in succeeded and name in reference_properties else scheduler.SKIPPED)
                for name in plan if name not in chosen}
        return done, {name: reference_properties[name] for name, state in done.items() if state == scheduler.SUCCEEDED}

    # -- running --------------------------------------------------------------------------------------------------

    def _run(self, result: ExecutionResult, plan: dict[str, PlannedStep], properties: dict[str, Any],
             done: dict[str, str], started: str) -> ExecutionResult:
        pipeline_arn = f"{ACCOUNT_ARN}:pipeline/{result.pipeline_name}"
        scope = EvaluationScope(
            parameters=result.parameters,
            execution={
                "PipelineArn": pipeline_arn,
                "PipelineExecutionId": result.execution_id,
                "PipelineName": result.pipeline_name,
                "PipelineExecutionArn": result.execution_arn,
                "StartDateTime": started,
                "CurrentDateTime": now_iso,  # read each time it is referenced
            },
            step_properties=dict(properties),
            property_files={name: {pf["PropertyFileName"]: pf for pf in item.spec.get("PropertyFiles", [])}
                            for name, item in plan.items()},
            read_s3_text=lambda uri: self.s3.get_bytes(uri).decode("utf-8"),
        )
        run = _Run(result, plan, scope, dict(properties))
        result.runner = runner_identity()
        result.runner["started"] = started
        self._save(run)
        heartbeat = threading.Thread(target=self._heartbeat, args=(run,), daemon=True)
        heartbeat.start()
        try:
            states = scheduler.run_graph(plan, lambda name: self._run_step(run, name), lambda name: _outcome(run, name),
                                         self.parallelism, done)
            failed = [name for name, state in states.items() if state == scheduler.FAILED]
            never = [name for name, state in states.items() if state == scheduler.PENDING]
            if not failed and never:  # validation refuses cycles; this only guards against a stuck execution
                result.failure_reason = f"steps {never} could never start (a dependency cycle)"
            result.status = FAILED if failed or never else SUCCEEDED
        except Exception as exc:  # noqa: BLE001 - an execution never stays Executing
            result.status, result.failure_reason = FAILED, f"the local runtime failed: {type(exc).__name__}: {exc}"
        except BaseException:  # Ctrl-C: as StopPipelineExecution, the execution and its running steps are Stopped
            result.status, result.failure_reason = "Stopped", "stopped by the user"
            for record in result.steps:
                if record.status in ("Starting", EXECUTING):
                    record.status, record.ended = "Stopped", now_iso()
            raise
        finally:
            run.stopped.set()
            heartbeat.join()
            if result.status == "Stopped":
                self._save(run)
        if result.failure_reason:
            result.failure_reason = result.failure_reason[:EXECUTION_FAILURE_REASON_MAX]
        self._save(run)
        return result

    def _run_step(self, run: _Run, name: str) -> bool:
        """Run one step in a worker thread; every error becomes a Failed step with its reason."""
        spec = run.plan[name].spec
        kind = spec["Type"]
        record = StepRecord(name=name, type=kind, started=now_iso())
        started = time.monotonic()
        with run.lock:
            run.result.steps = [step for step in run.result.steps if step.name != name] + [record]
            run.running.add(name)
            run.result.events.append({"step": name, "event": "start", "at": record.started})
            self._save(run)
        self.echo(f"▶ {name} ({kind})")
        record.status = EXECUTING
        try:
            properties = self._step_properties(run, spec, record)
            succeeded = properties is not None
            if succeeded:
                with run.lock:  # saved by other threads under the same lock
                    run.scope.step_properties[name] = properties
                    run.properties[name] = properties
        except Exception as exc:  # noqa: BLE001 - any error fails the step, never the execution's runner
            self._fail(run, record, f"{name}: {exc}" if isinstance(exc, (ValueError, RuntimeError, OSError))
                       else f"{name}: {type(exc).__name__}: {exc}")
            succeeded = False
        record.status = SUCCEEDED if succeeded else FAILED
        record.ended, record.seconds = now_iso(), round(time.monotonic() - started, 2)
        with run.lock:
            run.running.discard(name)
            run.result.events.append({"step": name, "event": "end", "at": record.ended})
            self._save(run)
        self.echo(f"{'✓' if succeeded else '✗'} {name} ({record.seconds:.1f}s)")  # the caller prints the reason
        return succeeded

    def _step_properties(self, run: _Run, spec: dict[str, Any], record: StepRecord) -> dict[str, Any] | None:
        """The finished step's properties, or None when it failed (a FailStep)."""
        name, kind = spec["Name"], spec["Type"]
        record.attempts = 1
        if kind == "Condition":
            outcome = all(evaluate_condition(condition, run.scope, f"{name}.Conditions[{index}]")
                          for index, condition in enumerate(spec["Arguments"]["Conditions"]))
            record.metadata = {"outcome": outcome}
            self.echo(f"  condition is {outcome}")
            return {"Outcome": str(outcome).lower()}
        if kind == "Fail":
            message = str(evaluate(spec.get("Arguments", {}).get("ErrorMessage", ""), run.scope, f"{name}.ErrorMessage"))
            self._fail(run, record, message)
            return None
        cache = spec.get("CacheConfig") or {}
        policies = parse_policies(spec.get("RetryPolicies", []))
        first_try = time.monotonic()
        while True:
            job_name = f"pipelines-{run.result.execution_id}-{name}"[:54] + "-" + secrets.token_hex(4)
            variable = {"Training": "TrainingJobName", "Processing": "ProcessingJobName"}.get(kind)
            scope = dataclasses.replace(run.scope, execution={**run.scope.execution, **({variable: job_name} if variable else {})})
            arguments = evaluate(spec["Arguments"], scope, f"{name}.Arguments")
            key = cache_key(run.result.pipeline_name, name, kind, arguments) if cache.get("Enabled") else None
            hit = self.cache.lookup(key, cache.get("ExpireAfter")) if key else None
            if hit is not None:
                return self._reuse(record, hit)
            try:
                properties = self._run_action(run, name, kind, arguments, record, job_name)
            except Exception as exc:
                policy = policy_for(policies, exception_type(exc))
                if policy is None or not policy.allows(record.attempts, time.monotonic() - first_try):
                    raise
                delay = policy.delay(record.attempts)
                self.echo(f"  {name}: {exception_type(exc)} — retry {record.attempts} of the policy in {delay:g}s ({exc})")
                self.sleep(delay)
                record.attempts += 1
                continue
            if key:
                self.cache.store(key, run.result.execution_arn, properties, record.metadata)
            return properties

    def _reuse(self, record: StepRecord, hit: CacheHit) -> dict[str, Any]:
        record.metadata = {**hit.metadata, "cache_hit": {"SourcePipelineExecutionArn": hit.source_execution_arn}}
        record.attempts = 0
        self.echo(f"  cache hit: reusing the outputs of {hit.source_execution_arn}")
        return hit.properties

    def _run_action(self, run: _Run, name: str, kind: str, arguments: dict[str, Any], record: StepRecord,
                    job_name: str) -> dict[str, Any]:
        if kind in ("Processing", "Training"):
            context = JobContext(
                job_name=job_name,
                job_dir=run.result.directory / name,
                s3=self.s3,
                runtime_env=self.job_env,
                echo=lambda line: self.echo(f"  │ {name}: {line}" if len(run.running) > 1 else f"  │ {line}"),
            )
            runner = run_processing_job if kind == "Processing" else run_training_job
            try:
                properties = runner(arguments, context)
            finally:
                if not self.keep_containers:
                    remove_container(context.job_dir)
            metadata: dict[str, Any] = {"job_name": job_name, "log": str(context.job_dir / "job.log")}
            if kind == "Training":
                metadata["model_artifacts"] = properties["ModelArtifacts"]["S3ModelArtifacts"]
                metadata["metrics"] = {m["MetricName"]: m["Value"] for m in properties["FinalMetricDataList"]}
            record.metadata = metadata  # one assignment: another thread may be saving the record
            return properties
        if kind == "RegisterModel":
            return self._register_model(arguments, record)
        if kind == "Model":
            model_name = f"pipelines-{run.result.execution_id}-{name}"[:58] + "-" + secrets.token_hex(2)
            response = self.sagemaker.create_model(ModelName=model_name, **arguments)
            record.metadata = {"model_name": model_name}
            return {"ModelName": model_name, **response}
        raise DefinitionError(f"step type {kind!r} is not supported by the local runtime")

    def _register_model(self, arguments: dict[str, Any], record: StepRecord) -> dict[str, Any]:
        from botocore.exceptions import ClientError

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

    # -- records --------------------------------------------------------------------------------------------------

    def _fail(self, run: _Run, record: StepRecord, message: str) -> None:
        record.failure_reason = message[:STEP_FAILURE_REASON_MAX]
        with run.lock:
            if run.result.failure_reason is None:  # the first failure is the execution's reason
                run.result.failure_reason = message[:EXECUTION_FAILURE_REASON_MAX]

    def _heartbeat(self, run: _Run) -> None:
        while not run.stopped.wait(HEARTBEAT_SECONDS):
            with run.lock:
                assert run.result.runner is not None
                run.result.runner["heartbeat"] = now_iso()
                self._save(run)

    @staticmethod
    def _save(run: _Run) -> None:
        with run.lock:
            write_json(run.result.directory / "properties.json", run.properties)
            write_json(run.result.directory / "execution.json", run.result.to_json())


def _outcome(run: _Run, condition: str) -> bool | None:
    properties = run.scope.step_properties.get(condition)
    return None if properties is None else properties.get("Outcome") == "true"
