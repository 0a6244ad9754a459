"""`continuum`: the command line of the control plane (local runtime by default, `--aws` for SageMaker)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from pipelines.cli_support import add_target, backend_for, parse_parameters
from pipelines.config import DEMO_CONFIG_PATH, ConfigError, config_path_for, load_config


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo.run_demo import format_summary, run_demo

    summary = run_demo(Path(args.home) if args.home else None)
    print(format_summary(summary))
    return 0 if summary.succeeded else 1


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.execution import run_pipeline
    from pipelines.staging import stage_training_inputs

    source = args.data if not args.data or "://" in args.data else str(Path(args.data).resolve())
    config = load_config(args.config, {"data.source": source} if source else None)
    backend = backend_for(args, config)
    parameters = parse_parameters(args.param)
    if args.pipeline == "training":
        demo_model = None
        if backend.is_local and config.model.base_model is None:
            from pipelines.demo.run_demo import tiny_base_model_builder

            demo_model = tiny_base_model_builder(backend.home)  # type: ignore[arg-type]
        staged = stage_training_inputs(backend, config, demo_model)
        parameters = {**staged.parameters(), **parameters}
    else:
        _stage_suites(backend, config)
    return _report(run_pipeline(args.pipeline, config, backend, parameters, wait=not args.no_wait))


def _report(outcome: Any) -> int:
    """Print a run's outcome; exit 0 when it succeeded (or, on AWS without waiting, started)."""
    print(f"{outcome.pipeline_name} {outcome.execution_id}: {outcome.status}")
    if outcome.failure_reason:
        print(f"reason: {outcome.failure_reason}")
    return 0 if outcome.status in ("Succeeded", "Executing") else 1


def cmd_definition(args: argparse.Namespace) -> int:
    from pipelines.definitions import definition_json

    config = load_config(args.config)
    _print_json(definition_json(args.pipeline, config, backend_for(args, config)))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from pipelines.registry_ops import find_version, list_versions, set_approval

    config = load_config(args.config)
    sagemaker = backend_for(args, config).client("sagemaker")
    group = config.model.model_package_group
    if args.action == "list":
        rows = [version.row() for version in list_versions(sagemaker, group)]
        if not rows:
            print(f"no model versions in {group}")
        for row in rows:
            print(f"v{row['version']:<4} {row['status']:<22} {row['created']:<26} data {row['data_version']}  {row['arn']}")
        return 0
    version = find_version(sagemaker, group, args.version)
    status = "Approved" if args.action == "approve" else "Rejected"
    set_approval(sagemaker, version.arn, status, args.reason or f"{status.lower()} with continuum models {args.action}")
    print(f"version {version.version}: {status}")
    return 0


def _stage_suites(backend: Any, config: Any) -> None:
    """The deploy pipeline's smoke test reads the same staged suites as the training gate: stage the list."""
    from pipelines.staging import ensure_bucket, stage_benchmarks

    ensure_bucket(backend, config.project.bucket)
    stage_benchmarks(backend, config)


def cmd_deploy(args: argparse.Namespace) -> int:
    from pipelines.execution import run_pipeline

    config = load_config(args.config)
    backend = backend_for(args, config)
    _stage_suites(backend, config)
    return _report(run_pipeline("deploy", config, backend, parse_parameters(args.param), wait=not args.no_wait))


