"""training.backend: bedrock: the config refuses what needs the weights (naming the field), the training pipeline's
definition (built on moto) runs TrainModel / EvaluateModel / RegisterModel on Bedrock behind the same gate, and a
local run is refused with a message."""
from __future__ import annotations

import json
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from pipelines.backend import Backend
from pipelines.config import ConfigError, load_config
from pipelines.definitions import build_pipeline, definition_json

NOVA = "amazon.nova-lite-v1:0:300k"
BEDROCK = {"training.backend": "bedrock", "training.bedrock.base_model_identifier": NOVA,
           "training.bedrock.role_arn": "arn:aws:iam::123456789012:role/BedrockCustomizationRole",
           "training.continual.strategy": "replay", "training.continual.replay_budget": 1, "training.epochs": 2}


@pytest.mark.parametrize("strategy, refused", [("replay,ewc", "ewc"), ("l2sp", "l2sp"), ("replay,modular", "modular"),
                                               ("replay,distill", "distill")])
def test_strategies_that_need_the_weights_are_refused(strategy: str, refused: str) -> None:
    with pytest.raises(ConfigError, match=rf"training\.continual\.strategy: {refused} need\(s\) the model's weights"):
        load_config(None, {**BEDROCK, "training.continual.strategy": strategy})


def test_replay_and_naive_remain_and_other_misfits_are_named() -> None:
    assert load_config(None, BEDROCK).training.backend == "bedrock"
    assert load_config(None, {**BEDROCK, "training.continual.strategy": "naive"}).training.bedrock.inference == "on_demand"
    for override, field in (({"training.continual.replay_weight": 2.0}, "training.continual.replay_weight"),
                            ({"training.continual.replay_budget": 0.1}, "training.continual.replay_budget"),
                            ({"training.epochs": 1.5}, "training.epochs"),
                            ({"training.bedrock.role_arn": None}, "training.bedrock.role_arn"),
                            ({"training.bedrock.subnet_ids": ["subnet-1"]}, "training.bedrock.subnet_ids")):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            load_config(None, {**BEDROCK, **override})
    # the SageMaker backend keeps every strategy
    assert load_config(None, {"training.continual.strategy": "replay,ewc"}).training.backend == "sagemaker"


def _steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def visit(step: dict[str, Any], path: tuple[str, ...]) -> None:
        found[step["Name"]] = {**step, "path": path}
        if step["Type"] == "Condition":
            for child in step["Arguments"]["IfSteps"]:
                visit(child, (*path, step["Name"]))

    for step in definition["Steps"]:
        visit(step, ())
    return found


def _flag(arguments: list[Any], name: str) -> Any:
    return arguments[arguments.index(name) + 1]


def _runproc(step: dict[str, Any]) -> str:
    """The uploaded entry script of a processing step (it names the step script it runs)."""
    uri = next(i["S3Input"]["S3Uri"] for i in step["Arguments"]["ProcessingInputs"] if i["InputName"] == "entrypoint")
    bucket, key = uri[5:].split("/", 1)
    return boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


@pytest.fixture(scope="module")
def definition() -> Iterator[dict[str, Any]]:
    config = load_config(None, BEDROCK)
    with mock_aws():
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        session.client("s3").create_bucket(Bucket=config.project.bucket)
        yield definition_json("training", config, Backend("aws", session))


def test_the_bedrock_definition_keeps_the_steps_and_the_gate(definition: dict[str, Any]) -> None:
    steps = _steps(definition)
    assert not [name for name, step in steps.items() if step["Type"] == "Training"]
    train, evaluate, register = steps["TrainModel"], steps["EvaluateModel"], steps["RegisterModel"]
    assert train["Type"] == evaluate["Type"] == register["Type"] == "Processing"
    assert register["path"][-3:] == ("CheckForgetting", "CheckQualityThreshold", "CheckNoRegression")
    assert train["path"] == evaluate["path"] == ("CheckInputData", "CheckDataChanged")

    args = train["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert args[0] == "train" and "bedrock_train.py" in _runproc(train)
    assert _flag(args, "--base-model-identifier") == NOVA
    assert _flag(args, "--epochs") == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Epochs"}]}}
    assert _flag(args, "--learning-rate") == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.LearningRate"}]}}
    assert "--kms-key-id" not in args  # unset: not passed as an empty argument
    channels = {i["InputName"] for i in train["Arguments"]["ProcessingInputs"]} - {"code", "entrypoint"}
    assert channels == {"train", "validation", "report"}

    eval_args = evaluate["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert _flag(eval_args, "--candidate-model-id") == {"Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.TrainModel.PropertyFiles.BedrockModel"}, "Path": "inference_model_id"}}
    assert _flag(eval_args, "--baseline-model-id") == NOVA
    assert {"--baseline-dir=", "--validation-dir="} <= {a for a in eval_args if isinstance(a, str)}
    assert _flag(eval_args, "--gate-metric") == load_config(None, BEDROCK).evaluation.gate.metric

    assert "evaluate.py" in _runproc(evaluate) and "bedrock_train.py" in _runproc(register)
    reg_args = register["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert reg_args[0] == "register" and _flag(reg_args, "--approval-status") == {"Get": "Parameters.ModelApprovalStatus"}
    assert "Steps.EvaluateModel" in json.dumps(_flag(reg_args, "--evaluation-uri"))


def test_a_local_run_is_refused_with_a_message() -> None:
    config = load_config(None, BEDROCK)
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    with pytest.raises(ValueError, match=r"training\.backend: bedrock needs AWS.*--aws.*training\.backend: sagemaker"):
        build_pipeline("training", config, Backend("local", session))
