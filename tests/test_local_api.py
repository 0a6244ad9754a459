"""Plain boto3 against the local SageMaker API, in-process (transport) and over HTTP, plus local S3/STS."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ClientError, WaiterError

from pipelines.local.api_server import LocalApiServer, subprocess_env
from pipelines.local.registry import ApiError
from pipelines.local.sagemaker_api import SageMakerAPI
from pipelines.local.transport import LocalServiceNotAvailable, local_boto3_session

GROUP = "continuum-demo"
ROLE = "arn:aws:iam::000000000000:role/continuum"
METRICS = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://bkt/eval/evaluation.json"}}}
CAPTURE = {"EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": "s3://bkt/capture",
           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
           "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}


@dataclass
class FakeEndpoints:
    """Stands in for pipelines.local.endpoints.LocalEndpoints: records deployments, echoes invocations."""

    deployed: dict[str, tuple[list[dict], dict | None]] = field(default_factory=dict)
    fail_deploy: str | None = None
    deleted: list[str] = field(default_factory=list)

    def deploy(self, endpoint_name: str, variants: list[dict], data_capture: dict | None, shift: Any = None) -> None:
        if self.fail_deploy:
            raise RuntimeError(self.fail_deploy)
        self.deployed[endpoint_name] = (variants, data_capture)

    def invoke(self, endpoint_name: str, body: bytes, content_type: str, accept: str,
               custom_attributes: str | None) -> tuple[bytes, str, str]:
        if body == b"boom":
            raise RuntimeError("model exploded")
        if body == b"gone":
            raise LookupError(f"no local endpoint {endpoint_name!r}")
        variants, _ = self.deployed[endpoint_name]
        echo = {"body": body.decode(), "content_type": content_type, "accept": accept, "custom": custom_attributes,
                "model": variants[0]["ModelDataUrl"]}
        return json.dumps(echo).encode(), "application/json", variants[0]["VariantName"]

    def delete(self, endpoint_name: str) -> None:
        self.deleted.append(endpoint_name)
        self.deployed.pop(endpoint_name, None)


@dataclass
class Local:
    sm: Any
    runtime: Any
    endpoints: FakeEndpoints
    api: SageMakerAPI


@pytest.fixture(params=["transport", "http"])
def local(request: pytest.FixtureRequest, tmp_path: Path):
    fake = FakeEndpoints()
    api = SageMakerAPI(tmp_path / "home", endpoints=fake)
    if request.param == "transport":
        session = local_boto3_session(tmp_path / "home", api=api)
        yield Local(session.client("sagemaker"), session.client("sagemaker-runtime"), fake, api)
    else:
        with LocalApiServer(api) as url:
            kwargs = {"endpoint_url": url, "region_name": "us-east-1",
                      "aws_access_key_id": "k", "aws_secret_access_key": "s"}
            yield Local(boto3.client("sagemaker", **kwargs), boto3.client("sagemaker-runtime", **kwargs), fake, api)
    api.wait_for_deployments()


def register(sm: Any, model_uri: str = "s3://bkt/model/model.tar.gz", **extra: Any) -> str:
    return sm.create_model_package(
        ModelPackageGroupName=GROUP, ModelPackageDescription="candidate",
        InferenceSpecification={"Containers": [{"Image": "serving:1", "ModelDataUrl": model_uri,
                                                "Environment": {"MAX_NEW_TOKENS": "16"}}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        ModelMetrics=METRICS, CustomerMetadataProperties={"data_version": "round-1"}, **extra,
    )["ModelPackageArn"]


def error_of(call: Any, **kwargs: Any) -> dict:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"] | {"status": info.value.response["ResponseMetadata"]["HTTPStatusCode"]}


# -- Model Registry ---------------------------------------------------------------------------------
def test_registry_round_trip_through_boto3(local):
    sm = local.sm
    group_arn = sm.create_model_package_group(ModelPackageGroupName=GROUP,
                                              ModelPackageGroupDescription="demo")["ModelPackageGroupArn"]
    assert group_arn == f"arn:aws:sagemaker:us-east-1:000000000000:model-package-group/{GROUP}"
    arns = [register(sm, f"s3://bkt/model/v{i}/model.tar.gz") for i in (1, 2, 3)]
    assert [a.rsplit("/", 1)[1] for a in arns] == ["1", "2", "3"]
    assert sm.list_model_packages(ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved")[
        "ModelPackageSummaryList"] == []

    sm.update_model_package(ModelPackageArn=arns[0], ModelApprovalStatus="Approved")
    sm.update_model_package(ModelPackageArn=arns[2], ModelApprovalStatus="Approved", ApprovalDescription="ship it")
    latest = sm.list_model_packages(ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved",
                                    SortBy="CreationTime", SortOrder="Descending", MaxResults=1)
    assert [s["ModelPackageVersion"] for s in latest["ModelPackageSummaryList"]] == [3]
    assert "NextToken" in latest
    everything = sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert [(s["ModelPackageVersion"], s["ModelApprovalStatus"]) for s in everything] == [
        (1, "Approved"), (2, "PendingManualApproval"), (3, "Approved")]

    described = sm.describe_model_package(ModelPackageName=arns[2])
    assert described["ModelPackageGroupName"] == GROUP and described["ModelPackageVersion"] == 3
    assert described["ModelApprovalStatus"] == "Approved" and described["ApprovalDescription"] == "ship it"
    assert described["ModelMetrics"] == METRICS
    assert described["CustomerMetadataProperties"] == {"data_version": "round-1"}
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == "s3://bkt/model/v3/model.tar.gz"
    assert described["CreationTime"].tzinfo is not None and described["LastModifiedTime"] >= described["CreationTime"]

    sm.update_model_package(ModelPackageArn=arns[2], ModelApprovalStatus="Rejected")
    approved = sm.list_model_packages(ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved",
                                      SortOrder="Descending")["ModelPackageSummaryList"]
    assert [s["ModelPackageVersion"] for s in approved] == [1]
    groups = sm.list_model_package_groups(NameContains="demo")["ModelPackageGroupSummaryList"]
    assert [(g["ModelPackageGroupName"], g["ModelPackageGroupStatus"]) for g in groups] == [(GROUP, "Completed")]
    assert sm.describe_model_package_group(ModelPackageGroupName=GROUP)["ModelPackageGroupDescription"] == "demo"


def test_listing_paginates_like_sagemaker(local):
    local.sm.create_model_package_group(ModelPackageGroupName=GROUP)
    for _ in range(12):
        register(local.sm)
    first = local.sm.list_model_packages(ModelPackageGroupName=GROUP)
    assert len(first["ModelPackageSummaryList"]) == 10 and first["NextToken"]
    pages = local.sm.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=GROUP, SortOrder="Descending", PaginationConfig={"PageSize": 5})
    versions = [s["ModelPackageVersion"] for page in pages for s in page["ModelPackageSummaryList"]]
    assert versions == list(range(12, 0, -1))
    # SageMaker lists Unversioned packages when no group or type is given; this registry holds none.
    assert local.sm.list_model_packages()["ModelPackageSummaryList"] == []
    assert len(local.sm.list_model_packages(ModelPackageType="Versioned", MaxResults=100)["ModelPackageSummaryList"]) == 12


def test_errors_carry_aws_codes_and_messages(local):
    sm = local.sm
    missing = error_of(sm.describe_model_package_group, ModelPackageGroupName="absent")
    assert missing["Code"] == "ValidationException" and missing["status"] == 400
    assert missing["Message"] == ("ModelPackageGroup arn:aws:sagemaker:us-east-1:000000000000:"
                                  "model-package-group/absent does not exist.")
    no_group = error_of(register, sm=sm)
    assert no_group["Code"] == "ValidationException" and "Model Package Group does not exist" in no_group["Message"]
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    assert "already exists" in error_of(sm.create_model_package_group, ModelPackageGroupName=GROUP)["Message"]
    arn = register(sm)
    bad_status = error_of(sm.update_model_package, ModelPackageArn=arn, ModelApprovalStatus="Maybe")
    assert bad_status["Code"] == "ValidationException" and "enum value set" in bad_status["Message"]
    assert error_of(sm.describe_model_package, ModelPackageName=arn[:-1] + "7")["Code"] == "ValidationException"
    assert "Could not find endpoint" in error_of(sm.describe_endpoint, EndpointName="ghost")["Message"]


def test_dispatcher_checks_required_members_and_operations(local):
    with pytest.raises(ApiError, match="Value null at 'modelPackageGroupName' failed to satisfy") as info:
        local.api.handle("CreateModelPackageGroup", {})
    assert info.value.code == "ValidationException"
    with pytest.raises(ApiError) as info:
        local.api.handle("CreateTrainingJob", {"TrainingJobName": "x"})
    assert info.value.code == "UnknownOperationException"
    # The SDK probes with Search and falls back to listing on any error: it must get a ClientError.
    assert error_of(local.sm.search, Resource="ModelPackageGroup")["Code"] == "UnknownOperationException"


# -- Models and endpoints ---------------------------------------------------------------------------
def deploy_approved_package(sm: Any, endpoint: str = "continuum-staging", config: str = "cfg-1",
                            variant: str = "AllTraffic") -> str:
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    arn = register(sm)
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sm.create_model(ModelName="candidate", ExecutionRoleArn=ROLE, Containers=[{"ModelPackageName": arn}])
    sm.create_endpoint_config(EndpointConfigName=config, DataCaptureConfig=CAPTURE, ProductionVariants=[
        {"VariantName": variant, "ModelName": "candidate", "InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    return arn


def test_endpoint_lifecycle_deploys_invokes_updates_and_deletes(local):
    sm, runtime = local.sm, local.runtime
    deploy_approved_package(sm)
    sm.get_waiter("endpoint_in_service").wait(EndpointName="continuum-staging", WaiterConfig={"Delay": 1})
    variants, capture = local.endpoints.deployed["continuum-staging"]
    assert variants[0]["ModelDataUrl"] == "s3://bkt/model/model.tar.gz"
    assert variants[0]["Environment"] == {"MAX_NEW_TOKENS": "16"}
    assert variants[0]["VariantName"] == "AllTraffic" and variants[0]["InstanceType"] == "ml.g5.xlarge"
    assert capture == CAPTURE

    described = sm.describe_endpoint(EndpointName="continuum-staging")
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == "cfg-1"
    assert described["EndpointArn"] == "arn:aws:sagemaker:us-east-1:000000000000:endpoint/continuum-staging"
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["AllTraffic"]
    assert described["DataCaptureConfig"]["CaptureStatus"] == "Started"
    assert described["DataCaptureConfig"]["DestinationS3Uri"] == "s3://bkt/capture"

    answer = runtime.invoke_endpoint(EndpointName="continuum-staging", Body=b'{"inputs": "hi"}',
                                     ContentType="application/json", Accept="application/json",
                                     CustomAttributes="trace=1")
    assert answer["ContentType"] == "application/json" and answer["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(answer["Body"].read()) == {"body": '{"inputs": "hi"}', "content_type": "application/json",
                                                 "accept": "application/json", "custom": "trace=1",
                                                 "model": "s3://bkt/model/model.tar.gz"}

    sm.create_endpoint_config(EndpointConfigName="cfg-2", ProductionVariants=[
        {"VariantName": "Blue", "ModelName": "candidate", "InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 2}])
    deployment = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "continuum-5xx"}]}}
    sm.update_endpoint(EndpointName="continuum-staging", EndpointConfigName="cfg-2", DeploymentConfig=deployment)
    sm.get_waiter("endpoint_in_service").wait(EndpointName="continuum-staging", WaiterConfig={"Delay": 1})
    updated = sm.describe_endpoint(EndpointName="continuum-staging")
    assert updated["EndpointConfigName"] == "cfg-2" and "DataCaptureConfig" not in updated
    assert updated["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert updated["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": "continuum-5xx"}]
    assert local.endpoints.deployed["continuum-staging"][0][0]["VariantName"] == "Blue"
    listed = sm.list_endpoints(NameContains="staging")["Endpoints"]
    assert [(e["EndpointName"], e["EndpointStatus"]) for e in listed] == [("continuum-staging", "InService")]

    sm.delete_endpoint(EndpointName="continuum-staging")
    assert local.endpoints.deleted == ["continuum-staging"]
    sm.get_waiter("endpoint_deleted").wait(EndpointName="continuum-staging", WaiterConfig={"Delay": 1})
    gone = error_of(runtime.invoke_endpoint, EndpointName="continuum-staging", Body=b"{}")
    assert gone["Code"] == "ValidationError"
    assert gone["Message"] == "Endpoint continuum-staging of account 000000000000 not found."
    sm.delete_endpoint_config(EndpointConfigName="cfg-1")
    sm.delete_model(ModelName="candidate")
    assert error_of(sm.describe_model, ModelName="candidate")["Code"] == "ValidationException"


def test_failed_create_marks_the_endpoint_failed(local):
    local.endpoints.fail_deploy = "serving container never answered /ping"
    deploy_approved_package(local.sm)
    with pytest.raises(WaiterError):
        local.sm.get_waiter("endpoint_in_service").wait(EndpointName="continuum-staging",
                                                        WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    described = local.sm.describe_endpoint(EndpointName="continuum-staging")
    assert described["EndpointStatus"] == "Failed"
    assert described["FailureReason"] == "serving container never answered /ping"


def test_failed_update_rolls_back_to_the_old_config(local):
    deploy_approved_package(local.sm)
    local.sm.create_endpoint_config(EndpointConfigName="cfg-2", ProductionVariants=[
        {"VariantName": "Green", "ModelName": "candidate", "InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 1}])
    local.endpoints.fail_deploy = "out of memory"
    local.sm.update_endpoint(EndpointName="continuum-staging", EndpointConfigName="cfg-2")
    described = local.sm.describe_endpoint(EndpointName="continuum-staging")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "cfg-1")
    assert described["FailureReason"] == "out of memory"


def test_a_failed_endpoint_cannot_be_updated(local):
    local.endpoints.fail_deploy = "bad image"
    deploy_approved_package(local.sm)
    refused = error_of(local.sm.update_endpoint, EndpointName="continuum-staging", EndpointConfigName="cfg-1")
    assert refused["Code"] == "ValidationException" and "Cannot update failed endpoint" in refused["Message"]


def test_a_deployment_orphaned_by_its_process_is_reported_failed(local):
    deploy_approved_package(local.sm, endpoint="first")
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    local.api.registry.create_endpoint("orphan", "cfg-1", {"DeployingPid": exited.pid})
    described = local.sm.describe_endpoint(EndpointName="orphan")
    assert described["EndpointStatus"] == "Failed"
    assert f"process ({exited.pid}) deploying this endpoint exited" in described["FailureReason"]


def test_model_failures_surface_as_model_error(local):
    deploy_approved_package(local.sm)
    failure = error_of(local.runtime.invoke_endpoint, EndpointName="continuum-staging", Body=b"boom")
    assert failure["Code"] == "ModelError" and failure["status"] == 424
    assert failure["Message"] == 'Received server error (500) from primary with message "model exploded".'
    vanished = error_of(local.runtime.invoke_endpoint, EndpointName="continuum-staging", Body=b"gone")
    assert vanished["Code"] == "ValidationError" and "continuum-staging of account 000000000000" in vanished["Message"]


def test_duplicate_and_dangling_resources_are_rejected(local):
    sm = local.sm
    deploy_approved_package(sm)
    assert "Cannot create already existing endpoint" in error_of(
        sm.create_endpoint, EndpointName="continuum-staging", EndpointConfigName="cfg-1")["Message"]
    assert "Could not find endpoint configuration" in error_of(
        sm.create_endpoint, EndpointName="other", EndpointConfigName="nope")["Message"]
    assert "Could not find model" in error_of(sm.create_endpoint_config, EndpointConfigName="c", ProductionVariants=[
        {"VariantName": "A", "ModelName": "ghost", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])["Message"]


# -- HTTP specifics -------------------------------------------------------------------------------
def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_http_server_reports_protocol_errors_as_json(tmp_path):
    with LocalApiServer(SageMakerAPI(tmp_path)) as url:
        json_headers = {"Content-Type": "application/x-amz-json-1.1"}
        assert _post(url, b"{}", json_headers) == (400, {"__type": "UnknownOperationException", "message": (
            "POST / is not a SageMaker API request (expected POST / with X-Amz-Target: SageMaker.<Operation>, "
            "or POST /endpoints/<name>/invocations)")})
        status, body = _post(url, b"{not json", json_headers | {"X-Amz-Target": "SageMaker.ListEndpoints"})
        assert status == 400 and body["__type"] == "SerializationException"
        status, body = _post(url, b"{}", json_headers | {"X-Amz-Target": "SageMaker.ListEndpoints"})
        assert (status, body) == (200, {"Endpoints": []})


def test_subprocess_env_points_plain_boto3_at_the_server(tmp_path, monkeypatch):
    api = SageMakerAPI(tmp_path)
    api.handle("CreateModelPackageGroup", {"ModelPackageGroupName": GROUP})
    with LocalApiServer(api) as url:
        env = subprocess_env(url)
        assert env["AWS_ENDPOINT_URL_SAGEMAKER"] == env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] == url
        for name in list(os.environ):
            if name.startswith("AWS_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        client = boto3.session.Session().client("sagemaker")
        assert client.meta.endpoint_url == url
        groups = client.list_model_package_groups()["ModelPackageGroupSummaryList"]
        assert [g["ModelPackageGroupName"] for g in groups] == [GROUP]


# -- S3 and STS through the transport --------------------------------------------------------------
@pytest.fixture()
def session(tmp_path: Path) -> boto3.Session:
    return local_boto3_session(tmp_path / "home")


def test_put_object_bodies_arrive_intact_even_aws_chunked(session, tmp_path):
    seen: list[dict] = []
    session._session.register("before-send.s3.PutObject",
                              lambda request, **_: seen.append(dict(request.headers.items())))
    s3 = session.client("s3")
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="code/step.py", Body=b"print('hello')\n")
    payload = os.urandom(300_000)
    s3.upload_fileobj(__import__("io").BytesIO(payload), "bkt", "blob.bin")
    home_s3 = tmp_path / "home" / "s3" / "bkt"
    assert (home_s3 / "code" / "step.py").read_bytes() == b"print('hello')\n"
    assert (home_s3 / "blob.bin").read_bytes() == payload
    encodings = {str(h.get("Content-Encoding", b""), "ascii") if isinstance(h.get("Content-Encoding"), bytes)
                 else h.get("Content-Encoding", "") for h in seen}
    assert "aws-chunked" in encodings  # botocore's default trailing-checksum framing was decoded
    assert s3.get_object(Bucket="bkt", Key="blob.bin")["Body"].read() == payload


def test_a_wrong_trailing_checksum_is_rejected(session):
    transport = session.local_transport
    transport.s3.create_bucket("bkt")
    data = b"hello"
    good = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    for checksum, status in ((good, 200), ("AAAAAA==", 400)):
        body = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:" + checksum.encode() + b"\r\n\r\n"
        request = AWSPreparedRequest("PUT", "https://bkt.s3.amazonaws.com/k.txt",
                                     {"Content-Encoding": "aws-chunked", "X-Amz-Trailer": "x-amz-checksum-crc32"},
                                     body, False)
        response = transport(request, event_name="before-send.s3.PutObject")
        assert response.status_code == status
        if status == 400:
            assert b"<Code>BadDigest</Code>" in response.content
    assert transport.s3.get_bytes("s3://bkt/k.txt") == data


def test_multipart_upload_download_and_listing(session, tmp_path):
    s3 = session.client("s3")
    s3.create_bucket(Bucket="bkt")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(str(big), "bkt", "models/model.tar.gz", Config=config)
    back = tmp_path / "back.bin"
    s3.download_file("bkt", "models/model.tar.gz", str(back), Config=config)
    assert back.read_bytes() == big.read_bytes()
    assert not any((tmp_path / "home" / "s3" / ".staging" / "multipart").iterdir())

    for key in ("data/a b+c.jsonl", "data/sub/x.jsonl", "data/sub/y.jsonl", "top.txt"):
        s3.put_object(Bucket="bkt", Key=key, Body=key.encode())
    listed = s3.list_objects_v2(Bucket="bkt", Prefix="data/", Delimiter="/")
    assert [c["Key"] for c in listed["Contents"]] == ["data/a b+c.jsonl"]
    assert listed["CommonPrefixes"] == [{"Prefix": "data/sub/"}]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="bkt", PaginationConfig={"PageSize": 2})
    keys = [c["Key"] for page in pages for c in page.get("Contents", [])]
    assert keys == ["data/a b+c.jsonl", "data/sub/x.jsonl", "data/sub/y.jsonl", "models/model.tar.gz", "top.txt"]
    assert s3.head_object(Bucket="bkt", Key="top.txt")["ContentLength"] == 7
    s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "data/sub/x.jsonl"}, {"Key": "top.txt"}]})
    assert [c["Key"] for c in s3.list_objects_v2(Bucket="bkt", Prefix="data/sub")["Contents"]] == ["data/sub/y.jsonl"]


def test_s3_errors_match_aws(session):
    s3 = session.client("s3")
    assert error_of(s3.head_bucket, Bucket="nobucket") == {"Code": "404", "Message": "Not Found", "status": 404}
    assert error_of(s3.get_object, Bucket="nobucket", Key="k")["Code"] == "NoSuchBucket"
    s3.create_bucket(Bucket="bkt")
    missing = error_of(s3.get_object, Bucket="bkt", Key="absent.txt")
    assert (missing["Code"], missing["status"]) == ("NoSuchKey", 404)
    assert error_of(s3.head_object, Bucket="bkt", Key="absent.txt")["Code"] == "404"


def test_sts_answers_the_local_account_and_other_services_stay_offline(session, tmp_path, monkeypatch):
    assert session.client("sts").get_caller_identity()["Account"] == "000000000000"
    monkeypatch.setenv("AWS_PROFILE", "a-profile-nobody-configured")
    assert local_boto3_session(tmp_path / "other").client("sts").get_caller_identity()["Account"] == "000000000000"
    with pytest.raises(LocalServiceNotAvailable, match="cloudwatch ListMetrics"):
        session.client("cloudwatch").list_metrics()


def test_sagemaker_sdk_uploads_step_code_to_local_s3(tmp_path, monkeypatch):
    opt_out = tmp_path / "sagemaker-config.yaml"
    opt_out.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(opt_out))
    from sagemaker.processing import ProcessingOutput, ScriptProcessor
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.steps import ProcessingStep

    home = tmp_path / "home"
    session = PipelineSession(boto_session=local_boto3_session(home), default_bucket="continuum-artifacts")
    code = tmp_path / "step.py"
    code.write_text("print('step')\n")
    processor = ScriptProcessor(image_uri="000000000000.dkr.ecr.us-east-1.amazonaws.com/continuum:1",
                                command=["python3"], role=ROLE, instance_count=1, instance_type="ml.m5.large",
                                sagemaker_session=session)
    step_args = processor.run(code=str(code), outputs=[ProcessingOutput(output_name="out",
                                                                        source="/opt/ml/processing/output")])
    pipeline = Pipeline(name="continuum-test", steps=[ProcessingStep(name="Step", step_args=step_args)],
                        sagemaker_session=session)
    definition = json.loads(pipeline.definition())
    code_input = next(i for i in definition["Steps"][0]["Arguments"]["ProcessingInputs"] if i["InputName"] == "code")
    uri = code_input["S3Input"]["S3Uri"]
    assert uri.startswith("s3://continuum-artifacts/continuum-test/code/")
    local_file = home / "s3" / uri[len("s3://"):]
    assert local_file.read_text() == "print('step')\n"
