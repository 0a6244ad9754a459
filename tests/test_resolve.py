"""steps/resolve.py: latest Approved package → resolved.json, with fallback, against the local SageMaker API."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import resolve
from pipelines.local.api_server import LocalApiServer, subprocess_env
from pipelines.local.sagemaker_api import SageMakerAPI
from pipelines.local.transport import local_boto3_session

REPO = Path(__file__).resolve().parents[1]
GROUP = "continuum-demo"
FALLBACK = "s3://continuum-artifacts/base-model/model.tar.gz"
EMPTY_REPLAY = "s3://continuum-artifacts/empty-replay"


def add_package(api: SageMakerAPI, version_uri: str, status: str = "PendingManualApproval", *,
                via_source: bool = False, train_data_uri: str | None = None, inventory_uri: str | None = None) -> str:
    container = ({"ModelDataSource": {"S3DataSource": {"S3Uri": version_uri, "S3DataType": "S3Object",
                                                       "CompressionType": "Gzip"}}, "Image": "serving:1"}
                 if via_source else {"ModelDataUrl": version_uri, "Image": "serving:1"})
    metadata = {key: value for key, value in (("train_data_uri", train_data_uri), ("inventory_uri", inventory_uri))
                if value}
    lineage = {"CustomerMetadataProperties": metadata} if metadata else {}
    return api.handle("CreateModelPackage", {
        **lineage, "ModelPackageGroupName": GROUP, "ModelApprovalStatus": status,
        "InferenceSpecification": {"Containers": [container], "SupportedContentTypes": ["application/json"],
                                   "SupportedResponseMIMETypes": ["application/json"]},
    })["ModelPackageArn"]


@pytest.fixture()
def api(tmp_path: Path) -> SageMakerAPI:
    return SageMakerAPI(tmp_path / "home")


@pytest.fixture()
def client(api: SageMakerAPI):
    return local_boto3_session(api.home, api=api).client("sagemaker")


def test_missing_group_falls_back(client):
    assert resolve.resolve(client, GROUP, FALLBACK, require_approved=False, fallback_replay_uri=EMPTY_REPLAY) == {
        "model_package_arn": "none", "version": 0, "model_data_url": FALLBACK, "replay_data_uri": EMPTY_REPLAY,
        "inventory_uri": EMPTY_REPLAY, "source": "fallback"}


def test_group_without_approved_versions_falls_back_or_fails_when_required(api, client):
    api.handle("CreateModelPackageGroup", {"ModelPackageGroupName": GROUP})
    add_package(api, "s3://bkt/v1/model.tar.gz")
    add_package(api, "s3://bkt/v2/model.tar.gz", "Rejected")
    assert resolve.resolve(client, GROUP, FALLBACK, False, EMPTY_REPLAY)["source"] == "fallback"
    with pytest.raises(resolve.ResolveError, match=f"no Approved model package in group '{GROUP}'"):
        resolve.resolve(client, GROUP, FALLBACK, True, EMPTY_REPLAY)
    with pytest.raises(resolve.ResolveError, match="no --fallback-model-uri / --fallback-replay-uri given"):
        resolve.resolve(client, GROUP, None, False)


def test_latest_approved_version_wins_over_newer_pending_ones(api, client):
    api.handle("CreateModelPackageGroup", {"ModelPackageGroupName": GROUP})
    add_package(api, "s3://bkt/v1/model.tar.gz", "Approved", train_data_uri="s3://bkt/v1/train")
    arn2 = add_package(api, "s3://bkt/v2/model.tar.gz", "Approved", via_source=True, train_data_uri="s3://bkt/v2/train",
                       inventory_uri="s3://bkt/v2/inventory")
    add_package(api, "s3://bkt/v3/model.tar.gz", train_data_uri="s3://bkt/v3/train")
    assert resolve.resolve(client, GROUP, FALLBACK, True, EMPTY_REPLAY) == {
        "model_package_arn": arn2, "version": 2, "model_data_url": "s3://bkt/v2/model.tar.gz",
        "replay_data_uri": "s3://bkt/v2/train", "inventory_uri": "s3://bkt/v2/inventory", "source": "registry"}


def test_an_approved_package_without_lineage_replays_the_fallback(api, client):
    """Versions registered before knowledge inventories existed: the inventory restarts from the empty prefix."""
    api.handle("CreateModelPackageGroup", {"ModelPackageGroupName": GROUP})
    add_package(api, "s3://bkt/v1/model.tar.gz", "Approved")
    resolved = resolve.resolve(client, GROUP, FALLBACK, False, EMPTY_REPLAY)
    assert resolved["replay_data_uri"] == resolved["inventory_uri"] == EMPTY_REPLAY
    with pytest.raises(resolve.ResolveError, match="has no 'train_data_uri' customer metadata"):
        resolve.resolve(client, GROUP, FALLBACK, False, None)


def test_a_package_without_an_inventory_needs_the_fallback(api, client):
    api.handle("CreateModelPackageGroup", {"ModelPackageGroupName": GROUP})
    add_package(api, "s3://bkt/v1/model.tar.gz", "Approved", train_data_uri="s3://bkt/v1/train")
    with pytest.raises(resolve.ResolveError, match="has no 'inventory_uri' customer metadata"):
        resolve.resolve(client, GROUP, FALLBACK, False, None)


def run_step(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = subprocess_env(url, base=dict(os.environ, AWS_PROFILE="a-profile-nobody-configured"))
    assert "AWS_PROFILE" not in env and env["PATH"] == os.environ["PATH"]
    return subprocess.run(
        [sys.executable, "resolve.py", "--model-package-group", GROUP, "--fallback-model-uri", FALLBACK,
         "--fallback-replay-uri", EMPTY_REPLAY, "--output-dir", str(out), *extra],
        cwd=REPO / "steps", env=env, capture_output=True, text=True, timeout=60,
    )


def test_step_subprocess_resolves_through_the_http_api(api, tmp_path):
    with LocalApiServer(api) as url:
        first = run_step(url, tmp_path / "first")
        assert first.returncode == 0, first.stderr
        assert json.loads((tmp_path / "first" / "resolved.json").read_text())["source"] == "fallback"

        api.handle("CreateModelPackageGroup", {"ModelPackageGroupName": GROUP})
        arn = add_package(api, "s3://bkt/v1/model.tar.gz", train_data_uri="s3://bkt/v1/train")
        refused = run_step(url, tmp_path / "refused", "--require-approved")
        assert refused.returncode == 1
        assert "no Approved model package in group 'continuum-demo' and --require-approved is set" in refused.stderr
        assert not (tmp_path / "refused" / "resolved.json").exists()

        api.handle("UpdateModelPackage", {"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"})
        approved = run_step(url, tmp_path / "approved", "--require-approved")
        assert approved.returncode == 0, approved.stderr
    assert json.loads((tmp_path / "approved" / "resolved.json").read_text()) == {
        "model_package_arn": arn, "version": 1, "model_data_url": "s3://bkt/v1/model.tar.gz",
        "replay_data_uri": "s3://bkt/v1/train", "inventory_uri": EMPTY_REPLAY, "source": "registry"}
    assert "registry → s3://bkt/v1/model.tar.gz (version 1" in approved.stdout


def test_a_bedrock_version_resolves_to_its_custom_model_and_an_artifactless_package_is_named(api, client):
    """A Bedrock custom model is registered with SourceUri and no InferenceSpecification: the next round starts from
    (and compares against) that model; a package with neither names itself in the error."""
    custom = "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.nova-micro-v1:0:128k/abcdefghijkl"
    api.handle("CreateModelPackageGroup", {"ModelPackageGroupName": GROUP})
    arn = api.handle("CreateModelPackage", {"ModelPackageGroupName": GROUP, "ModelApprovalStatus": "Approved",
                                            "SourceUri": custom})["ModelPackageArn"]
    resolved = resolve.resolve(client, GROUP, FALLBACK, require_approved=True, fallback_replay_uri=EMPTY_REPLAY)
    assert resolved["model_package_arn"] == arn and resolved["model_data_url"] == custom
    with pytest.raises(resolve.ResolveError, match=r"model-package/.*no ModelDataUrl .* and no SourceUri"):
        resolve.model_data_url({"ModelPackageArn": arn.replace("/1", "/9"), "InferenceSpecification": {"Containers": []}})
