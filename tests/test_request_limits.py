"""Every request continuum makes of AWS, checked against botocore's shapes with every limit the service enforces.

For each configuration a user can choose (the demo; the demo with QLoRA, spot, several instances, lm-eval, a KMS
key and linear shifts; `continuum init`'s config for the second company; one with a long project name and a hub
base model), the pipeline definitions are built on moto and each step's request is checked the way SageMaker
checks it when the step starts: CreateProcessingJob, CreateTrainingJob, CreateModelPackage (parameters at their
defaults; values known only at run time are skipped). The requests sent to build, upsert and start the
pipelines (S3 uploads, CreatePipeline/UpdatePipeline, StartPipelineExecution) are captured and checked too, and
steps/deploy.py runs the DeployEndpoint and DeployProduction steps' own arguments against recording clients:
every SageMaker, CloudWatch and Application Auto Scaling call it makes is checked. The validator:
tests/shape_limits.py (max lengths and counts, ranges, patterns, enums on top of botocore's own checks).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws

import deploy
from ferry_company import COMPANY
from pipelines.backend import Backend
from pipelines.commands.init import draft_config, project_name
from pipelines.config import Config, load_config
from pipelines.definitions import build_pipeline
from shape_limits import UNKNOWN, StrictValidator, api_name, request_problems

ACCOUNT = "123456789012"
STEP_OPERATIONS = {"Processing": ("CreateProcessingJob", "ProcessingJobName"),
                   "Training": ("CreateTrainingJob", "TrainingJobName"),
                   "RegisterModel": ("CreateModelPackage", None),
                   "Model": ("CreateModel", "ModelName")}
NOT_REQUESTS = {"Condition", "Fail"}  # evaluated by SageMaker Pipelines itself
# What SageMaker names a pipeline step's job: pipelines-<execution id>-<step name>-<suffix>, at most 63 characters.
JOB_NAME = "pipelines-a1b2c3d4e5f6-Step-x7Y8z9"
EXECUTION_VARIABLES = {"Execution.PipelineExecutionId": "a1b2c3d4e5f6", "Execution.PipelineName": "p",
                       "Execution.PipelineExecutionArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/p/execution/a1b2c3d4e5f6",
                       "Execution.StartDateTime": "2026-12-05T20:00:00Z", "Execution.CurrentDateTime": "2026-12-05T20:00:00Z",
                       "Execution.PipelineExperimentName": "p", "Execution.PipelineExecutionDisplayName": "run"}


def _demo(_: Path) -> Config:
    return load_config()


def _demo_every_option(_: Path) -> Config:
    return load_config(None, {
        "model.base_model": "s3://continuum-demo-artifacts/models/llama-3.2-1b",
        "training.quantization": "4bit", "training.spot.enabled": True, "training.instance_count": 2,
        "training.checkpoint_s3_uri": "s3://continuum-demo-artifacts/spot-checkpoints",
        "evaluation.lm_eval_tasks": ["arc_easy", "hellaswag"], "evaluation.lm_eval_limit": 200,
        "deploy.capture_kms_key_id": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "deploy.production.traffic_routing": "LINEAR", "deploy.production.instance_count": 4,
        "deploy.production.autoscaling": {"min_instances": 2, "max_instances": 8, "invocations_per_instance": 50},
        "deploy.production.alarms": {"period_seconds": 60, "evaluation_periods": 3},
        "deploy.production.bake_seconds": 900, "deploy.production.termination_wait_seconds": 600,
        "deploy.monitoring.thresholds": {"max_error_rate": 0.02},
    })


def _init_config(tmp: Path, name: str, base_model: str | None, production: dict[str, Any] | None = None) -> Config:
    """What `continuum init` writes for a project (its own suite folder, data, base model), loaded as a user would."""
    folder = tmp / name
    (folder / "benchmarks" / "faq").mkdir(parents=True)
    (folder / "data").mkdir()
    draft = draft_config(name, "./data", folder / "benchmarks" / "faq", base_model,
                         ["When does the first ferry leave?"], 0.3)
    draft["deploy"]["production"].update(production or {})
    path = folder / "continuum.yaml"
    path.write_text(yaml.safe_dump(draft), encoding="utf-8")
    if base_model is None:
        (folder / "base-model").mkdir()
        (folder / "base-model" / "config.json").write_text("{}", encoding="utf-8")
    return load_config(path)


def _init_ferry(tmp: Path) -> Config:
    return _init_config(tmp, project_name(COMPANY), None)


def _init_long_name_hub_model(tmp: Path) -> Config:
    name = project_name("Northwind Regional Logistics Customer Desk Assistant")  # 40 characters, the longest
    return _init_config(tmp, name, "Qwen/Qwen2.5-0.5B-Instruct",
                        {"instance_count": 2, "canary_percent": 50, "bake_seconds": 600})


CONFIGS: dict[str, Callable[[Path], Config]] = {
    "demo": _demo, "demo-every-option": _demo_every_option, "init-ferry": _init_ferry,
    "init-long-name-hub-model": _init_long_name_hub_model,
}


def resolve(value: Any, parameters: dict[str, Any]) -> Any:
    """A definition value as SageMaker sends it with the parameters at their defaults: parameters and execution
    variables substituted, joins joined, anything only known at run time (step properties, JsonGet) UNKNOWN."""
    if isinstance(value, list):
        return [resolve(item, parameters) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        name = value["Get"]
        if name.startswith("Parameters."):
            return parameters[name.removeprefix("Parameters.")]
        return EXECUTION_VARIABLES.get(name, UNKNOWN)
    if set(value) == {"Std:Join"}:
        parts = [resolve(item, parameters) for item in value["Std:Join"]["Values"]]
        if any(part is UNKNOWN for part in parts):
            return UNKNOWN
        return value["Std:Join"]["On"].join(json.dumps(p) if isinstance(p, bool) else str(p) for p in parts)
    if set(value) == {"Std:JsonGet"}:
        return UNKNOWN
    return {key: resolve(item, parameters) for key, item in value.items()}


def step_requests(definition: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(step name, API operation, request) for every step that becomes an API call, nested ones included."""
    parameters = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}

    def visit(step: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
        if step["Type"] == "Condition":
            for child in step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"]:
                yield from visit(child)
            return
        if step["Type"] in NOT_REQUESTS:
            return
        assert step["Type"] in STEP_OPERATIONS, f"{step['Name']}: step type {step['Type']} has no shape check here"
        operation, name_field = STEP_OPERATIONS[step["Type"]]
        request = resolve(step["Arguments"], parameters)
        if name_field:
            request[name_field] = JOB_NAME
        yield step["Name"], operation, request

    for step in definition["Steps"]:
        yield from visit(step)


class Recorded:
    """Requests sent by botocore clients of a session (before-parameter-build), per service and operation."""

    def __init__(self, session: boto3.Session) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        session._session.register("before-parameter-build", self._record)  # type: ignore[attr-defined]

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name, json.loads(json.dumps(params, default=str))))


