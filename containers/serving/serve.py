"""SageMaker inference server for continuum models: GET /ping, POST /invocations.

An HTTP shell around the Hugging Face inference toolkit's handler contract, as AWS's containers
run it: the model artifact's own `code/inference.py` when it has one, else `inference.py` beside
this file (`model_fn`, `input_fn`, `predict_fn`, `output_fn`). Imports nothing from the
repository: the image needs this file, `inference.py` and the `prompting.py` it renders prompts
and chats with (beside it in the image and in `code/`; a checkout's `steps/common/prompting.py`),
and `limits.py` and `batching.py` beside it.

Every request is bounded before any work (limits.py: body bytes 413, malformed or over-deep JSON,
lone surrogates and prompts over the token budget 400, naming the limit; `"parameters": {"truncate":
true}` keeps a prompt's last tokens instead) and generation runs on one worker fed by a bounded queue
that serves the cheapest request first and joins concurrent similar ones (batching.py; a full queue or
a request out of time: 503/504). Responses carry `X-Continuum-Queue-Ahead` (requests started while
this one waited), `X-Continuum-Cost-Ahead` (their tokens) and `X-Continuum-Cost`.

    python serve.py --model-dir DIR --port 8080 [--host 127.0.0.1]
    python serve.py serve            # in the image: /opt/ml/model on 0.0.0.0:8080, as SageMaker runs it
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import limits  # noqa: E402  (beside this file, like the handler)
from batching import GenerationQueue, Job, QueueFull, WaitTimeout  # noqa: E402
from inference import (  # noqa: E402  (the handler beside this file; re-exported for callers and tests)
    DEFAULT_TEMPLATE,
    LoadedModel,
    RequestError,
    find_model_dir,
    generate,
    load_model,
    parse_request,
    read_template,
    render,
)

__all__ = ["DEFAULT_TEMPLATE", "LoadedModel", "RequestError", "find_model_dir", "generate", "load_model",
           "parse_request", "read_template", "render", "load_handler", "InferenceServer", "main"]

CONTAINER_MODEL_DIR = "/opt/ml/model"
CONTAINER_PORT = 8080
DISCARD_MAX_BYTES = 64 * 1024 * 1024  # a refused body bigger than this: the connection is closed unread


def load_handler(model_dir: Path) -> ModuleType:
    """The model's `code/inference.py` if it ships one (as the HF toolkit does), else ours."""
    shipped = Path(model_dir) / "code" / "inference.py"
    if not shipped.is_file():
        return sys.modules["inference"]
    spec = importlib.util.spec_from_file_location("model_inference", shipped)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


