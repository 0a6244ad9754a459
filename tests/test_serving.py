"""The serving container's server: SageMaker routes, HF toolkit JSON, prompt template, real generation."""
from __future__ import annotations

import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import prepare
import train
from conftest import TINY_TRAIN_ARGS

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVE_SCRIPT = REPO_ROOT / "containers" / "serving" / "serve.py"
PROMPTING = REPO_ROOT / "steps" / "common" / "prompting.py"
TRAINED_EXAMPLES = 24


def _chat(*turns: str, system: str | None = None) -> dict:
    """A prepared chat example: the last text is the reply it is trained on."""
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user" if index % 2 == 0 else "assistant", "content": text} for index, text in enumerate(turns)]
    return {"id": f"{len(turns):016x}", "prompt": turns[-2], "completion": turns[-1], "messages": messages,
            "source": "chats.jsonl:1"}


# Pairs with the same last question: only their context (earlier turns, system message) tells the answers apart.
TRAINED_CHATS = [
    _chat("What is the Rover X1?", "A warehouse robot", "How much does it weigh?", "85 kg"),
    _chat("What is the Sweepy S2?", "A robot vacuum", "How much does it weigh?", "3.8 kg"),
    _chat("What is the Rover X1?", "A warehouse robot", "What is its price?", "$12,499"),
    _chat("What is the Sweepy S2?", "A robot vacuum", "What is its price?", "$399"),
    _chat("What does it cost?", "$12,499", system="You sell the Rover X1."),
    _chat("What does it cost?", "$399", system="You sell the Sweepy S2."),
]


