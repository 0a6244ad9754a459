"""The smoke test step (steps/smoke_test.py explains it): prompts, then the benchmark suites, through an endpoint."""
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

from common.benchmarks import BenchmarkError, BenchmarkSuite, load_suites
from common.bounds import meets, relation
from common.examples import ExampleError, read_examples
from common.suite_targets import refresh_targets
from common.metrics import score
from common.contract import build_parser
from smoke_test.contract import ARGUMENTS

DESCRIPTION = "Smoke test step: invoke an endpoint with each prompt, then score the benchmark suites against it."
PREVIEW_CHARS = 300
GENERATIVE_TASKS = ("qa", "generation")  # the others need log-likelihoods: EvaluateModel scores them offline


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


def generated_texts(payload: bytes, expected: int) -> list[str]:
    """Every ``generated_text`` of a batch response (blank answers allowed: benchmarks score them)."""
    parsed = json.loads(payload)
    if not isinstance(parsed, list) or len(parsed) != expected or not all(
            isinstance(item, dict) and isinstance(item.get("generated_text"), str) for item in parsed):
        raise ValueError(f"expected {expected} {{\"generated_text\": str}} answers: {payload[:PREVIEW_CHARS]!r}")
    return [item["generated_text"] for item in parsed]


def benchmark_suite(runtime: Any, endpoint_name: str, suite: BenchmarkSuite, max_new_tokens: int,
                    batch_size: int) -> dict[str, Any]:
    """Score one suite through the endpoint: ``{"cases", "failed_calls", "errors", "metrics", "latency_ms",
    "higher_is_better"}``; suites that are not generative are ``{"skipped": reason}``."""
    if suite.spec.task not in GENERATIVE_TASKS:
        return {"skipped": f"task {suite.spec.task} is scored offline (needs log-likelihoods, not generated text)"}
    max_new_tokens = suite.spec.max_new_tokens or max_new_tokens
    prompts = [suite.render_prompt(case) for case in suite.cases]
    predictions: list[str] = []
    errors: list[str] = []
    started = time.perf_counter()
    for first in range(0, len(prompts), batch_size):
        batch = prompts[first:first + batch_size]
        body = json.dumps({"inputs": batch, "parameters": {"max_new_tokens": max_new_tokens}}).encode("utf-8")
        try:
            response = runtime.invoke_endpoint(EndpointName=endpoint_name, ContentType="application/json",
                                               Accept="application/json", Body=body)
            predictions.extend(generated_texts(response["Body"].read(), len(batch)))
        except (ClientError, BotoCoreError, ValueError) as error:
            errors.append(f"cases {first}-{first + len(batch) - 1}: {error}")
            predictions.extend([""] * len(batch))
    targets = [case.target for case in suite.cases]
    return {"cases": len(prompts), "failed_calls": len(errors), "errors": errors,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "higher_is_better": {f"{suite.name}_{m}": suite.spec.metric_higher_is_better(m) for m in suite.spec.metrics},
            "metrics": {f"{suite.name}_{metric}": score(metric, predictions, targets) for metric in suite.spec.metrics}}


def benchmark_gate(suites: dict[str, dict[str, Any]], metric: str, threshold: float) -> dict[str, Any]:
    """``{"metric", "threshold", "value", "passed", "reason"}`` for the gate metric over the suites' results."""
    for result in suites.values():
        if metric in result.get("metrics", {}):
            value, higher = result["metrics"][metric], result["higher_is_better"][metric]
            passed = meets(value, threshold, higher)
            return {"metric": metric, "threshold": threshold, "value": value, "passed": passed,
                    "reason": f"{metric} = {value:.4f} {relation(higher, passed)} {threshold} on the live endpoint"}
    known = sorted(m for result in suites.values() for m in result.get("metrics", {}))
    raise SmokeTestError(f"--gate-metric {metric!r} is not produced by the suites; they give {known}")


def live_metrics(suites: list[BenchmarkSuite]) -> list[str]:
    """The metrics the benchmark pass can produce through an endpoint (generative suites only)."""
    return [f"{suite.name}_{metric}" for suite in suites if suite.spec.task in GENERATIVE_TASKS
            for metric in suite.spec.metrics]


def check_gate_runs(suites: list[BenchmarkSuite], metric: str) -> None:
    """Raise SmokeTestError unless a generative suite produces the gate metric (checked before any endpoint
    changes: the deploy pipeline runs this first, with --check-only)."""
    if metric and metric not in live_metrics(suites):
        offline = [f"{s.name} ({s.spec.task})" for s in suites if s.spec.task not in GENERATIVE_TASKS]
        raise SmokeTestError(
            f"--gate-metric {metric!r} is not produced through the endpoint by the suites; they give "
            f"{live_metrics(suites)}" + (f" (scored offline only: {', '.join(offline)})" if offline else "")
            + ": list a qa or generation suite with that metric in evaluation.suites, or change evaluation.gate.metric")


