"""`continuum rollback`: every stage back to the previous Approved version in one step; that version is rejected."""
from __future__ import annotations

import argparse
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


def cmd_rollback(args: argparse.Namespace) -> int:
    """Standard update of each stage's endpoint to the previous (or --to-version) Approved version."""
    from pipelines.deploy.rollback import RollbackError, rollback
    from pipelines.deploy.stages import select_stages

    config = load_config(args.config)
    backend = backend_for(args, config)
    try:
        result = rollback(backend, config, select_stages(config, args.stage), args.to_version, args.reason,
                          getattr(args, "profile", None))
    except RollbackError as error:
        print(f"rollback: {error}")
        return 1
    stages = ", ".join(f"{name} ({info['status']})" for name, info in result.stages.items())
    print(f"rolled back {stages} from version {result.from_version} to {result.to_version} in {result.seconds:.1f}s; "
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