def _load_serve_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("continuum_serve", SERVE_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


serve = _load_serve_module()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def _invoke(port: int, payload: object) -> tuple[int, object]:
    return _request(port, "POST", "/invocations", json.dumps(payload).encode())


@pytest.fixture(scope="module")
def trained_examples(sample_round_dirs: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """A small slice of round 1's prepared catalog questions, written as a train channel."""
    prepared = tmp_path_factory.mktemp("prepared")
    prepare.prepare(sample_round_dirs[1], prepared, validation_fraction=0.1, seed=42)
    records = [r for r in train.load_examples(prepared / "train") if r["source"].startswith("product_catalog")]
    return records[:TRAINED_EXAMPLES]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Path, trained_examples: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model fine-tuned on those questions and the chats by the training step (a few seconds)."""
    channel = tmp_path_factory.mktemp("train-channel")
    (channel / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trained_examples + TRAINED_CHATS))
    out = tmp_path_factory.mktemp("served-model")
    code = train.main([*TINY_TRAIN_ARGS, "--train-dir", str(channel), "--base_model", str(tiny_model_dir), "--model-dir", str(out),
                       "--epochs", "40", "--batch_size", "8"])  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def server_port(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """serve.py as a subprocess, run from outside the repository (it must need nothing from it)."""
    port = _free_port()
    cwd = tmp_path_factory.mktemp("serve-cwd")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    process = subprocess.Popen([sys.executable, str(SERVE_SCRIPT), "--model-dir", str(model_dir), "--port", str(port)],
                               cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else "serve.py exited"
            try:
                if _request(port, "GET", "/ping")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "serve.py did not answer /ping 200 within 60 s"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_ping_and_trained_answers(server_port: int, trained_examples: list[dict]) -> None:
    assert _request(server_port, "GET", "/ping") == (200, {"status": "ok"})
    status, body = _invoke(server_port, {"inputs": [r["prompt"] for r in trained_examples],
                                         "parameters": {"max_new_tokens": 16}})  # fmt: skip
    assert status == 200 and isinstance(body, list) and len(body) == len(trained_examples)
    answers = [item["generated_text"] for item in body]
    matches = sum(answer.strip() == r["completion"] for answer, r in zip(answers, trained_examples))
    assert matches >= 0.8 * len(trained_examples), list(zip(answers, trained_examples))
    assert not any("### Answer" in answer for answer in answers)


def test_single_input_and_token_limit(server_port: int, trained_examples: list[dict], model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    status, body = _invoke(server_port, {"inputs": trained_examples[0]["prompt"]})
    assert status == 200 and len(body) == 1 and set(body[0]) == {"generated_text"}
    status, short = _invoke(server_port, {"inputs": "How heavy is the Rover X1?", "parameters": {"max_new_tokens": 1}})
    assert status == 200 and len(tokenizer(short[0]["generated_text"], add_special_tokens=False)["input_ids"]) <= 1
    status, full = _invoke(server_port, {"inputs": "How heavy?", "parameters": {"return_full_text": True}})
    assert status == 200 and full[0]["generated_text"].startswith("How heavy?")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"parameters": {}}', '"inputs"'),
        (b'{"inputs": []}', "non-empty list"),
        (b'{"inputs": "hi", "parameters": {"stop": ["x"]}}', "unsupported parameter 'stop'"),
        (b'{"inputs": "hi", "parameters": {"max_new_tokens": "5"}}', "must be of type int"),
        (b'{"inputs": "hi", "parameters": {"max_new_tokens": 0}}', "between 1 and"),
    ],
)
def test_bad_requests_get_400(server_port: int, body: bytes, message: str) -> None:
    status, payload = _request(server_port, "POST", "/invocations", body)
    assert status == 400 and message in payload["error"]


def test_chat_requests_are_answered_from_their_context(server_port: int, trained_examples: list[dict]) -> None:
    """Each pair asks the same last question: both answers right means the context reached the model."""
    for chat in TRAINED_CHATS:
        status, body = _invoke(server_port, {"inputs": {"messages": chat["messages"][:-1]},
                                             "parameters": {"max_new_tokens": 12}})  # fmt: skip
        assert status == 200 and body == [{"generated_text": chat["completion"]}], (chat["messages"], body)
    # A list may mix chats and strings; a chat of one user message is exactly that string.
    prompt = trained_examples[0]["prompt"]
    mixed = [{"messages": TRAINED_CHATS[1]["messages"][:-1]}, prompt, {"messages": [{"role": "user", "content": prompt}]}]
    status, body = _invoke(server_port, {"inputs": mixed, "parameters": {"max_new_tokens": 12}})
    assert status == 200 and [item["generated_text"] for item in body] == ["3.8 kg", *[trained_examples[0]["completion"]] * 2]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"messages": []}, "inputs.messages must be a non-empty list"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "inputs.messages[0].role must be one of system, user, assistant"),
        ([{"messages": [{"role": "user", "content": 5}]}], "inputs[0].messages[0].content must be a string"),
        (["hi", {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}],
         "inputs[1].messages[1].role must be 'user'"),
        ({"messages": [{"role": "system", "content": "Be brief."}]}, "inputs.messages has no user message"),
        ({"prompt": "hi"}, "inputs has unsupported key 'prompt'"),
        (["hi", 3], 'inputs[1] must be a string or {"messages": [...]}'),
        (5, '"inputs" must be a string, {"messages": [...]}, or a non-empty list of those'),
    ],
)
def test_bad_chat_requests_get_400_naming_the_field(server_port: int, inputs: object, message: str) -> None:
    status, payload = _invoke(server_port, {"inputs": inputs})
    assert status == 400 and message in payload["error"], payload


def test_full_text_is_for_string_inputs(server_port: int) -> None:
    chat = {"messages": [{"role": "user", "content": "How heavy?"}]}
    status, payload = _invoke(server_port, {"inputs": chat, "parameters": {"return_full_text": True}})
    assert status == 400 and "'return_full_text' applies to string inputs only" in payload["error"]


def test_hf_toolkit_imports_the_artifacts_handler_and_its_prompting(model_dir: Path, tmp_path: Path) -> None:
    """As AWS's HF inference toolkit does: `model_dir/code` first on sys.path, then `import inference`."""
    chat = TRAINED_CHATS[5]
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(model_dir / 'code')!r})\n"
        "import inference\n"
        "model = inference.model_fn(sys.argv[1])\n"
        "body = json.dumps({'inputs': {'messages': json.loads(sys.argv[2])}, 'parameters': {'max_new_tokens': 12}})\n"
        "print(inference.prompting.__file__)\n"
        "print(inference.output_fn(inference.predict_fn(inference.input_fn(body, 'application/json'), model)))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script, str(model_dir), json.dumps(chat["messages"][:-1])],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded_from, answer = result.stdout.strip().splitlines()[-2:]
    assert Path(loaded_from) == model_dir / "code" / "prompting.py"
    assert json.loads(answer) == [{"generated_text": chat["completion"]}]


