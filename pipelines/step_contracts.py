"""The steps' contracts (steps/<step>/contract.py), read by path: the one declaration of each step's arguments
that the config schema (defaults), the pipeline parameters (names) and the step definitions (arguments) follow.

A contract imports only the standard library and steps/common/contract.py; `pipelines/` never imports step
code as a package, so both files are loaded by path (pipelines/local/step_code.py).
"""
from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import cache, reduce
from pathlib import PurePath
from types import ModuleType
from typing import Any

from pipelines.local.step_code import step_module

CONTRACT_BASE = "common/contract.py"


@cache
def step_contract(step: str) -> ModuleType:
    """steps/<step>/contract.py as a module; its `from common.contract import ...` gets the by-path base."""
    base = step_module(CONTRACT_BASE)
    saved = sys.modules.get("common.contract")
    sys.modules["common.contract"] = base  # the leaf module is all `from common.contract import X` looks up
    try:
        return step_module(f"{step}/contract.py")
    finally:
        if saved is None:
            del sys.modules["common.contract"]
        else:
            sys.modules["common.contract"] = saved


def arguments(step: str) -> tuple[Any, ...]:
    """The step's arguments (common.contract.Argument), in declaration order; `monitor:check`: those of the
    step's subcommand `check` (its contract's SUBCOMMANDS: subcommand → (help, arguments))."""
    name, _, subcommand = step.partition(":")
    if subcommand:
        return tuple(step_contract(name).SUBCOMMANDS[subcommand][1])
    return tuple(step_contract(name).ARGUMENTS)


def argument(step: str, name: str) -> Any:
    found = [candidate for candidate in arguments(step) if candidate.name == name]
    if not found:
        raise KeyError(f"steps/{step}/contract.py declares no argument {name!r}")
    return found[0]


def configured(step: str) -> tuple[Any, ...]:
    """The arguments that come from the config (the ones the pipeline passes), in declaration order."""
    return tuple(candidate for candidate in arguments(step) if candidate.config is not None)


def config_default(step: str, key: str) -> Any:
    """The default of the config key `key` (e.g. "training.lora.r"): the step argument's that reads it."""
    found = [candidate for candidate in configured(step) if candidate.config == key]
    if not found:
        raise KeyError(f"no argument of steps/{step}/contract.py comes from the config key {key!r}")
    return found[0].default


def parameter_name(step_argument: Any) -> str:
    """The pipeline parameter's name of an argument (`lora_r` → `LoraR`, `strategy` → `TrainingStrategy`)."""
    return step_module(CONTRACT_BASE).parameter_name(step_argument)


def config_value(config: Any, key: str) -> Any:
    """The value at a dotted key of a config object or a nested mapping."""
    return reduce(lambda node, part: node[part] if isinstance(node, dict) else getattr(node, part), key.split("."), config)


def configured_value(config: Any, step_argument: Any) -> Any:
    """The config's value for an argument: at its config key, else (None there) at its `fallback` key."""
    value = config_value(config, step_argument.config)
    if value is None and step_argument.fallback is not None:
        value = config_value(config, step_argument.fallback)
    return value


def flag(step: str, step_argument: Any) -> str:
    """The flag the pipeline passes: `--lora_r` (train), `--max-tokens` (prepare: its FLAG_SEPARATOR)."""
    separator = getattr(step_contract(step.partition(":")[0]), "FLAG_SEPARATOR", "_")
    return "--" + step_argument.name.replace("_", separator)


def config_argv(step: str, config: Any, values: Mapping[str, Any] | None = None) -> list[str]:
    """`--name value` for every argument whose config key is set in `config` (a config or a nested mapping),
    in declaration order: how the pipeline passes them, for running a step by hand or in a test with a config's
    values. `values` (argument name → value) come first where given: a container folder, a pipeline
    parameter (passed as it is), a list for a repeated flag, a boolean for a switch (store_true: the bare flag
    or nothing). None, an empty list and an empty mapping pass nothing; lists and mappings are comma-joined
    (`a,b`, `k=v,...`)."""
    values = values or {}
    unknown = sorted(set(values) - {candidate.name for candidate in arguments(step)})
    if unknown:
        raise KeyError(f"steps/{step}/contract.py declares no argument {', '.join(unknown)}")
    render = step_module(CONTRACT_BASE).render
    argv: list[str] = []
    for candidate in arguments(step):
        if candidate.name in values:
            value = values[candidate.name]
        elif candidate.config is None:
            continue
        else:
            try:
                value = configured_value(config, candidate)
            except (KeyError, AttributeError):
                continue
        if value is None or (isinstance(value, (list, tuple, dict)) and not value):
            continue
        if candidate.action == "store_true":  # a switch: the bare flag when true, nothing when false
            argv += [flag(step, candidate)] if value else []
            continue
        if candidate.action == "append" and isinstance(value, (list, tuple)):
            for item in value:
                argv += [flag(step, candidate), str(item)]
            continue
        if isinstance(value, (str, int, float, list, tuple, dict, PurePath)):
            try:
                value = render(value)
            except ValueError as err:
                raise ValueError(f"{candidate.config or candidate.name}: {err}") from None
        argv += [flag(step, candidate), value]
    return argv
