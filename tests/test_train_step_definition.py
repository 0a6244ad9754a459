"""The TrainModel step in the training pipeline's definition: strategy and QLoRA parameters, torchrun
distribution, per-execution checkpoints, the report channel, managed spot as a config option."""
from __future__ import annotations

from typing import Any

import pytest

from pipelines.backend import Backend
from pipelines.config import load_config
from pipelines.definitions import definition_json

CONFIG = load_config()


def _train_step(definition: dict[str, Any]) -> dict[str, Any]:
    def visit(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
        for step in steps:
            if step["Name"] == "TrainModel":
                return step
            if step["Type"] == "Condition":
                found = visit(step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"])
                if found:
                    return found
        return None

    step = visit(definition["Steps"])
    assert step is not None
    return step["Arguments"]


@pytest.fixture(scope="module")
def training(moto_backend: Backend) -> dict[str, Any]:
    return definition_json("training", CONFIG, moto_backend)


def test_strategy_and_qlora_are_pipeline_parameters(training: dict[str, Any]) -> None:
    parameters = {p["Name"]: p for p in training["Parameters"]}
    continual = CONFIG.training.continual
    assert parameters["TrainingStrategy"]["DefaultValue"] == continual.strategy == "replay,ewc,distill"
    assert parameters["ReplayBudget"]["DefaultValue"] == continual.replay_budget == 0.1
    assert parameters["ReplaySelection"]["DefaultValue"] == continual.replay_selection == "online"
    assert parameters["EwcLambda"]["DefaultValue"] == continual.ewc_lambda
    assert parameters["Quantization"]["EnumValues"] == ["none", "4bit"]
    assert parameters["CheckpointS3Uri"]["DefaultValue"] == f"{CONFIG.s3_prefix}/checkpoints"
    assert "SpotMaxWaitSeconds" not in parameters  # spot is off in the default config
    hyper = _train_step(training)["HyperParameters"]
    assert hyper["strategy"] == {"Get": "Parameters.TrainingStrategy"}
    assert hyper["quantization"] == {"Get": "Parameters.Quantization"}
    assert hyper["replay_weight"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.ReplayWeight"}]}}
    assert hyper["packing"] == "true" and hyper["fisher_samples"] == str(continual.fisher_samples)


def test_distribution_checkpoints_and_channels(training: dict[str, Any]) -> None:
    arguments = _train_step(training)
    hyper = arguments["HyperParameters"]
    assert hyper["sagemaker_torch_distributed_enabled"] == "true"
    assert hyper["sagemaker_instance_type"] == {"Get": "Parameters.TrainingInstanceType"}
    assert arguments["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}
    assert arguments["CheckpointConfig"] == {
        "S3Uri": {"Std:Join": {"On": "/", "Values": [{"Get": "Parameters.CheckpointS3Uri"},
                                                      {"Get": "Execution.PipelineExecutionId"}]}},
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert "EnableManagedSpotTraining" not in arguments and "MaxWaitTimeInSeconds" not in arguments["StoppingCondition"]
    assert arguments["StoppingCondition"]["MaxRuntimeInSeconds"] == CONFIG.training.max_run_seconds
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in arguments["InputDataConfig"]}
    assert channels["report"] == {"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['report'].S3Output.S3Uri"}
    # the GPU image containers/images.yaml records for training (ml.g5): the PyTorch 2.13 DLC
    assert arguments["AlgorithmSpecification"]["TrainingImage"].endswith("/pytorch:2.13-cu133-amzn2023-sagemaker")


def test_managed_spot_is_a_config_option_with_max_wait_parameter(moto_backend: Backend) -> None:
    config = load_config(overrides={"training.spot.enabled": True, "training.spot.max_wait_seconds": 7200,
                                    "training.max_run_seconds": 3600, "training.distribution": "none"})
    definition = definition_json("training", config, moto_backend)
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert parameters["SpotMaxWaitSeconds"] == {"Name": "SpotMaxWaitSeconds", "Type": "Integer", "DefaultValue": 7200}
    arguments = _train_step(definition)
    assert arguments["EnableManagedSpotTraining"] is True
    assert arguments["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600,
                                              "MaxWaitTimeInSeconds": {"Get": "Parameters.SpotMaxWaitSeconds"}}
    assert "sagemaker_torch_distributed_enabled" not in arguments["HyperParameters"]
