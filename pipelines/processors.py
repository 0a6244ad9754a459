"""Processors that run a script from `steps/` under SageMaker's processing-container contract, in the
step image that containers/images.yaml records for the instance's accelerator (pipelines/images.py)."""
from __future__ import annotations

from sagemaker.processing import FrameworkProcessor
from sagemaker.pytorch import PyTorch
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.pipeline_context import PipelineSession

from pipelines import images
from pipelines.config import Config


def step_processor(
    config: Config,
    session: PipelineSession,
    job_name: str,
    instance_type: str | PipelineVariable,
    instance_count: int | PipelineVariable = 1,
) -> FrameworkProcessor:
    """A PyTorch framework processor: uploads `steps/` as its source dir and runs one script of it (its
    runproc.sh pip-installs the source dir's requirements.txt on top of the image's torch first)."""
    image = images.step_image("processing", instance_type)
    return FrameworkProcessor(
        estimator_cls=PyTorch,
        # ignored by the SDK once image_uri is given; the recorded image's own versions
        framework_version=image.version("torch").split("+")[0],
        py_version=images.python_tag(image),
        image_uri=images.image_uri(config.processing.image_uri, "processing", instance_type, config.project.region),
        role=config.project.role_arn,
        instance_type=instance_type,
        instance_count=instance_count,
        base_job_name=f"{config.project.name}-{job_name}",
        sagemaker_session=session,
        env={"PYTHONUNBUFFERED": "1"},
    )