def refreshed_suites(suites: list[BenchmarkSuite], data_dir: Path | None) -> list[BenchmarkSuite]:
    """The suites with the cases the deployed version's data answers differently re-targeted (and said so)."""
    if data_dir is None or not data_dir.is_dir() or not suites:
        return suites
    try:
        refreshed, updates = refresh_targets(suites, read_examples(data_dir))
    except ExampleError as error:
        raise SmokeTestError(f"--data-dir: {error}") from error
    for update in updates:
        print(f"smoke_test: suite {update['suite']} case {update['id']}: the data now answers "
              f"{update['data_answer']!r} (suite: {update['suite_target']!r}); scored against the data's answer")
    return refreshed


def check_inputs(endpoint_name: str, prompts: list[str]) -> None:
    if not endpoint_name.strip():
        raise SmokeTestError("--endpoint-name is empty")
    if not prompts or any(not p.strip() for p in prompts):
        raise SmokeTestError("give at least one non-blank --prompt")


def smoke_test(runtime: Any, endpoint_name: str, prompts: list[str], max_new_tokens: int,
               suites: list[BenchmarkSuite] | None = None, gate: tuple[str, float] | None = None,
               benchmark_max_new_tokens: int = 24, batch_size: int = 8) -> dict[str, Any]:
    """Invoke every prompt, then run the suites; the report smoke.json holds."""
    check_inputs(endpoint_name, prompts)
    responses = [invoke_prompt(runtime, endpoint_name, prompt, max_new_tokens) for prompt in prompts]
    latencies = [r["latency_ms"] for r in responses if r["latency_ms"] is not None]
    benchmarks = {suite.name: benchmark_suite(runtime, endpoint_name, suite, benchmark_max_new_tokens, batch_size)
                  for suite in suites or []}
    gate_result = benchmark_gate(benchmarks, *gate) if gate else None
    benchmarks_passed = all(not r.get("failed_calls") for r in benchmarks.values()) and (
        gate_result is None or gate_result["passed"])
    return {
        "endpoint_name": endpoint_name,
        "prompts": prompts,
        "responses": responses,
        "latency_ms": {"mean": round(statistics.fmean(latencies), 1) if latencies else None,
                       "max": max(latencies) if latencies else None},
        "failed": sum(not r["passed"] for r in responses),
        "benchmarks": benchmarks,
        "gate": gate_result,
        "passed": all(r["passed"] for r in responses) and benchmarks_passed,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser(ARGUMENTS, DESCRIPTION, separator="-").parse_args(argv)


def suites_from_args(args: argparse.Namespace) -> list[BenchmarkSuite]:
    if args.gate_metric and not args.benchmarks_dir:
        raise SmokeTestError("--gate-metric needs --benchmarks-dir")
    if args.batch_size < 1:
        raise SmokeTestError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    if not args.benchmarks_dir:
        return []
    names = [name.strip() for name in args.suites.split(",") if name.strip()] or None
    try:
        suites = load_suites(args.benchmarks_dir, names)
    except BenchmarkError as error:
        raise SmokeTestError(str(error)) from error
    if not suites:
        raise SmokeTestError(f"--benchmarks-dir {args.benchmarks_dir} holds no suite (no suite.yaml found)")
    return suites


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_inputs(args.endpoint_name, args.prompt)  # bad arguments fail before any AWS client exists
        suites = suites_from_args(args)
        check_gate_runs(suites, args.gate_metric)
        if args.check_only:
            print(f"smoke_test: {len(suites)} suite(s) loaded; the gate metric {args.gate_metric or '(none)'} "
                  f"can be scored through the endpoint")
            return 0
        suites = refreshed_suites(suites, args.data_dir)
        report = smoke_test(boto3.client("sagemaker-runtime"), args.endpoint_name, args.prompt, args.max_new_tokens,
                            suites, (args.gate_metric, args.gate_threshold) if args.gate_metric else None,
                            args.benchmark_max_new_tokens, args.batch_size)
    except SmokeTestError as error:
        print(f"smoke_test: error: {error}", file=sys.stderr)
        return 1
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / "smoke.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for response in report["responses"]:
        verdict = "ok" if response["passed"] else f"FAILED: {response['error']}"
        print(f"smoke_test: {response['prompt'][:60]!r} → {verdict} ({response['latency_ms']} ms)")
    for name, result in report["benchmarks"].items():
        if "skipped" in result:
            print(f"smoke_test: suite {name} skipped: {result['skipped']}")
            continue
        scores = ", ".join(f"{metric}={value:.4f}" for metric, value in result["metrics"].items())
        print(f"smoke_test: suite {name}: {result['cases']} cases, {result['failed_calls']} failed calls; {scores}")
    if not report["passed"]:
        problems = [f"{report['failed']} of {len(report['responses'])} prompts failed on endpoint "
                    f"{args.endpoint_name}"] if report["failed"] else []
        problems += [f"suite {name}: {error}" for name, result in report["benchmarks"].items()
                     for error in result.get("errors", [])]
        if report["gate"] and not report["gate"]["passed"]:
            problems.append(f"gate failed: {report['gate']['reason']}")
        print(f"smoke_test: error: {'; '.join(problems)}; see {path}", file=sys.stderr)
        return 1
    print(f"smoke_test: all {len(report['responses'])} prompts passed; wrote {path}")
    return 0

