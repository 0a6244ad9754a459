"""`continuum run [--local|--aws]`: stage a pipeline's inputs, then run it."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from pipelines.cli_support import add_target, backend_for, check_parameters, parse_parameters, report_outcome
from pipelines.config import load_config


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.execution import run_staged

    source = args.data if not args.data or "://" in args.data else str(Path(args.data).resolve())
    config = load_config(args.config, {"data.source": source} if source else None)
    check_parameters(args.pipeline, config, parse_parameters(args.param))  # before anything is staged
    if args.aws:
        from pipelines.deploy.aws_readiness import check_for_aws

        check_for_aws(config, training=args.pipeline == "training")
    if args.resume or args.step:  # RetryPipelineExecution / SelectiveExecutionConfig: nothing new to stage
        from pipelines.execution import resume, run_selected

        backend = backend_for(args, config)
        outcome = (resume(config, backend, args.resume, wait=not args.no_wait) if args.resume else
                   run_selected(args.pipeline, config, backend, args.step, args.reference, parse_parameters(args.param),
                                wait=not args.no_wait))
        return report_outcome(outcome)
    backend = backend_for(args, config)
    outcome = run_staged(args.pipeline, config, backend, parse_parameters(args.param), wait=not args.no_wait)
    if args.pipeline == "training":
        from pipelines.notify import notify_run_outcome

        notify_run_outcome(backend, config, outcome)  # a gate that stopped it, or the version waiting for approval
    return report_outcome(outcome)


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    run = add_command("run", cmd_run, "run a pipeline (stages the training inputs first)")
    add_target(run)
    run.add_argument("--pipeline", choices=["training", "deploy"], default="training")
    run.add_argument("--data", help="this round's data (a file, folder or s3:// prefix) instead of data.source")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline parameter override")
    run.add_argument("--no-wait", action="store_true", help="with --aws: return once started")
    run.add_argument("--resume", metavar="EXECUTION", help="retry a Failed execution (id, or ARN with --aws) from its "
                     "failed steps, keeping those that succeeded")
    run.add_argument("--step", action="append", default=[], metavar="STEP", help="run only this step (repeatable), "
                     "reusing --reference's outputs for the steps it depends on")
    run.add_argument("--reference", metavar="EXECUTION", help="with --step: the execution whose outputs are reused")
