"""Model Registry operations the CLI offers, on the SageMaker API (AWS's or the local stand-in)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError


@dataclass(frozen=True)
class ModelVersion:
    arn: str
    version: int
    approval_status: str
    created: str
    model_data_url: str
    metadata: dict[str, str]
    metrics_uri: str | None
    description: str

    def row(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.approval_status,
            "created": self.created,
            "data_version": self.metadata.get("data_version", ""),
            "arn": self.arn,
        }


def _version(package: dict[str, Any]) -> ModelVersion:
    containers = package.get("InferenceSpecification", {}).get("Containers", [{}])
    statistics = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
    return ModelVersion(
        arn=package["ModelPackageArn"],
        version=int(package.get("ModelPackageVersion", 0)),
        approval_status=package.get("ModelApprovalStatus", ""),
        created=str(package.get("CreationTime", "")),
        model_data_url=containers[0].get("ModelDataUrl", "") if containers else "",
        metadata=dict(package.get("CustomerMetadataProperties", {})),
        metrics_uri=statistics.get("S3Uri"),
        description=package.get("ModelPackageDescription", ""),
    )


def list_versions(sagemaker: Any, group: str, status: str | None = None,
                  cache: dict[tuple[str, str], ModelVersion] | None = None) -> list[ModelVersion]:
    """Every version of the group, newest first (empty when the group does not exist yet). With ``cache`` a version
    is described once per approval status (a dashboard lists the same registry again and again)."""
    request: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
    if status:
        request["ModelApprovalStatus"] = status
    versions: list[ModelVersion] = []
    try:
        for page in sagemaker.get_paginator("list_model_packages").paginate(**request):
            for summary in page["ModelPackageSummaryList"]:
                key = (summary["ModelPackageArn"], summary.get("ModelApprovalStatus", ""))
                if cache is None or key not in cache:
                    described = describe_version(sagemaker, summary["ModelPackageArn"])
                    if cache is None:
                        versions.append(described)
                        continue
                    cache[key] = described
                versions.append(cache[key])
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ResourceNotFound", "ValidationException"):
            return []
        raise
    return sorted(versions, key=lambda item: item.version, reverse=True)


def describe_version(sagemaker: Any, arn: str) -> ModelVersion:
    return _version(sagemaker.describe_model_package(ModelPackageName=arn))


def find_version(sagemaker: Any, group: str, version: int | None) -> ModelVersion:
    """A version by number, or the newest one when `version` is None."""
    versions = list_versions(sagemaker, group)
    if not versions:
        raise LookupError(f"model package group {group!r} has no versions yet")
    if version is None:
        return versions[0]
    for item in versions:
        if item.version == version:
            return item
    raise LookupError(f"model package group {group!r} has no version {version} (has {[v.version for v in versions]})")


def set_approval(sagemaker: Any, arn: str, status: str, description: str = "") -> None:
    if status not in ("Approved", "Rejected", "PendingManualApproval"):
        raise ValueError(f"approval status must be Approved, Rejected or PendingManualApproval, not {status!r}")
    request = {"ModelPackageArn": arn, "ModelApprovalStatus": status}
    if description:
        request["ApprovalDescription"] = description
    sagemaker.update_model_package(**request)


def read_metrics(s3: Any, metrics_uri: str | None) -> dict[str, Any]:
    """The evaluation.json a version was registered with ({} when it has none)."""
    if not metrics_uri:
        return {}
    bucket, _, key = metrics_uri.removeprefix("s3://").partition("/")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
