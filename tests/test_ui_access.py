"""Who reaches `continuum ui` and what they may do: the binding rule, the token, local roles, IAM on AWS; and a
fresh home (nothing run yet) renders every screen with what is missing said on the page."""
from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.backend import local_backend
from pipelines.config import load_config
from pipelines.ui.roles import NotAllowed, aws_identity, local_identity
from pipelines.ui.state import UiState, check_binding

CONFIG = load_config()
TOKEN = "s3cret-token-0123456789"
SCREENS = ["/", "/data", "/runs", "/models", "/benchmarks", "/deploy", "/monitoring", "/feedback"]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard on a home where nothing ran yet, guarded by a token."""
    import uvicorn

    from pipelines.ui.app import create_app
    from pipelines.ui.reads import caching

    home = tmp_path_factory.mktemp("ui-fresh")
    state = UiState(CONFIG, caching(local_backend(CONFIG, home)), local_identity(CONFIG), home, TOKEN)
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True


def test_binding_elsewhere_needs_a_token() -> None:
    check_binding("127.0.0.1", None)
    with pytest.raises(ValueError, match="needs --token"):
        check_binding("0.0.0.0", None)
    with pytest.raises(ValueError, match="at least 16 characters"):
        check_binding("0.0.0.0", "short")
    check_binding("0.0.0.0", TOKEN)


def test_the_token_is_asked_for_then_kept_in_a_cookie(fresh: str) -> None:
    assert _get(fresh + "/")[0] == 401
    assert _get(fresh + "/?token=wrong-token-0123456789")[0] == 401
    status, _, headers = _get(fresh + "/?token=" + TOKEN)
    assert status == 200 and "continuum_ui_token" in headers.get("set-cookie", "")
    assert _get(fresh + "/models", {"Cookie": f"continuum_ui_token={TOKEN}"})[0] == 200
    assert _get(fresh + "/models", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert _get(fresh + "/static/htmx.min.js")[0] == 200


def test_a_fresh_home_renders_every_screen_and_says_what_is_missing(fresh: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in SCREENS:
        status, body, _ = _get(fresh + path, auth)
        assert status == 200, (path, body[-500:])
        assert "Traceback" not in body
    assert "nothing waits for approval" in _get(fresh + "/", auth)[1]
    assert "no prepared data yet" in _get(fresh + "/data", auth)[1]
    assert "no Approved version to deploy" in _get(fresh + "/deploy", auth)[1]
    status, body, _ = _get(fresh + "/models/1", auth)
    assert status == 404 and "has no version 1" in body and "Traceback" not in body
    status, body, _ = _get(fresh + "/deploy/rollback", auth)
    assert status == 400 and "nothing to roll back" in body and "Traceback" not in body


def test_local_roles_come_from_the_config() -> None:
    config = CONFIG.model_copy(update={"ui": CONFIG.ui.model_copy(update={
        "role": "model_engineer", "users": {"dee": "deployment_manager", "vic": "viewer"}})})
    engineer = local_identity(config)  # the roles of pipelines/permissions.py: engineers run, managers approve
    assert engineer.allowed == {"run", "feedback"}
    assert local_identity(config, "dee").allowed == {"approve", "deploy", "rollback"}
    viewer = local_identity(config, "vic")
    assert viewer.allowed == frozenset()
    with pytest.raises(NotAllowed, match=r"vic \(Viewer\) may not approve: role Viewer from ui.users.vic"):
        viewer.require("approve")
    with pytest.raises(ValueError, match="ui.users has no user 'eve'"):
        local_identity(config, "eve")
    with pytest.raises(Exception, match="ui.role"):
        CONFIG.model_validate({**CONFIG.model_dump(), "ui": {"role": "superuser"}})


@dataclass
class _Clients:
    clients: dict[str, Any]

    def client(self, service: str) -> Any:
        return self.clients[service]


def _aws_clients() -> tuple[Any, Any]:
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
    return session.client("sts"), session.client("iam")


def test_on_aws_the_actions_are_what_iam_allows_the_caller() -> None:
    from pipelines.ui.roles import IAM_ACTIONS

    sts, iam = _aws_clients()
    caller = "arn:aws:sts::123456789012:assumed-role/ml-engineer/alice"
    allowed = {"run", "approve", "feedback"}
    with Stubber(sts) as sts_stub, Stubber(iam) as iam_stub:
        sts_stub.add_response("get_caller_identity", {"Arn": caller, "UserId": "AID", "Account": "123456789012"})
        for action, names in IAM_ACTIONS.items():
            decision = "allowed" if action in allowed else "implicitDeny"
            iam_stub.add_response("simulate_principal_policy", {"EvaluationResults": [
                {"EvalActionName": name, "EvalDecision": decision} for name in names]},
                {"PolicySourceArn": "arn:aws:iam::123456789012:role/ml-engineer", "ActionNames": list(names)})
        identity = aws_identity(_Clients({"sts": sts, "iam": iam}))  # type: ignore[arg-type]
    assert identity.allowed == allowed and identity.name == caller
    assert "iam:SimulatePrincipalPolicy" in identity.source


def test_on_aws_without_permission_to_ask_iam_the_page_says_so() -> None:
    sts, iam = _aws_clients()
    with Stubber(sts) as sts_stub, Stubber(iam) as iam_stub:
        sts_stub.add_response("get_caller_identity", {"Arn": "arn:aws:iam::123456789012:user/bob", "UserId": "AID",
                                                      "Account": "123456789012"})
        iam_stub.add_client_error("simulate_principal_policy", "AccessDenied", "not authorized to perform "
                                  "iam:SimulatePrincipalPolicy")
        identity = aws_identity(_Clients({"sts": sts, "iam": iam}))  # type: ignore[arg-type]
    assert identity.may("rollback") and identity.may("approve")
    assert "could not be asked" in identity.source and "AccessDenied" in identity.source and "AWS decides" in identity.source


def test_the_same_screens_on_an_aws_account(tmp_path: Path) -> None:
    """With --aws every screen reads the account through boto3 (moto here): a registered version, a pipeline
    execution, no endpoint yet; IAM's simulation is missing in moto, so the page says AWS decides."""
    import json

    import uvicorn
    from moto import mock_aws

    from pipelines.backend import Backend
    from pipelines.ui.app import create_app
    from pipelines.ui.reads import caching

    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=CONFIG.project.bucket)
        sagemaker = session.client("sagemaker")
        sagemaker.create_model_package_group(ModelPackageGroupName=CONFIG.model.model_package_group)
        sagemaker.create_model_package(
            ModelPackageGroupName=CONFIG.model.model_package_group, ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={"Containers": [{"Image": "img", "ModelDataUrl": "s3://b/m.tar.gz"}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]})
        sagemaker.create_pipeline(PipelineName=CONFIG.training_pipeline_name, RoleArn=CONFIG.project.role_arn,
                                  PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []}))
        sagemaker.start_pipeline_execution(PipelineName=CONFIG.training_pipeline_name)
        backend = caching(Backend("aws", session))
        state = UiState(CONFIG, backend, aws_identity(backend), tmp_path)
        server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=0, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        try:
            pages = {path: _get(url + path) for path in SCREENS}
        finally:
            server.should_exit = True
    for path, (status, body, _) in pages.items():
        assert status == 200 and "Traceback" not in body, (path, body[-800:])
    assert "AWS us-east-1" in pages["/"][1] and "AWS decides" in pages["/"][1]
    assert "/models/1" in pages["/"][1]  # waiting for approval
    assert CONFIG.training_pipeline_name in pages["/runs"][1]
