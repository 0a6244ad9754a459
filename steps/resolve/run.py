"""The resolve step (steps/resolve.py explains it): the latest Approved package of a group, else the fallback."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from common.contract import build_parser
from resolve.contract import ARGUMENTS

DESCRIPTION = "Resolve the model to start from: the latest Approved package of a Model Registry group."
MISSING_GROUP_CODES = ("ValidationException", "ResourceNotFound")
NO_PACKAGE = "none"  # not "": CustomerMetadataProperties values (lineage) need 1+ characters
TRAIN_DATA_KEY = "train_data_uri"
INVENTORY_KEY = "inventory_uri"


class ResolveError(RuntimeError):
    """The step cannot produce a model to start from."""


def latest_approved_package(client: Any, group: str) -> dict[str, Any] | None:
    """DescribeModelPackage of the newest Approved version in ``group``; None if none (or no group)."""
    from botocore.exceptions import ClientError

    try:
        listing = client.list_model_packages(
            ModelPackageGroupName=group, ModelApprovalStatus="Approved",
            SortBy="CreationTime", SortOrder="Descending", MaxResults=1,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] in MISSING_GROUP_CODES:
            print(f"resolve: model package group {group!r} not usable ({exc.response['Error']['Message']})",
                  file=sys.stderr)
            return None
        raise
    summaries = listing.get("ModelPackageSummaryList", [])
    if not summaries:
        return None
    return client.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])


def model_data_url(package: dict[str, Any]) -> str:
    """The package's model: its artifact URI (ModelDataUrl, or ModelDataSource's S3Uri) or, for a version with no
    SageMaker artifact (a Bedrock custom model, registered with SourceUri only), its SourceUri."""
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    for container in containers:
        url = container.get("ModelDataUrl") or container.get("ModelDataSource", {}).get("S3DataSource", {}).get("S3Uri")
        if url:
            return url
    if not containers and package.get("SourceUri"):
        return package["SourceUri"]
    raise ResolveError(f"model package {package['ModelPackageArn']} has no ModelDataUrl in its InferenceSpecification "
                       f"and no SourceUri")


def resolve(client: Any, group: str, fallback_uri: str | None, require_approved: bool,
            fallback_replay_uri: str | None = None) -> dict[str, Any]:
    """The ``resolved.json`` document for ``group``."""
    package = latest_approved_package(client, group)
    if package is not None:
        metadata = package.get("CustomerMetadataProperties", {})
        replay, inventory = (metadata.get(key) or fallback_replay_uri for key in (TRAIN_DATA_KEY, INVENTORY_KEY))
        for key, value in ((TRAIN_DATA_KEY, replay), (INVENTORY_KEY, inventory)):
            if not value:
                raise ResolveError(f"model package {package['ModelPackageArn']} has no {key!r} customer "
                                   "metadata and no --fallback-replay-uri was given")
        return {"model_package_arn": package["ModelPackageArn"], "version": int(package["ModelPackageVersion"]),
                "model_data_url": model_data_url(package), "replay_data_uri": replay, "inventory_uri": inventory,
                "source": "registry"}
    if require_approved:
        raise ResolveError(
            f"no Approved model package in group {group!r} and --require-approved is set: approve a version "
            "(e.g. `continuum models approve`) or drop --require-approved to start from the fallback model"
        )
    missing = [flag for flag, value in (("--fallback-model-uri", fallback_uri),
                                        ("--fallback-replay-uri", fallback_replay_uri)) if not value]
    if missing:
        raise ResolveError(f"no Approved model package in group {group!r} and no {' / '.join(missing)} given")
    return {"model_package_arn": NO_PACKAGE, "version": 0, "model_data_url": fallback_uri,
            "replay_data_uri": fallback_replay_uri, "inventory_uri": fallback_replay_uri, "source": "fallback"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser(ARGUMENTS, DESCRIPTION, separator="-").parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import boto3

    try:
        resolved = resolve(boto3.client("sagemaker"), args.model_package_group, args.fallback_model_uri,
                           args.require_approved, args.fallback_replay_uri)
    except ResolveError as exc:
        print(f"resolve: error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "resolved.json").write_text(json.dumps(resolved, indent=2) + "\n", encoding="utf-8")
    print(f"resolve: {resolved['source']} → {resolved['model_data_url']}"
          + (f" (version {resolved['version']}, {resolved['model_package_arn']})" if resolved["version"] else ""))
    return 0

