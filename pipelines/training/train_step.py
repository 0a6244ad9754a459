"""Training step: LoRA/QLoRA fine-tune of the resolved starting model (HuggingFace estimator).

Distribution: `torch_distributed` runs the same train.py under torchrun on every instance (one
process per GPU; instance type and count are pipeline parameters). Checkpoints go to
CheckpointS3Uri/<execution id> (SageMaker syncs /opt/ml/checkpoints there, so a spot-interrupted
or restarted job of this execution resumes, and no other execution picks them up); managed spot
training is a config option with the SpotMaxWaitSeconds parameter.
"""
from __future__ import annotations

from typing import Any

from sagemaker.huggingface import HuggingFace
from sagemaker.inputs import TrainingInput
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipelines import images, s3_layout
from pipelines.config import Config
from pipelines.paths import SERVING_DIR, STEPS_DIR
from pipelines.step_contracts import config_value, configured, parameter_name
from pipelines.step_policies import cached_job
from pipelines.training.parameters import TrainingParameters

METRIC_DEFINITIONS = [
    {"Name": "train_loss", "Regex": r"train_loss=([0-9.eE+-]+);"},
    {"Name": "eval_loss", "Regex": r"eval_loss=([0-9.eE+-]+);"},
    {"Name": "epoch", "Regex": r"epoch=([0-9.eE+-]+);"},
]
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"


def training_image_uri(config: Config) -> str:
    """The training image: the configured one, else the one containers/images.yaml records for the
    training instance type's accelerator. Passing it explicitly lets the estimator take
    torch_distributed with a parameterised instance type."""
    return images.image_uri(config.training.image_uri, "training", config.training.instance_type, config.project.region)


def hyperparameters(config: Config, params: TrainingParameters) -> dict[str, Any]:
    """train.py's arguments (steps/train/contract.py): each one with a config key, as its pipeline parameter
    when it is one, else the config's value (None: the step's default, "")."""
    by_name = {parameter.name: parameter for parameter in params.as_list()}
    values: dict[str, Any] = {}
    for step_argument in configured("train"):
        if step_argument.parameter:
            value = by_name[parameter_name(step_argument)]
        else:
            value = config_value(config, step_argument.config)
        values[step_argument.name] = "" if value is None else value
    return values


def train_step(
    config: Config,
    session: PipelineSession,
    params: TrainingParameters,
    prepare: ProcessingStep,
    resolve: ProcessingStep,
    resolved: PropertyFile,
) -> TrainingStep:
    training = config.training
    spot: dict[str, Any] = {}
    if params.spot_max_wait_seconds is not None:
        spot = {"use_spot_instances": True, "max_wait": params.spot_max_wait_seconds}
    distribution = {"torch_distributed": {"enabled": True}} if training.distribution == "torch_distributed" else None
    estimator = HuggingFace(
        entry_point="train.py",
        source_dir=str(STEPS_DIR),
        # The serving handler travels with the training code: train.py ships it in the model
        # artifact as code/inference.py, which AWS's Hugging Face inference containers load.
        dependencies=[str(SERVING_DIR)],
        role=config.project.role_arn,
        image_uri=training_image_uri(config),
        py_version=images.python_tag(images.step_image("training", training.instance_type)),
        instance_type=params.training_instance_type,
        instance_count=params.training_instance_count,
        distribution=distribution,
        base_job_name=f"{config.project.name}-train",
        output_path=s3_layout.models_uri(config),
        metric_definitions=METRIC_DEFINITIONS,
        hyperparameters=hyperparameters(config, params),
        environment={"PYTHONUNBUFFERED": "1"},
        max_run=training.max_run_seconds,
        checkpoint_s3_uri=Join(on="/", values=[params.checkpoint_s3_uri, ExecutionVariables.PIPELINE_EXECUTION_ID]),
        checkpoint_local_path=CHECKPOINT_LOCAL_PATH,
        sagemaker_session=session,
        disable_profiler=True,
        **spot,
    )
    outputs = prepare.properties.ProcessingOutputConfig.Outputs
    step_args = estimator.fit(
        inputs={
            "train": TrainingInput(s3_data=outputs["train"].S3Output.S3Uri, content_type="application/jsonlines"),
            "validation": TrainingInput(s3_data=outputs["validation"].S3Output.S3Uri, content_type="application/jsonlines"),
            "base_model": TrainingInput(s3_data=JsonGet(step_name=resolve.name, property_file=resolved, json_path="model_data_url")),
            "report": TrainingInput(s3_data=outputs["report"].S3Output.S3Uri, content_type="application/json"),
        }
    )
    return TrainingStep(name="TrainModel", step_args=step_args, **cached_job(config))