class InferenceHandler(BaseHTTPRequestHandler):
    """The SageMaker container routes; the loaded model lives on the server object."""

    server: InferenceServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # seconds a client may take to send its request (a stalled one frees its thread)

    def _reply(self, status: HTTPStatus, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._reply_raw(status, json.dumps(payload).encode("utf-8"), headers)

    def _reply_raw(self, status: HTTPStatus, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path != "/ping":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route GET {self.path}"})
        elif self.server.loaded is None:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "loading"})
        else:
            self._reply(HTTPStatus.OK, {"status": "ok"})

    def _read_body(self) -> bytes:
        """The body, read only once its announced size is within the limit (LimitError otherwise)."""
        try:
            size = limits.content_length(self.headers.get("Content-Length"), self.server.limits)
        except limits.LimitError as err:
            self.close_connection = True  # what is left of the body must not be taken for the next request
            if err.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                self._discard(int(self.headers["Content-Length"]))
            raise
        body = self.rfile.read(size)
        if len(body) < size:
            self.close_connection = True
            raise limits.LimitError(HTTPStatus.BAD_REQUEST, f"request body ended after {len(body)} of the "
                                                            f"{size} bytes its Content-Length announced")
        return body

    def _discard(self, size: int) -> None:
        """Read and drop up to DISCARD_MAX_BYTES of a refused body, so the client gets to read the answer."""
        remaining = min(size, DISCARD_MAX_BYTES)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)

    def do_POST(self) -> None:  # noqa: N802
        try:
            body = self._read_body()
            if self.path != "/invocations":
                raise limits.LimitError(HTTPStatus.NOT_FOUND, f"no route POST {self.path}")
            if self.server.loaded is None:
                raise limits.LimitError(HTTPStatus.SERVICE_UNAVAILABLE, "the model is still loading")
            result, job = self.server.invoke(body, self.headers.get("Content-Type", "application/json"))
            output = self.server.handler.output_fn(result, self.headers.get("Accept", "application/json"))
            self._reply_raw(HTTPStatus.OK, output.encode("utf-8") if isinstance(output, str) else output,
                            {"X-Continuum-Queue-Ahead": str(job.ahead), "X-Continuum-Cost-Ahead": str(job.cost_ahead),
                             "X-Continuum-Cost": str(job.cost), "X-Continuum-Batch-Inputs": str(job.batch_inputs)})
        except limits.LimitError as err:
            retry = {"Retry-After": "1"} if err.status == HTTPStatus.SERVICE_UNAVAILABLE else None
            self._reply(err.status, {"error": str(err)}, retry)
        except ValueError as err:  # the handler's RequestError and other bad-input errors
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(err)})
        except Exception as err:  # noqa: BLE001 (any generation failure becomes a 500 with its message)
            traceback.print_exc()
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base class signature)
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class InferenceServer(ThreadingHTTPServer):
    """A threading HTTP server that answers /ping 503 until `loaded` is set; generation runs on one queue."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], serving_limits: limits.ServingLimits | None = None) -> None:
        super().__init__(address, InferenceHandler)
        self.loaded: Any = None
        self.handler: ModuleType = sys.modules["inference"]
        self.limits = serving_limits or limits.ServingLimits()
        self.prompts: PromptLimiter | None = None
        self.queue = GenerationQueue(self._generate, self.limits.max_queue, self.limits.max_batch_inputs)

    def publish(self, handler: ModuleType, loaded: Any) -> None:
        """Serve this handler and model from now on (/ping turns 200)."""
        self.handler = handler
        self.prompts = PromptLimiter(handler, loaded, self.limits)
        self.loaded = loaded

    def _generate(self, inputs: list[Any], parameters: dict[str, Any]) -> list[Any]:
        return self.handler.predict_fn((inputs, parameters), self.loaded)

    def invoke(self, body: bytes, content_type: str) -> tuple[Any, Job]:
        """A request through the limits, the handler's parsing and the queue; LimitError/ValueError for the client."""
        payload = limits.parse_body(body, self.limits)
        truncate = limits.pop_truncate(payload)
        inputs, parameters = self.handler.input_fn(json.dumps(payload).encode("utf-8"), content_type)
        assert self.prompts is not None
        inputs, cost = self.prompts.fit(inputs, parameters, truncate)
        try:
            job = self.queue.submit(inputs, parameters, cost)
        except QueueFull as err:
            raise limits.LimitError(HTTPStatus.SERVICE_UNAVAILABLE, f"{err} ({limits.ENVIRONMENT['max_queue']}="
                                                                    f"{self.limits.max_queue}); retry shortly") from err
        try:
            return self.queue.wait(job, self.limits.request_timeout_seconds), job
        except WaitTimeout as err:
            raise limits.LimitError(HTTPStatus.GATEWAY_TIMEOUT if err.started else HTTPStatus.SERVICE_UNAVAILABLE,
                                    f"{err} ({limits.ENVIRONMENT['request_timeout_seconds']}="
                                    f"{self.limits.request_timeout_seconds:g})") from err


