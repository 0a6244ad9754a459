"""Least privilege checked against behaviour: the AWS calls real local end-to-end runs make, against the project
stack's IAM policies (infra/template.yaml) and pipelines/permissions.py.

The local runtime records every call it answers into `<home>/aws-calls.jsonl` (tests/conftest.py turns
pipelines/local/api_server.record_call on for the session). This module runs after the suite's end-to-end modules
(file order) and reads their homes: test_local_e2e's (the demo, two rounds) and test_company_e2e's (Tidewater
Ferries through the CLI). Run on its own, it runs the demo once itself.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pipelines import permissions
from pipelines.backend import local_backend
from pipelines.cli import main
from pipelines.config import load_config
from pipelines.iam_policies import Stack, decide, load_template

# tmp_path_factory names of the e2e homes: tests/test_local_e2e.py `home`, tests/test_company_e2e.py `project`
DEMO_HOMES, COMPANY_HOMES = "continuum-home*", "tidewater*/home"
STACK = Stack(load_template(), {"SageMakerProjectName": "continuum-demo", "SageMakerProjectId": "p-demo"})
EXECUTION_ROLE = STACK.role_statements("SageMakerExecutionRole")
PIPELINE_SERVICE = frozenset().union(*permissions.PIPELINE_SERVICE_ACTIONS.values())

Call = tuple[str, str, str]  # (IAM action, caller, "service:Operation")


def _calls(home: Path, start: int = 0) -> list[Call]:
    out = []
    for line in (home / "aws-calls.jsonl").read_text(encoding="utf-8").splitlines()[start:]:
        record = json.loads(line)
        action = permissions.iam_action(record["service"], record["operation"])
        if action is not None:
            out.append((action, record["caller"], f"{record['service']}:{record['operation']}"))
    return out


def _step_types(steps: list[dict]) -> set[str]:
    """Every step's Type, the ConditionSteps' branches included."""
    out: set[str] = set()
    for step in steps:
        out.add(step["Type"])
        arguments = step.get("Arguments", {})
        out |= _step_types(arguments.get("IfSteps", []) + arguments.get("ElseSteps", []))
    return out


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    found = sorted({p.parent.resolve() for p in base.glob(f"{DEMO_HOMES}/aws-calls.jsonl")})  # not the *current links
    if found:
        return found[0]
    from pipelines.demo.run_demo import run_demo

    home = tmp_path_factory.mktemp("observed-home")
    lines: list[str] = []
    summary = run_demo(home, echo=lines.append)
    assert summary.succeeded, "\n".join(lines[-40:])
    sagemaker = local_backend(load_config(), home).client("sagemaker")
    for endpoint in sagemaker.list_endpoints()["Endpoints"]:
        sagemaker.delete_endpoint(EndpointName=endpoint["EndpointName"])
    return home


@pytest.fixture(scope="module")
def recorded(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Call]:
    companies = {p.parent.resolve() for p in tmp_path_factory.getbasetemp().glob(f"{COMPANY_HOMES}/aws-calls.jsonl")}
    homes = [demo_home, *sorted(companies)]
    return [call for home in homes for call in _calls(home)]


def test_a_local_run_records_its_steps_and_commands_calls(recorded: list[Call]) -> None:
    seen = {(action, caller) for action, caller, _ in recorded}
    assert {("sagemaker:ListModelPackages", "job"), ("sagemaker:CreateEndpoint", "job"),
            ("sagemaker:InvokeEndpoint", "job"), ("cloudwatch:PutMetricAlarm", "job"),
            ("sagemaker:CreateModelPackage", "control-plane"), ("sagemaker:UpdateModelPackage", "control-plane"),
            ("s3:PutObject", "control-plane")} <= seen
    print(f"{len(recorded)} calls, {len({c[2] for c in recorded})} operations:",
          dict(Counter(f"{caller} {operation}" for _, caller, operation in recorded)))


def test_every_step_call_is_a_step_action_the_execution_role_allows(recorded: list[Call]) -> None:
    step_actions = frozenset().union(*permissions.STEP_ACTIONS.values())
    for action, caller, operation in recorded:
        if caller == "job":
            assert action in step_actions, f"{operation}: a step calls it; add it to pipelines/permissions.py STEP_ACTIONS"
            assert decide(EXECUTION_ROLE, action) == "Allow", f"{operation}: the execution role does not allow {action}"


def test_what_sagemaker_pipelines_does_for_the_definitions_the_execution_role_allows(demo_home: Path,
                                                                                   recorded: list[Call]) -> None:
    step_types = {kind for path in (demo_home / "executions").glob("*/*/definition.json")
                  for kind in _step_types(json.loads(path.read_text(encoding="utf-8"))["Steps"])}
    assert {"Processing", "Training", "RegisterModel", "Condition"} <= step_types
    needed = frozenset().union(*(permissions.PIPELINE_SERVICE_ACTIONS[kind] for kind in step_types))
    assert {a for a in needed if decide(EXECUTION_ROLE, a) != "Allow"} == set()
    # the local runtime plays SageMaker Pipelines' part in-process: those calls are the pipeline service's
    for action, caller, operation in recorded:
        if caller == "control-plane" and action in PIPELINE_SERVICE and action not in permissions.COMMAND_ACTIONS["run"]:
            assert decide(EXECUTION_ROLE, action) == "Allow", operation


def test_every_command_call_is_a_command_action_its_personas_hold(recorded: list[Call]) -> None:
    """The e2e modules run the demo (run, approve, deploy, invoke), monitor, status and the company's CLI round:
    each in-process call is some command's action, which the Admin and a Model Engineer or Deployment Manager hold."""
    commands = frozenset().union(*permissions.COMMAND_ACTIONS.values())
    engineer = STACK.policy_statements("ModelEngineerPolicy")
    manager = STACK.policy_statements("DeploymentManagerPolicy")
    admin = STACK.policy_statements("AdminPolicy")
    for action, caller, operation in recorded:
        if caller != "control-plane" or action in permissions.STACK_PROVIDES:
            continue
        if action in PIPELINE_SERVICE and action not in commands:
            continue  # the local runtime acting as SageMaker Pipelines (previous test)
        assert action in commands, f"{operation}: a command calls it; add it to pipelines/permissions.py COMMAND_ACTIONS"
        assert decide(admin, action) == "Allow", operation
        assert "Allow" in (decide(engineer, action), decide(manager, action)), operation


@pytest.mark.parametrize("command", ["models list", "status", "lineage", "report"])
def test_each_read_command_calls_only_its_actions_which_the_viewer_holds(
        command: str, demo_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # the demo's config: no ./continuum.yaml
    monkeypatch.delenv("CONTINUUM_CONFIG", raising=False)
    start = len((demo_home / "aws-calls.jsonl").read_text(encoding="utf-8").splitlines())
    assert main(["--home", str(demo_home), *command.split()]) == 0, capsys.readouterr()
    calls = _calls(demo_home, start)
    assert calls, f"{command} made no AWS call"
    viewer = STACK.policy_statements("ViewerPolicy")
    for action, caller, operation in calls:
        assert caller == "control-plane"
        assert action in permissions.COMMAND_ACTIONS[command], f"{command}: {operation} is not in its COMMAND_ACTIONS"
        assert decide(viewer, action) == "Allow", f"{command}: the viewer may not {action}"
