"""`continuum rollback`: back to the previous Approved version."""
from __future__ import annotations

import argparse
import time
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


def cmd_rollback(args: argparse.Namespace) -> int:
    """Reject the serving version and redeploy: the deploy pipeline then takes the previous Approved one."""
    from pipelines.execution import run_pipeline
    from pipelines.registry_ops import list_versions, set_approval

    config = load_config(args.config)
    backend = backend_for(args, config)
    sagemaker = backend.client("sagemaker")
    approved = list_versions(sagemaker, config.model.model_package_group, "Approved")
    if len(approved) < 2:
        print(f"rollback needs two Approved versions; {config.model.model_package_group} has {len(approved)}")
        return 1
    started = time.perf_counter()
    current, previous = approved[0], approved[1]
    set_approval(sagemaker, current.arn, "Rejected", args.reason or "rolled back with continuum rollback")
    outcome = run_pipeline("deploy", config, backend, {}, wait=True)
    print(f"rolled back from version {current.version} to {previous.version}: {outcome.status} "
          f"in {time.perf_counter() - started:.1f}s")
    return 0 if outcome.succeeded else 1


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("rollback", cmd_rollback, "reject the serving version and redeploy the previous one")
    parser.add_argument("--reason", default="")
    add_target(parser)
