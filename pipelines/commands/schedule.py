"""`continuum schedule`: create/update the EventBridge rule for scheduled retraining (AWS).

It stages what every run reads at the pipeline's defaults (suites, markers, base model) and upserts the training
pipeline first: each scheduled run then reads the data dropped under the incoming/ prefix."""
from __future__ import annotations

import argparse
import json
from typing import Callable

from pipelines.cli_support import parse_parameters
from pipelines.config import load_config


def cmd_schedule(args: argparse.Namespace) -> int:
    import boto3

    from pipelines.backend import Backend
    from pipelines.deploy.aws_readiness import check_for_aws
    from pipelines.execution import upsert
    from pipelines.schedule import put_training_schedule
    from pipelines.staging import stage_pipeline_inputs

    config = load_config(args.config)
    check_for_aws(config)
    session = boto3.Session(region_name=config.project.region, profile_name=args.profile)
    account = session.client("sts").get_caller_identity()["Account"]
    backend = Backend("aws", session)
    stage_pipeline_inputs(backend, config)  # what every scheduled run reads at its parameters' defaults
    upsert("training", config, backend)  # the rule starts this definition (InputDataUri: the incoming/ prefix)
    result = put_training_schedule(
        session.client("events"),
        config,
        account,
        args.expression,
        args.events_role_arn,
        parse_parameters(args.param),
        enabled=not args.disabled,
    )
    print(json.dumps(result, indent=2, default=str))
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    schedule = add_command("schedule", cmd_schedule,
                           "create/update the EventBridge rule for scheduled retraining (AWS)")
    schedule.add_argument("--expression", required=True, help="rate(7 days) or cron(0 3 ? * MON *)")
    schedule.add_argument("--events-role-arn", required=True, help="role EventBridge assumes to start the pipeline")
    schedule.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    schedule.add_argument("--disabled", action="store_true")
    schedule.add_argument("--profile")