@pytest.fixture(scope="module")
def requests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str, str, dict[str, Any]]]]:
    """config name → (where, service, operation, request) of everything built, upserted and started for it."""
    tmp = tmp_path_factory.mktemp("configs")
    found: dict[str, list[tuple[str, str, str, dict[str, Any]]]] = {}
    with mock_aws():
        for label, make in CONFIGS.items():
            config = make(tmp)
            session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=config.project.region)
            session.client("s3").create_bucket(Bucket=config.project.bucket)
            recorded = Recorded(session)
            backend = Backend("aws", session)
            definitions = {}
            for kind in ("training", "deploy", "monitor"):
                pipeline = build_pipeline(kind, config, backend)
                text = pipeline.definition()
                pipeline.definition = lambda text=text: text  # upsert sends this text without building it again
                definitions[kind] = json.loads(text)
                pipeline.upsert(role_arn=config.project.role_arn)
                pipeline.upsert(role_arn=config.project.role_arn)  # the second upsert is an UpdatePipeline
                pipeline.start(parameters={p["Name"]: p["DefaultValue"] for p in definitions[kind]["Parameters"]
                                           if "DefaultValue" in p})
            found[label] = [(f"{kind}/{step}", "sagemaker", operation, request)
                            for kind, definition in definitions.items()
                            for step, operation, request in step_requests(definition)]
            found[label] += [("build/upsert/start", service, operation, request)
                             for service, operation, request in recorded.calls]
            found[label] += deploy_calls(definitions, config)
    return found


