"""Rollback planning (which version to return to) and the deploy arguments each stage gets."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.backend import local_backend
from pipelines.config import load_config
from pipelines.deploy.rollback import RollbackError, deploy_arguments, plan
from pipelines.deploy.stages import config_version, select_stages, stages

CONFIG = load_config()


def _versions(tmp_path: Path, statuses: list[str]):
    backend = local_backend(CONFIG, tmp_path)
    sagemaker = backend.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=CONFIG.model.model_package_group)
    for index, status in enumerate(statuses, start=1):
        sagemaker.create_model_package(
            ModelPackageGroupName=CONFIG.model.model_package_group, ModelApprovalStatus=status,
            InferenceSpecification={"Containers": [{"Image": "img", "ModelDataUrl": f"s3://b/m{index}.tar.gz"}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]})
    return sagemaker


def test_plan_returns_to_the_newest_older_approved_version(tmp_path: Path) -> None:
    sagemaker = _versions(tmp_path, ["Approved", "Rejected", "Approved", "Approved"])
    current, target = plan(sagemaker, CONFIG, stages(CONFIG), None)  # nothing deployed: the newest Approved serves
    assert (current, target.version) == (4, 3)
    assert plan(sagemaker, CONFIG, stages(CONFIG), 1)[1].version == 1
    with pytest.raises(RollbackError, match=r"version 2 is not Approved .*Approved: \[4, 3, 1\]"):
        plan(sagemaker, CONFIG, stages(CONFIG), 2)
    with pytest.raises(RollbackError, match="version 4 is already serving"):
        plan(sagemaker, CONFIG, stages(CONFIG), 4)


def test_plan_needs_an_older_approved_version(tmp_path: Path) -> None:
    sagemaker = _versions(tmp_path, ["Rejected", "Approved"])
    with pytest.raises(RollbackError, match="no Approved version older than the serving version 2"):
        plan(sagemaker, CONFIG, stages(CONFIG), None)


def test_each_stage_is_updated_with_its_own_settings(tmp_path: Path) -> None:
    staging, production = select_stages(CONFIG, None)
    assert [s.name for s in select_stages(CONFIG, ["production"])] == ["production"]
    with pytest.raises(ValueError, match=r"unknown stage\(s\) \['canary'\]"):
        select_stages(CONFIG, ["canary"])
    args = deploy_arguments(CONFIG, production, "arn:pkg/1", tmp_path)
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--endpoint-name"] == CONFIG.deploy.production.endpoint_name
    assert pairs["--autoscaling-max"] == str(CONFIG.deploy.production.autoscaling.max_instances)
    assert "--traffic-routing" not in args  # a rollback is one standard update, no baking
    assert "--autoscaling-max" not in deploy_arguments(CONFIG, staging, "arn:pkg/1", tmp_path)
    assert config_version("continuum-demo-prod-v12-20261123021409808") == 12
    assert config_version("hand-made-config") is None
