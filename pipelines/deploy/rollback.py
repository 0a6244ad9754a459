"""One-click rollback: every stage back to the previous Approved version, at once, then the registry follows.

Each stage's endpoint gets a standard (all-at-once) update to the target version by the same
``steps/deploy.py`` the deploy pipeline runs — one process per stage, side by side — against the
local API stand-in or AWS. Only when every stage serves the target is the version they left marked
Rejected, so the next deploy pipeline run (latest Approved) does not bring it back.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import s3_layout
from pipelines.backend import Backend
from pipelines.config import Config
from pipelines.deploy.stages import Stage, config_version, describe_endpoint
from pipelines.paths import STEPS_DIR
from pipelines.registry_ops import ModelVersion, list_versions, set_approval


class RollbackError(RuntimeError):
    """A rollback that cannot start or did not finish; the message says which stage and why."""


@dataclass
class RollbackResult:
    from_version: int
    to_version: int
    seconds: float
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


def serving_version(sagemaker: Any, stages: list[Stage]) -> int | None:
    """The version the last stage (production when there is one) serves, from its endpoint config's name."""
    for stage in reversed(stages):
        endpoint = describe_endpoint(sagemaker, stage.endpoint_name)
        version = config_version(endpoint.get("EndpointConfigName")) if endpoint else None
        if version is not None:
            return version
    return None


def plan(sagemaker: Any, config: Config, stages: list[Stage], to_version: int | None) -> tuple[int, ModelVersion]:
    """(the version served now, the Approved version to return to)."""
    group = config.model.model_package_group
    approved = list_versions(sagemaker, group, "Approved")
    current = serving_version(sagemaker, stages)
    if current is None:
        if not approved:
            raise RollbackError(f"nothing to roll back: no endpoint of {group} is deployed and no version is Approved")
        current = approved[0].version
    if to_version is not None:
        target = next((v for v in approved if v.version == to_version), None)
        if target is None:
            raise RollbackError(f"version {to_version} is not Approved in {group} (Approved: "
                                f"{[v.version for v in approved]})")
    else:
        target = next((v for v in approved if v.version < current), None)
        if target is None:
            raise RollbackError(f"no Approved version older than the serving version {current} in {group}")
    if target.version == current:
        raise RollbackError(f"version {current} is already serving")
    return current, target


def deploy_arguments(config: Config, stage: Stage, package_arn: str, output_dir: Path) -> list[str]:
    """steps/deploy.py arguments for a standard update of ``stage`` to ``package_arn``."""
    arguments = ["--model-package-arn", package_arn, "--endpoint-name", stage.endpoint_name,
                 "--instance-type", stage.instance_type, "--instance-count", str(stage.instance_count),
                 "--role-arn", config.project.role_arn, "--capture-percent", str(stage.capture_percent),
                 "--capture-s3-uri", s3_layout.data_capture_uri(config),
                 "--capture-kms-key-id", config.deploy.capture_kms_key_id,
                 "--poll-seconds", "0.5", "--output-dir", str(output_dir)]
    production = config.deploy.production
    if stage.name == "production" and production is not None and production.autoscaling.max_instances:
        scaling = production.autoscaling
        arguments += ["--autoscaling-min", str(scaling.min_instances), "--autoscaling-max", str(scaling.max_instances),
                      "--invocations-per-instance", str(scaling.invocations_per_instance)]
    return arguments


def rollback(backend: Backend, config: Config, stages: list[Stage], to_version: int | None = None,
             reason: str = "", profile: str | None = None, echo: Callable[[str], None] = print) -> RollbackResult:
    """Move every stage to the previous (or the given) Approved version; reject the version they left."""
    started = time.perf_counter()
    sagemaker = backend.client("sagemaker")
    current, target = plan(sagemaker, config, stages, to_version)
    echo(f"rolling back {', '.join(s.name for s in stages)} from version {current} to version {target.version}")
    result = RollbackResult(current, target.version, 0.0)
    with tempfile.TemporaryDirectory(prefix="continuum-rollback-") as tmp, \
            backend.step_environment(config, profile) as env:
        running = {stage.name: subprocess.Popen(
            [sys.executable, "deploy.py", *deploy_arguments(config, stage, target.arn, Path(tmp) / stage.name)],
            cwd=STEPS_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for stage in stages}
        failures = []
        for name, process in running.items():
            output, _ = process.communicate()
            record_path = Path(tmp) / name / "deployment.json"
            record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.exists() else {}
            result.stages[name] = {"status": record.get("status", "Failed"), "exit_code": process.returncode,
                                   "endpoint_config_name": record.get("endpoint_config_name")}
            if process.returncode != 0:
                failures.append(f"{name}: {output.strip().splitlines()[-1] if output.strip() else 'no output'}")
    if failures:
        raise RollbackError("rollback failed on " + "; ".join(failures) + f" (version {current} not rejected)")
    current_version = next((v for v in list_versions(sagemaker, config.model.model_package_group)
                            if v.version == current), None)
    if current_version is not None and current_version.approval_status == "Approved":
        set_approval(sagemaker, current_version.arn, "Rejected",
                     reason or f"rolled back to version {target.version} with continuum rollback")
    result.seconds = time.perf_counter() - started
    return result
