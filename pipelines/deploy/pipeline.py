"""Assemble the deploy pipeline: latest Approved version → endpoint with data capture → smoke test.

The SDK's EndpointConfigStep/EndpointStep cannot carry DataCaptureConfig (see FACTS.md), so the
endpoint is created by a processing step running `steps/deploy.py` with boto3.
"""
from __future__ import annotations

from sagemaker.processing import ProcessingOutput
from sagemaker.workflow.functions import JsonGet
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep

from pipelines.common_steps import resolve_model_step
from pipelines.config import Config
from pipelines.deploy.parameters import DeployParameters, deploy_parameters
from pipelines.paths import STEPS_DIR
from pipelines.processors import step_processor


def deploy_endpoint_step(
    config: Config, session: PipelineSession, params: DeployParameters, resolve: ProcessingStep, resolved: PropertyFile
) -> ProcessingStep:
    processor = step_processor(config, session, "deploy", config.processing.instance_type)
    step_args = processor.run(
        code="deploy.py",
        source_dir=str(STEPS_DIR),
        outputs=[ProcessingOutput(output_name="deployment", source="/opt/ml/processing/output/deployment")],
        arguments=[
            "--model-package-arn", JsonGet(step_name=resolve.name, property_file=resolved, json_path="model_package_arn"),
            "--endpoint-name", params.endpoint_name,
            "--instance-type", params.instance_type,
            "--instance-count", params.instance_count.to_string(),
            "--capture-percent", params.capture_percent.to_string(),
            "--capture-s3-uri", params.capture_s3_uri,
            "--role-arn", config.project.role_arn,
            "--output-dir", "/opt/ml/processing/output/deployment",
        ],
    )
    return ProcessingStep(name="DeployEndpoint", step_args=step_args)


def smoke_test_step(
    config: Config, session: PipelineSession, params: DeployParameters, deploy: ProcessingStep
) -> ProcessingStep:
    processor = step_processor(config, session, "smoke-test", config.processing.instance_type)
    prompts = [arg for prompt in config.deploy.smoke_prompts for arg in ("--prompt", prompt)]
    step_args = processor.run(
        code="smoke_test.py",
        source_dir=str(STEPS_DIR),
        outputs=[ProcessingOutput(output_name="smoke", source="/opt/ml/processing/output/smoke")],
        arguments=["--endpoint-name", params.endpoint_name, "--output-dir", "/opt/ml/processing/output/smoke", *prompts],
    )
    return ProcessingStep(name="SmokeTest", step_args=step_args, depends_on=[deploy])


def deploy_pipeline(config: Config, session: PipelineSession) -> Pipeline:
    params = deploy_parameters(config)
    resolve, resolved = resolve_model_step(
        config, session, "ResolveApprovedModel", fallback_model_uri="", require_approved=True
    )
    deploy = deploy_endpoint_step(config, session, params, resolve, resolved)
    smoke = smoke_test_step(config, session, params, deploy)
    return Pipeline(
        name=config.deploy_pipeline_name,
        parameters=params.as_list(),
        steps=[resolve, deploy, smoke],
        sagemaker_session=session,
    )
