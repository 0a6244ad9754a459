"""Blue/green traffic shifting for local endpoints, read from SageMaker's ``DeploymentConfig``.

``BlueGreenUpdatePolicy.TrafficRoutingConfiguration`` becomes the new fleet's cumulative traffic
shares: ``ALL_AT_ONCE`` → [1.0]; ``CANARY`` (``CanarySize``) → [canary, 1.0]; ``LINEAR``
(``LinearStepSize``) → [step, 2·step, …, 1.0]. After each shift the deployment bakes for
``WaitIntervalInSeconds`` while the ``AutoRollbackConfiguration`` alarms are polled; one in ALARM
rolls the whole deployment back. ``TerminationWaitInSeconds`` keeps the old fleet up (without
traffic) after the new one took everything.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ROUTING_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")


class DeploymentRolledBack(RuntimeError):
    """A blue/green deployment was rolled back because rollback alarms went into ALARM."""

    def __init__(self, config_name: str, alarms: list[str], share: float) -> None:
        super().__init__(f"deployment of {config_name} rolled back: alarm(s) {', '.join(alarms)} went into ALARM "
                         f"while the new fleet took {share:.0%} of the traffic")
        self.alarms = alarms
        self.share = share


def _share(size: dict[str, Any] | None, instance_count: int, where: str) -> float:
    """A CanarySize / LinearStepSize as a traffic share in (0, 1]."""
    if not size or "Value" not in size:
        raise ValueError(f"{where} is required with its Type and Value")
    value, kind = float(size["Value"]), size.get("Type", "CAPACITY_PERCENT")
    if kind == "CAPACITY_PERCENT":
        share = value / 100
    elif kind == "INSTANCE_COUNT":
        share = value / max(instance_count, 1)
    else:
        raise ValueError(f"{where}.Type must be CAPACITY_PERCENT or INSTANCE_COUNT, got {kind!r}")
    if not 0 < share <= 1:
        raise ValueError(f"{where} must select between 0% and 100% of the fleet, got {value} ({kind})")
    return share


def traffic_steps(routing: dict[str, Any], instance_count: int = 1) -> list[float]:
    """The new fleet's cumulative traffic shares for one TrafficRoutingConfiguration."""
    kind = routing.get("Type")
    if kind == "ALL_AT_ONCE":
        return [1.0]
    if kind == "CANARY":
        canary = _share(routing.get("CanarySize"), instance_count, "TrafficRoutingConfiguration.CanarySize")
        return [canary, 1.0] if canary < 1 else [1.0]
    if kind == "LINEAR":
        step = _share(routing.get("LinearStepSize"), instance_count, "TrafficRoutingConfiguration.LinearStepSize")
        count = math.ceil(round(1 / step, 9))
        return [min(1.0, step * (i + 1)) for i in range(count)]
    raise ValueError(f"TrafficRoutingConfiguration.Type must be one of {ROUTING_TYPES}, got {kind!r}")


@dataclass(frozen=True)
class TrafficShift:
    """How a local blue/green update moves traffic and what rolls it back."""

    steps: list[float]
    wait_seconds: float
    termination_wait_seconds: float = 0.0
    rollback_alarms: list[str] = field(default_factory=list)
    tripped_alarms: Callable[[list[str]], list[str]] = lambda names: []
    poll_seconds: float = 0.2

    @classmethod
    def from_deployment_config(cls, config: dict[str, Any] | None, instance_count: int,
                               tripped_alarms: Callable[[list[str]], list[str]]) -> TrafficShift | None:
        """The shift a DeploymentConfig asks for; None when it has no BlueGreenUpdatePolicy."""
        policy = (config or {}).get("BlueGreenUpdatePolicy")
        if not policy:
            return None
        routing = policy.get("TrafficRoutingConfiguration") or {}
        alarms = [a["AlarmName"] for a in (config or {}).get("AutoRollbackConfiguration", {}).get("Alarms", [])]
        return cls(steps=traffic_steps(routing, instance_count),
                   wait_seconds=float(routing.get("WaitIntervalInSeconds", 0)),
                   termination_wait_seconds=float(policy.get("TerminationWaitInSeconds", 0)),
                   rollback_alarms=alarms, tripped_alarms=tripped_alarms)

    def bake(self, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> list[str]:
        """Watch the rollback alarms for one wait interval; the names of those in ALARM ([] = healthy)."""
        deadline = clock() + self.wait_seconds
        while True:
            tripped = self.tripped_alarms(self.rollback_alarms) if self.rollback_alarms else []
            if tripped or clock() >= deadline:
                return tripped
            sleep(min(self.poll_seconds, max(deadline - clock(), 0.0)))
