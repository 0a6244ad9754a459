"""`continuum teardown`: delete the endpoints (local endpoint processes stop)."""
from __future__ import annotations

import argparse
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


def cmd_teardown(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    sagemaker = backend_for(args, config).client("sagemaker")
    names = [e["EndpointName"] for page in sagemaker.get_paginator("list_endpoints").paginate() for e in page["Endpoints"]]
    for name in names:
        sagemaker.delete_endpoint(EndpointName=name)
        print(f"deleted endpoint {name}")
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    teardown = add_command("teardown", cmd_teardown, "delete the endpoints (local processes stop)")
    add_target(teardown)
