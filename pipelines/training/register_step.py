"""ModelStep: register the candidate in the Model Registry with its metrics and data lineage."""
from __future__ import annotations

from sagemaker.huggingface import HuggingFaceModel
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

from pipelines import images, s3_layout
from pipelines.config import Config
from pipelines.training.evaluate_step import EVALUATION_OUTPUT, INVENTORY_OUTPUT, REPORT_HTML
from pipelines.training.parameters import TrainingParameters


def inference_image_uri(config: Config) -> str:
    """The serving image of the registered package: the configured one, else the Hugging Face inference DLC
    that containers/images.yaml records (transformers 5, which reads what training saved:
    tests/test_serving_compat.py) for the endpoint instance type's accelerator."""
    return images.image_uri(config.deploy.inference_image_uri, "serving", config.deploy.instance_type,
                            config.project.region)


def register_step(
    config: Config,
    session: PipelineSession,
    params: TrainingParameters,
    train: TrainingStep,
    evaluate: ProcessingStep,
    prepare_report: PropertyFile,
    prepare: ProcessingStep,
    resolved: PropertyFile,
    resolve: ProcessingStep,
) -> ModelStep:
    evaluation_dir = evaluate.properties.ProcessingOutputConfig.Outputs[EVALUATION_OUTPUT].S3Output.S3Uri
    evaluation_uri = Join(on="/", values=[evaluation_dir, "evaluation.json"])
    model = HuggingFaceModel(
        model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
        image_uri=inference_image_uri(config),
        env=config.deploy.serving.environment(),  # the serving container's request limits (deploy.serving)
        role=config.project.role_arn,
        sagemaker_session=session,
    )
    step_args = model.register(
        content_types=["application/json"],
        response_types=["application/json"],
        inference_instances=[config.deploy.instance_type],
        transform_instances=[config.deploy.instance_type],
        model_package_group_name=config.model.model_package_group,
        approval_status=params.approval_status,
        model_metrics=ModelMetrics(model_statistics=MetricsSource(s3_uri=evaluation_uri, content_type="application/json")),
        customer_metadata_properties={
            "data_version": JsonGet(step_name=prepare.name, property_file=prepare_report, json_path="data_version"),
            "training_data_uri": Join(on="/", values=[s3_layout.data_uri(config), JsonGet(
                step_name=prepare.name, property_file=prepare_report, json_path="input_digest")]),
            "train_data_uri": prepare.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri,
            "inventory_uri": evaluate.properties.ProcessingOutputConfig.Outputs[INVENTORY_OUTPUT].S3Output.S3Uri,
            "parent_model_package_arn": JsonGet(step_name=resolve.name, property_file=resolved, json_path="model_package_arn"),
            "start_model_uri": JsonGet(step_name=resolve.name, property_file=resolved, json_path="model_data_url"),
            "evaluation_report_uri": Join(on="/", values=[evaluation_dir, REPORT_HTML]),
        },
        description=f"{config.project.name}: LoRA fine-tune gated on {config.evaluation.gate.metric}",
    )
    return ModelStep(name="RegisterModel", step_args=step_args)
