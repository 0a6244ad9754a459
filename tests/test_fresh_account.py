"""A fresh AWS account (moto): what the project stack provides, a company's data dropped under the incoming/
prefix, then exactly what buildspec.yml runs: its build commands run in bash with CodeBuild's environment (the
variables infra/template.yaml's CodeBuild project sets), the console scripts they call replaced by shims that
record their arguments, which then run through the same entry points in-process on moto. The training pipeline
must be upserted under the project's names and started with every input present: each S3 location its steps
read at the parameters' defaults holds objects. `continuum schedule` then points EventBridge at the same pipeline.
Locally, an incoming/ prefix holding only its marker ends the run in the FailStep NoInputData.

The account is what infra/template.yaml deploys into moto's CloudFormation (bucket in its region with its KMS key,
execution role, events role): the bucket and roles come from the stack's outputs. moto cannot create the CodeBuild
project and CodePipeline (tests/test_infra.py leaves them out), so their environment, names and image are read
from the template.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
import yaml
from cfnlint.decode import decode_str
from moto import mock_aws

from ferry_company import COMPANY, write_round
from pipelines import s3_layout
from pipelines.aws_compat import get_pipeline_definition_main, run_pipeline_main
from pipelines.backend import local_backend
from pipelines.cli import main as continuum_main
from pipelines.commands.init import draft_config, write_suite
from pipelines.config import load_config
from pipelines.execution import run_pipeline
from pipelines.paths import REPO_ROOT
from pipelines.staging import stage_pipeline_inputs
from test_infra import PARAMETERS as STACK_PARAMETERS, moto_template
from test_request_limits import resolve, step_requests

REGION = "eu-west-1"
PROJECT, PROJECT_ID = "tidewater", "p-abc123def456"
BUCKET = f"sagemaker-project-{PROJECT_ID}-{REGION}"  # the stack's ArtifactsBucket name
ENTRY_POINTS = {"get-pipeline-definition": get_pipeline_definition_main, "run-pipeline": run_pipeline_main}
# Python runtimes of the CodeBuild images, from each image's runtimes.yml in aws/aws-codebuild-docker-images.
IMAGE_PYTHONS = {"aws/codebuild/amazonlinux-x86_64-standard:5.0": {"3.9", "3.10", "3.11", "3.12", "3.13", "3.14"},
                 "aws/codebuild/standard:7.0": {"3.11", "3.12"}}
SHIM = """#!{python}
import json, os, sys
with open(os.environ["BUILDSPEC_RECORD"], "a", encoding="utf-8") as handle:
    handle.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
"""


def _template() -> dict[str, Any]:
    template, problems = decode_str((REPO_ROOT / "infra" / "template.yaml").read_text(encoding="utf-8"))
    assert not problems, problems
    return template


def _buildspec() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "buildspec.yml").read_text(encoding="utf-8"))


def _codebuild_environment(template: dict[str, Any], role_arn: str) -> dict[str, str]:
    """The CodeBuild project's variables as the stack sets them (MODEL_PACKAGE_GROUP_NAME left to buildspec.yml's
    default, the template's own default) plus what CodeBuild itself sets."""
    declared = {item["Name"] for item in template["Resources"]["CodeBuildProject"]["Properties"]["Environment"][
        "EnvironmentVariables"]}
    values = {"SAGEMAKER_PROJECT_NAME": PROJECT, "SAGEMAKER_PROJECT_ID": PROJECT_ID, "ARTIFACT_BUCKET": BUCKET,
              "SAGEMAKER_PIPELINE_ROLE_ARN": role_arn}
    assert set(values) <= declared, f"the stack's CodeBuild project does not set {set(values) - declared}"
    return {**values, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "CODEBUILD_RESOLVED_SOURCE_VERSION": "0a1b2c3"}