def cmd_invoke(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    runtime = backend_for(args, config).client("sagemaker-runtime")
    body = {"inputs": args.prompt, "parameters": {"max_new_tokens": args.max_new_tokens}}
    started = time.perf_counter()
    response = runtime.invoke_endpoint(
        EndpointName=args.endpoint or config.deploy.endpoint_name,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps(body),
    )
    answer = json.loads(response["Body"].read())
    print(json.dumps(answer, indent=2))
    print(f"({(time.perf_counter() - started) * 1000:.0f} ms, variant {response.get('InvokedProductionVariant', '?')})",
          file=sys.stderr)
    return 0


def cmd_schedule(args: argparse.Namespace) -> int:
    import boto3

    from pipelines.schedule import put_training_schedule

    config = load_config(args.config)
    session = boto3.Session(region_name=config.project.region, profile_name=args.profile)
    account = session.client("sts").get_caller_identity()["Account"]
    result = put_training_schedule(
        session.client("events"),
        config,
        account,
        args.expression,
        args.events_role_arn,
        parse_parameters(args.param),
        enabled=not args.disabled,
    )
    _print_json(result)
    return 0


def cmd_teardown(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    sagemaker = backend_for(args, config).client("sagemaker")
    names = [e["EndpointName"] for page in sagemaker.get_paginator("list_endpoints").paginate() for e in page["Endpoints"]]
    for name in names:
        sagemaker.delete_endpoint(EndpointName=name)
        print(f"deleted endpoint {name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="continuum", description=__doc__)
    parser.add_argument("--home", help="local home (default $CONTINUUM_HOME or ./.continuum)")
    parser.add_argument("--verbose", action="store_true",
                        help="steps also print debug lines, library warnings and progress bars ($CONTINUUM_VERBOSE=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=help_text, description=help_text)
        child.add_argument("--config", help="config YAML (default: $CONTINUUM_CONFIG, else ./continuum.yaml, "
                                            "else the demo's)")
        child.set_defaults(handler=handler)
        return child

    command("demo", cmd_demo, "one full round locally: train → gate → register → approve → deploy → invoke")

    run = command("run", cmd_run, "run a pipeline (stages the training inputs first)")
    add_target(run)
    run.add_argument("--pipeline", choices=["training", "deploy"], default="training")
    run.add_argument("--data", help="this round's data (a file, folder or s3:// prefix) instead of data.source")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline parameter override")
    run.add_argument("--no-wait", action="store_true", help="with --aws: return once started")

    definition = command("definition", cmd_definition, "print a pipeline definition JSON")
    definition.add_argument("pipeline", choices=["training", "deploy"])
    add_target(definition)

    models = command("models", cmd_models, "list, approve or reject model versions")
    models.add_argument("action", choices=["list", "approve", "reject"])
    models.add_argument("version", nargs="?", type=int, help="version number (default: the newest)")
    models.add_argument("--reason", default="")
    add_target(models)

    deploy = command("deploy", cmd_deploy, "run the deploy pipeline for the latest Approved version")
    add_target(deploy)
    deploy.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    deploy.add_argument("--no-wait", action="store_true")

    invoke = command("invoke", cmd_invoke, "send a prompt to the endpoint")
    invoke.add_argument("prompt")
    invoke.add_argument("--endpoint")
    invoke.add_argument("--max-new-tokens", type=int, default=32)
    add_target(invoke)

    schedule = command("schedule", cmd_schedule, "create/update the EventBridge rule for scheduled retraining (AWS)")
    schedule.add_argument("--expression", required=True, help="rate(7 days) or cron(0 3 ? * MON *)")
    schedule.add_argument("--events-role-arn", required=True, help="role EventBridge assumes to start the pipeline")
    schedule.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    schedule.add_argument("--disabled", action="store_true")
    schedule.add_argument("--profile")

    teardown = command("teardown", cmd_teardown, "delete the endpoints (local processes stop)")
    add_target(teardown)

    from pipelines.commands import command_modules

    for module in command_modules():
        module.register(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:  # the steps' processes inherit it (train.py --verbose defaults to it)
        os.environ["CONTINUUM_VERBOSE"] = "1"
    if args.command not in ("demo", "init") and hasattr(args, "config"):
        args.config = str(config_path_for(args.config))
        if Path(args.config) == DEMO_CONFIG_PATH and args.command in ("run", "deploy"):
            print(f"using the demo's config ({DEMO_CONFIG_PATH.name}): no ./continuum.yaml here "
                  "(`continuum init DIR --data PATH` writes one for your data)", file=sys.stderr)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except (LookupError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
