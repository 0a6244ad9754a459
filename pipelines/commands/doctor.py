"""`continuum doctor [--aws]`: a preflight. Locally: the home, Python and its packages, disk. With --aws: credentials,
the execution role, the bucket (region, encryption, versioning), its KMS key, each image in the region, instance
quotas. One line per check; each failure says what to fix (infra/README.md deploys what --aws looks for)."""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from pipelines.config import Config, load_config

MIN_FREE_GIB = 5.0  # a run's home holds the base model, every job's container folder and the model artifacts
STACK_HINT = "deploy infra/template.yaml (infra/README.md) and copy its outputs into continuum.yaml"
Clients = Callable[..., Any]  # (service, region_name=None) -> a boto3 client


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name:<12} {self.detail}" + ("" if self.ok else f" → {self.fix}")


# -- local ----------------------------------------------------------------------------------------------------------
def local_checks(home: Path, config: Config) -> Iterator[Check]:
    from pipelines.local.requirements import INSTALL_HINT, unmet_requirements
    from pipelines.paths import STEPS_DIR

    probe = home / ".doctor-write-test"
    try:
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
        yield Check("home", True, f"{home} is writable")
    except OSError as exc:
        yield Check("home", False, f"{home}: {exc}", "set $CONTINUUM_HOME or --home to a writable folder")
    version = ".".join(map(str, sys.version_info[:3]))
    yield Check("python", sys.version_info >= (3, 10), f"Python {version}", "use Python 3.10 or newer")
    requirements = STEPS_DIR / "requirements.txt"
    unmet = unmet_requirements(requirements.read_text(encoding="utf-8"), str(requirements))
    yield Check("packages", not unmet, "the steps' requirements are installed" if not unmet else "; ".join(unmet),
                INSTALL_HINT)
    existing = next(folder for folder in (home, *home.parents) if folder.is_dir())
    free = shutil.disk_usage(existing).free / 2**30
    yield Check("disk", free >= MIN_FREE_GIB, f"{free:.1f} GiB free under {home}",
                f"free at least {MIN_FREE_GIB:.0f} GiB there or point --home elsewhere")


# -- AWS ------------------------------------------------------------------------------------------------------------
def image_uris(config: Config) -> dict[str, str]:
    """Every image the project's steps and endpoints use in its region (pipelines/images.py decides)."""
    from pipelines import images

    region = config.project.region
    uses = {"training": images.image_uri(config.training.image_uri, "training", config.training.instance_type, region),
            "processing": images.image_uri(config.processing.image_uri, "processing", config.processing.instance_type, region),
            "evaluation": images.image_uri(config.processing.image_uri, "processing", config.evaluation.instance_type, region),
            "serving": images.image_uri(config.deploy.inference_image_uri, "serving", config.deploy.instance_type, region)}
    if config.deploy.production is not None:
        uses["production"] = images.image_uri(config.deploy.inference_image_uri, "serving",
                                              config.deploy.production.instance_type, region)
    return uses


def instance_needs(config: Config) -> dict[tuple[str, str], int]:
    """(instance type, usage as Service Quotas names it) → instances a round needs at once. A blue/green update
    runs the new production fleet beside the old one."""
    needs: dict[tuple[str, str], int] = {}

    def add(instance_type: str, usage: str, count: int) -> None:
        needs[(instance_type, usage)] = max(needs.get((instance_type, usage), 0), count)

    add(config.training.instance_type, "training job usage", config.training.instance_count)
    add(config.processing.instance_type, "processing job usage", 1)
    add(config.evaluation.instance_type, "processing job usage", 1)
    endpoints = {config.deploy.instance_type: config.deploy.instance_count}
    if config.deploy.production is not None:
        production = config.deploy.production
        endpoints[production.instance_type] = endpoints.get(production.instance_type, 0) + 2 * production.instance_count
    for instance_type, count in endpoints.items():
        add(instance_type, "endpoint usage", count)
    return needs


def _error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return f"{type(exc).__name__}: {exc}"


def aws_checks(config: Config, client: Clients) -> Iterator[Check]:
    from botocore.exceptions import BotoCoreError, ClientError

    failures = (ClientError, BotoCoreError)
    region = config.project.region
    try:
        identity = client("sts").get_caller_identity()
        yield Check("credentials", True, f"{identity['Arn']} (account {identity['Account']})")
    except failures as exc:
        yield Check("credentials", False, _error(exc), "set AWS_PROFILE or pass --profile (aws configure / aws sso login)")
        return

    role_name = config.project.role_arn.rsplit("/", 1)[-1]
    try:
        role = client("iam").get_role(RoleName=role_name)["Role"]
        trusted = any(s.get("Effect") == "Allow" and "sts:AssumeRole" in str(s.get("Action"))
                      and "sagemaker.amazonaws.com" in str(s.get("Principal", {}).get("Service"))
                      for s in role["AssumeRolePolicyDocument"]["Statement"])
        yield Check("role", trusted, f"{role['Arn']}" + (" is assumable by sagemaker.amazonaws.com" if trusted else
                                                          " does not trust sagemaker.amazonaws.com"),
                    "use the stack's SageMakerExecutionRoleArn (its trust policy names sagemaker.amazonaws.com)")
    except failures as exc:
        yield Check("role", False, f"{config.project.role_arn}: {_error(exc)}", f"project.role_arn: the stack's SageMakerExecutionRoleArn output ({STACK_HINT})")

    yield _names_check(config)
    yield from _bucket_checks(config, client, failures)
    yield from _image_checks(config, client, failures)
    yield from _quota_checks(config, client, failures)


