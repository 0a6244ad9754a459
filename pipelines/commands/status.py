"""`continuum status`: model versions, the endpoint and recent executions."""
from __future__ import annotations

import argparse
import json
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


def cmd_status(args: argparse.Namespace) -> int:
    from pipelines.registry_ops import list_versions

    config = load_config(args.config)
    backend = backend_for(args, config)
    sagemaker = backend.client("sagemaker")
    versions = list_versions(sagemaker, config.model.model_package_group)
    print(f"model package group {config.model.model_package_group}: {len(versions)} version(s)")
    for version in versions[:5]:
        print(f"  v{version.version} {version.approval_status}")
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=config.deploy.endpoint_name)
        print(f"endpoint {endpoint['EndpointName']}: {endpoint['EndpointStatus']} (config {endpoint['EndpointConfigName']})")
    except Exception as exc:  # noqa: BLE001 - any "not found" shape is reported the same way
        print(f"endpoint {config.deploy.endpoint_name}: not deployed ({exc.__class__.__name__})")
    if backend.is_local and backend.home is not None:
        executions = sorted((backend.home / "executions").glob("*/*/execution.json"), key=lambda p: p.stat().st_mtime)
        for path in executions[-5:]:
            record = json.loads(path.read_text(encoding="utf-8"))
            print(f"  execution {record['pipeline_name']} {record['execution_id']}: {record['status']}")
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    add_target(add_command("status", cmd_status, "model versions, endpoint and recent executions"))