# ---------------------------------------------------------------- steps/deploy.py's calls, from the steps' arguments

class FakeAws:
    """Answers steps/deploy.py's calls like SageMaker, CloudWatch and Application Auto Scaling would, recording each."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.endpoints: dict[str, str] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def client(self, service: str) -> Any:
        fake = self

        class Client:
            class exceptions:  # noqa: N801 - botocore's spelling
                ClientError = ClientError

            def __getattr__(self, method: str) -> Callable[..., dict[str, Any]]:
                def call(**params: Any) -> dict[str, Any]:
                    fake.calls.append((service, api_name(service, method), params))
                    return fake.answer(method, params)
                return call

        return Client()

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}"
        if method == "describe_model_package":
            return {"ModelPackageArn": params["ModelPackageName"], "ModelPackageVersion": 7,
                    "ModelApprovalStatus": "Approved",
                    "InferenceSpecification": {"Containers": [{
                        "Image": self.image, "ModelDataUrl": "s3://bucket/p/models/job/output/model.tar.gz",
                        "Environment": {"HF_TASK": "text-generation"}}]}}
        if method == "describe_endpoint":
            name = params["EndpointName"]
            if name not in self.endpoints:
                raise ClientError({"Error": {"Code": "ValidationException",
                                             "Message": f"Could not find endpoint \"{name}\"."}}, "DescribeEndpoint")
            return {"EndpointName": name, "EndpointArn": f"{arn}:endpoint/{name}", "EndpointStatus": "InService",
                    "EndpointConfigName": self.endpoints[name]}
        if method in ("create_endpoint", "update_endpoint"):
            self.endpoints[params["EndpointName"]] = params["EndpointConfigName"]
        if method == "describe_alarms":
            return {"MetricAlarms": [{"AlarmName": name} for name in params["AlarmNames"]]}
        if method == "describe_scalable_targets":
            return {"ScalableTargets": [{"ResourceId": params["ResourceIds"][0]}]}
        return {}


def _deploy_argv(definition: dict[str, Any], step: str, package_arn: str) -> list[str] | None:
    found = [request for name, _, request in step_requests(definition) if name == step]
    if not found:
        return None
    argv = found[0]["AppSpecification"]["ContainerArguments"]
    flag = argv.index("--model-package-arn")
    argv[flag + 1] = package_arn  # ResolveApprovedModel's answer, known at run time
    assert UNKNOWN not in argv, f"{step}: an argument only known at run time: {argv}"
    return [str(item) for item in argv]


def deploy_calls(definitions: dict[str, dict[str, Any]], config: Config) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Run steps/deploy.py as DeployEndpoint and DeployProduction call it (a first deployment, then an update of
    the live endpoint: blue/green with fleet alarms and auto scaling where configured); every call it makes."""
    registered = [request for _, operation, request in step_requests(definitions["training"])
                  if operation == "CreateModelPackage"][0]
    image = registered["InferenceSpecification"]["Containers"][0]["Image"]
    package_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{config.model.model_package_group}/7"
    fake = FakeAws(image)
    for step in ("DeployEndpoint", "DeployProduction"):
        argv = _deploy_argv(definitions["deploy"], step, package_arn)
        if argv is None:
            continue
        settings = deploy.settings_from_args(deploy.parse_args(argv))
        for _ in range(2):  # create, then update the endpoint the first run created
            deploy.deploy(fake.client("sagemaker"), settings, sleep=lambda _: None,
                          cloudwatch=fake.client("cloudwatch"), autoscaling=fake.client("application-autoscaling"))
    return [("deploy.py", service, operation, params) for service, operation, params in fake.calls]


# ---------------------------------------------------------------- the checks

