"""`continuum status`: model versions, then per stage the serving version, traffic split, recent latency and
errors and the latest drift verdict, then recent executions."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config
from pipelines.local.endpoints import ping


def cmd_status(args: argparse.Namespace) -> int:
    from pipelines.deploy.stage_status import format_stage, stage_status
    from pipelines.deploy.stages import stages
    from pipelines.registry_ops import list_versions

    config = load_config(args.config)
    backend = backend_for(args, config)
    # With --json, stdout carries the JSON alone (a script pipes it to a parser); the rest goes to stderr.
    text = sys.stderr if args.json else sys.stdout
    versions = list_versions(backend.client("sagemaker"), config.model.model_package_group)
    print(f"model package group {config.model.model_package_group}: {len(versions)} version(s)", file=text)
    for version in versions[:5]:
        print(f"  v{version.version} {version.approval_status}", file=text)
    rows = []
    for stage in stages(config):
        row = stage_status(backend, config, stage, args.minutes)
        row["servers"] = server_health(backend, stage.endpoint_name) if row["status"] != "not deployed" else None
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for row in rows:
            print(format_stage(row, args.minutes))
            if row["servers"]:
                print(f"{'':<11} {health_line(row['servers'])}")
    for record in backend.recent_executions(5):
        print(f"  execution {record['pipeline_name']} {record['execution_id']}: {record['status']}", file=text)
    return 0


def server_health(backend: Any, endpoint_name: str) -> list[dict[str, Any]] | None:
    """Each local serving process of the endpoint (the serving fleet, and a blue/green candidate's):
    `{"variant", "fleet", "pid", "port", "alive", "ping"}`; None on AWS (DescribeEndpoint is the truth there)."""
    if not backend.is_local:
        return None
    status = backend.local_api.endpoints.status(endpoint_name)
    if status is None:
        return None
    fleets = [("serving", status["variants"])]
    if status.get("candidate"):
        fleets.append(("candidate", status["candidate"]["variants"]))
    return [{"variant": v["variant"], "fleet": fleet, "pid": v["pid"], "port": v["port"], "alive": v["alive"],
             "ping": bool(v["alive"]) and ping(v["port"])} for fleet, variants in fleets for v in variants]


def health_line(servers: list[dict[str, Any]]) -> str:
    """`servers: 1 of 1 answering /ping`, or which ones are down and what to do."""
    down = [s for s in servers if not s["ping"]]
    if not down:
        return f"servers: {len(servers)} of {len(servers)} answering /ping"
    names = ", ".join(f"{s['variant']} ({s['fleet']}, pid {s['pid']}, port {s['port']}: "
                      f"{'not answering /ping' if s['alive'] else 'process gone'})" for s in down)
    return (f"servers DOWN: {len(down)} of {len(servers)}: {names}; the next invocation restarts them, "
            "or redeploy with `continuum deploy`")


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("status", cmd_status, "versions; per stage: serving version, traffic, latency/errors, drift")
    parser.add_argument("--minutes", type=int, default=15, help="window of the latency and error figures")
    parser.add_argument("--json", action="store_true", help="the per-stage figures as JSON")
    add_target(parser)
