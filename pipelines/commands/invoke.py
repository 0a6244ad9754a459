"""`continuum invoke PROMPT`: send a prompt to the endpoint (SageMaker's invocation contract)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


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


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    invoke = add_command("invoke", cmd_invoke, "send a prompt to the endpoint")
    invoke.add_argument("prompt")
    invoke.add_argument("--endpoint")
    invoke.add_argument("--max-new-tokens", type=int, default=32)
    add_target(invoke)
