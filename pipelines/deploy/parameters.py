"""Pipeline parameters of the deploy pipeline: every instance type, guardrail and threshold can be overridden."""
from __future__ import annotations

from dataclasses import dataclass, fields

from sagemaker.workflow.parameters import (Parameter, ParameterBoolean, ParameterFloat, ParameterInteger,
                                           ParameterString)

from pipelines import s3_layout
from pipelines.config import Config, ProductionConfig


@dataclass(frozen=True)
class DeployParameters:
    endpoint_name: ParameterString
    instance_type: ParameterString
    instance_count: ParameterInteger
    capture_percent: ParameterInteger
    capture_s3_uri: ParameterString
    capture_kms_key_id: ParameterString
    benchmark_gate_threshold: ParameterFloat

    def as_list(self) -> list[Parameter]:
        return [getattr(self, field.name) for field in fields(self)]


@dataclass(frozen=True)
class ProductionParameters:
    promote: ParameterBoolean
    endpoint_name: ParameterString
    instance_type: ParameterString
    instance_count: ParameterInteger
    capture_percent: ParameterInteger
    traffic_routing: ParameterString
    canary_percent: ParameterInteger
    linear_step_percent: ParameterInteger
    bake_seconds: ParameterInteger
    termination_wait_seconds: ParameterInteger
    alarm_max_error_rate: ParameterFloat
    alarm_max_latency_ms: ParameterFloat
    alarm_period_seconds: ParameterInteger
    alarm_evaluation_periods: ParameterInteger
    autoscaling_min: ParameterInteger
    autoscaling_max: ParameterInteger
    invocations_per_instance: ParameterFloat

    def as_list(self) -> list[Parameter]:
        return [getattr(self, field.name) for field in fields(self)]


def deploy_parameters(config: Config) -> DeployParameters:
    deploy = config.deploy
    threshold = deploy.benchmark_gate_threshold
    return DeployParameters(
        endpoint_name=ParameterString("EndpointName", default_value=deploy.endpoint_name),
        instance_type=ParameterString("EndpointInstanceType", default_value=deploy.instance_type),
        instance_count=ParameterInteger("EndpointInstanceCount", default_value=deploy.instance_count),
        capture_percent=ParameterInteger("DataCapturePercent", default_value=deploy.capture_percent),
        capture_s3_uri=ParameterString("DataCaptureS3Uri", default_value=s3_layout.data_capture_uri(config)),
        capture_kms_key_id=ParameterString("DataCaptureKmsKeyId", default_value=deploy.capture_kms_key_id),
        benchmark_gate_threshold=ParameterFloat(
            "BenchmarkGateThreshold", default_value=config.evaluation.gate.threshold if threshold is None else threshold),
    )


def production_parameters(production: ProductionConfig) -> ProductionParameters:
    alarms, scaling = production.alarms, production.autoscaling
    return ProductionParameters(
        promote=ParameterBoolean("PromoteToProduction", default_value=production.enabled),
        endpoint_name=ParameterString("ProductionEndpointName", default_value=production.endpoint_name),
        instance_type=ParameterString("ProductionInstanceType", default_value=production.instance_type),
        instance_count=ParameterInteger("ProductionInstanceCount", default_value=production.instance_count),
        capture_percent=ParameterInteger("ProductionDataCapturePercent", default_value=production.capture_percent),
        traffic_routing=ParameterString("TrafficRouting", default_value=production.traffic_routing,
                                        enum_values=["ALL_AT_ONCE", "CANARY", "LINEAR"]),
        canary_percent=ParameterInteger("CanaryPercent", default_value=production.canary_percent),
        linear_step_percent=ParameterInteger("LinearStepPercent", default_value=production.linear_step_percent),
        bake_seconds=ParameterInteger("BakeSeconds", default_value=production.bake_seconds),
        termination_wait_seconds=ParameterInteger("TerminationWaitSeconds",
                                                  default_value=production.termination_wait_seconds),
        alarm_max_error_rate=ParameterFloat("AlarmMaxErrorRate", default_value=alarms.max_error_rate),
        alarm_max_latency_ms=ParameterFloat("AlarmMaxLatencyMs", default_value=alarms.max_latency_ms),
        alarm_period_seconds=ParameterInteger("AlarmPeriodSeconds", default_value=alarms.period_seconds),
        alarm_evaluation_periods=ParameterInteger("AlarmEvaluationPeriods", default_value=alarms.evaluation_periods),
        autoscaling_min=ParameterInteger("AutoScalingMinInstances", default_value=scaling.min_instances),
        autoscaling_max=ParameterInteger("AutoScalingMaxInstances", default_value=scaling.max_instances),
        invocations_per_instance=ParameterFloat("InvocationsPerInstance",
                                                default_value=scaling.invocations_per_instance),
    )
