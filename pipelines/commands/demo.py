"""`continuum demo`: one full round locally: train → gate → register → approve → deploy → invoke."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo.run_demo import format_summary, run_demo

    overrides = {"tracking.mlflow_uri": args.mlflow_uri} if args.mlflow_uri else None
    summary = run_demo(Path(args.home) if args.home else None, overrides=overrides)
    print(format_summary(summary))
    return 0 if summary.succeeded else 1


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    demo = add_command("demo", cmd_demo, "one full round locally: train → gate → register → approve → deploy → invoke")
    demo.add_argument("--mlflow-uri", metavar="URI", help="log the round to MLflow (tracking.mlflow_uri), e.g. "
                      "sqlite:///mlflow.db; then `mlflow ui --backend-store-uri sqlite:///mlflow.db`")
