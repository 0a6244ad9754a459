"""More `continuum` subcommands, one module each, found at start-up.

A module here defines `register(add_command)`, where `add_command(name, handler, help)` returns
the new subcommand's argparse parser (it already has `--config`); `handler(args) -> int` runs it.
`pipelines.cli_support.add_target` adds `--local/--aws/--profile`; `pipelines.cli_support.backend_for(args, config)`
gives the matching backend.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def command_modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{info.name}") for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)]
