"""`continuum definition {training,deploy}`: print a pipeline definition JSON (the document `upsert` sends)."""
from __future__ import annotations

import argparse
import json
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


def cmd_definition(args: argparse.Namespace) -> int:
    from pipelines.definitions import definition_json

    config = load_config(args.config)
    print(json.dumps(definition_json(args.pipeline, config, backend_for(args, config)), indent=2, default=str))
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    definition = add_command("definition", cmd_definition, "print a pipeline definition JSON")
    definition.add_argument("pipeline", choices=["training", "deploy"])
    add_target(definition)
