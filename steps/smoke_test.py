"""Smoke test step: invoke an endpoint with each prompt; every answer must be HTTP 2xx with generated text.

Sends the Hugging Face inference toolkit's JSON (``{"inputs": prompt, "parameters": {...}}``) through
``sagemaker-runtime`` InvokeEndpoint, checks the status and a non-blank ``generated_text``, and writes
``smoke.json`` (per-prompt response, status, latency, invoked variant; overall ``passed``). Exits 1 when
any prompt fails. Plain boto3: locally the runtime points ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` at its
stand-in.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

DEFAULT_OUTPUT_DIR = Path("/opt/ml/processing/output/smoke")
DEFAULT_MAX_NEW_TOKENS = 16
PREVIEW_CHARS = 300


class SmokeTestError(Exception):
    """The smoke test could not run (bad arguments)."""


def request_body(prompt: str, max_new_tokens: int) -> bytes:
    return json.dumps({"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens}}).encode("utf-8")


def generated_text(payload: bytes) -> str:
    """The first ``generated_text`` of a toolkit response; ValueError saying what is wrong otherwise."""
    try:
        parsed = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"response is not JSON ({error}): {payload[:PREVIEW_CHARS]!r}") from error
    first = parsed[0] if isinstance(parsed, list) and parsed else parsed
    if not isinstance(first, dict) or not isinstance(first.get("generated_text"), str):
        raise ValueError(f'response has no [{{"generated_text": str}}]: {payload[:PREVIEW_CHARS]!r}')
    if not first["generated_text"].strip():
        raise ValueError("generated_text is empty")
    return first["generated_text"]


def invoke_prompt(runtime: Any, endpoint_name: str, prompt: str, max_new_tokens: int) -> dict[str, Any]:
    """One prompt's result: ``{"prompt", "passed", "status_code", "latency_ms", "variant", "generated_text", "error"}``."""
    result: dict[str, Any] = {"prompt": prompt, "passed": False, "status_code": None, "latency_ms": None,
                              "variant": None, "generated_text": None, "error": None}
    started = time.perf_counter()
    try:
        response = runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType="application/json",
                                           Accept="application/json", Body=request_body(prompt, max_new_tokens))
        payload = response["Body"].read()
    except ClientError as error:
        details = error.response.get("Error", {})
        result["status_code"] = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        result["error"] = f"{details.get('Code', 'ClientError')}: {details.get('Message', error)}"
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return result
    except BotoCoreError as error:
        result["error"] = f"{type(error).__name__}: {error}"
        return result
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    result["status_code"] = response["ResponseMetadata"]["HTTPStatusCode"]
    result["variant"] = response.get("InvokedProductionVariant")
    if not 200 <= result["status_code"] < 300:
        result["error"] = f"HTTP {result['status_code']}"
        return result
    try:
        result["generated_text"] = generated_text(payload)
    except ValueError as error:
        result["error"] = str(error)
        return result
    result["passed"] = True
    return result


def check_inputs(endpoint_name: str, prompts: list[str]) -> None:
    if not endpoint_name.strip():
        raise SmokeTestError("--endpoint-name is empty")
    if not prompts or any(not p.strip() for p in prompts):
        raise SmokeTestError("give at least one non-blank --prompt")


def smoke_test(runtime: Any, endpoint_name: str, prompts: list[str], max_new_tokens: int) -> dict[str, Any]:
    """Invoke every prompt; the report smoke.json holds."""
    check_inputs(endpoint_name, prompts)
    responses = [invoke_prompt(runtime, endpoint_name, prompt, max_new_tokens) for prompt in prompts]
    latencies = [r["latency_ms"] for r in responses if r["latency_ms"] is not None]
    return {
        "endpoint_name": endpoint_name,
        "prompts": prompts,
        "responses": responses,
        "latency_ms": {"mean": round(statistics.fmean(latencies), 1) if latencies else None,
                       "max": max(latencies) if latencies else None},
        "failed": sum(not r["passed"] for r in responses),
        "passed": all(r["passed"] for r in responses),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--prompt", action="append", required=True, dest="prompts", help="repeat for several")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_inputs(args.endpoint_name, args.prompts)  # bad arguments fail before any AWS client exists
        report = smoke_test(boto3.client("sagemaker-runtime"), args.endpoint_name, args.prompts,
                            args.max_new_tokens)
    except SmokeTestError as error:
        print(f"smoke_test: error: {error}", file=sys.stderr)
        return 1
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / "smoke.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for response in report["responses"]:
        verdict = "ok" if response["passed"] else f"FAILED: {response['error']}"
        print(f"smoke_test: {response['prompt'][:60]!r} → {verdict} ({response['latency_ms']} ms)")
    if not report["passed"]:
        print(f"smoke_test: error: {report['failed']} of {len(report['responses'])} prompts failed on endpoint "
              f"{args.endpoint_name}; see {path}", file=sys.stderr)
        return 1
    print(f"smoke_test: all {len(report['responses'])} prompts passed; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
