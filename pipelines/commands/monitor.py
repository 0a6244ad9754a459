"""`continuum monitor`: check an endpoint's captured traffic for drift now (run) or on a schedule (schedule)."""
from __future__ import annotations

import argparse
import json
from typing import Callable

from pipelines import s3_layout
from pipelines.backend import Backend
from pipelines.cli_support import add_target, backend_for, parse_parameters, report_outcome, roll_back
from pipelines.config import Config, load_config


def cmd_monitor(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from pipelines.sdk import prepare_sdk_environment

    prepare_sdk_environment()  # before the SDK's first import: quiet, no telemetry
    if args.action == "schedule":
        return _schedule(args, config)
    from pipelines.deploy.stage_status import latest_drift_report
    from pipelines.execution import run_pipeline

    backend = backend_for(args, config)
    parameters = parse_parameters(args.param)
    if args.endpoint:
        parameters["MonitoredEndpointName"] = args.endpoint
    outcome = run_pipeline("monitor", config, backend, parameters)
    print(f"{outcome.pipeline_name} {outcome.execution_id}: {outcome.status}")
    if not outcome.succeeded:
        print(f"reason: {outcome.failure_reason}")
        return 1
    if outcome.directory is None:  # started on SageMaker: its report and alarm come later
        return 0
    endpoint = parameters.get("MonitoredEndpointName") or config.deploy.monitored_endpoint
    report = latest_drift_report(backend.client("s3"),
                                 f"{s3_layout.monitoring_reports_uri(config, endpoint)}/{outcome.execution_id}")
    if report is None:
        raise FileNotFoundError(f"the monitor run {outcome.execution_id} wrote no report.json")
    print(f"verdict: {report['verdict']} over {report['rows']} prompts; violations: "
          f"{', '.join(report['violations']) or 'none'}")
    from pipelines.notify import notify_alarms, notify_drift

    notify_drift(backend, config, report)
    notify_alarms(backend, config)
    return _react(args, config, backend, report["verdict"])


def _react(args: argparse.Namespace, config: Config, backend: Backend, verdict: str) -> int:
    """--on-drift: retrain (the training pipeline, as `continuum run`) or roll back, when the verdict is drift."""
    if verdict != "drift" or args.on_drift == "none":
        return 0
    print(f"drift detected: {args.on_drift}")
    if args.on_drift == "retrain":
        from pipelines.execution import run_staged

        return report_outcome(run_staged("training", config, backend))
    from pipelines.deploy.stages import select_stages

    return roll_back(backend, config, select_stages(config, None), None, "drift detected by continuum monitor")


def _schedule(args: argparse.Namespace, config: Config) -> int:
    import boto3

    from pipelines.deploy.monitor_pipeline import put_monitor_schedule
    from pipelines.execution import upsert

    if not args.events_role_arn:
        raise ValueError("monitor schedule needs --events-role-arn (the role EventBridge assumes)")
    backend = backend_for(argparse.Namespace(aws=True, profile=args.profile), config)
    upsert("monitor", config, backend)
    session = boto3.Session(region_name=config.project.region, profile_name=args.profile)
    account = session.client("sts").get_caller_identity()["Account"]
    result = put_monitor_schedule(session.client("events"), config, account,
                                  args.expression or config.deploy.monitoring.schedule, args.events_role_arn,
                                  retrain_on_violation=args.retrain_on_violation, enabled=not args.disabled)
    print(json.dumps(result, indent=2))
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("monitor", cmd_monitor, "drift monitoring of captured traffic: run now, or schedule (AWS)")
    parser.add_argument("action", choices=["run", "schedule"])
    parser.add_argument("--endpoint", help="endpoint to check (default: production, else staging)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="monitor pipeline parameter")
    parser.add_argument("--on-drift", choices=["none", "retrain", "rollback"], default="none",
                        help="run: what to do locally when the verdict is drift")
    parser.add_argument("--expression", help="schedule: rate(...) or cron(...) (default: deploy.monitoring.schedule)")
    parser.add_argument("--events-role-arn", help="schedule: role EventBridge assumes to start pipelines")
    parser.add_argument("--retrain-on-violation", action="store_true",
                        help="schedule: start the training pipeline when the violation alarm fires")
    parser.add_argument("--disabled", action="store_true")
    add_target(parser)
