"""One contract per step: the config schema, the pipeline parameters and the step's own parser agree with
steps/<step>/contract.py (the training, the prepare, the evaluate, the deploy, the resolve and the smoke test step)."""
from __future__ import annotations

import argparse
import importlib
import json
import typing
from pathlib import Path
from typing import Any

import pytest

from pipelines.backend import Backend
from pipelines.config import ContinualConfig, DataConfig, TrainingConfig, load_config
from pipelines.definitions import definition_json
from pipelines.step_contracts import (
    argument,
    arguments,
    config_value,
    configured,
    configured_value,
    flag,
    parameter_name,
    step_contract,
)
from test_train_step_definition import _train_step

CONFIG = load_config()
SCHEMA_ROOTS = {"training": TrainingConfig, "data": DataConfig, "model": None}  # model.base_model has no default: the demo builds one


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


@pytest.mark.parametrize("step", ["train", "evaluate"])
def test_the_step_and_the_control_plane_read_the_same_contract(step: str) -> None:
    def described(candidate: Any) -> dict[str, Any]:
        return {**vars(candidate), "type": candidate.type.__name__}

    contract = importlib.import_module(f"{step}.contract")
    assert [described(a) for a in contract.ARGUMENTS] == [described(a) for a in arguments(step)]


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


# ---------------------------------------------------------------- the evaluate step


def _evaluate_arguments(training: dict[str, Any]) -> list[Any]:
    from pipelines.local.runtime import plan_steps

    return plan_steps(training)["EvaluateModel"].spec["Arguments"]["AppSpecification"]["ContainerArguments"]


def test_evaluation_config_defaults_are_evaluate_py_defaults() -> None:
    from pipelines.config import EvaluationConfig, GateConfig

    keys = [candidate.config for candidate in configured("evaluate")]
    assert len(keys) == len(set(keys)) and "evaluation.retention_max_cases" in keys
    pipeline_defaults = step_contract("evaluate").PIPELINE_DEFAULTS
    for candidate in configured("evaluate"):
        *path, name = candidate.config.split(".")
        field = (GateConfig if path[-1] == "gate" else EvaluationConfig).model_fields[name]
        if field.is_required():  # the gate's metric and threshold: the config must say
            assert candidate.default is None, candidate.name
        elif candidate.config in pipeline_defaults:  # a bound the pipeline applies; a hand run has none
            assert candidate.default is None and field.default is not None, candidate.name
        else:
            assert field.get_default(call_default_factory=True, validated_data={}) == candidate.default, candidate.name
    assert set(pipeline_defaults) <= set(keys)
    assert (EvaluationConfig.model_fields["retention_max_cases"].default,
            EvaluationConfig.model_fields["max_new_tokens"].default) == (128, 32)


def test_evaluate_step_arguments_and_gate_parameters_follow_the_contract(training: dict[str, Any]) -> None:
    args = _evaluate_arguments(training)
    declared = {candidate.name: candidate for candidate in arguments("evaluate")}
    flags = [arg.split("=")[0] for arg in args if isinstance(arg, str) and arg.startswith("--")]
    assert {flag[2:].replace("-", "_") for flag in flags} <= set(declared)  # every flag passed is declared
    parameters = {parameter["Name"]: parameter for parameter in training["Parameters"]}
    passed = {}
    for candidate in configured("evaluate"):
        value = args[args.index("--" + candidate.name.replace("_", "-")) + 1]
        if candidate.parameter:
            passed[candidate.name] = _parameter(value)
            assert parameters[passed[candidate.name]]["DefaultValue"] == config_value(CONFIG, candidate.config)
        else:
            assert value == str(config_value(CONFIG, candidate.config)), candidate.name
    assert passed == {"gate_threshold": "GateThreshold", "gate_max_regression": "MaxRegression",
                      "gate_max_forgetting": "MaxForgetting"}
    assert passed == {candidate.name: parameter_name(candidate) for candidate in configured("evaluate")
                      if candidate.parameter}
    wired = [flag for flag in flags if "=" not in flag]  # not the input folders (--model-dir=...)
    assert wired == sorted(wired, key=lambda flag: list(declared).index(flag[2:].replace("-", "_")))  # in order


