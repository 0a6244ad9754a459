"""Pipeline parameters of the training pipeline: per-execution overrides of the config."""
from __future__ import annotations

from dataclasses import dataclass, fields

from sagemaker.workflow.parameters import Parameter, ParameterBoolean, ParameterFloat, ParameterInteger, ParameterString

from pipelines import s3_layout
from pipelines.config import Config
from pipelines.step_contracts import argument, config_value, parameter_name


@dataclass(frozen=True)
class TrainingParameters:
    input_data_uri: ParameterString
    base_model_uri: ParameterString
    replay_fraction: ParameterFloat
    allow_data_changes: ParameterBoolean  # prepare accepts more changed answers than data.max_changed_fraction
    approval_status: ParameterString
    processing_instance_type: ParameterString
    training_instance_type: ParameterString
    training_instance_count: ParameterInteger
    lora_r: ParameterInteger
    lora_alpha: ParameterInteger
    lora_dropout: ParameterFloat
    target_modules: ParameterString
    learning_rate: ParameterFloat
    epochs: ParameterFloat
    gate_threshold: ParameterFloat
    max_regression: ParameterFloat
    max_forgetting: ParameterFloat

    # Training: continual-learning strategy and its knobs, QLoRA, checkpoints, managed spot (issue 4).
    training_strategy: ParameterString
    replay_weight: ParameterFloat
    replay_budget: ParameterFloat
    replay_budget_unit: ParameterString
    replay_selection: ParameterString
    distill_lambda: ParameterFloat
    distill_budget: ParameterFloat
    ewc_lambda: ParameterFloat
    l2sp_lambda: ParameterFloat
    orthogonal_lambda: ParameterFloat
    quantization: ParameterString
    checkpoint_s3_uri: ParameterString
    spot_max_wait_seconds: ParameterInteger | None  # only with training.spot.enabled (SageMaker rejects it otherwise)

    def as_list(self) -> list[Parameter]:
        return [value for field in fields(self) if (value := getattr(self, field.name)) is not None]


def training_parameters(config: Config) -> TrainingParameters:
    """Parameters whose defaults come from the config."""
    training = config.training
    return TrainingParameters(
        input_data_uri=ParameterString("InputDataUri", default_value=s3_layout.incoming_uri(config)),
        base_model_uri=ParameterString("BaseModelUri", default_value=s3_layout.base_model_uri(config)),
        replay_fraction=step_parameter(config, "prepare", "replay_fraction", ParameterFloat),
        allow_data_changes=step_parameter(config, "prepare", "allow_changes", ParameterBoolean),
        approval_status=ParameterString(
            "ModelApprovalStatus",
            default_value="PendingManualApproval",
            enum_values=["PendingManualApproval", "Approved"],
        ),
        processing_instance_type=ParameterString("ProcessingInstanceType", default_value=config.processing.instance_type),
        training_instance_type=ParameterString("TrainingInstanceType", default_value=training.instance_type),
        training_instance_count=ParameterInteger("TrainingInstanceCount", default_value=training.instance_count),
        lora_r=_train(config, "lora_r", ParameterInteger),
        lora_alpha=_train(config, "lora_alpha", ParameterInteger),
        lora_dropout=_train(config, "lora_dropout", ParameterFloat),
        target_modules=_train(config, "target_modules", ParameterString),
        learning_rate=_train(config, "learning_rate", ParameterFloat),
        epochs=_train(config, "epochs", ParameterFloat),
        gate_threshold=step_parameter(config, "evaluate", "gate_threshold", ParameterFloat),
        max_regression=step_parameter(config, "evaluate", "gate_max_regression", ParameterFloat),
        max_forgetting=step_parameter(config, "evaluate", "gate_max_forgetting", ParameterFloat),
        **_training_step_parameters(config),
    )


def step_parameter(config: Config, step: str, name: str, kind: type[Parameter]) -> Parameter:
    """The parameter of the step's argument `name` (steps/<step>/contract.py): its name follows the argument's,
    its default is the config's value at the argument's config key, its allowed values the argument's."""
    step_argument = argument(step, name)
    allowed = {"enum_values": list(step_argument.choices)} if step_argument.choices else {}
    return kind(parameter_name(step_argument), default_value=config_value(config, step_argument.config), **allowed)


def _train(config: Config, name: str, kind: type[Parameter]) -> Parameter:
    return step_parameter(config, "train", name, kind)


def _training_step_parameters(config: Config) -> dict[str, Parameter | None]:
    training = config.training
    return {
        "training_strategy": _train(config, "strategy", ParameterString),
        "replay_weight": _train(config, "replay_weight", ParameterFloat),
        "replay_budget": _train(config, "replay_budget", ParameterFloat),
        "replay_budget_unit": _train(config, "replay_budget_unit", ParameterString),
        "replay_selection": _train(config, "replay_selection", ParameterString),
        "distill_lambda": _train(config, "distill_lambda", ParameterFloat),
        "distill_budget": _train(config, "distill_budget", ParameterFloat),
        "ewc_lambda": _train(config, "ewc_lambda", ParameterFloat),
        "l2sp_lambda": _train(config, "l2sp_lambda", ParameterFloat),
        "orthogonal_lambda": _train(config, "orthogonal_lambda", ParameterFloat),
        "quantization": _train(config, "quantization", ParameterString),
        "checkpoint_s3_uri": ParameterString(
            "CheckpointS3Uri", default_value=s3_layout.checkpoints_uri(config)
        ),
        "spot_max_wait_seconds": ParameterInteger("SpotMaxWaitSeconds", default_value=training.spot.max_wait_seconds)
        if training.spot.enabled else None,
    }
