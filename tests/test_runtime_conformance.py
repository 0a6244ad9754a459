"""The embedded runtime against SageMaker Pipelines' documented behaviour: one small definition per behaviour.

Every step here is a tiny `python -c` processing script (or a one-line training script); each test names the
documentation it follows. Concurrency is checked from the recorded start/end events, never from wall-clock time.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from pipelines.local.caching import parse_duration
from pipelines.local.executions import read_execution, write_json
from pipelines.local.runtime import DefinitionError, ExecutionResult, LocalPipelineRuntime
from pipelines.local.s3 import LocalS3

SCHEMA = "https://aws-sagemaker-mlops.github.io/sagemaker-model-building-pipeline-definition-JSON-schema/"
BUCKET = "conformance"
_MODEL = botocore.session.get_session().get_service_model("sagemaker")
STEP_STATUSES = set(_MODEL.shape_for("StepStatus").enum)
EXECUTION_STATUSES = set(_MODEL.shape_for("PipelineExecutionStatus").enum)
STEP_REASON_MAX = _MODEL.shape_for("FailureReason").metadata["max"]
EXECUTION_REASON_MAX = _MODEL.shape_for("PipelineExecutionFailureReason").metadata["max"]


def processing(name: str, code: str, *, outputs: tuple[str, ...] = (), args: list[Any] | None = None,
               inputs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A Processing step running `python -c code`; each output's local path is passed as an argument (argv[1:])."""
    arguments: dict[str, Any] = {
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1}},
        "AppSpecification": {"ImageUri": "local", "ContainerEntrypoint": ["python3", "-c", code],
                             "ContainerArguments": [f"/opt/ml/processing/output/{o}" for o in outputs] + (args or [])},
        "RoleArn": "arn:aws:iam::000000000000:role/test",
    }
    if outputs:
        arguments["ProcessingOutputConfig"] = {"Outputs": [
            {"OutputName": o, "S3Output": {"S3Uri": {"Std:Join": {"On": "/", "Values": [
                f"s3://{BUCKET}", {"Get": "Execution.PipelineExecutionId"}, name, o]}},
                "LocalPath": f"/opt/ml/processing/output/{o}", "S3UploadMode": "EndOfJob"}} for o in outputs]}
    if inputs:
        arguments["ProcessingInputs"] = [
            {"InputName": key, "S3Input": {"S3Uri": uri, "LocalPath": f"/opt/ml/processing/input/{key}",
                                           "S3DataType": "S3Prefix", "S3InputMode": "File"}} for key, uri in inputs.items()]
    return {"Name": name, "Type": "Processing", "Arguments": arguments, **extra}


def definition(*steps: dict[str, Any], parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"Version": "2020-12-01", "Metadata": {}, "Parameters": parameters or [], "Steps": list(steps)}


WRITE = "import sys, pathlib; pathlib.Path(sys.argv[1], 'out.json').write_text(sys.argv[2])"


@pytest.fixture
def runtime(tmp_path: Path) -> LocalPipelineRuntime:
    LocalS3(tmp_path / "s3").create_bucket(BUCKET)
    return LocalPipelineRuntime(tmp_path, None, {}, echo=lambda line: None, parallelism=4)


def run(runtime: LocalPipelineRuntime, document: dict[str, Any], **kwargs: Any) -> ExecutionResult:
    result = runtime.execute(document, "conformance", **kwargs)
    assert result.status in EXECUTION_STATUSES
    assert {step.status for step in result.steps} <= STEP_STATUSES
    return result


def output(runtime: LocalPipelineRuntime, result: ExecutionResult, step: str, name: str = "out") -> Any:
    return json.loads(runtime.s3.get_bytes(f"s3://{BUCKET}/{result.execution_id}/{step}/{name}/out.json"))


def order(result: ExecutionResult) -> list[tuple[str, str]]:
    return [(event["step"], event["event"]) for event in result.events]


# -- create-time validation ---------------------------------------------------------------------------------------

