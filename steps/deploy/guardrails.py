"""Guardrails of an endpoint fleet: CloudWatch rollback alarms and an auto-scaling policy.

Alarms watch one fleet only: SageMaker's invocation metrics with the dimensions ``EndpointName``,
``VariantName`` and ``EndpointConfigName`` (each deploy has its own endpoint config, so its own
fleet). ``Invocation5XXErrors`` is 0 or 1 per request, so its ``Average`` is the error rate;
``ModelLatency`` is in microseconds. Auto scaling is Application Auto Scaling's target tracking on
``SageMakerVariantInvocationsPerInstance``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACE = "AWS/SageMaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
ALARM_SUFFIXES = ("-5xx-rate", "-model-latency")


class GuardrailError(ValueError):
    """Guardrail settings that cannot work; the message names the flag."""


@dataclass(frozen=True)
class AlarmSettings:
    """Thresholds of the fleet's rollback alarms (None: no such alarm)."""

    max_error_rate: float | None = None
    max_latency_ms: float | None = None
    period_seconds: int = 60
    evaluation_periods: int = 1

    def check(self) -> None:
        if self.max_error_rate is not None and not 0 <= self.max_error_rate < 1:
            raise GuardrailError(f"--alarm-max-error-rate must be within [0, 1), got {self.max_error_rate}")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise GuardrailError(f"--alarm-max-latency-ms must be > 0, got {self.max_latency_ms}")
        if self.period_seconds < 10 or (self.period_seconds < 60 and self.period_seconds not in (10, 30)):
            raise GuardrailError(f"--alarm-period-seconds must be 10, 30 or a multiple of 60, got {self.period_seconds}")
        if self.evaluation_periods < 1:
            raise GuardrailError(f"--alarm-evaluation-periods must be ≥ 1, got {self.evaluation_periods}")

    @property
    def enabled(self) -> bool:
        return self.max_error_rate is not None or self.max_latency_ms is not None


@dataclass(frozen=True)
class ScalingSettings:
    """Target-tracking auto scaling of one variant (disabled when ``max_instances`` is 0)."""

    min_instances: int = 1
    max_instances: int = 0
    invocations_per_instance: float = 100.0
    scale_in_cooldown: int = 300
    scale_out_cooldown: int = 60

    def check(self) -> None:
        if not self.enabled:
            return
        if not 1 <= self.min_instances <= self.max_instances:
            raise GuardrailError(f"auto scaling needs 1 ≤ --autoscaling-min ({self.min_instances}) ≤ --autoscaling-max "
                                 f"({self.max_instances})")
        if self.invocations_per_instance <= 0:
            raise GuardrailError(f"--invocations-per-instance must be > 0, got {self.invocations_per_instance}")

    @property
    def enabled(self) -> bool:
        return self.max_instances > 0


def fleet_dimensions(endpoint_name: str, variant: str, config_name: str) -> list[dict[str, str]]:
    return [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant},
            {"Name": "EndpointConfigName", "Value": config_name}]


def fleet_alarm_requests(endpoint_name: str, variant: str, config_name: str,
                         settings: AlarmSettings) -> list[dict[str, Any]]:
    """PutMetricAlarm requests for the fleet of ``config_name`` (names ``<config>-5xx-rate`` / ``-model-latency``)."""
    common = {"Namespace": NAMESPACE, "Dimensions": fleet_dimensions(endpoint_name, variant, config_name),
              "Period": settings.period_seconds, "EvaluationPeriods": settings.evaluation_periods,
              "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}
    requests = []
    if settings.max_error_rate is not None:
        requests.append({**common, "AlarmName": f"{config_name}{ALARM_SUFFIXES[0]}", "MetricName": "Invocation5XXErrors",
                         "Statistic": "Average", "Threshold": settings.max_error_rate,
                         "AlarmDescription": f"5XX error rate of the {config_name} fleet above "
                                             f"{settings.max_error_rate:.1%}: roll the deployment back"})
    if settings.max_latency_ms is not None:
        requests.append({**common, "AlarmName": f"{config_name}{ALARM_SUFFIXES[1]}", "MetricName": "ModelLatency",
                         "Statistic": "Average", "Threshold": settings.max_latency_ms * 1000.0,
                         "AlarmDescription": f"average model latency of the {config_name} fleet above "
                                             f"{settings.max_latency_ms:g} ms: roll the deployment back"})
    return requests


def create_fleet_alarms(cloudwatch: Any, endpoint_name: str, variant: str, config_name: str,
                        settings: AlarmSettings) -> list[str]:
    """Create (or update) the fleet's alarms; their names."""
    names = []
    for request in fleet_alarm_requests(endpoint_name, variant, config_name, settings):
        cloudwatch.put_metric_alarm(**request)
        names.append(request["AlarmName"])
    return names


def delete_fleet_alarms(cloudwatch: Any, config_name: str) -> list[str]:
    """Delete the alarms this module created for the fleet of ``config_name``; their names."""
    existing = [a["AlarmName"] for a in cloudwatch.describe_alarms(
        AlarmNames=[f"{config_name}{suffix}" for suffix in ALARM_SUFFIXES])["MetricAlarms"]]
    if existing:
        cloudwatch.delete_alarms(AlarmNames=existing)
    return existing


def scaling_resource_id(endpoint_name: str, variant: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant}"


def deregister_scaling(autoscaling: Any, endpoint_name: str, variant: str) -> bool:
    """Remove the variant's scalable target (needed before an endpoint update); whether one existed."""
    resource = scaling_resource_id(endpoint_name, variant)
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource],
                                                    ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
    if not targets:
        return False
    autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                           ScalableDimension=SCALABLE_DIMENSION)
    return True


def register_scaling(autoscaling: Any, endpoint_name: str, variant: str, settings: ScalingSettings) -> dict[str, Any]:
    """Register the variant as a scalable target with a target-tracking policy; what was set."""
    resource = scaling_resource_id(endpoint_name, variant)
    autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=resource,
                                         ScalableDimension=SCALABLE_DIMENSION, MinCapacity=settings.min_instances,
                                         MaxCapacity=settings.max_instances)
    policy = f"{endpoint_name}-invocations-per-instance"
    autoscaling.put_scaling_policy(
        PolicyName=policy, ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=SCALABLE_DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(settings.invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": settings.scale_in_cooldown, "ScaleOutCooldown": settings.scale_out_cooldown})
    return {"resource_id": resource, "policy_name": policy, "min_instances": settings.min_instances,
            "max_instances": settings.max_instances, "invocations_per_instance": settings.invocations_per_instance}
