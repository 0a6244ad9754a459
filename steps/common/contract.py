"""A step's contract: its arguments declared once (name, type, default, allowed values, help, config key).

Each step declares a tuple of `Argument`s in `steps/<step>/contract.py` (standard library and this module
only). The step's argument parser is built from it (`build_parser`), and the control plane reads the same
file by path (pipelines/step_contracts.py) for the config schema's defaults and the pipeline's parameters.

One setting, three spellings, mapped mechanically:
    argument `lora_r`  →  flag `--lora_r` (also `--lora-r`)  →  pipeline parameter `LoraR`
    (CamelCase of the name, after the argument's `qualifier` where the bare name would be ambiguous
    among the pipeline's parameters: `strategy` → `TrainingStrategy`)  →  config key `training.lora.r`.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable


@dataclass(frozen=True)
class Argument:
    """One command-line argument of a step."""

    name: str  # snake_case; the flag is --name (also --name-with-dashes)
    type: Callable[[str], Any] = str
    default: Any = None
    choices: tuple[str, ...] | None = None
    help: str = ""
    config: str | None = None  # the config key it comes from (e.g. "training.lora.r"); None: not in the config
    env: str | None = None  # the environment variable that sets the default when it is set (container contract)
    group: str = ""  # the --help section
    parameter: bool = False  # overridable per execution: a pipeline parameter (name: parameter_name)
    qualifier: str = ""  # prefix of the parameter's name where the bare name would be ambiguous
    nargs: str | None = None
    const: Any = None
    metavar: str | None = None
    action: str | None = None  # e.g. "append": a flag given several times (--input-dir a --input-dir b)
    parameter_as: str = ""  # the parameter's name where it does not follow the rule (an older, public name)
    fallback: str | None = None  # the config key whose value the pipeline passes when `config`'s is None
    required: bool = False  # the step cannot run without it (no default)


def camel_case(name: str) -> str:
    """`lora_r` → `LoraR`, `l2sp_lambda` → `L2spLambda`."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def parameter_name(argument: Argument) -> str:
    """The pipeline parameter's name: the qualifier, then the argument's name in CamelCase (or `parameter_as`)."""
    return argument.parameter_as or argument.qualifier + camel_case(argument.name)


def flags(name: str, separator: str = "_") -> list[str]:
    """`--lora_r` and `--lora-r`: SageMaker passes hyperparameters as `--name value`, people type dashes.
    The spelling with `separator` comes first (the one --help and the pipeline show)."""
    spellings = [f"--{name.replace('_', separator)}", f"--{name}", f"--{name.replace('_', '-')}"]
    return list(dict.fromkeys(spellings))


def by_name(arguments: Iterable[Argument]) -> dict[str, Argument]:
    return {argument.name: argument for argument in arguments}


def typed_default(argument: Argument) -> Any:
    """The default in the argument's type where it is a number (`1024` for a float → 1024.0)."""
    if argument.type in (int, float) and argument.default is not None:
        return argument.type(argument.default)
    return argument.default


def build_parser(arguments: Iterable[Argument], description: str | None = None,
                 separator: str = "_") -> argparse.ArgumentParser:
    """An argparse parser with one option per argument, in sections by `group` (in declaration order);
    `separator`: the flags' spelling shown first (`-`: --max-tokens, also accepted as --max_tokens)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, arguments, separator)
    return parser


def build_subcommand_parser(subcommands: dict[str, tuple[str, Iterable[Argument]]], description: str | None = None,
                            separator: str = "_") -> argparse.ArgumentParser:
    """A parser whose first word picks a subcommand (`dest="mode"`, required): `subcommands` maps each name to its
    help text and its arguments."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode, (help_text, arguments) in subcommands.items():
        add_arguments(sub.add_parser(mode, help=help_text), arguments, separator)
    return parser


def add_arguments(parser: argparse.ArgumentParser, arguments: Iterable[Argument], separator: str = "_") -> None:
    """One option per argument on `parser` (build_parser's, or a subcommand's: `subparsers.add_parser(...)`)."""
    groups: dict[str, Any] = {}
    for argument in arguments:
        if argument.group not in groups:
            groups[argument.group] = parser.add_argument_group(argument.group) if argument.group else parser
        default = typed_default(argument)
        if argument.env:
            default = os.environ.get(argument.env) or default
        options: dict[str, Any] = {"dest": argument.name, "type": argument.type, "default": default,
                                   "help": argument.help or None}
        if argument.choices is not None:
            options["choices"] = argument.choices
        if argument.nargs is not None:
            options.update(nargs=argument.nargs, const=argument.const)
        if argument.metavar is not None:
            options["metavar"] = argument.metavar
        if argument.action is not None:
            options["action"] = argument.action
        if argument.action in ("store_true", "store_false"):
            del options["type"]  # a switch takes no value
        if argument.required:
            options["required"] = True
        groups[argument.group].add_argument(*flags(argument.name, separator), **options)


def render(value: Any) -> str:
    """A config value as a command-line string: booleans true/false, lists `a,b`, mappings `k=v,...` (sorted)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(_comma_free(str(item)) for item in value)
    if isinstance(value, dict):
        return ",".join(f"{key}={_comma_free(str(item))}" for key, item in sorted(value.items()))
    return str(value)


def _comma_free(text: str) -> str:
    if "," in text:
        raise ValueError(f"{text!r} contains a comma, which a comma-separated argument cannot carry")
    return text


def parse_list(text: str) -> tuple[str, ...]:
    """`a,b , c` → ("a", "b", "c")."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_bool(text: str) -> bool:
    """'true'/'false' (any case, also 1/0/yes/no), as SageMaker passes booleans."""
    lowered = str(text).strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