def test_evaluate_py_parser_is_generated_and_keeps_every_spelling_in_use() -> None:
    from evaluate import parse_args

    defaults = parse_args([])
    assert (defaults.retention_max_cases, defaults.retention_max_new_cases, defaults.batch.max_new_tokens,
            defaults.batch.max_batch_size) == tuple(argument("evaluate", name).default for name in (
                "retention_max_cases", "retention_max_new_cases", "max_new_tokens", "batch_size"))
    assert defaults.gate_metric is None and defaults.gate_max_regression is None and defaults.gate_higher_is_better
    # what continuum compare, continuum benchmarks validate and the pipeline pass
    dashes = parse_args(["--model-dir", "m", "--baseline-dir", "", "--validation-dir", "", "--benchmarks-dir", "b",
                         "--output-dir", "o", "--max-new-tokens", "8", "--batch-size", "4", "--suites", "x, y",
                         "--retention-max-cases", "0", "--lm-eval-tasks", "arc_easy", "--lm-eval-limit", "5",
                         "--gate-metric", "x_f1", "--gate-threshold", "0.2", "--gate-max-regression", "none",
                         "--gate-max-forgetting", "0.1", "--gate-lower-is-better", "--check-suites-only"])
    underscores = parse_args(["--model_dir", "m", "--baseline_dir", "", "--validation_dir", "", "--benchmarks_dir", "b",
                              "--output_dir", "o", "--max_new_tokens", "8", "--batch_size", "4", "--suites", "x, y",
                              "--retention_max_cases", "0", "--lm_eval_tasks", "arc_easy", "--lm_eval_limit", "5",
                              "--gate_metric", "x_f1", "--gate_threshold", "0.2", "--gate_max_regression", "none",
                              "--gate_max_forgetting", "0.1", "--gate_lower_is_better", "--check_suites_only"])
    assert dashes == underscores
    assert dashes.baseline_dir is None and dashes.validation_dir is None and dashes.suites == ["x", "y"]
    assert (dashes.gate_threshold, dashes.gate_max_regression, dashes.gate_max_forgetting) == (0.2, None, 0.1)
    assert not dashes.gate_higher_is_better and dashes.check_suites_only and dashes.retention_max_cases == 0
    with pytest.raises(SystemExit):
        parse_args(["--gate-threshold", "0.2"])  # a bound needs a metric


# ---------------------------------------------------------------- the prepare step

PREPARE_FOLDERS = ("input_dir", "output_dir", "replay_dir", "empty_input", "raw_output_dir", "tokenizer_dir")  # wired by the pipeline


