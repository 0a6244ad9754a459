"""`continuum rollback`: every stage back to the previous Approved version in one step; that version is rejected."""
from __future__ import annotations

import argparse
from typing import Callable

from pipelines.cli_support import add_target, backend_for, roll_back
from pipelines.config import load_config


def cmd_rollback(args: argparse.Namespace) -> int:
    """Standard update of each stage's endpoint to the previous (or --to-version) Approved version."""
    from pipelines.deploy.stages import select_stages

    config = load_config(args.config)
    return roll_back(backend_for(args, config), config, select_stages(config, args.stage), args.to_version,
                     args.reason, getattr(args, "profile", None))


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("rollback", cmd_rollback,
                         "every stage back to the previous Approved version; the serving version is rejected")
    parser.add_argument("--stage", action="append", choices=["staging", "production"],
                        help="only this stage (repeat for several; default: all)")
    parser.add_argument("--to-version", type=int, help="an older Approved version (default: the previous one)")
    parser.add_argument("--reason", default="")
    add_target(parser)
