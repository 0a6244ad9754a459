"""Assemble the deploy pipeline: latest Approved version → staging (data capture) → smoke test and benchmark
suites against it → monitoring baseline → production, blue/green with alarm auto-rollback and auto scaling.

The SDK's EndpointConfigStep/EndpointStep cannot carry DataCaptureConfig or DeploymentConfig (see
FACTS.md), so both endpoints are deployed by processing steps running `steps/deploy.py` with boto3.
"""
from __future__ import annotations

from typing import Any

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals
from sagemaker.workflow.functions import JsonGet
from sagemaker.workflow.parameters import ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep

from pipelines import s3_layout
from pipelines.common_steps import resolve_model_step
from pipelines.config import Config
from pipelines.deploy.parameters import DeployParameters, ProductionParameters, deploy_parameters, production_parameters
from pipelines.paths import STEPS_DIR
from pipelines.processors import step_processor
from pipelines.step_contracts import config_argv, step_contract
from pipelines.step_policies import retried_job

DEPLOYMENT_DIR = "/opt/ml/processing/output/deployment"


def _deploy_step(config: Config, session: PipelineSession, name: str, arguments: dict[str, Any],
                 depends_on: list[ProcessingStep]) -> ProcessingStep:
    """deploy.py with `arguments` (argument name → value), flags and order from steps/deploy/contract.py."""
    processor = step_processor(config, session, name.lower(), config.processing.instance_type)
    step_args = processor.run(
        code="deploy.py", source_dir=str(STEPS_DIR),
        outputs=[ProcessingOutput(output_name="deployment", source=DEPLOYMENT_DIR)],
        arguments=config_argv("deploy", config, {**arguments, "role_arn": config.project.role_arn,
                                                 "output_dir": DEPLOYMENT_DIR}))
    return ProcessingStep(name=name, step_args=step_args, depends_on=depends_on or None, **retried_job(config, rerunnable=False))


def _endpoint_arguments(resolve: ProcessingStep, resolved: PropertyFile, endpoint_name: ParameterString,
                        instance_type: ParameterString, instance_count: ParameterInteger,
                        capture_percent: ParameterInteger, params: DeployParameters) -> dict[str, Any]:
    """What deploy.py needs for any endpoint: the resolved package, the fleet and data capture."""
    return {"model_package_arn": JsonGet(step_name=resolve.name, property_file=resolved, json_path="model_package_arn"),
            "endpoint_name": endpoint_name, "instance_type": instance_type,
            "instance_count": instance_count.to_string(), "capture_percent": capture_percent.to_string(),
            "capture_s3_uri": params.capture_s3_uri, "capture_kms_key_id": params.capture_kms_key_id}


def deploy_endpoint_step(config: Config, session: PipelineSession, params: DeployParameters, resolve: ProcessingStep,
                         resolved: PropertyFile, check: ProcessingStep) -> ProcessingStep:
    """Staging: create or update (standard update) with data capture, once the suites passed their check."""
    return _deploy_step(config, session, "DeployEndpoint", _endpoint_arguments(
        resolve, resolved, params.endpoint_name, params.instance_type, params.instance_count, params.capture_percent,
        params), [check])


BENCHMARKS_INPUT = "/opt/ml/processing/input/benchmarks"
TRAIN_INPUT = "/opt/ml/processing/input/train"


def _smoke_step(config: Config, session: PipelineSession, name: str, arguments: dict,
                depends_on: list[ProcessingStep], extra_inputs: list[ProcessingInput] | None = None) -> ProcessingStep:
    """smoke_test.py over the staged suites (the training gate's list) with the gate metric; `arguments`
    (argument name → value) with the config's, flags and order from steps/smoke_test/contract.py."""
    output_dir = step_contract("smoke_test").OUTPUT_DIR
    processor = step_processor(config, session, "smoke-test", config.processing.instance_type)
    step_args = processor.run(
        code="smoke_test.py",
        source_dir=str(STEPS_DIR),
        inputs=[ProcessingInput(input_name="benchmarks", source=s3_layout.benchmarks_uri(config), destination=BENCHMARKS_INPUT),
                *(extra_inputs or [])],
        outputs=[ProcessingOutput(output_name="smoke", source=output_dir)],
        arguments=config_argv("smoke_test", config, {**arguments, "output_dir": output_dir,
                                                     "benchmarks_dir": BENCHMARKS_INPUT}),
    )
    return ProcessingStep(name=name, step_args=step_args, depends_on=depends_on or None, **retried_job(config))


def check_suites_step(config: Config, session: PipelineSession, params: DeployParameters) -> ProcessingStep:
    """Before any endpoint changes: the suites load and one of them scores the gate metric live."""
    return _smoke_step(config, session, "CheckSmokeSuites", {"endpoint_name": params.endpoint_name, "check_only": True},
                       [])


