"""`continuum invoke PROMPT`: send a prompt to the endpoint (SageMaker's invocation contract)."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import Any, Callable

from pipelines.cli_support import add_target, backend_for
from pipelines.config import load_config


class InvokeError(LookupError):
    """The endpoint is missing or its model refused the request (the message says which and what to do)."""


def cmd_invoke(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    config = load_config(args.config)
    runtime = backend_for(args, config).client("sagemaker-runtime")
    endpoint = args.endpoint or config.deploy.endpoint_name
    body = {"inputs": args.prompt, "parameters": {"max_new_tokens": args.max_new_tokens}}
    started = time.perf_counter()
    try:
        response = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="application/json",
                                           Accept="application/json", Body=json.dumps(body))
    except ClientError as error:
        raise InvokeError(invoke_failure(endpoint, error)) from error
    answer = json.loads(response["Body"].read())
    print(json.dumps(answer, indent=2))
    print(f"({(time.perf_counter() - started) * 1000:.0f} ms, variant {response.get('InvokedProductionVariant', '?')})",
          file=sys.stderr)
    return 0


def invoke_failure(endpoint: str, error: Any) -> str:
    """What went wrong with an InvokeEndpoint call, naming the endpoint, and what to do."""
    info = error.response.get("Error", {})
    code, message = info.get("Code", ""), info.get("Message", "")
    if code == "ModelError":
        status = error.response.get("OriginalStatusCode")
        original = error.response.get("OriginalMessage") or message
        with contextlib.suppress(ValueError, TypeError):
            original = json.loads(original).get("error", original)
        side = "the request" if isinstance(status, int) and 400 <= status < 500 else "the model server"
        return f"endpoint {endpoint!r} answered {status or '?'}: {original} (fix {side}; see its log)"
    if "not found" in message.lower() or code in ("ValidationError", "ValidationException") and "ndpoint" in message:
        return (f"endpoint {endpoint!r} is not deployed: {message} — deploy a version with `continuum deploy`, "
                "or pass --endpoint NAME (`continuum status` lists the stages' endpoints)")
    return f"endpoint {endpoint!r}: {code}: {message}"


def register(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    invoke = add_command("invoke", cmd_invoke, "send a prompt to the endpoint")
    invoke.add_argument("prompt")
    invoke.add_argument("--endpoint")
    invoke.add_argument("--max-new-tokens", type=int, default=32)
    add_target(invoke)
