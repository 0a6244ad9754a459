"""`continuum ui`: the web dashboard (Home, Data, Runs, Models, Benchmarks, Deploy, Monitoring, Feedback).

It reads and acts through the SageMaker API with boto3: locally on the embedded runtime's stand-ins (the
home's registry, S3 folder, endpoints), with --aws on the account. It binds to 127.0.0.1; another address
needs a token (--token or $CONTINUUM_UI_TOKEN), which the browser passes once as ?token=.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from pipelines.cli_support import add_target, backend_for, local_home
from pipelines.config import load_config

TOKEN_ENV = "CONTINUUM_UI_TOKEN"


def build_state(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The dashboard's shared state from the command's arguments (also used by tests and bench/ui_render.py)."""
    from pipelines.ui.reads import caching
    from pipelines.ui.roles import aws_identity, local_identity
    from pipelines.ui.state import UiState, check_binding

    config = load_config(args.config)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    check_binding(args.host, token)
    backend = caching(backend_for(args, config))
    identity = aws_identity(backend) if getattr(args, "aws", False) else local_identity(config, args.user)
    return UiState(config, backend, identity, local_home(args), token, extra={"config_path": args.config})


def cmd_ui(args: argparse.Namespace) -> int:
    import uvicorn

    from pipelines.sdk import prepare_sdk_environment
    from pipelines.ui.app import create_app

    prepare_sdk_environment()  # before the SDK's first import (a run from the page): quiet, no telemetry
    state = build_state(args)
    port = args.port if args.port is not None else state.config.ui.port
    print(f"continuum ui: http://{args.host}:{port}/ as {state.identity.name} ({state.identity.label}; "
          f"{state.identity.source})", file=sys.stderr, flush=True)
    uvicorn.run(create_app(state), host=args.host, port=port, log_level="warning")
    return 0


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    parser = add_command("ui", cmd_ui, "the web dashboard: runs, registry, compare, approvals, deploy, rollback, "
                                       "monitoring, feedback")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (another than 127.0.0.1 needs --token)")
    parser.add_argument("--port", type=int, help="port (default ui.port)")
    parser.add_argument("--token", help=f"required to bind elsewhere than this machine (or ${TOKEN_ENV})")
    parser.add_argument("--user", help="act as this user of ui.users (locally; default: the ui.role user)")
    add_target(parser)
