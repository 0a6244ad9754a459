"""`continuum doctor`: locally the home, packages and disk; with --aws every check against the project stack
deployed into moto, with botocore Stubbers (request shapes validated by botocore) for what moto lacks: ECR images
in AWS's registry account, Service Quotas, and KMS DescribeKey on a key moto's CloudFormation created."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber
from moto import mock_aws

from pipelines.cli import main
from pipelines.commands.doctor import Check, aws_checks, image_uris, instance_needs, local_checks
from pipelines.config import load_config
from test_infra import PARAMETERS, REGION, moto_template


def test_local_doctor_checks_the_home_packages_and_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path), "doctor"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[:2] for line in out.splitlines()[:4]] == [["ok", "home"], ["ok", "python"],
                                                                   ["ok", "packages"], ["ok", "disk"]]
    assert "4 of 4 checks passed" in out


def test_local_doctor_names_a_home_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    home = tmp_path / "a-file" / "home"  # unwritable for root too
    checks = {check.name: check for check in local_checks(home, load_config()) if check.name != "disk"}
    assert not checks["home"].ok and str(home) in checks["home"].detail and "--home" in checks["home"].fix


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, str]]:
    template, _ = moto_template()
    with mock_aws(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(StackName="continuum", TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"],
                                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()])
        outputs = {o["OutputKey"]: o["OutputValue"]
                   for o in cloudformation.describe_stacks(StackName="continuum")["Stacks"][0]["Outputs"]}
        # moto's CloudFormation does not apply VersioningConfiguration (FACTS.md); CloudFormation does
        boto3.client("s3", region_name=REGION).put_bucket_versioning(
            Bucket=outputs["ArtifactsBucketName"], VersioningConfiguration={"Status": "Enabled"})
        yield outputs


def _config(stack: dict[str, str], **overrides: Any) -> Any:
    return load_config(overrides={"project.region": REGION, "project.bucket": stack["ArtifactsBucketName"],
                                  "project.role_arn": stack["SageMakerExecutionRoleArn"], **overrides})


def _stubbed(config: Any, stack: dict[str, str], missing_image: str | None = None,
             quota: float = 4.0) -> tuple[Any, list[Stubber]]:
    """A client factory: moto for sts, iam and s3; Stubbers for ecr, service-quotas and kms."""
    ecr = boto3.client("ecr", region_name=REGION)
    quotas = boto3.client("service-quotas", region_name=REGION)
    kms = boto3.client("kms", region_name=REGION)
    stubs = [Stubber(ecr), Stubber(quotas), Stubber(kms)]
    key = stack["KmsKeyArn"]
    stubs[2].add_response("describe_key", {"KeyMetadata": {"KeyId": key.rsplit("/", 1)[1], "Arn": key,
                                                           "KeyState": "Enabled"}}, {"KeyId": key})
    for uri in sorted(set(image_uris(config).values())):
        registry, rest = uri.split(".dkr.ecr.", 1)
        repository, tag = rest.split("/", 1)[1].split(":")
        params = {"registryId": registry, "repositoryName": repository, "imageIds": [{"imageTag": tag}]}
        if uri == missing_image:
            stubs[0].add_client_error("describe_images", "ImageNotFoundException", f"{tag} not found", 400,
                                      expected_params=params)
        else:
            stubs[0].add_response("describe_images", {"imageDetails": [{"registryId": registry, "repositoryName": repository,
                                                                        "imageTags": [tag]}]}, params)
    listed = [{"ServiceCode": "sagemaker", "QuotaName": f"{instance_type} for {usage}", "QuotaCode": f"L-{index:08d}",
               "Value": quota} for index, (instance_type, usage) in enumerate(sorted(instance_needs(config)))]
    stubs[1].add_response("list_service_quotas", {"Quotas": listed}, {"ServiceCode": "sagemaker"})
    for stub in stubs:
        stub.activate()
    stubbed = {"ecr": ecr, "service-quotas": quotas, "kms": kms}
    return (lambda service, region_name=None: stubbed.get(service) or boto3.client(service, region_name=REGION)), stubs


def _lines(checks: list[Check]) -> list[str]:
    return [check.line() for check in checks]


def test_doctor_passes_on_the_deployed_stack(stack: dict[str, str]) -> None:
    config = _config(stack)
    client, stubs = _stubbed(config, stack)
    checks = list(aws_checks(config, client))
    for stub in stubs:
        stub.assert_no_pending_responses()
    print("\n".join(_lines(checks)))
    assert all(check.ok for check in checks), _lines(checks)
    names = [check.name for check in checks]
    assert names[:7] == ["credentials", "role", "names", "bucket", "versioning", "encryption", "kms key"]
    assert names.count("image") == len(set(image_uris(config).values()))  # each image once, its uses named
    assert names.count("quota") == len(instance_needs(config))
    assert f"s3://{stack['ArtifactsBucketName']} in {REGION}" in _lines(checks)[3]


def test_doctor_says_what_to_fix(stack: dict[str, str]) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="acme-wrong-region")
    config = _config(stack, **{"project.bucket": "acme-wrong-region", "deploy.endpoint_name": "support-bot",
                               "project.role_arn": "arn:aws:iam::123456789012:role/missing"})
    missing = image_uris(config)["serving"]
    client, _ = _stubbed(config, stack, missing_image=missing, quota=1.0)
    lines = [line for line in _lines(list(aws_checks(config, client))) if line.startswith("FAIL")]
    text = "\n".join(lines)
    assert "FAIL  role" in text and "SageMakerExecutionRoleArn" in text
    assert f"s3://acme-wrong-region in us-east-1 → jobs in {REGION} need a bucket in {REGION}" in text
    assert "versioning never enabled" in text and "encryption" in text
    assert "deploy.endpoint_name=support-bot do not start with project.name 'continuum-demo'" in text
    assert f"serving+production: {missing}: ImageNotFoundException" in text
    production = config.deploy.production
    assert production is not None
    assert f"{production.instance_type} for endpoint usage: 1 (a round needs" in text  # blue/green: both fleets


def test_doctor_without_credentials_stops_at_the_first_check(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoCredentials:
        def get_caller_identity(self) -> None:
            raise NoCredentialsError()

    checks = list(aws_checks(load_config(), lambda service, region_name=None: NoCredentials()))
    assert _lines(checks) == ["FAIL  credentials  NoCredentialsError: Unable to locate credentials → set AWS_PROFILE "
                              "or pass --profile (aws configure / aws sso login)"]


def test_instance_needs_count_both_fleets_of_a_blue_green_update() -> None:
    config = load_config(overrides={"deploy.production.instance_count": 3})
    production = config.deploy.production
    assert production is not None
    needs = instance_needs(config)
    staging = config.deploy.instance_count if config.deploy.instance_type == production.instance_type else 0
    assert needs[(production.instance_type, "endpoint usage")] == 6 + staging
    assert needs[(config.training.instance_type, "training job usage")] == config.training.instance_count