def smoke_test_step(config: Config, session: PipelineSession, params: DeployParameters, resolve: ProcessingStep,
                    resolved: PropertyFile, deploy: ProcessingStep) -> ProcessingStep:
    """Smoke prompts, then the benchmark suites through the live staging endpoint, gated; cases the deployed
    version's train split answers differently are scored against the data's answer."""
    train = ProcessingInput(input_name="train", destination=TRAIN_INPUT,
                            source=JsonGet(step_name=resolve.name, property_file=resolved, json_path="replay_data_uri"))
    return _smoke_step(config, session, "SmokeTest", {
        "endpoint_name": params.endpoint_name, "gate_threshold": params.benchmark_gate_threshold.to_string(),
        "data_dir": TRAIN_INPUT}, [deploy], [train])


def monitoring_baseline_step(config: Config, session: PipelineSession, resolve: ProcessingStep,
                             resolved: PropertyFile, smoke: ProcessingStep) -> ProcessingStep:
    """Model Monitor's baselining job, ours: statistics.json + constraints.json of the deployed version's
    training data, where the monitor pipeline reads them."""
    processor = step_processor(config, session, "monitoring-baseline", config.processing.instance_type)
    step_args = processor.run(
        code="monitor.py",
        source_dir=str(STEPS_DIR),
        inputs=[ProcessingInput(input_name="train",
                                source=JsonGet(step_name=resolve.name, property_file=resolved,
                                               json_path="replay_data_uri"),
                                destination="/opt/ml/processing/input/train")],
        outputs=[ProcessingOutput(output_name="baseline", source="/opt/ml/processing/output/baseline",
                                  destination=s3_layout.monitoring_baseline_uri(config))],
        arguments=["baseline", *config_argv("monitor:baseline", config, {
            "train_dir": "/opt/ml/processing/input/train", "output_dir": "/opt/ml/processing/output/baseline",
            "threshold": [f"{name}={value}" for name, value in sorted(config.deploy.monitoring.thresholds.items())]})],
    )
    return ProcessingStep(name="MonitoringBaseline", step_args=step_args, depends_on=[smoke])


def production_steps(config: Config, session: PipelineSession, deploy_params: DeployParameters,
                     params: ProductionParameters, resolve: ProcessingStep, resolved: PropertyFile,
                     smoke: ProcessingStep) -> ConditionStep:
    """Blue/green update of production (alarms on the new fleet, auto scaling), if PromoteToProduction."""
    production = _deploy_step(config, session, "DeployProduction", {
        **_endpoint_arguments(resolve, resolved, params.endpoint_name, params.instance_type, params.instance_count,
                              params.capture_percent, deploy_params),
        "traffic_routing": params.traffic_routing,
        "canary_percent": params.canary_percent.to_string(),
        "linear_step_percent": params.linear_step_percent.to_string(),
        "wait_interval_seconds": params.bake_seconds.to_string(),
        "termination_wait_seconds": params.termination_wait_seconds.to_string(),
        "alarm_max_error_rate": params.alarm_max_error_rate.to_string(),
        "alarm_max_latency_ms": params.alarm_max_latency_ms.to_string(),
        "alarm_period_seconds": params.alarm_period_seconds.to_string(),
        "alarm_evaluation_periods": params.alarm_evaluation_periods.to_string(),
        "autoscaling_min": params.autoscaling_min.to_string(),
        "autoscaling_max": params.autoscaling_max.to_string(),
        "invocations_per_instance": params.invocations_per_instance.to_string(),
    }, [])
    return ConditionStep(name="CheckPromoteToProduction", conditions=[ConditionEquals(left=params.promote, right=True)],
                         if_steps=[production], else_steps=[], depends_on=[smoke])


def deploy_pipeline(config: Config, session: PipelineSession) -> Pipeline:
    params = deploy_parameters(config)
    resolve, resolved = resolve_model_step(
        config, session, "ResolveApprovedModel", fallback_model_uri="", require_approved=True
    )
    check = check_suites_step(config, session, params)
    deploy = deploy_endpoint_step(config, session, params, resolve, resolved, check)
    smoke = smoke_test_step(config, session, params, resolve, resolved, deploy)
    baseline = monitoring_baseline_step(config, session, resolve, resolved, smoke)
    steps: list = [resolve, check, deploy, smoke, baseline]
    parameters = params.as_list()
    if config.deploy.production is not None:
        production = production_parameters(config.deploy.production)
        steps.append(production_steps(config, session, params, production, resolve, resolved, smoke))
        parameters += production.as_list()
    return Pipeline(name=config.deploy_pipeline_name, parameters=parameters, steps=steps, sagemaker_session=session)
