"""`continuum demo`: one full round locally: train → gate → register → approve → deploy → invoke."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def cmd_demo(args: argparse.Namespace) -> int:
    from pipelines.demo.run_demo import format_summary, run_demo

    summary = run_demo(Path(args.home) if args.home else None)
    print(format_summary(summary))
    return 0 if summary.succeeded else 1


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    add_command("demo", cmd_demo, "one full round locally: train → gate → register → approve → deploy → invoke")
