"""The steps' contracts (steps/<step>/contract.py), read by path: the one declaration of each step's arguments
that the config schema (defaults), the pipeline parameters (names) and the step definitions (arguments) follow.

A contract imports only the standard library and steps/common/contract.py; `pipelines/` never imports step
code as a package, so both files are loaded by path (pipelines/local/step_code.py).
"""
from __future__ import annotations

import sys
from functools import cache, reduce
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
    """The step's arguments (common.contract.Argument), in declaration order."""
    return tuple(step_contract(step).ARGUMENTS)


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


def config_argv(step: str, config: Any) -> list[str]:
    """`--name value` for every argument whose config key is set in `config` (a config or a nested mapping):
    how the pipeline passes them, for running a step by hand or in a test with a config's values."""
    argv: list[str] = []
    for candidate in configured(step):
        try:
            value = config_value(config, candidate.config)
        except (KeyError, AttributeError):
            continue
        if value is not None:
            argv += [f"--{candidate.name}", str(value).lower() if isinstance(value, bool) else str(value)]
    return argv