def test_the_validator_catches_what_botocore_lets_through() -> None:
    """Counts, lengths, ranges, enums and patterns botocore's own ParamValidator passes."""
    validator = StrictValidator()
    data = {"S3Input": {"S3Uri": "s3://b/k", "LocalPath": "/opt/ml/processing/input/x", "S3DataType": "S3Prefix",
                        "S3InputMode": "File"}}
    request = {"ProcessingJobName": "j" * 64, "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
               "AppSpecification": {"ImageUri": "i"},
               "ProcessingResources": {"ClusterConfig": {"InstanceCount": 101, "InstanceType": "ml.x9.huge",
                                                         "VolumeSizeInGB": 30}},
               "ProcessingInputs": [{"InputName": f"in{i}", **data} for i in range(11)],
               "Environment": {"bad key!": "v"}}
    problems = "\n".join(request_problems(validator, "sagemaker", "CreateProcessingJob", request))
    for expected in (".ProcessingJobName: invalid length", ".ProcessingInputs: invalid length",
                     ".ProcessingResources.ClusterConfig.InstanceCount: invalid range",
                     ".ProcessingResources.ClusterConfig.InstanceType: invalid enum",
                     ".Environment (key: bad key!): invalid pattern"):
        assert expected in problems, problems
    assert request_problems(StrictValidator(), "sagemaker", "CreateProcessingJob",
                            {**request, "ProcessingJobName": "j" * 63, "ProcessingInputs": request["ProcessingInputs"][:10],
                             "ProcessingResources": {"ClusterConfig": {"InstanceCount": 100,
                                                                       "InstanceType": "ml.m5.xlarge",
                                                                       "VolumeSizeInGB": 30}},
                             "Environment": {"GOOD_KEY": UNKNOWN}}) == []


@pytest.mark.parametrize("label", list(CONFIGS))
def test_every_request_is_within_aws_limits(requests: dict, label: str) -> None:
    validator = StrictValidator()
    problems = [f"{where}: {problem}" for where, service, operation, request in requests[label]
                for problem in request_problems(validator, service, operation, request)]
    assert not problems, "\n".join(problems)
    operations = Counter(operation for _, _, operation, _ in requests[label])
    assert {"CreateProcessingJob", "CreateTrainingJob", "CreateModelPackage", "CreatePipeline", "UpdatePipeline",
            "StartPipelineExecution", "PutObject", "CreateModel", "CreateEndpointConfig", "CreateEndpoint",
            "UpdateEndpoint", "PutMetricAlarm"} <= set(operations), operations
    assert validator.checks["max count"] and validator.checks["pattern"] and validator.checks["enum"]
    print(f"{label}: {len(requests[label])} requests, {sum(operations.values())} calls of {len(operations)} "
          f"operations; checks {dict(validator.checks)}; values known only at run time: {validator.unknown}")


def test_evaluate_model_stays_within_ten_processing_inputs(requests: dict) -> None:
    """The break of issue 12: custom suites as an eleventh input. Every suite is staged under one prefix now."""
    for label, found in requests.items():
        evaluate = next(request for where, _, _, request in found if where == "training/EvaluateModel")
        assert len(evaluate["ProcessingInputs"]) <= 10, label
        padded = {**evaluate, "ProcessingInputs": evaluate["ProcessingInputs"] + evaluate["ProcessingInputs"][:2]}
        assert any("ProcessingInputs: invalid length" in problem for problem in
                   request_problems(StrictValidator(), "sagemaker", "CreateProcessingJob", padded))


def test_blue_green_update_uses_the_configured_guardrails(requests: dict) -> None:
    """The production update of the demo-every-option config: LINEAR, its bake, both fleet alarms, auto scaling."""
    calls = [(operation, request) for where, _, operation, request in requests["demo-every-option"]
             if where == "deploy.py"]
    updates = [request for operation, request in calls if operation == "UpdateEndpoint"
               and request["EndpointName"] == "continuum-demo-prod"]
    routing = updates[-1]["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "LINEAR", "WaitIntervalInSeconds": 900,
                       "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}}
    alarms = [request for operation, request in calls if operation == "PutMetricAlarm"
              and "continuum-demo-prod" in request["AlarmName"]]
    assert {(a["Period"], a["EvaluationPeriods"]) for a in alarms} == {(60, 3)}
    assert any(operation == "RegisterScalableTarget" and request["MinCapacity"] == 2 and request["MaxCapacity"] == 8
               for operation, request in calls)
