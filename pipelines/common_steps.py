"""Builders for the steps both pipelines share."""
from __future__ import annotations

from sagemaker.processing import ProcessingOutput
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep

from pipelines import s3_layout
from pipelines.config import Config
from pipelines.paths import STEPS_DIR
from pipelines.processors import step_processor
from pipelines.step_contracts import config_argv, step_contract

RESOLVED_OUTPUT = "resolved"


def resolve_model_step(
    config: Config,
    session: PipelineSession,
    name: str,
    fallback_model_uri: str | PipelineVariable,
    require_approved: bool,
) -> tuple[ProcessingStep, PropertyFile]:
    """Find the latest Approved model package of the group; `resolved.json` is its PropertyFile."""
    resolved = PropertyFile(name="ResolvedModel", output_name=RESOLVED_OUTPUT, path="resolved.json")
    output_dir = step_contract("resolve").OUTPUT_DIR
    arguments = config_argv("resolve", config, {
        "fallback_model_uri": fallback_model_uri,
        "fallback_replay_uri": s3_layout.empty_replay_uri(config),
        "output_dir": output_dir,
        "require_approved": require_approved,
    })
    processor = step_processor(config, session, "resolve", config.processing.instance_type)
    step_args = processor.run(
        code="resolve.py",
        source_dir=str(STEPS_DIR),
        outputs=[ProcessingOutput(output_name=RESOLVED_OUTPUT, source=output_dir)],
        arguments=arguments,
    )
    return ProcessingStep(name=name, step_args=step_args, property_files=[resolved]), resolved
