"""Training step: LoRA fine-tune of the resolved starting model (HuggingFace estimator)."""
from __future__ import annotations

from sagemaker.huggingface import HuggingFace
from sagemaker.inputs import TrainingInput
from sagemaker.workflow.functions import JsonGet
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipelines.config import Config
from pipelines.paths import SERVING_DIR, STEPS_DIR
from pipelines.training.parameters import TrainingParameters

METRIC_DEFINITIONS = [
    {"Name": "train_loss", "Regex": r"train_loss=([0-9.eE+-]+);"},
    {"Name": "eval_loss", "Regex": r"eval_loss=([0-9.eE+-]+);"},
    {"Name": "epoch", "Regex": r"epoch=([0-9.eE+-]+);"},
]


def train_step(
    config: Config,
    session: PipelineSession,
    params: TrainingParameters,
    prepare: ProcessingStep,
    resolve: ProcessingStep,
    resolved: PropertyFile,
) -> TrainingStep:
    training = config.training
    estimator = HuggingFace(
        entry_point="train.py",
        source_dir=str(STEPS_DIR),
        # The serving handler travels with the training code: train.py ships it in the model
        # artifact as code/inference.py, which AWS's Hugging Face inference containers load.
        dependencies=[str(SERVING_DIR)],
        role=config.project.role_arn,
        instance_type=params.training_instance_type,
        instance_count=params.training_instance_count,
        transformers_version=training.transformers_version,
        pytorch_version=training.pytorch_version,
        py_version=training.py_version,
        base_job_name=f"{config.project.name}-train",
        output_path=f"{config.s3_prefix}/models",
        metric_definitions=METRIC_DEFINITIONS,
        hyperparameters={
            "base_model": config.model.base_model or "",
            "lora_r": params.lora_r,
            "lora_alpha": params.lora_alpha,
            "lora_dropout": params.lora_dropout,
            "target_modules": params.target_modules,
            "learning_rate": params.learning_rate,
            "epochs": params.epochs,
            "max_steps": training.max_steps,
            "batch_size": training.batch_size,
            "max_seq_length": training.max_seq_length,
            "seed": training.seed,
        },
        environment={"PYTHONUNBUFFERED": "1"},
        sagemaker_session=session,
        disable_profiler=True,
    )
    outputs = prepare.properties.ProcessingOutputConfig.Outputs
    step_args = estimator.fit(
        inputs={
            "train": TrainingInput(s3_data=outputs["train"].S3Output.S3Uri, content_type="application/jsonlines"),
            "validation": TrainingInput(s3_data=outputs["validation"].S3Output.S3Uri, content_type="application/jsonlines"),
            "base_model": TrainingInput(s3_data=JsonGet(step_name=resolve.name, property_file=resolved, json_path="model_data_url")),
        }
    )
    return TrainingStep(name="TrainModel", step_args=step_args)
