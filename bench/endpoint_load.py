"""Mixed load on a local endpoint: long and short prompts from several clients against serve.py on 127.0.0.1.

Starts containers/serving/serve.py on the tiny demo model (built once under --work), runs `--long-clients`
clients sending prompts near the model's token limit and `--short-clients` clients sending short questions,
each `--requests` times back to back, and prints requests, errors, latency p50/p99 of the short requests and
how many long requests started ahead of a short one while it waited (the queue's X-Continuum-* headers).

    .venv/bin/python bench/endpoint_load.py [--long-clients 3 --short-clients 5 --requests 20]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHORT_PROMPTS = ["What is your return policy?", "How heavy is the Rover X1?", "Do you ship abroad?", "Hi"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_dir: Path, environment: dict[str, str] | None = None,
                 serve: Path = REPO / "containers" / "serving" / "serve.py") -> tuple[subprocess.Popen, int]:
    """serve.py on a free port, once /ping answers 200."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(serve), "--model-dir",
                                str(model_dir), "--port", str(port)], env={**os.environ, **(environment or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("serve.py exited during startup")
        try:
            if post(port, None, method="GET", path="/ping")[0] == 200:
                return process, port
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("serve.py did not answer /ping within 120 s")


def post(port: int, payload: dict | None, method: str = "POST", path: str = "/invocations",
         timeout: float = 120) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = None if payload is None else json.dumps(payload).encode()
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def long_prompt(words: int) -> str:
    return " ".join(["Tell me everything about the warehouse robots, their batteries and the warranty."] * words)


def run_load(port: int, long_clients: int, short_clients: int, requests: int, long_words: int,
             max_new_tokens: int = 16, truncate: bool = True) -> list[dict]:
    """Every request's kind, status, seconds and queue headers, from all clients running at once."""
    results: list[dict] = []
    lock = threading.Lock()
    start = threading.Barrier(long_clients + short_clients)

    def client(kind: str, index: int) -> None:
        start.wait()
        for number in range(requests):
            prompt = long_prompt(long_words) if kind == "long" else SHORT_PROMPTS[(index + number) % len(SHORT_PROMPTS)]
            parameters = {"max_new_tokens": max_new_tokens, **({"truncate": True} if kind == "long" and truncate else {})}
            began = time.perf_counter()
            try:
                status, headers, _ = post(port, {"inputs": prompt, "parameters": parameters})
            except OSError as error:
                status, headers = 0, {"error": repr(error)}
            with lock:
                results.append({"kind": kind, "status": status, "seconds": time.perf_counter() - began,
                                "ahead": int(headers.get("x-continuum-queue-ahead", -1)),
                                "cost_ahead": int(headers.get("x-continuum-cost-ahead", -1)),
                                "cost": int(headers.get("x-continuum-cost", -1))})

    threads = [threading.Thread(target=client, args=("long", i)) for i in range(long_clients)]
    threads += [threading.Thread(target=client, args=("short", i)) for i in range(short_clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-clients", type=int, default=3)
    parser.add_argument("--short-clients", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--long-words", type=int, default=200, help="repeats of a 12-word sentence (truncated to fit)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--no-truncate", action="store_true", help="send long prompts as they are (for an older "
                                                                     "serve.py without the truncate parameter)")
    parser.add_argument("--serve", type=Path, default=REPO / "containers" / "serving" / "serve.py",
                        help="the serve.py to load (e.g. an older commit's, from git archive)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "continuum-bench-endpoint")
    args = parser.parse_args()
    model_dir = args.work / "tiny-model"
    if not (model_dir / "config.json").is_file():
        from pipelines.demo.sample_data import corpus_texts
        from pipelines.demo.tiny_model import build_tiny_model

        build_tiny_model(model_dir, corpus_texts(), seed=0)
    process, port = start_server(model_dir, serve=args.serve)
    try:
        began = time.perf_counter()
        results = run_load(port, args.long_clients, args.short_clients, args.requests, args.long_words,
                           args.max_new_tokens, not args.no_truncate)
        seconds = time.perf_counter() - began
    finally:
        process.terminate()
        process.wait(timeout=30)
    errors = [r for r in results if r["status"] != 200]
    short = [r for r in results if r["kind"] == "short" and r["status"] == 200]
    long = [r for r in results if r["kind"] == "long" and r["status"] == 200]
    long_cost = min((r["cost"] for r in long), default=1)
    print(f"requests {len(results)} ({len(long)} long, {len(short)} short) in {seconds:.1f}s, errors {len(errors)}"
          + (f" (statuses {sorted({r['status'] for r in errors})})" if errors else ""))
    if short:
        latencies = [r["seconds"] * 1000 for r in short]
        print(f"short requests: p50 {percentile(latencies, 0.5):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms")
        print(f"short requests: queue ahead p50 {statistics.median(r['ahead'] for r in short):.0f}, "
              f"max {max(r['ahead'] for r in short)}; tokens ahead p50 "
              f"{statistics.median(r['cost_ahead'] for r in short):.0f}, max {max(r['cost_ahead'] for r in short)} "
              f"(one long request costs {long_cost})")
    if long:
        latencies = [r["seconds"] * 1000 for r in long]
        print(f"long requests: p50 {percentile(latencies, 0.5):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
