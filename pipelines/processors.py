"""Processors that run a script from `steps/` under SageMaker's processing-container contract."""
from __future__ import annotations

from sagemaker.processing import FrameworkProcessor
from sagemaker.pytorch import PyTorch
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.pipeline_context import PipelineSession

from pipelines.config import Config


def step_processor(
    config: Config,
    session: PipelineSession,
    job_name: str,
    instance_type: str | PipelineVariable,
    instance_count: int | PipelineVariable = 1,
) -> FrameworkProcessor:
    """A PyTorch framework processor: uploads `steps/` as its source dir and runs one script of it."""
    return FrameworkProcessor(
        estimator_cls=PyTorch,
        framework_version=config.processing.framework_version,
        py_version=config.processing.py_version,
        role=config.project.role_arn,
        instance_type=instance_type,
        instance_count=instance_count,
        base_job_name=f"{config.project.name}-{job_name}",
        sagemaker_session=session,
        env={"PYTHONUNBUFFERED": "1"},
    )