def _project_repo(root: Path, role_arn: str, base_model: Path) -> Path:
    """The company's repository: continuum.yaml with the stack's outputs, its suite, its base model folder."""
    repo = root / "repo"
    rows = (write_round(1, root / "export") / "schedule.jsonl").read_text(encoding="utf-8").splitlines()
    write_suite(repo / "benchmarks" / "tidewater_faq",
                [{"id": f"{number:016x}", **json.loads(line)} for number, line in enumerate(rows)], COMPANY)
    config = draft_config(PROJECT, "./data", repo / "benchmarks" / "tidewater_faq", str(base_model),
                          ["When does the first ferry leave Port Alder?"], 0.3)
    config["project"].update({"region": REGION, "bucket": BUCKET, "role_arn": role_arn})
    config["model"]["model_package_group"] = f"{PROJECT}-{PROJECT_ID}"
    (repo / "continuum.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return repo


def _run_build_phase(repo: Path, environment: dict[str, str], shims: Path) -> list[list[str]]:
    """buildspec.yml's env variables and build commands, in one bash session as CodeBuild runs them; the console
    scripts' invocations, as recorded by the shims."""
    spec = _buildspec()
    for name in ENTRY_POINTS:
        (shims / name).write_text(SHIM.format(python=sys.executable), encoding="utf-8")
        (shims / name).chmod(0o755)
    record = shims / "record.jsonl"
    env = {"PATH": f"{shims}:{os.environ['PATH']}", "HOME": str(repo), "BUILDSPEC_RECORD": str(record),
           **{key: str(value) for key, value in spec["env"]["variables"].items()}, **environment}
    script = "set -e\n" + "\n".join(spec["phases"]["build"]["commands"])
    result = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]


