"""`continuum`'s subcommands, one module each, found at start-up.

A module here defines `register(add_command)`, where `add_command(name, handler, help)` returns
the new subcommand's argparse parser (it already has `--config`); `handler(args) -> int` runs it.
`pipelines.cli_support.add_target` adds `--local/--aws/--profile`; `pipelines.cli_support.backend_for(args, config)`
gives the matching backend.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pipelines.demo  # noqa: F401 - registers the demo's data source (sample://round-N) for every command

# `continuum --help` lists a round's commands first, in the order a user runs them; the others follow by name.
ROUND = ("demo", "run", "definition", "models", "deploy", "invoke", "schedule", "teardown")


def _order(name: str) -> tuple[int, str]:
    return (ROUND.index(name), "") if name in ROUND else (len(ROUND), name)


def command_modules() -> list[ModuleType]:
    names = sorted((info.name for info in pkgutil.iter_modules(__path__)), key=_order)
    return [importlib.import_module(f"{__name__}.{name}") for name in names]