class PromptLimiter:
    """Each input's prompt tokens against the request's budget: a 400 naming the input and the limit, or, when
    the request asks to truncate, the input cut to its last tokens (a chat first loses its oldest turns)."""

    def __init__(self, handler: ModuleType, loaded: Any, serving_limits: limits.ServingLimits) -> None:
        self.render = getattr(handler, "render", None)
        self.tokenizer = getattr(loaded, "tokenizer", None)
        model = getattr(loaded, "model", None)
        self.limits = serving_limits
        self.max_length = limits.model_max_length(self.tokenizer, getattr(model, "config", None))
        self.longest_chars = limits.longest_token_chars(self.tokenizer) if self.tokenizer is not None else 0
        self.loaded = loaded
        self.default_max_new_tokens = getattr(handler, "DEFAULT_MAX_NEW_TOKENS", 32)

    @property
    def active(self) -> bool:
        return self.render is not None and self.tokenizer is not None

    def _tokens(self, text: str, budget: limits.TokenBudget) -> int:
        return self._count(text, budget)[0]

    def _count(self, text: str, budget: limits.TokenBudget) -> tuple[int, bool]:
        return limits.count_tokens(text, lambda t: len(self.tokenizer(t, add_special_tokens=True)["input_ids"]),
                                   self.longest_chars, budget.limit)

    def fit(self, inputs: list[Any], parameters: dict[str, Any], truncate: bool) -> tuple[list[Any], int]:
        """(the inputs, truncated where asked, and the request's cost: prompt tokens + tokens to generate)."""
        max_new_tokens = int(parameters.get("max_new_tokens", self.default_max_new_tokens))
        if not self.active:
            return inputs, sum(len(str(item)) // 4 + max_new_tokens for item in inputs)
        budget = limits.TokenBudget.for_request(self.limits, self.max_length, max_new_tokens)
        fitted, cost = [], 0
        for index, item in enumerate(inputs):
            where = f"inputs[{index}]" if len(inputs) > 1 else "inputs"
            tokens, exact = self._count(self.render(self.loaded, item), budget)
            if tokens > budget.limit:
                if not truncate:
                    raise limits.LimitError(HTTPStatus.BAD_REQUEST,
                                            limits.over_limit_message(where, tokens, budget, exact))
                item, tokens = self._truncate(item, budget, where)
            fitted.append(item)
            cost += tokens + max_new_tokens
        return fitted, cost

    def _truncate(self, item: Any, budget: limits.TokenBudget, where: str) -> tuple[Any, int]:
        """The input cut to fit: a string keeps its last tokens; a chat drops its oldest turns (not the system
        message, not the last user message), then keeps the last tokens of that message."""
        if isinstance(item, list):
            messages = list(item)
            first = 1 if messages and messages[0]["role"] == "system" else 0
            while len(messages) - first > 1:
                tokens = self._tokens(self.render(self.loaded, messages), budget)
                if tokens <= budget.limit:
                    return messages, tokens
                del messages[first]
            last = messages[-1]
            text, tokens = self._cut(last["content"], lambda t: messages[:-1] + [{**last, "content": t}], budget, where)
            return messages[:-1] + [{**last, "content": text}], tokens
        return self._cut(item, lambda t: t, budget, where)

    def _cut(self, text: str, wrap: Any, budget: limits.TokenBudget, where: str) -> tuple[str, int]:
        """`text`'s last tokens such that the rendered input fits the budget."""
        if self.longest_chars:  # more characters than this cannot fit: never tokenize more
            text = text[-(budget.limit + 1) * self.longest_chars * limits.NORMALIZER_SLACK:]
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        overhead = self._tokens(self.render(self.loaded, wrap("")), budget)
        keep = budget.limit - overhead
        for _ in range(8):
            if keep <= 0:
                break
            candidate = self.tokenizer.decode(ids[-keep:], skip_special_tokens=True)
            tokens = self._tokens(self.render(self.loaded, wrap(candidate)), budget)
            if tokens <= budget.limit:
                return candidate, tokens
            keep -= tokens - budget.limit
        raise limits.LimitError(HTTPStatus.BAD_REQUEST, f"{where} cannot be truncated to {budget.limit} tokens "
                                                        f"({budget.reason}): its template alone takes {overhead}")


def _load_in_background(server: InferenceServer, model_dir: Path) -> None:
    """Load the model, then publish it; a model that cannot load ends the process with exit code 1."""
    try:
        handler = load_handler(find_model_dir(model_dir))
        server.publish(handler, handler.model_fn(str(find_model_dir(model_dir))))
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print(f"error: cannot load the model from {model_dir}", file=sys.stderr, flush=True)
        os._exit(1)
    print(f"model loaded from {model_dir}; serving on port {server.server_address[1]}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """CLI; the literal `serve` (as SageMaker starts containers) switches the defaults to the container's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    container_mode = bool(argv) and argv[0] == "serve"
    if container_mode:
        argv = argv[1:]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path(CONTAINER_MODEL_DIR) if container_mode else None)
    parser.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", CONTAINER_PORT)))
    parser.add_argument("--host", default="0.0.0.0" if container_mode else "127.0.0.1")
    args = parser.parse_args(argv)
    if args.model_dir is None:
        parser.error("pass --model-dir DIR (or the literal 'serve' for the container's /opt/ml/model)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Bind the port first (so a busy port fails fast), load the model in the background, serve forever."""
    args = parse_args(argv)
    try:
        serving_limits = limits.ServingLimits.from_environment()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    server = InferenceServer((args.host, args.port), serving_limits)
    print(f"listening on {args.host}:{server.server_address[1]}; loading {args.model_dir}; limits {serving_limits}",
          flush=True)
    threading.Thread(target=_load_in_background, args=(server, args.model_dir), daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