def _objects_under(s3: Any, uri: str) -> list[str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _inputs_read(definition: dict[str, Any]) -> dict[str, str]:
    """Every S3 location the training pipeline's steps read that the parameters' defaults decide: processing and
    training inputs, and the resolve step's fallbacks (what a first version starts from and replays)."""
    found: dict[str, str] = {}
    for step, _, request in step_requests(definition):
        for item in request.get("ProcessingInputs", []):
            if isinstance(item["S3Input"]["S3Uri"], str):
                found[f"{step}.{item['InputName']}"] = item["S3Input"]["S3Uri"]
        for channel in request.get("InputDataConfig", []):
            if isinstance(channel["DataSource"]["S3DataSource"]["S3Uri"], str):
                found[f"{step}.{channel['ChannelName']}"] = channel["DataSource"]["S3DataSource"]["S3Uri"]
        argv = request.get("AppSpecification", {}).get("ContainerArguments", [])
        for flag in ("--fallback-model-uri", "--fallback-replay-uri"):
            if flag in argv:
                found[f"{step}{flag}"] = argv[argv.index(flag) + 1]
    return found


@pytest.fixture()
def fresh_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Iterator[dict[str, Any]]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    template, _ = moto_template()
    parameters = {**STACK_PARAMETERS, "SageMakerProjectName": PROJECT, "SageMakerProjectId": PROJECT_ID,
                  "RepositoryFullName": "tidewater/ferries-llm"}
    with mock_aws(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto's "not supported" warnings for the types it only pretends to create
        session = boto3.Session(region_name=REGION)
        cloudformation = session.client("cloudformation")
        cloudformation.create_stack(StackName=f"{PROJECT}-continuum", TemplateBody=json.dumps(template),
                                    Capabilities=["CAPABILITY_IAM"],
                                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
        stack = cloudformation.describe_stacks(StackName=f"{PROJECT}-continuum")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        assert outputs["ArtifactsBucketName"] == BUCKET
        assert session.client("s3").get_bucket_location(Bucket=BUCKET)["LocationConstraint"] == REGION
        yield {"session": session, "role_arn": outputs["SageMakerExecutionRoleArn"], "outputs": outputs,
               "tmp": tmp_path, "base_model": tiny_model_dir}


def test_buildspec_on_a_fresh_account_upserts_and_starts_the_pipeline_with_every_input(
        fresh_account: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    session, role_arn, tmp = fresh_account["session"], fresh_account["role_arn"], fresh_account["tmp"]
    template = _template()
    image = template["Parameters"]["CodeBuildImage"]["Default"]
    python = str(_buildspec()["phases"]["install"]["runtime-versions"]["python"])
    assert python in IMAGE_PYTHONS[image], f"buildspec.yml asks for Python {python}; {image} offers {IMAGE_PYTHONS[image]}"

    repo = _project_repo(tmp, role_arn, fresh_account["base_model"])
    s3 = session.client("s3")
    incoming = f"{PROJECT}/incoming"
    for path in sorted((tmp / "export").iterdir()):  # the company drops this round's export
        s3.upload_file(str(path), BUCKET, f"{incoming}/{path.name}")

    environment = _codebuild_environment(template, role_arn)
    shims = tmp / "shims"
    shims.mkdir()
    invocations = _run_build_phase(repo, environment, shims)
    assert [call[0] for call in invocations] == ["get-pipeline-definition", "get-pipeline-definition", "run-pipeline"]
    setup = (REPO_ROOT / "setup.py").read_text(encoding="utf-8")
    for name, entry in ENTRY_POINTS.items():
        assert f"{name}=pipelines.aws_compat:{entry.__name__}" in setup
    monkeypatch.chdir(repo)
    for key, value in {**environment, **_buildspec()["env"]["variables"]}.items():
        monkeypatch.setenv(key, str(value))
    for name, *argv in invocations:
        assert ENTRY_POINTS[name](argv) == 0, (name, argv)

    sagemaker = session.client("sagemaker")
    pipeline = sagemaker.describe_pipeline(PipelineName=f"{PROJECT}-training")
    assert pipeline["RoleArn"] == role_arn
    tags = {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=pipeline["PipelineArn"])["Tags"]}
    assert (tags["sagemaker:project-name"], tags["sagemaker:project-id"]) == (PROJECT, PROJECT_ID)
    definition = json.loads(pipeline["PipelineDefinition"])
    assert definition == json.loads((repo / "training-pipeline.json").read_text(encoding="utf-8"))
    assert (repo / "deploy-pipeline.json").is_file()
    registered = [request for _, operation, request in step_requests(definition) if operation == "CreateModelPackage"]
    assert registered[0]["ModelPackageGroupName"] == f"{PROJECT}-{PROJECT_ID}"  # SageMaker Projects' naming
    executions = sagemaker.list_pipeline_executions(PipelineName=f"{PROJECT}-training")["PipelineExecutionSummaries"]
    assert len(executions) == 1

    parameters = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert parameters["InputDataUri"] == f"s3://{BUCKET}/{incoming}"  # run-pipeline passed none: the defaults
    inputs = _inputs_read(definition)
    assert {"PrepareData.data", "PrepareData.tokenizer", "EvaluateModel.benchmarks", "ResolveBaseline--fallback-model-uri",
            "ResolveBaseline--fallback-replay-uri"} <= set(inputs), inputs
    missing = {name: uri for name, uri in inputs.items() if not _objects_under(s3, uri)}
    assert not missing, f"inputs with nothing under them on the fresh account: {missing}"
    dropped = {key.rsplit("/", 1)[-1] for key in _objects_under(s3, inputs["PrepareData.data"])}
    assert dropped == {path.name for path in (tmp / "export").iterdir()} | {s3_layout.INCOMING_MARKER}
    assert "config.json" in {key.rsplit("/", 1)[-1] for key in _objects_under(s3, inputs["PrepareData.tokenizer"])}
    assert _objects_under(s3, f"{inputs['EvaluateModel.benchmarks']}/tidewater_faq/suite.yaml")

    # Scheduled retraining starts the same pipeline, at the same defaults, under the name the stack's rule uses.
    events_role = fresh_account["outputs"]["EventsRoleArn"]  # the stack's role for EventBridge targets
    assert continuum_main(["schedule", "--config", str(repo / "continuum.yaml"), "--expression", "rate(7 days)",
                           "--events-role-arn", events_role]) == 0
    events = session.client("events")
    targets = events.list_targets_by_rule(Rule=f"{PROJECT}-training-schedule")["Targets"]
    assert [target["Arn"] for target in targets] == [pipeline["PipelineArn"]]
    rule = template["Resources"]["TrainingScheduleRule"]["Properties"]["Targets"][0]["Arn"]
    assert rule["Fn::Sub"].endswith(":pipeline/${SageMakerProjectName}-training")


def test_a_config_that_cannot_act_on_aws_is_refused_before_anything_is_started(
        fresh_account: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """The init config's local values (a 30 s bake on a one-instance canary) stop run-pipeline, naming the fields."""
    repo = _project_repo(fresh_account["tmp"], fresh_account["role_arn"], fresh_account["base_model"])
    config = yaml.safe_load((repo / "continuum.yaml").read_text(encoding="utf-8"))
    config["deploy"]["production"].update({"instance_count": 1, "canary_percent": 10, "bake_seconds": 30})
    (repo / "continuum.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert run_pipeline_main(["--config", str(repo / "continuum.yaml")]) == 2
    message = capsys.readouterr().err
    assert "deploy.production.traffic_routing CANARY needs deploy.production.instance_count >= 2 (got 1)" in message
    assert "deploy.production.bake_seconds (30) is shorter than deploy.production.alarms.period_seconds" in message
    sagemaker = fresh_account["session"].client("sagemaker")
    assert sagemaker.list_pipelines()["PipelineSummaries"] == []


def test_an_empty_incoming_prefix_ends_the_run_in_the_no_input_data_fail_step(
        continuum_home: Path, tiny_model_dir: Path) -> None:
    """Locally (the same definition): prepare finds only the marker, CheckInputData fails the run with what to do."""
    config = load_config()
    backend = local_backend(config, continuum_home)
    stage_pipeline_inputs(backend, config, lambda: tiny_model_dir)
    lines: list[str] = []
    outcome = run_pipeline("training", config, backend, echo=lines.append)
    incoming = s3_layout.incoming_uri(config)
    assert outcome.status == "Failed", lines
    assert outcome.failure_reason and outcome.failure_reason.startswith(
        f"No data in {incoming}/ (InputDataUri): drop this round's data files there"), outcome.failure_reason
    statuses = {step["name"]: step["status"] for step in outcome.steps}
    assert statuses["PrepareData"] == "Succeeded" and statuses["NoInputData"] == "Failed", statuses
    assert "TrainModel" not in statuses


def test_prepare_versions_the_raw_files_under_the_digest_staging_gives(tmp_path: Path) -> None:
    """What prepare read from incoming/ is kept under data/<digest>/, the URI `continuum run` stages the same files
    to; the marker is neither data nor part of the version; a marker-only input is a report, not a failure."""
    import prepare

    export = write_round(1, tmp_path / "export")
    staged_digest = s3_layout.content_digest(export)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for path in export.iterdir():
        (incoming / path.name).write_bytes(path.read_bytes())
    (incoming / s3_layout.INCOMING_MARKER).write_text("drop files here\n", encoding="utf-8")
    out, raw = tmp_path / "out", tmp_path / "raw"
    assert prepare.main(["--input-dir", str(incoming), "--output-dir", str(out), "--raw-output-dir", str(raw),
                         "--empty-input", "report", "--min-examples", "1", "--validation-fraction", "0.1"]) == 0
    report = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    assert report["input_digest"] == staged_digest and report["input_files"] == 2
    assert sorted(p.name for p in (raw / staged_digest).iterdir()) == sorted(p.name for p in export.iterdir())

    for path in export.iterdir():
        path.unlink()
    (export / s3_layout.INCOMING_MARKER).write_text("drop files here\n", encoding="utf-8")
    empty_out = tmp_path / "empty"
    assert prepare.main(["--input-dir", str(export), "--output-dir", str(empty_out), "--empty-input", "report"]) == 0
    empty = json.loads((empty_out / "report" / "report.json").read_text(encoding="utf-8"))
    assert (empty["input_files"], empty["empty_input"]) == (0, f"no data file in {export}")
    assert not (empty_out / "train").exists()
    assert prepare.main(["--input-dir", str(export), "--output-dir", str(tmp_path / "fails")]) == 1  # default: fail


def test_a_hub_base_model_is_staged_once_where_base_model_uri_points(
        fresh_account: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """An HF id is downloaded where the CLI runs (CodeBuild has network; training jobs need none) and uploaded under
    base-model/hub/<id>/, config.json last; once there, later runs neither download nor upload it again."""
    import pipelines.staging as staging
    from pipelines.backend import Backend

    config = load_config(None, {"project.bucket": BUCKET, "project.region": REGION,
                                "model.base_model": "Qwen/Qwen2.5-0.5B-Instruct"})
    downloads: list[str] = []
    monkeypatch.setattr(staging, "_hub_snapshot", lambda model_id: downloads.append(model_id) or fresh_account["base_model"])
    backend = Backend("aws", fresh_account["session"])
    uri = s3_layout.base_model_uri(config)
    assert uri == f"s3://{BUCKET}/continuum-demo/base-model/hub/Qwen/Qwen2.5-0.5B-Instruct"
    assert staging.stage_base_model(backend, config) == uri
    assert staging.stage_base_model(backend, config) == uri
    assert downloads == ["Qwen/Qwen2.5-0.5B-Instruct"]
    s3 = fresh_account["session"].client("s3")
    staged = sorted(key.rsplit("/", 1)[-1] for key in _objects_under(s3, uri))
    assert staged == sorted(path.name for path in fresh_account["base_model"].rglob("*") if path.is_file())
