"""Application Auto Scaling, locally: scalable targets and scaling policies of SageMaker variants.

The records are kept (``<home>/autoscaling.json``) and described back as the service does; a local
endpoint runs one serving process per variant whatever the instance counts say, so nothing scales.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.local.registry import ACCOUNT_ID, ApiError

SAGEMAKER_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def _key(p: dict[str, Any]) -> str:
    return f"{p['ServiceNamespace']}|{p['ResourceId']}|{p['ScalableDimension']}"


class LocalAutoScaling:
    """RegisterScalableTarget, PutScalingPolicy, Describe*, Deregister*, DeleteScalingPolicy."""

    def __init__(self, home: Path, region: str = "us-east-1") -> None:
        self.path = Path(home) / "autoscaling.json"
        self.region = region

    @contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {
                "targets": {}, "policies": {}}
            yield state
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)

    def register_scalable_target(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["ServiceNamespace"] == "sagemaker" and p["ScalableDimension"] != SAGEMAKER_DIMENSION:
            raise ApiError("ValidationException", f"ScalableDimension must be {SAGEMAKER_DIMENSION} for sagemaker")
        with self._state() as state:
            current = state["targets"].get(_key(p), {})
            merged = {**current, **{k: v for k, v in p.items() if k != "Tags"}}
            if merged.get("MinCapacity") is None or merged.get("MaxCapacity") is None:
                raise ApiError("ValidationException", "MinCapacity and MaxCapacity are required for a new target")
            if merged["MinCapacity"] > merged["MaxCapacity"]:
                raise ApiError("ValidationException", "MinCapacity cannot exceed MaxCapacity")
            merged.setdefault("CreationTime", datetime.now(timezone.utc).timestamp())
            merged["ScalableTargetARN"] = (f"arn:aws:application-autoscaling:{self.region}:{ACCOUNT_ID}:"
                                           f"scalable-target/{hashlib.sha1(_key(p).encode()).hexdigest()[:12]}")
            state["targets"][_key(p)] = merged
        return {"ScalableTargetARN": merged["ScalableTargetARN"]}

    def deregister_scalable_target(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._state() as state:
            if state["targets"].pop(_key(p), None) is None:
                raise ApiError("ObjectNotFoundException", f"No scalable target registered for {p['ResourceId']}")
            state["policies"] = {k: v for k, v in state["policies"].items() if _key(v) != _key(p)}
        return {}

    def describe_scalable_targets(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._state() as state:
            targets = [t for t in state["targets"].values() if t["ServiceNamespace"] == p["ServiceNamespace"]
                       and (not p.get("ResourceIds") or t["ResourceId"] in p["ResourceIds"])]
        return {"ScalableTargets": [{**t, "CreationTime": datetime.fromtimestamp(t["CreationTime"], timezone.utc)}
                                    for t in targets]}

    def put_scaling_policy(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._state() as state:
            if _key(p) not in state["targets"]:
                raise ApiError("ObjectNotFoundException", f"No scalable target registered for {p['ResourceId']}")
            arn = (f"arn:aws:autoscaling:{self.region}:{ACCOUNT_ID}:scalingPolicy:local:resource/"
                   f"{p['ResourceId']}:policyName/{p['PolicyName']}")
            state["policies"][f"{_key(p)}|{p['PolicyName']}"] = {
                **p, "PolicyARN": arn, "CreationTime": datetime.now(timezone.utc).timestamp()}
        return {"PolicyARN": arn, "Alarms": []}

    def describe_scaling_policies(self, p: dict[str, Any]) -> dict[str, Any]:
        with self._state() as state:
            policies = [v for v in state["policies"].values() if v["ServiceNamespace"] == p["ServiceNamespace"]
                        and (not p.get("ResourceId") or v["ResourceId"] == p["ResourceId"])]
        return {"ScalingPolicies": [{**v, "CreationTime": datetime.fromtimestamp(v["CreationTime"], timezone.utc)}
                                    for v in policies]}
