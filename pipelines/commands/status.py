"""`continuum status`: model versions, then per stage the serving version, traffic split, recent latency and
errors and the latest drift verdict, then recent executions."""
from __future__ import annotations

import argparse
import json
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


def cmd_status(args: argparse.Namespace) -> int:
    from pipelines.deploy.stage_status import format_stage, stage_status
    from pipelines.deploy.stages import stages
    from pipelines.registry_ops import list_versions

    config = load_config(args.config)
    backend = backend_for(args, config)
    versions = list_versions(backend.client("sagemaker"), config.model.model_package_group)
    print(f"model package group {config.model.model_package_group}: {len(versions)} version(s)")
    for version in versions[:5]:
        print(f"  v{version.version} {version.approval_status}")
    rows = [stage_status(backend, config, stage, args.minutes) for stage in stages(config)]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for row in rows:
            print(format_stage(row, args.minutes))
    for record in backend.recent_executions(5):
        print(f"  execution {record['pipeline_name']} {record['execution_id']}: {record['status']}")
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("status", cmd_status, "versions; per stage: serving version, traffic, latency/errors, drift")
    parser.add_argument("--minutes", type=int, default=15, help="window of the latency and error figures")
    parser.add_argument("--json", action="store_true", help="the per-stage figures as JSON")
    add_target(parser)
