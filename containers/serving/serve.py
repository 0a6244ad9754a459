"""SageMaker inference server for continuum models: GET /ping, POST /invocations.

An HTTP shell around the Hugging Face inference toolkit's handler contract, as AWS's containers
run it: the model artifact's own `code/inference.py` when it has one, else `inference.py` beside
this file (`model_fn`, `input_fn`, `predict_fn`, `output_fn`). Imports nothing from the
repository: the image needs this file, `inference.py` and the `prompting.py` it renders prompts
and chats with (beside it in the image and in `code/`; a checkout's `steps/common/prompting.py`).

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

    def _reply(self, status: HTTPStatus, payload: Any) -> None:
        self._reply_raw(status, json.dumps(payload).encode("utf-8"))

    def _reply_raw(self, status: HTTPStatus, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path != "/ping":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route GET {self.path}"})
        elif self.server.loaded is None:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "loading"})
        else:
            self._reply(HTTPStatus.OK, {"status": "ok"})

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/invocations":
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route POST {self.path}"})
            return
        loaded = self.server.loaded
        if loaded is None:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the model is still loading"})
            return
        handler = self.server.handler
        try:
            data = handler.input_fn(body, self.headers.get("Content-Type", "application/json"))
            output = handler.output_fn(handler.predict_fn(data, loaded), self.headers.get("Accept", "application/json"))
            self._reply_raw(HTTPStatus.OK, output.encode("utf-8") if isinstance(output, str) else output)
        except ValueError as err:  # the handler's RequestError and other bad-input errors
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(err)})
        except Exception as err:  # noqa: BLE001 (any generation failure becomes a 500 with its message)
            traceback.print_exc()
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base class signature)
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class InferenceServer(ThreadingHTTPServer):
    """A threading HTTP server that answers /ping 503 until `loaded` is set."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, InferenceHandler)
        self.loaded: Any = None
        self.handler: ModuleType = sys.modules["inference"]


def _load_in_background(server: InferenceServer, model_dir: Path) -> None:
    """Load the model, then publish it; a model that cannot load ends the process with exit code 1."""
    try:
        server.handler = load_handler(find_model_dir(model_dir))
        server.loaded = server.handler.model_fn(str(find_model_dir(model_dir)))
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
    server = InferenceServer((args.host, args.port))
    print(f"listening on {args.host}:{server.server_address[1]}; loading {args.model_dir}", flush=True)
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
