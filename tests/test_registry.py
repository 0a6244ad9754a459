"""SQLite Model Registry: SageMaker's versioning, approval, metadata and error semantics."""
from __future__ import annotations

import multiprocessing
import re
import sqlite3
import threading
from pathlib import Path

import pytest

from pipelines.local.registry import ApiError, ModelRegistry

GROUP = "continuum-demo"
METRICS = {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                           "S3Uri": "s3://bkt/eval/evaluation.json"}}}


def package_request(group: str = GROUP, **extra: object) -> dict:
    return {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": "round 1",
        "InferenceSpecification": {
            "Containers": [{"Image": "img:1", "ModelDataUrl": "s3://bkt/model/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"],
        },
        "ModelMetrics": METRICS,
        "CustomerMetadataProperties": {"data_version": "round-1", "base_model": "tiny"},
        **extra,
    }


@pytest.fixture()
def registry(tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "registry.sqlite")
    reg.create_model_package_group(GROUP, "demo group")
    return reg


def _register_many(db_path: str, count: int) -> list[int]:
    reg = ModelRegistry(Path(db_path))
    return [int(reg.create_model_package(package_request()).rsplit("/", 1)[1]) for _ in range(count)]


def test_groups_have_arns_descriptions_and_unique_names(registry):
    group = registry.describe_model_package_group(GROUP)
    assert group["ModelPackageGroupArn"] == f"arn:aws:sagemaker:us-east-1:000000000000:model-package-group/{GROUP}"
    assert group["ModelPackageGroupDescription"] == "demo group"
    assert group["ModelPackageGroupStatus"] == "Completed"
    assert registry.describe_model_package_group(group["ModelPackageGroupArn"])["ModelPackageGroupName"] == GROUP
    with pytest.raises(ApiError, match="Model Package Group already exists") as info:
        registry.create_model_package_group(GROUP)
    assert info.value.code == "ValidationException"
    with pytest.raises(ApiError, match="model-package-group/absent does not exist"):
        registry.describe_model_package_group("absent")
    with pytest.raises(ApiError, match="regular expression pattern"):
        registry.create_model_package_group("bad_name")


def test_versions_count_per_group_and_start_pending(registry):
    registry.create_model_package_group("other")
    arns = [registry.create_model_package(package_request()) for _ in range(3)]
    other = registry.create_model_package(package_request("other"))
    assert arns == [f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{GROUP}/{v}" for v in (1, 2, 3)]
    assert other.endswith("model-package/other/1")
    described = registry.describe_model_package(arns[1])
    assert described["ModelPackageVersion"] == 2
    assert described["ModelPackageName"] == GROUP and described["ModelPackageGroupName"] == GROUP
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["ModelPackageStatus"] == "Completed"
    assert described["ModelMetrics"] == METRICS
    assert described["CustomerMetadataProperties"] == {"data_version": "round-1", "base_model": "tiny"}
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == "s3://bkt/model/model.tar.gz"
    assert described["ModelPackageDescription"] == "round 1"
    assert described["CreationTime"] <= described["LastModifiedTime"]


def test_package_needs_an_existing_group_and_a_valid_status(registry):
    with pytest.raises(ApiError, match="Model Package Group does not exist") as info:
        registry.create_model_package(package_request("nogroup"))
    assert info.value.code == "ValidationException"
    with pytest.raises(ApiError, match="enum value set"):
        registry.create_model_package(package_request(ModelApprovalStatus="Maybe"))
    with pytest.raises(ApiError, match="does not exist"):
        registry.describe_model_package(f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{GROUP}/9")


@pytest.mark.parametrize("metadata, fragment", [
    ({}, "1 to 50 keys"),
    ({"parent": ""}, "value of 'parent' '' must be 1-256"),
    ({"scores": '{"f1": 0.5}'}, "letters, digits, spaces"),
    ({"k" * 129: "v"}, "must be 1-128"),
])
def test_customer_metadata_follows_sagemaker_constraints(registry, metadata, fragment):
    with pytest.raises(ApiError, match=re.escape(fragment)):
        registry.create_model_package(package_request(CustomerMetadataProperties=metadata))
    arn = registry.create_model_package(package_request(CustomerMetadataProperties={
        "train_data_uri": "s3://bkt/p/exec-1/Prepare/output/train", "parent": "none", "data_version": "ab12" * 16}))
    with pytest.raises(ApiError, match=re.escape(fragment)):
        registry.update_model_package(arn, {"CustomerMetadataProperties": metadata})


def test_approval_updates_status_description_time_and_metadata(registry, monkeypatch):
    arn = registry.create_model_package(package_request())
    before = registry.describe_model_package(arn)
    later = before["LastModifiedTime"].timestamp() + 60
    monkeypatch.setattr(registry, "_now", lambda: later)  # the registry's clock, a minute on
    registry.update_model_package(arn, {
        "ModelApprovalStatus": "Approved", "ApprovalDescription": "looks good",
        "CustomerMetadataProperties": {"approved_by": "qa"},
        "CustomerMetadataPropertiesToRemove": ["base_model"],
    })
    after = registry.describe_model_package(arn)
    assert after["ModelApprovalStatus"] == "Approved"
    assert after["ApprovalDescription"] == "looks good"
    assert after["LastModifiedTime"].timestamp() == pytest.approx(later, abs=1e-3)
    assert after["CreationTime"] == before["CreationTime"]
    assert after["CustomerMetadataProperties"] == {"data_version": "round-1", "approved_by": "qa"}
    registry.update_model_package(arn, {"ModelApprovalStatus": "Rejected"})
    rejected = registry.describe_model_package(arn)
    assert rejected["ModelApprovalStatus"] == "Rejected" and rejected["ApprovalDescription"] == "looks good"


def test_listing_filters_by_group_and_status_oldest_first(registry):
    registry.create_model_package_group("other")
    arns = [registry.create_model_package(package_request()) for _ in range(3)]
    registry.create_model_package(package_request("other", ModelApprovalStatus="Approved"))
    registry.update_model_package(arns[0], {"ModelApprovalStatus": "Approved"})
    registry.update_model_package(arns[2], {"ModelApprovalStatus": "Approved"})
    approved = registry.list_model_packages(GROUP, "Approved")
    assert [p["ModelPackageVersion"] for p in approved] == [1, 3]
    assert len(registry.list_model_packages(GROUP)) == 3
    assert len(registry.list_model_packages()) == 4


def test_concurrent_threads_get_distinct_versions(registry):
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            arn = registry.create_model_package(package_request())
            with lock:
                results.append(arn)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(a.rsplit("/", 1)[1]) for a in results) == list(range(1, 21))


def test_several_processes_share_the_database_in_wal_mode(registry):
    with sqlite3.connect(registry.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        batches = pool.starmap(_register_many, [(str(registry.db_path), 4)] * 3)
    assert sorted(v for batch in batches for v in batch) == list(range(1, 13))


def test_models_and_endpoint_configs_follow_sagemaker_rules(registry):
    arn = registry.create_model({"ModelName": "Demo-Model", "PrimaryContainer": {"Image": "img", "ModelDataUrl": "s3://b/m"},
                                 "ExecutionRoleArn": "arn:aws:iam::000000000000:role/r"})
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:model/demo-model"
    assert registry.describe_model("demo-model")["PrimaryContainer"]["Image"] == "img"
    with pytest.raises(ApiError, match='Cannot create already existing model'):
        registry.create_model({"ModelName": "demo-model", "PrimaryContainer": {"Image": "x"}})
    with pytest.raises(ApiError, match='Could not find model "arn:aws:sagemaker:us-east-1:000000000000:model/ghost"'):
        registry.create_endpoint_config({"EndpointConfigName": "cfg", "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": "ghost"}]})
    config_arn = registry.create_endpoint_config({
        "EndpointConfigName": "cfg", "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "Demo-Model"}],
        "DataCaptureConfig": {"EnableCapture": True, "InitialSamplingPercentage": 100,
                              "DestinationS3Uri": "s3://bkt/capture", "CaptureOptions": [{"CaptureMode": "Input"}]}})
    assert config_arn.endswith(":endpoint-config/cfg")
    assert registry.describe_endpoint_config("cfg")["DataCaptureConfig"]["DestinationS3Uri"] == "s3://bkt/capture"
    registry.delete_endpoint_config("cfg")
    registry.delete_model("Demo-Model")
    with pytest.raises(ApiError, match="Could not find endpoint configuration"):
        registry.describe_endpoint_config("cfg")
    with pytest.raises(ApiError, match="Could not find model"):
        registry.delete_model("Demo-Model")