def _prepare_arguments(definition: dict[str, Any]) -> dict[str, Any]:
    """PrepareData's container arguments as {flag: value}, in their order."""
    step = next(step for step in definition["Steps"] if step["Name"] == "PrepareData")
    argv = step["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert len(argv) % 2 == 0 and len(set(argv[::2])) == len(argv) // 2
    return dict(zip(argv[::2], argv[1::2]))


def test_prepare_config_defaults_and_settings_defaults_are_the_contract_s() -> None:
    from common.contract import typed_default
    from prepare.settings import PrepareSettings

    keys = [candidate.config for candidate in configured("prepare")]
    assert len(keys) == len(set(keys)) and all(key.startswith("data.") for key in keys)
    for candidate in configured("prepare"):
        default = _schema_default(candidate.config)
        if candidate.fallback:  # max_tokens: None in the config means training.max_seq_length
            assert default is None and candidate.name == "max_tokens", candidate.name
        else:
            assert default == candidate.default or list(default) == list(candidate.default), candidate.name
    settings = PrepareSettings()
    declared = {candidate.name for candidate in arguments("prepare")}
    assert declared - set(vars(settings)) == set(PREPARE_FOLDERS)
    for name, value in vars(settings).items():
        assert value == typed_default(argument("prepare", name)) and type(value) is type(
            typed_default(argument("prepare", name))), name
    data_fields = set(DataConfig.model_fields) - {"source", "tokenizer_uri"}
    assert data_fields == {key.removeprefix("data.") for key in keys}
    for name in ("pii", "holdout"):
        assert typing.get_args(DataConfig.model_fields[name].annotation) == argument("prepare", name).choices


def test_prepare_step_modules_use_the_contract_s_allowed_values() -> None:
    from prepare import pii, split

    assert pii.MODES == argument("prepare", "pii").choices
    assert split.HOLDOUT_MODES == argument("prepare", "holdout").choices


def test_prepare_data_arguments_follow_the_contract(training: dict[str, Any]) -> None:
    passed = _prepare_arguments(training)
    order = [candidate for candidate in arguments("prepare")
             if candidate.name in PREPARE_FOLDERS or (candidate.config and flag("prepare", candidate) in passed)]
    assert list(passed) == [flag("prepare", candidate) for candidate in order]
    assert {"--max-tokens", "--allow-changes", "--validation-fraction"} <= set(passed)
    parameters = {parameter["Name"]: parameter for parameter in training["Parameters"]}
    by_parameter = {candidate.name: _parameter(passed[flag("prepare", candidate)])
                    for candidate in configured("prepare") if candidate.parameter}
    assert by_parameter == {"replay_fraction": "ReplayFraction", "retrain_min_change": "RetrainMinChange",
                            "allow_changes": "AllowDataChanges"}
    for name, parameter in by_parameter.items():
        assert parameter == parameter_name(argument("prepare", name))
        assert parameters[parameter]["DefaultValue"] == config_value(CONFIG, argument("prepare", name).config)
    from common.contract import render

    for candidate in configured("prepare"):
        if not candidate.parameter and flag("prepare", candidate) in passed:
            assert passed[flag("prepare", candidate)] == render(configured_value(CONFIG, candidate)), candidate.name
    assert CONFIG.data.max_tokens is None and passed["--max-tokens"] == str(CONFIG.training.max_seq_length)


def test_prepare_local_command_round_trips_through_the_step_s_parser(tmp_path: Path) -> None:
    import prepare
    from pipelines.training.prepare_arguments import step_command
    from prepare.settings import PrepareSettings

    config = CONFIG.model_copy(update={"data": CONFIG.data.model_copy(update={
        "pii_allow": ["@example.com", "555-0199"], "columns": {"prompt": "query", "completion": "reply"},
        "max_tokens": 99, "allow_changes": True})})
    command = step_command([tmp_path / "a", tmp_path / "b"], tmp_path / "out", config, None, tmp_path / "tok", 3)
    args = prepare.parse_args(command[2:])
    assert args.input_dir == [(tmp_path / "a").resolve(), (tmp_path / "b").resolve()]
    assert (args.replay_dir, args.tokenizer_dir, args.workers) == (None, (tmp_path / "tok").resolve(), 3)
    settings = PrepareSettings(**{name: getattr(args, name) for name in vars(PrepareSettings())})
    for candidate in configured("prepare"):
        expected = config_value(config, candidate.config)
        assert getattr(settings, candidate.name) == (tuple(expected) if isinstance(expected, list) else expected)
    comma = config.model_copy(update={"data": config.data.model_copy(update={"pii_allow": ["a,b"]})})
    with pytest.raises(ValueError, match="data.pii_allow: 'a,b' contains a comma"):
        step_command([tmp_path], tmp_path / "out", comma, None, None, 0)


def test_prepare_parser_accepts_both_spellings_and_reads_the_same_contract() -> None:
    import prepare
    import prepare.contract

    assert vars(prepare.parse_args(["--max-tokens", "7", "--pii-allow", "a"])) == \
        vars(prepare.parse_args(["--max_tokens", "7", "--pii_allow", "a"]))
    defaults = prepare.parse_args([])
    assert defaults.max_file_mb == 1024.0 and type(defaults.max_file_mb) is float and defaults.input_dir is None

    def described(candidate: Any) -> dict[str, Any]:
        return {**vars(candidate), "type": candidate.type.__name__}

    assert [described(a) for a in prepare.contract.ARGUMENTS] == [described(a) for a in arguments("prepare")]


# ---------------------------------------------------------------- the deploy step

def _deploy_step_argv(definition: dict[str, Any], name: str) -> list[Any]:
    """A deploy step's container arguments, also inside the production condition's branch."""
    def steps(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [inner for step in listed
                for inner in [step, *steps(step["Arguments"].get("IfSteps", []) if step["Type"] == "Condition" else [])]]

    step = next(step for step in steps(definition["Steps"]) if step["Name"] == name)
    return step["Arguments"]["AppSpecification"]["ContainerArguments"]


def test_deploy_steps_pass_declared_arguments_in_the_contract_s_order_and_spelling(moto_backend: Backend) -> None:
    definition = definition_json("deploy", CONFIG, moto_backend)
    declared = [candidate.name for candidate in arguments("deploy")]
    for name in ("DeployEndpoint", "DeployProduction"):
        argv = _deploy_step_argv(definition, name)
        passed = argv[::2]
        assert all(isinstance(item, str) and item.startswith("--") for item in passed), name
        names = [item[2:].replace("-", "_") for item in passed]
        assert set(names) <= set(declared) and len(names) == len(set(names)), name
        assert names == sorted(names, key=declared.index), name  # in declaration order
        assert passed == [flag("deploy", argument("deploy", item)) for item in names]  # --capture-percent
        assert {"model_package_arn", "endpoint_name", "instance_type", "role_arn"} <= set(names)  # the required ones
    production = _deploy_step_argv(definition, "DeployProduction")
    assert _parameter(production[production.index("--wait-interval-seconds") + 1]) == "BakeSeconds"


def test_deploy_config_defaults_agree_with_deploy_py_defaults() -> None:
    from pipelines.config import AutoScalingConfig, DeployConfig, FleetAlarmConfig, ProductionConfig

    def default(model: Any, field: str) -> Any:
        return model.model_fields[field].get_default(call_default_factory=True, validated_data={})

    same = {"instance_count": [(DeployConfig, "instance_count")],
            "capture_percent": [(DeployConfig, "capture_percent"), (ProductionConfig, "capture_percent")],
            "capture_kms_key_id": [(DeployConfig, "capture_kms_key_id")],
            "linear_step_percent": [(ProductionConfig, "linear_step_percent")],
            "termination_wait_seconds": [(ProductionConfig, "termination_wait_seconds")],
            "alarm_period_seconds": [(FleetAlarmConfig, "period_seconds")],
            "alarm_evaluation_periods": [(FleetAlarmConfig, "evaluation_periods")],
            "autoscaling_min": [(AutoScalingConfig, "min_instances")],
            "autoscaling_max": [(AutoScalingConfig, "max_instances")],
            "invocations_per_instance": [(AutoScalingConfig, "invocations_per_instance")]}
    for name, fields in same.items():
        for model, field in fields:
            assert default(model, field) == argument("deploy", name).default, (name, model.__name__)
    # on purpose not the same: a hand run does not shift traffic, bake long or create alarms unless asked
    assert (default(ProductionConfig, "traffic_routing"), argument("deploy", "traffic_routing").default) == ("CANARY", "")
    assert default(ProductionConfig, "traffic_routing") in argument("deploy", "traffic_routing").choices
    assert (default(ProductionConfig, "bake_seconds"), argument("deploy", "wait_interval_seconds").default) == (600, 300)
    # production's fleet is two instances with a one-instance canary: what SageMaker's blue/green needs
    assert (default(ProductionConfig, "instance_count"), argument("deploy", "instance_count").default) == (2, 1)
    assert (default(ProductionConfig, "canary_percent"), argument("deploy", "canary_percent").default) == (50, 10)
    assert argument("deploy", "alarm_max_error_rate").default is None is argument("deploy", "alarm_max_latency_ms").default


def test_deploy_py_parser_is_generated_and_accepts_both_spellings() -> None:
    import deploy
    import deploy.contract

    required = ["--model-package-arn", "p", "--endpoint-name", "e", "--instance-type", "t", "--role-arn", "r"]
    dashes = deploy.parse_args([*required, "--capture-percent", "5", "--traffic-routing", "CANARY",
                                "--alarm-max-error-rate", "-1", "--alarm-max-latency-ms", "20", "--allow-unapproved",
                                "--wait-timeout", "9", "--invocations-per-instance", "3", "--rollback-alarms", "a,b"])
    underscores = deploy.parse_args(["--model_package_arn", "p", "--endpoint_name", "e", "--instance_type", "t",
                                     "--role_arn", "r", "--capture_percent", "5", "--traffic_routing", "CANARY",
                                     "--alarm_max_error_rate", "-1", "--alarm_max_latency_ms", "20",
                                     "--allow_unapproved", "--wait_timeout", "9", "--invocations_per_instance", "3",
                                     "--rollback_alarms", "a,b"])
    assert dashes == underscores
    assert (dashes.capture_percent, dashes.alarm_max_error_rate, dashes.alarm_max_latency_ms, dashes.allow_unapproved,
            dashes.wait_timeout, dashes.invocations_per_instance) == (5, None, 20.0, True, 9.0, 3.0)
    defaults = deploy.parse_args(required)
    assert {name: getattr(defaults, name) for name in vars(defaults)} == \
        {**{candidate.name: candidate.default for candidate in arguments("deploy")},
         "model_package_arn": "p", "endpoint_name": "e", "instance_type": "t", "role_arn": "r"}
    for missing in range(0, len(required), 2):
        with pytest.raises(SystemExit):
            deploy.parse_args(required[:missing] + required[missing + 2:])

    def described(candidate: Any) -> dict[str, Any]:
        return {**vars(candidate), "type": candidate.type.__name__}

    assert [described(a) for a in deploy.contract.ARGUMENTS] == [described(a) for a in arguments("deploy")]


# ---------------------------------------------------------------- the resolve and smoke test steps

SMALL_STEPS = {"ResolveBaseline": "resolve", "ResolveApprovedModel": "resolve", "CheckSmokeSuites": "smoke_test",
               "SmokeTest": "smoke_test"}


def _small_step_arguments(definition: dict[str, Any], name: str) -> list[tuple[str, Any]]:
    """A resolve or smoke test step's container arguments as (argument name, value) pairs, in their order
    (a switch's value: True); every flag is asserted declared and spelled as the contract's."""
    argv = next(step for step in definition["Steps"] if step["Name"] == name)["Arguments"]["AppSpecification"][
        "ContainerArguments"]
    return _argument_pairs(SMALL_STEPS[name], argv, name)


def _argument_pairs(step: str, argv: list[Any], name: str) -> list[tuple[str, Any]]:
    """`argv` as (argument name, value) pairs of `step`'s contract (a switch's value: True), in their order;
    every flag is asserted declared and spelled as the contract's."""
    pairs: list[tuple[str, Any]] = []
    while argv:
        passed, *argv = argv
        declared = argument(step, passed.removeprefix("--").replace("-", "_"))
        assert passed == flag(step, declared), name  # --model-package-group
        if declared.action == "store_true":
            pairs.append((declared.name, True))
        else:
            value, *argv = argv
            pairs.append((declared.name, value))
    return pairs


@pytest.mark.parametrize("name", sorted(SMALL_STEPS))
def test_resolve_and_smoke_steps_pass_declared_arguments_in_the_contract_s_order(
        name: str, training: dict[str, Any], moto_backend: Backend) -> None:
    definition = training if name == "ResolveBaseline" else definition_json("deploy", CONFIG, moto_backend)
    step_name = SMALL_STEPS[name]
    pairs = _small_step_arguments(definition, name)
    names = [passed for passed, _ in pairs]
    declared = [candidate.name for candidate in arguments(step_name)]
    assert names == sorted(names, key=declared.index), name  # declaration order (a repeated flag stays together)
    assert {candidate.name for candidate in arguments(step_name) if candidate.required} <= set(names)
    for candidate in configured(step_name):  # the config's values, as config_argv passes them
        passed = [value for passed, value in pairs if passed == candidate.name]
        value = configured_value(CONFIG, candidate)
        assert passed == ([str(item) for item in value] if candidate.action == "append" else [str(value)]), candidate.name
    # the same arguments, the pipeline's values replaced by strings, go through the step's own parser
    parse_args = importlib.import_module(step_name).parse_args
    argv = [str(item) if not isinstance(item, dict) else "1" for item in
            next(s for s in definition["Steps"] if s["Name"] == name)["Arguments"]["AppSpecification"]["ContainerArguments"]]
    parsed = parse_args(argv)
    assert parsed.output_dir is not None and (name != "ResolveApprovedModel" or parsed.require_approved)
    assert name != "CheckSmokeSuites" or (parsed.check_only and parsed.prompt == list(CONFIG.deploy.smoke_prompts))


def test_resolve_and_smoke_test_parsers_are_generated_and_accept_both_spellings() -> None:
    import resolve
    import smoke_test

    for step, module in (("resolve", resolve), ("smoke_test", smoke_test)):
        contract = importlib.import_module(f"{step}.contract")
        assert [vars(a) for a in contract.ARGUMENTS] == [vars(a) for a in arguments(step)]
    dashes = resolve.parse_args(["--model-package-group", "g", "--fallback-model-uri", "m", "--fallback-replay-uri", "r",
                                 "--output-dir", "o", "--require-approved"])
    underscores = resolve.parse_args(["--model_package_group", "g", "--fallback_model_uri", "m",
                                      "--fallback_replay_uri", "r", "--output_dir", "o", "--require_approved"])
    assert dashes == underscores and dashes.require_approved and dashes.model_package_group == "g"
    defaults = resolve.parse_args(["--model-package-group", "g"])
    assert not defaults.require_approved and defaults.fallback_model_uri is None
    assert defaults.output_dir == step_contract("resolve").OUTPUT_DIR
    dashes = smoke_test.parse_args(["--endpoint-name", "e", "--prompt", "a", "--prompt", "b", "--max-new-tokens", "4",
                                    "--benchmarks-dir", "b", "--suites", "x", "--benchmark-max-new-tokens", "8",
                                    "--batch-size", "2", "--gate-metric", "m", "--gate-threshold", "0.5",
                                    "--data-dir", "d", "--check-only", "--output-dir", "o"])
    underscores = smoke_test.parse_args(["--endpoint_name", "e", "--prompt", "a", "--prompt", "b", "--max_new_tokens", "4",
                                         "--benchmarks_dir", "b", "--suites", "x", "--benchmark_max_new_tokens", "8",
                                         "--batch_size", "2", "--gate_metric", "m", "--gate_threshold", "0.5",
                                         "--data_dir", "d", "--check_only", "--output_dir", "o"])
    assert dashes == underscores and dashes.prompt == ["a", "b"] and dashes.check_only
    assert (dashes.benchmarks_dir, dashes.data_dir, dashes.output_dir) == (Path("b"), Path("d"), Path("o"))
    assert (dashes.max_new_tokens, dashes.benchmark_max_new_tokens, dashes.gate_threshold) == (4, 8, 0.5)
    defaults = smoke_test.parse_args(["--endpoint-name", "e", "--prompt", "a"])
    assert not defaults.check_only and defaults.benchmarks_dir is None and defaults.gate_metric == ""
    assert defaults.output_dir == Path(step_contract("smoke_test").OUTPUT_DIR)
    for missing in (["--prompt", "a"], ["--endpoint-name", "e"]):
        with pytest.raises(SystemExit):
            smoke_test.parse_args(missing)


def test_config_argv_passes_a_switch_as_the_bare_flag() -> None:
    from pipelines.step_contracts import config_argv

    passed = config_argv("resolve", CONFIG, {"require_approved": True, "output_dir": "o"})
    assert passed == ["--model-package-group", CONFIG.model.model_package_group, "--output-dir", "o",
                      "--require-approved"]
    assert "--require-approved" not in config_argv("resolve", CONFIG, {"require_approved": False})


MONITOR_STEPS = {"MonitoringBaseline": ("deploy", "baseline"), "MonitorTraffic": ("monitor", "check")}


def _monitor_step_argv(definition: dict[str, Any], name: str) -> list[Any]:
    return next(step for step in definition["Steps"] if step["Name"] == name)["Arguments"]["AppSpecification"][
        "ContainerArguments"]


def _monitor_step_arguments(definition: dict[str, Any], name: str) -> list[tuple[str, Any]]:
    """A monitor step's container arguments after its subcommand as (argument name, value) pairs of that
    subcommand's arguments."""
    subcommand, *argv = _monitor_step_argv(definition, name)
    assert subcommand == MONITOR_STEPS[name][1]
    return _argument_pairs(f"monitor:{subcommand}", argv, name)


@pytest.mark.parametrize("name", sorted(MONITOR_STEPS))
def test_monitor_steps_pass_declared_arguments_in_the_contract_s_order(name: str, moto_backend: Backend) -> None:
    import monitor

    definition = definition_json(MONITOR_STEPS[name][0], CONFIG, moto_backend)
    step = f"monitor:{MONITOR_STEPS[name][1]}"
    pairs = _monitor_step_arguments(definition, name)
    names = [passed for passed, _ in pairs]
    declared = [candidate.name for candidate in arguments(step)]
    assert names == sorted(names, key=declared.index), name  # declaration order (a repeated flag stays together)
    assert {candidate.name for candidate in arguments(step) if candidate.required} <= set(names)
    for candidate in configured(step):  # the config's value, or the pipeline parameter named after the argument
        passed = dict(pairs)[candidate.name]
        if candidate.parameter:
            assert _parameter(passed) == parameter_name(candidate), candidate.name
        else:
            assert passed == str(configured_value(CONFIG, candidate)), candidate.name
    # the same arguments, the pipeline's values replaced by strings, go through the step's own parser
    parsed = monitor.parse_args([str(item) if not isinstance(item, dict) else "1"
                                 for item in _monitor_step_argv(definition, name)])
    assert parsed.mode == MONITOR_STEPS[name][1] and parsed.output_dir is not None
    assert name != "MonitorTraffic" or (parsed.create_alarm and parsed.namespace == CONFIG.deploy.monitoring.namespace)


def test_monitoring_baseline_passes_one_threshold_flag_per_configured_threshold(moto_backend: Backend) -> None:
    import monitor

    thresholds = {"outlier_quantile": 0.1, "min_rows": 50.0}
    monitoring = CONFIG.deploy.monitoring.model_copy(update={"thresholds": thresholds})
    config = CONFIG.model_copy(update={"deploy": CONFIG.deploy.model_copy(update={"monitoring": monitoring})})
    argv = _monitor_step_argv(definition_json("deploy", config, moto_backend), "MonitoringBaseline")
    assert argv == ["baseline", "--train-dir", "/opt/ml/processing/input/train",
                    "--output-dir", "/opt/ml/processing/output/baseline",
                    "--threshold", "min_rows=50.0", "--threshold", "outlier_quantile=0.1"]
    assert monitor.parse_args(argv).threshold == [("min_rows", 50.0), ("outlier_quantile", 0.1)]


def test_monitor_config_defaults_agree_with_monitor_py_defaults() -> None:
    from pipelines.config import MonitoringConfig

    for candidate in configured("monitor:check"):
        key = candidate.config.split(".")[-1]
        if candidate.config.startswith("deploy.monitoring."):
            assert MonitoringConfig.model_fields[key].default == candidate.default, candidate.config


def test_monitor_py_parser_is_generated_and_accepts_both_spellings() -> None:
    import monitor

    contract = importlib.import_module("monitor.contract")
    for subcommand, (_, declared) in contract.SUBCOMMANDS.items():
        def described(items: Any) -> list[dict[str, Any]]:  # a parsing function loaded twice: compared by name
            return [{**vars(a), "type": a.type.__qualname__} for a in items]

        assert described(declared) == described(arguments(f"monitor:{subcommand}"))
    assert set(contract.SUBCOMMANDS) == {"baseline", "check"}
    dashes = monitor.parse_args(["baseline", "--train-dir", "t", "--threshold", "min_rows=5", "--reference-size", "3",
                                 "--seed", "2", "--output-dir", "o"])
    underscores = monitor.parse_args(["baseline", "--train_dir", "t", "--threshold", "min_rows=5",
                                      "--reference_size", "3", "--seed", "2", "--output_dir", "o"])
    assert dashes == underscores and dashes.threshold == [("min_rows", 5.0)] and dashes.reference_size == 3
    defaults = monitor.parse_args(["baseline", "--train-dir", "t"])
    assert defaults.threshold == [] and defaults.output_dir == contract.OUTPUT_DIR and defaults.reference_size == 2000
    dashes = monitor.parse_args(["check", "--baseline-dir", "b", "--capture-dir", "c", "--endpoint-name", "e",
                                 "--variant", "v", "--since-hours", "3", "--namespace", "n", "--no-cloudwatch",
                                 "--create-alarm", "--fail-on-violation", "--seed", "4", "--output-dir", "o"])
    underscores = monitor.parse_args(["check", "--baseline_dir", "b", "--capture_dir", "c", "--endpoint_name", "e",
                                      "--variant", "v", "--since_hours", "3", "--namespace", "n", "--no_cloudwatch",
                                      "--create_alarm", "--fail_on_violation", "--seed", "4", "--output_dir", "o"])
    assert dashes == underscores and dashes.no_cloudwatch and dashes.create_alarm and dashes.fail_on_violation
    assert (dashes.baseline_dir, dashes.capture_dir, dashes.since_hours) == (Path("b"), Path("c"), 3.0)
    defaults = monitor.parse_args(["check", "--baseline-dir", "b", "--capture-dir", "c", "--endpoint-name", "e"])
    assert (defaults.variant, defaults.since_hours, defaults.namespace) == ("AllTraffic", 24.0, "continuum/Monitoring")
    assert not (defaults.no_cloudwatch or defaults.create_alarm or defaults.fail_on_violation)
    for bad in (["baseline"], ["baseline", "--train-dir", "t", "--threshold", "nope=1"], ["check", "--baseline-dir", "b"],
                []):
        with pytest.raises(SystemExit):
            monitor.parse_args(bad)
