"""One contract per step: the config schema, the pipeline parameters and the step's own parser agree with
steps/<step>/contract.py (shown for the training step)."""
from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from pipelines.backend import Backend
from pipelines.config import ContinualConfig, TrainingConfig, load_config
from pipelines.definitions import definition_json
from pipelines.step_contracts import argument, arguments, config_value, configured, parameter_name, step_contract
from test_train_step_definition import _train_step

CONFIG = load_config()
SCHEMA_ROOTS = {"training": TrainingConfig, "model": None}  # model.base_model has no default: the demo builds one


def _schema_default(key: str) -> Any:
    """The config schema's default at a dotted key, following nested models' default factories."""
    root, *path = key.split(".")
    node: Any = SCHEMA_ROOTS[root]
    if node is None:
        return None
    for part in path[:-1]:
        node = node.model_fields[part].annotation
    field = node.model_fields[path[-1]]
    return field.get_default(call_default_factory=True, validated_data={})


def _parameter(value: Any) -> str | None:
    """The pipeline parameter a definition value reads ({"Get": "Parameters.X"}, also inside Std:Join), else None."""
    if isinstance(value, dict):
        if isinstance(value.get("Get"), str):
            return value["Get"].removeprefix("Parameters.")
        for inner in value.values():
            found = _parameter(inner) if isinstance(inner, dict) else None
            for item in inner if isinstance(inner, list) else []:
                found = found or _parameter(item)
            if found:
                return found
    return None


@pytest.fixture(scope="module")
def training(moto_backend: Backend) -> dict[str, Any]:
    return definition_json("training", CONFIG, moto_backend)


def test_every_configured_argument_has_the_schema_default() -> None:
    keys = [candidate.config for candidate in configured("train")]
    assert len(keys) == len(set(keys)) and "training.lora.r" in keys
    for candidate in configured("train"):
        default = _schema_default(candidate.config)
        # None in the config means "the step's default" (base_model: the pipeline passes "").
        assert default == candidate.default or (default is None and candidate.default == ""), candidate.name


def test_one_default_per_setting_the_real_model_one() -> None:
    training = TrainingConfig()
    assert (training.lora.r, training.learning_rate, training.epochs, training.max_seq_length) == (16, 2e-4, 3.0, 512)
    assert [argument("train", name).default for name in ("lora_r", "learning_rate", "epochs", "max_seq_length")] \
        == [16, 2e-4, 3.0, 512]


def test_pipeline_parameters_map_to_arguments_and_every_passed_argument_is_declared(training: dict[str, Any]) -> None:
    hyperparameters = {name: value for name, value in _train_step(training)["HyperParameters"].items()
                       if not name.startswith("sagemaker_")}
    declared = {candidate.name: candidate for candidate in arguments("train")}
    assert set(hyperparameters) <= set(declared)
    assert set(hyperparameters) == {candidate.name for candidate in configured("train")}
    parameters = {parameter["Name"]: parameter for parameter in training["Parameters"]}
    passed = {name: _parameter(value) for name, value in hyperparameters.items() if isinstance(value, dict)}
    assert passed == {candidate.name: parameter_name(candidate) for candidate in configured("train") if candidate.parameter}
    assert {"lora_r": "LoraR", "target_modules": "LoraTargetModules", "strategy": "TrainingStrategy",
            "l2sp_lambda": "L2spLambda"}.items() <= passed.items()
    for name, parameter in passed.items():
        assert parameters[parameter]["DefaultValue"] == config_value(CONFIG, declared[name].config), name
    assert parameters["Quantization"]["EnumValues"] == list(declared["quantization"].choices)
    for name, value in hyperparameters.items():  # the others: the config's values (JSON, as SageMaker passes them)
        if not isinstance(value, dict):
            configured_value = config_value(CONFIG, declared[name].config)
            assert json.loads(value) == ("" if configured_value is None else configured_value), name


def test_generated_parser_accepts_both_spellings() -> None:
    from train.args import build_parser, parse_args

    parser = build_parser()
    underscores = parser.parse_args(["--lora_r", "8", "--learning_rate", "0.01", "--train_dir", "a", "--packing", "false"])
    dashes = parser.parse_args(["--lora-r", "8", "--learning-rate", "0.01", "--train-dir", "a", "--packing", "False"])
    assert vars(underscores) == vars(dashes)
    assert underscores.lora_r == 8 and underscores.learning_rate == 0.01 and underscores.packing is False
    args = parse_args(["--train-dir", "a", "--model-dir", "b"])
    assert {name: getattr(args, name) for name in ("lora_r", "lora_alpha", "epochs", "max_seq_length")} == \
        {name: argument("train", name).default for name in ("lora_r", "lora_alpha", "epochs", "max_seq_length")}
    assert str(args.strategy) == argument("train", "strategy").default == ContinualConfig().strategy


def test_the_step_and_the_control_plane_read_the_same_contract() -> None:
    import train.contract

    def described(candidate: Any) -> dict[str, Any]:
        return {**vars(candidate), "type": candidate.type.__name__}

    assert [described(a) for a in train.contract.ARGUMENTS] == [described(a) for a in arguments("train")]


@pytest.mark.parametrize("strategy", ["naive", "none", "replay", "modular,l2sp", "ewc,naive", "forget", "", "replay;ewc"])
def test_the_config_accepts_exactly_the_strategies_train_py_accepts(strategy: str) -> None:
    parse = step_contract("train").parse_strategy
    try:
        parse(strategy)
        accepted = True
    except argparse.ArgumentTypeError:
        accepted = False
    try:
        ContinualConfig(strategy=strategy)
        assert accepted, strategy
    except ValueError as err:
        assert not accepted and "strategy" in str(err), strategy
