"""`continuum deploy-trigger`: deploy automatically when a model version is Approved (EventBridge, AWS)."""
from __future__ import annotations

import argparse
import json
from typing import Callable

from pipelines.cli_support import parse_parameters
from pipelines.config import load_config


def cmd_deploy_trigger(args: argparse.Namespace) -> int:
    import boto3

    from pipelines.deploy.trigger import put_deploy_trigger

    config = load_config(args.config)
    session = boto3.Session(region_name=config.project.region, profile_name=args.profile)
    account = session.client("sts").get_caller_identity()["Account"]
    result = put_deploy_trigger(session.client("events"), config, account, args.events_role_arn,
                                parse_parameters(args.param), enabled=not args.disabled)
    print(json.dumps(result, indent=2))
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("deploy-trigger", cmd_deploy_trigger,
                         "create/update the EventBridge rule: an Approved version starts the deploy pipeline (AWS)")
    parser.add_argument("--events-role-arn", required=True, help="role EventBridge assumes to start the pipeline")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="deploy pipeline parameter")
    parser.add_argument("--disabled", action="store_true")
    parser.add_argument("--profile")