def test_invalid_definitions_are_refused_before_anything_runs_with_every_problem_listed(runtime, tmp_path) -> None:
    """CreatePipeline validates the definition against the schema (SCHEMA): step types, references, DependsOn.
    DependsOn may not name a ConditionStep (pipeline creation fails: aws/sagemaker-python-sdk#3565) nor a FailStep
    (it has no completion to wait for: https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-steps-types.html#step-type-fail)."""
    gate = {"Name": "Gate", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}],
        "IfSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}], "ElseSteps": []}}
    document = definition(
        processing("A", "pass", DependsOn=["Stop"]),
        processing("B", "pass", DependsOn=["Gate"], args=[{"Get": "Parameters.Undeclared"}]),
        gate,
        {"Name": "T", "Type": "Transform", "Arguments": {}},
        {"Name": "W", "Type": "Wizard", "Arguments": {}},
        processing("C", "pass", args=[{"Get": "Execution.Nope"}]),
        parameters=[{"Name": "P", "Type": "Decimal", "DefaultValue": 1}, {"Name": "I", "Type": "Integer", "DefaultValue": 7.9}])
    with pytest.raises(DefinitionError) as raised:
        run(runtime, document)
    message = str(raised.value)
    for expected in ("DependsOn cannot name Fail step 'Stop'", "DependsOn cannot name Condition step 'Gate'",
                     "reads undeclared parameter 'Undeclared'", "'Transform' is not supported by the local runtime",
                     "Type 'Wizard' is not a SageMaker Pipelines step type", "'Nope' is not an execution variable",
                     "parameter 'P': Type 'Decimal'", "parameter 'I': default pipeline parameter 'I': 7.9 is not a valid Integer"):
        assert expected in message
    assert not (tmp_path / "executions").exists()  # refused at create time: no execution


def test_a_dependency_cycle_is_refused_at_create_time(runtime) -> None:
    """A pipeline is a DAG (SCHEMA; https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-steps.html)."""
    document = definition(processing("A", "pass", DependsOn=["B"]), processing("B", "pass", args=[{"Get": "Steps.A.ProcessingJobName"}]))
    with pytest.raises(DefinitionError, match=r"dependency cycle: (A -> B -> A|B -> A -> B)"):
        run(runtime, document)


