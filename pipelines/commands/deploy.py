"""`continuum deploy`: run the deploy pipeline for the latest Approved version."""
from __future__ import annotations

import argparse
from typing import Callable

from pipelines.cli_support import add_target, backend_for, parse_parameters, report_outcome
from pipelines.config import load_config


def cmd_deploy(args: argparse.Namespace) -> int:
    from pipelines.execution import run_staged

    config = load_config(args.config)
    if args.aws:
        from pipelines.deploy.aws_readiness import check_for_aws

        check_for_aws(config, training=False)
    return report_outcome(run_staged("deploy", config, backend_for(args, config), parse_parameters(args.param),
                                     wait=not args.no_wait))


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    deploy = add_command("deploy", cmd_deploy, "run the deploy pipeline for the latest Approved version")
    add_target(deploy)
    deploy.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    deploy.add_argument("--no-wait", action="store_true")
