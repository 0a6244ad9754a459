"""SageMaker inference server for continuum models: GET /ping, POST /invocations.

Speaks the Hugging Face inference toolkit's JSON: request `{"inputs": str | [str], "parameters":
{"max_new_tokens": int, ...}}`, response `[{"generated_text": str}, ...]` holding only the newly
generated text. Each input is put into the model's prompt template (from `continuum.json`) and
decoded greedily unless `do_sample` is set, stopping at EOS. Self-contained: it imports nothing
from the repository, so the image needs only this file.

    python serve.py --model-dir DIR --port 8080 [--host 127.0.0.1]
    python serve.py serve            # in the image: /opt/ml/model on 0.0.0.0:8080, as SageMaker runs it
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE = "### Question:\n{prompt}\n### Answer:\n"
DEFAULT_MAX_NEW_TOKENS = 32
MAX_NEW_TOKENS_LIMIT = 2048
CONTAINER_MODEL_DIR = "/opt/ml/model"
CONTAINER_PORT = 8080
# Below this size, intra-op threads cost more than they save on CPU.
SINGLE_THREAD_MAX_PARAMETERS = 20_000_000
GENERATION_PARAMETERS: dict[str, tuple[type, ...]] = {
    "max_new_tokens": (int,),
    "do_sample": (bool,),
    "temperature": (int, float),
    "top_p": (int, float),
    "top_k": (int,),
    "repetition_penalty": (int, float),
    "return_full_text": (bool,),
}


class RequestError(ValueError):
    """The request cannot be served as sent (answered with 400 and this message)."""


@dataclass
class LoadedModel:
    """A model ready to generate: weights, tokenizer, prompt template, and a lock serializing generation."""

    model: Any
    tokenizer: Any
    template: str
    lock: threading.Lock


def find_model_dir(model_dir: Path) -> Path:
    """`model_dir` if it holds config.json, else its single subfolder that does."""
    model_dir = Path(model_dir)
    if (model_dir / "config.json").is_file():
        return model_dir
    nested = [d for d in sorted(model_dir.glob("*/")) if (d / "config.json").is_file()] if model_dir.is_dir() else []
    if len(nested) != 1:
        raise FileNotFoundError(f"{model_dir}: no model (config.json) at the top or in exactly one subfolder")
    return nested[0]


def read_template(model_dir: Path) -> str:
    """The prompt template from the model's continuum.json, else the default."""
    meta_path = Path(model_dir) / "continuum.json"
    if not meta_path.is_file():
        return DEFAULT_TEMPLATE
    try:
        template = json.loads(meta_path.read_text(encoding="utf-8")).get("prompt_template", DEFAULT_TEMPLATE)
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{meta_path}: not a JSON object: {err}") from err
    if not isinstance(template, str) or template.count("{prompt}") != 1:
        raise ValueError(f"{meta_path}: prompt_template must contain '{{prompt}}' exactly once, got {template!r}")
    return template


def load_model(model_dir: Path) -> LoadedModel:
    """Load the model and tokenizer (bf16 on a GPU that supports it, else fp32 on CPU) in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = find_model_dir(model_dir)
    use_gpu = torch.cuda.is_available()
    dtype = torch.bfloat16 if use_gpu and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(root)
    model = AutoModelForCausalLM.from_pretrained(root, dtype=dtype)
    model.to("cuda" if use_gpu else "cpu").eval()
    if not use_gpu and "OMP_NUM_THREADS" not in os.environ and model.num_parameters() <= SINGLE_THREAD_MAX_PARAMETERS:
        torch.set_num_threads(1)
    return LoadedModel(model=model, tokenizer=tokenizer, template=read_template(root), lock=threading.Lock())


def parse_request(body: bytes) -> tuple[list[str], dict[str, Any]]:
    """(prompts, generation parameters) from an /invocations body; RequestError says what is wrong."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(f"request body is not valid JSON: {err}") from err
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise RequestError('request must be a JSON object with "inputs" (a string or a list of strings)')
    inputs = payload["inputs"]
    prompts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise RequestError('"inputs" must be a string or a non-empty list of strings')
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError('"parameters" must be a JSON object')
    for name, value in parameters.items():
        if name not in GENERATION_PARAMETERS:
            raise RequestError(f"unsupported parameter {name!r}; supported: {', '.join(GENERATION_PARAMETERS)}")
        allowed = GENERATION_PARAMETERS[name]
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise RequestError(f"parameter {name!r} must be of type {' or '.join(t.__name__ for t in allowed)}")
    max_new_tokens = parameters.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
        raise RequestError(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}, got {max_new_tokens}")
    return prompts, parameters


def generate(loaded: LoadedModel, prompts: list[str], parameters: dict[str, Any]) -> list[dict[str, str]]:
    """`[{"generated_text": ...}]` per prompt: the new text only (the raw prompt first if return_full_text)."""
    import torch

    options = {k: v for k, v in parameters.items() if k != "return_full_text"}
    options.setdefault("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    options.setdefault("do_sample", False)
    tokenizer, model = loaded.tokenizer, loaded.model
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results = []
    for prompt in prompts:
        text = loaded.template.replace("{prompt}", prompt)
        inputs = tokenizer(text, return_tensors="pt").to(model.device)
        with loaded.lock, torch.no_grad():
            output = model.generate(**inputs, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad_id, **options)
        generated = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        results.append({"generated_text": prompt + generated if parameters.get("return_full_text") else generated})
    return results


class InferenceHandler(BaseHTTPRequestHandler):
    """The SageMaker container routes; the loaded model lives on the server object."""

    server: InferenceServer
    protocol_version = "HTTP/1.1"

    def _reply(self, status: HTTPStatus, payload: Any) -> None:
        body = json.dumps(payload).encode("utf-8")
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
        try:
            prompts, parameters = parse_request(body)
            self._reply(HTTPStatus.OK, generate(loaded, prompts, parameters))
        except RequestError as err:
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
        self.loaded: LoadedModel | None = None


def _load_in_background(server: InferenceServer, model_dir: Path) -> None:
    """Load the model, then publish it; a model that cannot load ends the process with exit code 1."""
    try:
        server.loaded = load_model(model_dir)
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