def test_job_step_arguments_are_checked_against_the_api_request(runtime) -> None:
    """A Processing step's Arguments are a CreateProcessingJob request without its name (SCHEMA;
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html): unknown fields, missing
    required ones and literal values of the wrong type are refused; expressions are checked when they run."""
    step = processing("P", "pass")
    del step["Arguments"]["RoleArn"]
    step["Arguments"]["AppSpecification"]["Entrypoint"] = ["python3"]
    step["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = "one"
    step["Arguments"]["Environment"] = {"A": {"Get": "Parameters.X"}}  # an expression: not judged here
    with pytest.raises(DefinitionError) as raised:
        run(runtime, definition(step, parameters=[{"Name": "X", "Type": "String", "DefaultValue": "x"}]))
    message = str(raised.value)
    for expected in ("step 'P'.Arguments: required field 'RoleArn' is missing",
                     "step 'P'.Arguments.AppSpecification: unknown field 'Entrypoint'",
                     "step 'P'.Arguments.ProcessingResources.ClusterConfig.InstanceCount: expected an integer, got 'one'"):
        assert expected in message
    assert "Environment" not in message


# -- concurrency and failure ---------------------------------------------------------------------------------------

RENDEZVOUS = ("import sys, time, pathlib; me, other = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]); "
              "me.write_text('here'); deadline = time.time() + 20\n"
              "while not other.exists():\n    time.sleep(0.02)\n    assert time.time() < deadline, 'the other step never ran'")


def test_independent_steps_run_at_the_same_time(runtime, tmp_path) -> None:
    """Steps without data dependencies or DependsOn between them run in parallel (the DAG's data dependencies
    decide the order: https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-steps.html). Each step
    waits for the other's marker, so the execution only succeeds if both ran at once; the events show the overlap."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    result = run(runtime, definition(processing("A", RENDEZVOUS, args=[a, b]), processing("B", RENDEZVOUS, args=[b, a]),
                                     processing("After", "pass", DependsOn=["A", "B"])))
    assert result.status == "Succeeded", result.failure_reason
    events = order(result)
    assert set(events[:2]) == {("A", "start"), ("B", "start")}  # both started before either ended
    assert events[-2:] == [("After", "start"), ("After", "end")]


def test_parallelism_configuration_bounds_the_steps_at_once(tmp_path) -> None:
    """ParallelismConfiguration.MaxParallelExecutionSteps caps the concurrent steps
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ParallelismConfiguration.html)."""
    LocalS3(tmp_path / "s3").create_bucket(BUCKET)
    serial = LocalPipelineRuntime(tmp_path, None, {}, echo=lambda line: None, parallelism=1)
    result = run(serial, definition(*(processing(name, "pass") for name in "ABC")))
    assert order(result) == [(n, e) for n in "ABC" for e in ("start", "end")]


def test_a_failure_lets_running_steps_finish_and_starts_nothing_new(runtime, tmp_path) -> None:
    """On a step failure the execution fails; steps already running complete, no new step starts, and steps that
    never started are not listed (ListPipelineExecutionSteps; StepStatus has no 'NotExecuted':
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_PipelineExecutionStep.html)."""
    marker = str(tmp_path / "slow-started")
    slow = "import sys, time, pathlib; pathlib.Path(sys.argv[1]).write_text('x'); time.sleep(1.0)"
    fail = ("import sys, time, pathlib\nwhile not pathlib.Path(sys.argv[1]).exists(): time.sleep(0.02)\n"
            "print('Error: boom'); sys.exit(3)")
    result = run(runtime, definition(processing("Fails", fail, args=[marker]), processing("Slow", slow, args=[marker]),
                                     processing("Later", "pass", DependsOn=["Slow"])))
    assert result.status == "Failed"
    assert {step.name: step.status for step in result.steps} == {"Fails": "Failed", "Slow": "Succeeded"}
    assert order(result).index(("Fails", "end")) < order(result).index(("Slow", "end"))
    assert "Later" not in {event["step"] for event in result.events}
    assert result.failure_reason.startswith("Fails: exit code 3: Error: boom")


def test_failure_reasons_are_capped_as_on_sagemaker(runtime) -> None:
    """FailureReason: 1024 characters per step, 1300 per execution (botocore's sagemaker model)."""
    result = run(runtime, definition({"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "x" * 5000}}))
    assert (STEP_REASON_MAX, EXECUTION_REASON_MAX) == (1024, 1300)
    assert len(result.step("Stop").failure_reason) == STEP_REASON_MAX
    assert len(result.failure_reason) == EXECUTION_REASON_MAX


def test_runtime_errors_become_failed_steps_never_a_crash(runtime) -> None:
    """Whatever goes wrong inside a step fails that step with a reason
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_PipelineExecutionStep.html, FailureReason):
    a non-string Environment value (CreateProcessingJob takes a map of strings), a JsonGet of a missing object."""
    environment = processing("Env", "pass")
    environment["Arguments"]["Environment"] = {"N": {"Get": "Parameters.N"}}
    missing = processing("Missing", "pass", args=[{"Std:JsonGet": {"S3Uri": f"s3://{BUCKET}/nothing.json", "Path": "a"}}])
    result = run(runtime, definition(environment, missing, parameters=[{"Name": "N", "Type": "Integer", "DefaultValue": 5}]))
    assert result.status == "Failed"
    assert "Environment values must be strings, got N=5 (int)" in result.step("Env").failure_reason
    assert "nothing.json not found" in result.step("Missing").failure_reason
    assert json.loads((result.directory / "execution.json").read_text())["status"] == "Failed"


def test_a_processing_step_without_inputs_or_outputs_runs(runtime) -> None:
    """ProcessingInputs and ProcessingOutputConfig are optional in CreateProcessingJob
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateProcessingJob.html)."""
    assert run(runtime, definition(processing("Bare", "print('ok')"))).status == "Succeeded"


# -- execution variables, JsonGet, JsonPath, parameters, properties ------------------------------------------------

VARIABLES = ["PipelineArn", "PipelineExecutionId", "PipelineExecutionArn", "PipelineName", "StartDateTime",
             "CurrentDateTime", "ProcessingJobName"]
ARGV = "import sys, json, pathlib; pathlib.Path(sys.argv[1], 'out.json').write_text(json.dumps(sys.argv[2:]))"


def test_every_execution_variable_has_its_value(runtime) -> None:
    """ExecutionVariables (https://sagemaker.readthedocs.io/en/stable/workflows/pipelines/sagemaker.workflow.pipelines.html#execution-variables):
    PipelineArn, PipelineExecutionId/Arn, PipelineName, StartDateTime, CurrentDateTime (the time it is read),
    TrainingJobName / ProcessingJobName (the job the step starts)."""
    first = processing("First", ARGV, outputs=("out",), args=[{"Get": f"Execution.{v}"} for v in VARIABLES])
    second = processing("Second", ARGV, outputs=("out",), args=[{"Get": "Execution.CurrentDateTime"}], DependsOn=["First"])
    result = run(runtime, definition(first, second))
    values = dict(zip(VARIABLES, output(runtime, result, "First")))
    assert values["PipelineArn"] == "arn:aws:sagemaker:local:000000000000:pipeline/conformance"
    assert values["PipelineExecutionArn"] == f"{values['PipelineArn']}/execution/{result.execution_id}"
    assert (values["PipelineExecutionId"], values["PipelineName"]) == (result.execution_id, "conformance")
    assert values["ProcessingJobName"] == result.step("First").metadata["job_name"]
    assert values["StartDateTime"] <= values["CurrentDateTime"] < output(runtime, result, "Second")[0]


def test_json_get_with_the_sdk_s3uri_form_and_jsonpath_forms(runtime) -> None:
    """JsonGet(s3_uri=Join(...), json_path=...) renders `{"Std:JsonGet": {"S3Uri": ..., "Path": ...}}`
    (https://sagemaker.readthedocs.io/en/stable/workflows/pipelines/sagemaker.workflow.pipelines.html#sagemaker.workflow.functions.JsonGet);
    json_path is a JsonPath: `$.`-prefixed or not, negative indexes from the end, `[*]` every element."""
    report = {"metrics": {"f1": {"value": 0.5}}, "runs": [{"loss": 3}, {"loss": 2}, {"loss": 1}]}
    writer = processing("Report", WRITE, outputs=("out",), args=[json.dumps(report)])
    uri = {"Std:Join": {"On": "/", "Values": [{"Get": "Steps.Report.ProcessingOutputConfig.Outputs['out'].S3Output.S3Uri"},
                                                "out.json"]}}
    paths = ["metrics.f1.value", "$.metrics.f1.value", "runs[-1].loss", "$.runs[*].loss", "$"]
    reader = processing("Read", ARGV, outputs=("out",),
                        args=[{"Std:Join": {"On": "", "Values": [{"Std:JsonGet": {"S3Uri": uri, "Path": p}}]}} for p in paths])
    result = run(runtime, definition(writer, reader))
    assert result.status == "Succeeded", result.failure_reason
    assert output(runtime, result, "Read") == ["0.5", "0.5", "1", "[3, 2, 1]", json.dumps(report)]


@pytest.mark.parametrize(("kind", "value", "accepted"), [
    ("Integer", "7", 7), ("Integer", 7.9, None), ("Integer", "7.9", None), ("Integer", True, None),
    ("Float", "0.5", 0.5), ("Float", "nan", None), ("Float", float("inf"), None),
    ("Boolean", "TRUE", True), ("Boolean", "yes", None), ("String", 5, "5"),
])
def test_parameter_values_follow_their_type(runtime, kind: str, value: Any, accepted: Any) -> None:
    """Parameters are String, Integer, Float or Boolean
    (https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-parameters.html); StartPipelineExecution
    refuses a value that is not of its parameter's type."""
    document = definition(processing("P", "pass"), parameters=[{"Name": "X", "Type": kind}])
    if accepted is None:
        with pytest.raises(DefinitionError, match=f"is not a valid {kind}"):
            run(runtime, document, parameters={"X": value})
    else:
        assert run(runtime, document, parameters={"X": value}).parameters == {"X": accepted}


def test_in_is_equals_against_each_value(runtime) -> None:
    """ConditionIn is true when the query value equals one of the values
    (https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-steps-types.html#step-type-condition):
    the same equality as ConditionEquals, where the number 1 and the string "1" compare equal."""
    def gate(name: str, condition: dict) -> dict:
        return {"Name": name, "Type": "Condition", "Arguments": {"Conditions": [condition], "IfSteps": [], "ElseSteps": []}}
    result = run(runtime, definition(gate("Eq", {"Type": "Equals", "LeftValue": "1", "RightValue": 1}),
                                     gate("In", {"Type": "In", "QueryValue": "1", "Values": [1, 2]}),
                                     gate("Out", {"Type": "In", "QueryValue": "3", "Values": [1, 2]})))
    outcomes = {step.name: step.metadata["outcome"] for step in result.steps}
    assert outcomes == {"Eq": True, "In": True, "Out": False}


def _training_step(runtime: LocalPipelineRuntime, script: str) -> dict[str, Any]:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = script.encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    runtime.s3.put_bytes(f"s3://{BUCKET}/code/source.tar.gz", archive.getvalue())
    return {"Name": "Train", "Type": "Training", "Arguments": {
        "AlgorithmSpecification": {"TrainingImage": "local", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
        "RoleArn": "arn:aws:iam::000000000000:role/test",
        "HyperParameters": {"sagemaker_program": '"train.py"',
                            "sagemaker_submit_directory": f'"s3://{BUCKET}/code/source.tar.gz"',
                            "job": {"Get": "Execution.TrainingJobName"}}}}


def test_training_job_name_and_describe_fields_in_step_properties(runtime) -> None:
    """A Training step's properties are DescribeTrainingJob's response
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html): TrainingStartTime,
    TrainingEndTime, TrainingTimeInSeconds, BillableTimeInSeconds; a Processing step's DescribeProcessingJob's
    (ProcessingStartTime, ProcessingEndTime). Execution.TrainingJobName is the job the step starts."""
    train = _training_step(runtime, "import sys, os, pathlib; pathlib.Path(os.environ['SM_MODEL_DIR'], 'job').write_text(sys.argv[2])")
    fields = ["TrainingJobName", "TrainingStartTime", "TrainingEndTime", "TrainingTimeInSeconds", "BillableTimeInSeconds"]
    reader = processing("Read", ARGV, outputs=("out",), args=[{"Get": f"Steps.Train.{f}"} for f in fields]
                        + [{"Get": "Steps.Train.HyperParameters['job']"}])
    timed = processing("Times", ARGV, outputs=("out",), args=[{"Get": "Steps.Read.ProcessingStartTime"},
                                                             {"Get": "Steps.Read.ProcessingEndTime"}])
    result = run(runtime, definition(train, reader, timed))
    assert result.status == "Succeeded", result.failure_reason
    name, start, end, seconds, billable, job = output(runtime, result, "Read")
    assert name == job == result.step("Train").metadata["job_name"]
    assert start <= end and int(seconds) >= 1 and billable == seconds
    started, ended = output(runtime, result, "Times")
    assert started <= ended


# -- caching and retries -------------------------------------------------------------------------------------------

def test_cache_hit_reuses_the_earlier_runs_outputs_and_a_changed_input_misses(runtime) -> None:
    """CacheConfig: a step whose cache-key attributes (for Processing: AppSpecification, Environment,
    ProcessingInputs) match an earlier successful run within ExpireAfter reuses that run's outputs
    (https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-caching.html,
    https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-default-keys.html)."""
    def document(value: str) -> dict[str, Any]:
        cached = processing("Cached", WRITE, outputs=("out",), args=[{"Get": "Parameters.V"}],
                            CacheConfig={"Enabled": True, "ExpireAfter": "P30D"})
        return definition(cached, parameters=[{"Name": "V", "Type": "String", "DefaultValue": value}])
    first = run(runtime, document('"one"'))
    again = run(runtime, document('"one"'))
    changed = run(runtime, document('"two"'))
    hit = again.step("Cached").metadata["cache_hit"]
    assert hit == {"SourcePipelineExecutionArn": first.execution_arn}
    uri = runtime.s3.path(f"s3://{BUCKET}/{first.execution_id}/Cached/out/out.json")
    assert uri.is_file() and not runtime.s3.path(f"s3://{BUCKET}/{again.execution_id}").exists()  # no new job
    assert "cache_hit" not in changed.step("Cached").metadata
    assert output(runtime, changed, "Cached") == "two"


def test_cache_entries_expire_and_invalid_cache_configs_are_refused(runtime) -> None:
    """ExpireAfter is an ISO 8601 duration ("30d", "5y", "T16m", "30dT5h") and Enabled a boolean
    (https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-caching-enabling.html)."""
    assert parse_duration("30dT5h").total_seconds() == 30 * 86400 + 5 * 3600
    assert parse_duration("T16m").total_seconds() == 16 * 60 and parse_duration("PT1H").total_seconds() == 3600
    cached = processing("C", "pass", CacheConfig={"Enabled": "yes", "ExpireAfter": "soon"})
    gate = {"Name": "G", "Type": "Condition", "CacheConfig": {"Enabled": True},
            "Arguments": {"Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}], "IfSteps": [], "ElseSteps": []}}
    with pytest.raises(DefinitionError) as raised:
        run(runtime, definition(cached, gate))
    for expected in ("CacheConfig.Enabled: true or false is required", "ExpireAfter 'soon' is not an ISO 8601",
                     "a Condition step cannot be cached"):
        assert expected in str(raised.value)
    short = processing("S", WRITE, outputs=("out",), args=["1"], CacheConfig={"Enabled": True, "ExpireAfter": "T1m"})
    run(runtime, definition(short))
    for path in (runtime.home / "cache").glob("*.json"):  # the earlier run is now two minutes old
        entries = json.loads(path.read_text())
        entries[0]["created"] = "2000-01-01T00:00:00+00:00"
        write_json(path, entries)
    assert "cache_hit" not in run(runtime, definition(short)).step("S").metadata


FLAKY = ("import sys, pathlib; count = pathlib.Path(sys.argv[1]); n = int(count.read_text()) if count.exists() else 0\n"
         "count.write_text(str(n + 1))\n"
         "if n < int(sys.argv[2]):\n"
         "    pathlib.Path('/opt/ml/output/message'.replace('/opt/ml', sys.argv[3])).write_text("
         "'InternalServerError: We encountered an internal error. Please try again.')\n    sys.exit(1)")


def _flaky(tmp_path: Path, failures: int, policies: list[dict[str, Any]]) -> dict[str, Any]:
    step = processing("Flaky", FLAKY, args=[str(tmp_path / "count"), str(failures), "/opt/ml"], RetryPolicies=policies)
    return definition(step)


def test_retry_policy_retries_the_documented_exception_types_with_backoff(tmp_path) -> None:
    """RetryPolicies: ExceptionType, IntervalSeconds, BackoffRate, MaxAttempts
    (https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html): a job that fails with
    InternalServerError is SageMaker.JOB_INTERNAL_ERROR; waits are IntervalSeconds × BackoffRate^(n-1)."""
    LocalS3(tmp_path / "s3").create_bucket(BUCKET)
    waits: list[float] = []
    runtime = LocalPipelineRuntime(tmp_path, None, {}, echo=lambda line: None, sleep=waits.append)
    policy = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "IntervalSeconds": 3, "BackoffRate": 2.0, "MaxAttempts": 3}
    result = run(runtime, _flaky(tmp_path, 2, [policy]))
    assert result.status == "Succeeded" and result.step("Flaky").attempts == 3 and waits == [3, 6]
    (tmp_path / "count").unlink()
    waits.clear()
    exhausted = run(runtime, _flaky(tmp_path, 5, [policy]))
    assert exhausted.status == "Failed" and exhausted.step("Flaky").attempts == 4 and waits == [3, 6, 12]
    assert "InternalServerError" in exhausted.step("Flaky").failure_reason
    (tmp_path / "count").unlink()
    other = {**policy, "ExceptionType": ["SageMaker.CAPACITY_ERROR"]}
    assert run(runtime, _flaky(tmp_path, 1, [other])).step("Flaky").attempts == 1  # not its exception type
    (tmp_path / "count").unlink()
    waits.clear()
    timed = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "IntervalSeconds": 20, "ExpireAfterMin": 1}
    expired = run(runtime, _flaky(tmp_path, 5, [timed]))  # 20 s, then 40 s fit in the minute; 80 s more would not
    assert expired.status == "Failed" and expired.step("Flaky").attempts == 3 and waits == [20, 40]


def test_invalid_retry_policies_are_refused(runtime) -> None:
    """ExceptionType one of the five; IntervalSeconds ≤ 43200; MaxAttempts 1..20 or ExpireAfterMin, not both;
    retry policies only on job-like steps (https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html)."""
    step = processing("P", "pass", RetryPolicies=[
        {"ExceptionType": ["Step.OOPS"], "IntervalSeconds": 50000, "MaxAttempts": 21},
        {"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 2, "ExpireAfterMin": 5}])
    fail = {"Name": "F", "Type": "Fail", "Arguments": {}, "RetryPolicies": [{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 1}]}
    with pytest.raises(DefinitionError) as raised:
        run(runtime, definition(step, fail))
    for expected in ("'Step.OOPS' is not one of", "IntervalSeconds: 50000 is outside", "MaxAttempts: 21 is outside",
                     "exactly one of MaxAttempts and ExpireAfterMin", "a Fail step takes no RetryPolicies"):
        assert expected in str(raised.value)


# -- retrying an execution, selective execution, a dead runner -----------------------------------------------------

def test_retry_pipeline_execution_continues_from_the_failed_step(runtime, tmp_path) -> None:
    """RetryPipelineExecution retries a failed execution: the same execution, its successful steps kept, the
    failed step and the ones after it run (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_RetryPipelineExecution.html)."""
    gate_file = tmp_path / "allowed"
    first = processing("First", ARGV, outputs=("out",), args=[{"Get": "Execution.ProcessingJobName"}])
    fragile = processing("Fragile", "import sys, pathlib; sys.exit(0 if pathlib.Path(sys.argv[1]).exists() else 2)",
                         args=[str(gate_file), {"Get": "Steps.First.ProcessingJobName"}])
    last = processing("Last", "pass", DependsOn=["Fragile"])
    failed = run(runtime, definition(first, fragile, last))
    assert failed.status == "Failed" and [s.name for s in failed.steps] == ["First", "Fragile"]
    gate_file.write_text("ok")
    retried = runtime.retry(failed.execution_arn)
    assert (retried.status, retried.execution_id) == ("Succeeded", failed.execution_id)
    assert [step.name for step in retried.steps] == ["First", "Fragile", "Last"]
    assert retried.step("First").metadata == failed.step("First").metadata  # kept, not run again
    assert [e["step"] for e in retried.events if e["event"] == "start"] == ["First", "Fragile", "Fragile", "Last"]
    with pytest.raises(DefinitionError, match="only a Failed or Stopped execution can be retried"):
        runtime.retry(failed.execution_id)


def test_selective_execution_runs_the_chosen_steps_with_the_reference_outputs(runtime) -> None:
    """SelectiveExecutionConfig: only SelectedSteps run; what they depend on comes from SourcePipelineExecutionArn,
    which is required when such dependencies exist (https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-selective-ex.html)."""
    produce = processing("Produce", WRITE, outputs=("out",), args=['"made once"'])
    uri = {"Get": "Steps.Produce.ProcessingOutputConfig.Outputs['out'].S3Output.S3Uri"}
    consume = processing("Consume", ARGV, outputs=("out",), args=[uri])
    other = processing("Other", "pass", DependsOn=["Consume"])
    document = definition(produce, consume, other)
    reference = run(runtime, document)
    selected = run(runtime, document, selective={"SourcePipelineExecutionArn": reference.execution_arn,
                                                 "SelectedSteps": [{"StepName": "Consume"}]})
    assert [step.name for step in selected.steps] == ["Consume"]
    assert output(runtime, selected, "Consume") == [f"s3://{BUCKET}/{reference.execution_id}/Produce/out"]
    flaky_gate = runtime.home / "consume-may-run"
    picky = processing("Consume", "import sys, pathlib; sys.exit(0 if pathlib.Path(sys.argv[1]).exists() else 2)",
                       args=[str(flaky_gate), uri])
    retried_document = definition(produce, picky, other)
    failed = run(runtime, retried_document, selective={"SourcePipelineExecutionArn": reference.execution_arn,
                                                       "SelectedSteps": [{"StepName": "Consume"}]})
    flaky_gate.write_text("ok")
    retried = runtime.retry(failed.execution_id)  # stays selective: Produce is not run, Other not started
    assert retried.status == "Succeeded" and [step.name for step in retried.steps] == ["Consume"]
    with pytest.raises(DefinitionError, match=r"Invalid SourcePipelineExecutionArn: null. The selected steps \['Consume'\] "
                                              r"have dependencies on \['Produce'\]"):
        run(runtime, document, selective={"SelectedSteps": [{"StepName": "Consume"}]})
    with pytest.raises(DefinitionError, match=r"steps \['Consume'\] lie on a path between selected steps"):
        run(runtime, document, selective={"SourcePipelineExecutionArn": reference.execution_arn,
                                          "SelectedSteps": [{"StepName": "Produce"}, {"StepName": "Other"}]})


def test_an_execution_whose_runner_died_is_marked_failed_when_read(runtime, tmp_path) -> None:
    """A runner killed with -9 leaves execution.json at Executing; the next read sees its pid gone and marks the
    execution (and its running step) Failed with the reason — never Executing forever."""
    import subprocess
    import sys

    result = run(runtime, definition(processing("Only", "pass")))
    path = result.directory / "execution.json"
    record = json.loads(path.read_text())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record["status"] = "Executing"
    record["steps"][0]["status"] = "Executing"
    record["runner"]["pid"] = dead.pid
    write_json(path, record)
    marked = read_execution(path)
    assert marked["status"] == "Failed" and f"pid {dead.pid}" in marked["failure_reason"]
    assert marked["steps"][0]["status"] == "Failed"
    assert json.loads(path.read_text())["status"] == "Failed"  # saved, so every later reader agrees
    record["runner"].update(pid=__import__("os").getpid(), heartbeat="2000-01-01T00:00:00+00:00")
    record["status"] = "Executing"
    write_json(path, record)
    assert "sent no heartbeat" in read_execution(path)["failure_reason"]


# -- the project's own definitions ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def project_definitions() -> dict[str, dict[str, Any]]:
    """Every definition the project builds (training, deploy, monitor), as `upsert` would send them."""
    import boto3
    from moto import mock_aws

    from pipelines.backend import Backend
    from pipelines.config import load_config
    from pipelines.definitions import definition_json

    config = load_config()
    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=config.project.bucket)
        backend = Backend("aws", session)
        return {kind: definition_json(kind, config, backend) for kind in ("training", "deploy", "monitor")}


def test_every_project_definition_passes_create_time_validation(project_definitions) -> None:
    """The same checks as CreatePipeline (SCHEMA) over every definition the project builds."""
    from pipelines.local.validation import definition_problems

    assert {kind: definition_problems(document) for kind, document in project_definitions.items()} == {
        "training": [], "deploy": [], "monitor": []}


def test_project_steps_carry_cache_and_retry_policies(project_definitions) -> None:
    """Training and evaluation are cached on their inputs; job steps retry capacity, throttling and internal errors
    (https://docs.aws.amazon.com/sagemaker/latest/dg/pipelines-retry-policy.html); deploy steps never retry an
    internal job error (their job may have changed an endpoint)."""
    from pipelines.local.validation import walk_steps

    steps = {step["Name"]: step for document in project_definitions.values() for step, _ in walk_steps(document)}
    for name in ("TrainModel", "EvaluateModel"):
        assert steps[name]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}
    types = {name: {kind for policy in steps[name].get("RetryPolicies", []) for kind in policy["ExceptionType"]}
             for name in ("TrainModel", "EvaluateModel", "PrepareData", "DeployEndpoint", "SmokeTest")}
    documented = {"Step.SERVICE_FAULT", "Step.THROTTLING", "SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR",
                  "SageMaker.RESOURCE_LIMIT"}
    assert types == {"TrainModel": documented, "EvaluateModel": documented, "PrepareData": documented,
                     "DeployEndpoint": documented - {"SageMaker.JOB_INTERNAL_ERROR"}, "SmokeTest": documented}


def test_continuum_run_resume_and_status_on_a_local_home(runtime, tmp_path, capsys) -> None:
    """`continuum run --resume EXECUTION` is RetryPipelineExecution on the local home; `continuum status` lists
    an execution whose runner died as Failed."""
    from pipelines.cli import main

    gate_file = tmp_path / "allowed"
    fragile = processing("Fragile", "import sys, pathlib; sys.exit(0 if pathlib.Path(sys.argv[1]).exists() else 2)",
                         args=[str(gate_file)])
    failed = run(runtime, definition(processing("First", "pass"), fragile))
    assert failed.status == "Failed"
    gate_file.write_text("ok")
    assert main(["--home", str(tmp_path), "run", "--resume", failed.execution_id]) == 0
    assert json.loads((failed.directory / "execution.json").read_text())["status"] == "Succeeded"
    assert f"conformance {failed.execution_id}: Succeeded" in capsys.readouterr().out
    path = failed.directory / "execution.json"
    record = json.loads(path.read_text())
    record.update(status="Executing", runner={**record["runner"], "heartbeat": "2000-01-01T00:00:00+00:00"})
    write_json(path, record)
    main(["--home", str(tmp_path), "status"])
    assert f"execution conformance {failed.execution_id}: Failed" in capsys.readouterr().out