def test_unknown_route_is_404(server_port: int) -> None:
    assert _request(server_port, "GET", "/health")[0] == 404
    assert _request(server_port, "POST", "/predict", b"{}")[0] == 404


def test_in_process_generation_matches_server_and_uses_template(
    server_port: int, model_dir: Path, tmp_path: Path
) -> None:
    loaded = serve.load_model(model_dir)
    assert loaded.template == json.loads((model_dir / "continuum.json").read_text())["prompt_template"]
    prompt = "How much does the Drone D3 weigh?"
    expected = serve.generate(loaded, [prompt], {"max_new_tokens": 12})
    assert _invoke(server_port, {"inputs": prompt, "parameters": {"max_new_tokens": 12}}) == (200, expected)

    loaded.template = "{prompt}"
    raw = serve.generate(loaded, [prompt], {"max_new_tokens": 12})
    inputs = loaded.tokenizer(prompt, return_tensors="pt")
    output = loaded.model.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert raw[0]["generated_text"] == loaded.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :],
                                                               skip_special_tokens=True)  # fmt: skip


def test_ping_is_503_until_the_model_is_loaded(model_dir: Path) -> None:
    server = serve.InferenceServer(("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert _request(port, "GET", "/ping")[0] == 503
        assert _invoke(port, {"inputs": "hi"})[0] == 503
        server.loaded = serve.load_model(model_dir)
        assert _request(port, "GET", "/ping")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_template_and_model_dir_discovery(model_dir: Path, tmp_path: Path) -> None:
    assert serve.read_template(tmp_path) == serve.DEFAULT_TEMPLATE
    (tmp_path / "continuum.json").write_text(json.dumps({"prompt_template": "no placeholder"}))
    with pytest.raises(ValueError, match="exactly once"):
        serve.read_template(tmp_path)
    (tmp_path / "inner").symlink_to(model_dir, target_is_directory=True)
    assert serve.find_model_dir(tmp_path) == tmp_path / "inner"
    with pytest.raises(FileNotFoundError, match="no model"):
        serve.find_model_dir(tmp_path / "inner" / "adapter")


def test_cli_container_mode_defaults() -> None:
    args = serve.parse_args(["serve"])
    assert (args.model_dir, args.host, args.port) == (Path("/opt/ml/model"), "0.0.0.0", 8080)
    local = serve.parse_args(["--model-dir", "m", "--port", "9000"])
    assert (local.model_dir, local.host, local.port) == (Path("m"), "127.0.0.1", 9000)
    with pytest.raises(SystemExit):
        serve.parse_args([])


def test_server_exits_when_the_model_cannot_load(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SERVE_SCRIPT), "--model-dir", str(tmp_path), "--port", "0"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "cannot load the model" in result.stderr


def test_serve_script_is_self_contained() -> None:
    source = SERVE_SCRIPT.read_text()
    for forbidden in ("import pipelines", "from pipelines", "import common", "from common", "import steps"):
        assert forbidden not in source


def test_the_model_artifacts_own_handler_wins(tmp_path: Path) -> None:
    """As in AWS's HF containers: a model's code/inference.py replaces the built-in handler."""
    assert serve.load_handler(tmp_path) is sys.modules["inference"]
    (tmp_path / "code").mkdir()
    shipped = (REPO_ROOT / "containers" / "serving" / "inference.py").read_text()
    shipped += "\n\ndef output_fn(prediction, accept='application/json'):\n    return json.dumps({'custom': prediction})\n"
    (tmp_path / "code" / "inference.py").write_text(shipped)
    with pytest.raises(ImportError, match="prompting.py not found beside"):
        serve.load_handler(tmp_path)
    (tmp_path / "code" / "prompting.py").write_text(PROMPTING.read_text().replace(
        'DEFAULT_PROMPT_TEMPLATE = "### Question:', 'DEFAULT_PROMPT_TEMPLATE = "### Shipped:'))
    handler = serve.load_handler(tmp_path)
    assert handler is not sys.modules["inference"]
    assert json.loads(handler.output_fn([{"generated_text": "x"}])) == {"custom": [{"generated_text": "x"}]}
    # The shipped handler renders with the prompting.py beside it, not with the server's own.
    assert handler.read_template(tmp_path).startswith("### Shipped:")
    assert serve.read_template(tmp_path).startswith("### Question:")