def _names_check(config: Config) -> Check:
    """The stack's policies cover the project's own resources by name: `<project.name>*`."""
    project = config.project.name
    names = {"model.model_package_group": config.model.model_package_group, "deploy.endpoint_name": config.deploy.endpoint_name}
    if config.deploy.production is not None:
        names["deploy.production.endpoint_name"] = config.deploy.production.endpoint_name
    outside = [f"{key}={value}" for key, value in names.items() if not value.startswith(project)]
    return Check("names", not outside, f"{len(names)} resource names start with project.name {project!r}" if not outside
                 else f"{', '.join(outside)} do not start with project.name {project!r}",
                 "start them with project.name: the stack's IAM policies allow the project's resources by that prefix")


def _bucket_checks(config: Config, client: Clients, failures: tuple[type[Exception], ...]) -> Iterator[Check]:
    bucket, region = config.project.bucket, config.project.region
    s3 = client("s3")
    try:
        location = s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] or "us-east-1"
    except failures as exc:
        yield Check("bucket", False, f"s3://{bucket}: {_error(exc)}", f"project.bucket: the stack's ArtifactsBucketName output ({STACK_HINT})")
        return
    yield Check("bucket", location == region, f"s3://{bucket} in {location}",
                f"jobs in {region} need a bucket in {region}: set project.bucket to the stack's ArtifactsBucketName "
                f"of a stack in {region}, or project.region to {location}")
    try:
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "never enabled")
    except failures as exc:
        versioning = _error(exc)
    yield Check("versioning", versioning == "Enabled", f"s3://{bucket} versioning {versioning}",
                "enable versioning (the stack's bucket has it): models, data and reports stay recoverable")
    key_arn = None
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        default = rules[0]["ApplyServerSideEncryptionByDefault"]
        key_arn = default.get("KMSMasterKeyID")
        ok = default["SSEAlgorithm"].startswith("aws:kms") and bool(key_arn)
        detail = f"default encryption {default['SSEAlgorithm']}" + (f" with {key_arn}" if key_arn else "")
    except failures as exc:
        ok, detail = False, _error(exc)
    yield Check("encryption", ok, detail, "encrypt the bucket with the project's KMS key (the stack's KmsKeyArn)")
    for key in dict.fromkeys(k for k in (key_arn, config.deploy.capture_kms_key_id) if k):
        try:
            metadata = client("kms", region_name=region).describe_key(KeyId=key)["KeyMetadata"]
            yield Check("kms key", metadata["KeyState"] == "Enabled", f"{metadata['Arn']} {metadata['KeyState']}",
                        "enable the key (or cancel its deletion) in KMS")
        except failures as exc:
            yield Check("kms key", False, f"{key}: {_error(exc)}", "the key must exist in the project's region and "
                                                                   "allow your role kms:DescribeKey")


def _image_checks(config: Config, client: Clients, failures: tuple[type[Exception], ...]) -> Iterator[Check]:
    by_uri: dict[str, list[str]] = {}
    for use, uri in image_uris(config).items():
        by_uri.setdefault(uri, []).append(use)
    for uri, uses in sorted(by_uri.items()):
        use = "+".join(uses)
        registry_host, _, path = uri.partition("/")
        registry, _, rest = registry_host.partition(".dkr.ecr.")
        image_region = rest.split(".", 1)[0]
        repository, _, tag = path.partition(":")
        if image_region != config.project.region:
            yield Check("image", False, f"{use}: {uri} is in {image_region}",
                        f"use the image's {config.project.region} registry (jobs pull from their own region)")
            continue
        try:
            client("ecr", region_name=image_region).describe_images(
                registryId=registry, repositoryName=repository, imageIds=[{"imageTag": tag}])
            yield Check("image", True, f"{use}: {uri}")
        except failures as exc:
            yield Check("image", False, f"{use}: {uri}: {_error(exc)}",
                        "pick a tag AWS publishes in this region (containers/images.yaml) or build and push "
                        "containers/ and set its URI in continuum.yaml")


def _quota_checks(config: Config, client: Clients, failures: tuple[type[Exception], ...]) -> Iterator[Check]:
    quotas: dict[str, float] = {}
    try:
        pages = client("service-quotas", region_name=config.project.region).get_paginator("list_service_quotas")
        for page in pages.paginate(ServiceCode="sagemaker"):
            quotas.update({q["QuotaName"]: q["Value"] for q in page["Quotas"]})
    except failures as exc:
        yield Check("quotas", False, _error(exc), "allow servicequotas:ListServiceQuotas (the stack's Admin policy)")
        return
    for (instance_type, usage), needed in sorted(instance_needs(config).items()):
        name = f"{instance_type} for {usage}"
        value = quotas.get(name)
        if value is None:
            yield Check("quota", False, f"{name}: Service Quotas has no such quota in {config.project.region}",
                        "choose an instance type SageMaker offers in this region")
        else:
            yield Check("quota", value >= needed, f"{name}: {value:g} (a round needs {needed})",
                        f"request {needed} or more in Service Quotas (SageMaker, '{name}')")


# -- the command ----------------------------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from pipelines.cli_support import local_home

    config = load_config(args.config)
    if args.aws:
        import boto3

        session = boto3.Session(region_name=config.project.region, profile_name=args.profile)
        checks = list(aws_checks(config, lambda service, region_name=None: session.client(service, region_name=region_name)))
    else:
        checks = list(local_checks(local_home(args), config))
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    print(f"{len(checks) - failed} of {len(checks)} checks passed" + (f"; fix the {failed} above" if failed else ""))
    return 1 if failed else 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    from pipelines.cli_support import add_target

    parser = add_command("doctor", cmd_doctor, "preflight: local home, packages, disk; with --aws credentials, role, "
                                               "bucket, KMS key, images, instance quotas")
    add_target(parser)
