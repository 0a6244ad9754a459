"""`continuum rollback`: every stage back to the previous Approved version in one step; that version is rejected."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Callable

from pipelines.backend import Backend
from pipelines.cli_support import add_target, backend_for
from pipelines.config import Config, load_config

if TYPE_CHECKING:
    from pipelines.deploy.stages import Stage


def cmd_rollback(args: argparse.Namespace) -> int:
    """Standard update of each stage's endpoint to the previous (or --to-version) Approved version."""
    from pipelines.deploy.stages import select_stages

    config = load_config(args.config)
    return roll_back(backend_for(args, config), config, select_stages(config, args.stage), args.to_version,
                     args.reason, getattr(args, "profile", None))


def roll_back(backend: Backend, config: Config, stages: list[Stage], to_version: int | None, reason: str,
              profile: str | None = None) -> int:
    """Roll the stages back and print the outcome (also `continuum monitor --on-drift rollback`)."""
    from pipelines.deploy.rollback import RollbackError, rollback

    try:
        result = rollback(backend, config, stages, to_version, reason, profile)
    except RollbackError as error:
        print(f"rollback: {error}")
        return 1
    stages_text = ", ".join(f"{name} ({info['status']})" for name, info in result.stages.items())
    print(f"rolled back {stages_text} from version {result.from_version} to {result.to_version} in {result.seconds:.1f}s; "
          f"version {result.from_version} is Rejected")
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("rollback", cmd_rollback,
                         "every stage back to the previous Approved version; the serving version is rejected")
    parser.add_argument("--stage", action="append", choices=["staging", "production"],
                        help="only this stage (repeat for several; default: all)")
    parser.add_argument("--to-version", type=int, help="an older Approved version (default: the previous one)")
    parser.add_argument("--reason", default="")
    add_target(parser)
