"""What training saves, the serving image loads: proven in the serving image's own package versions.

train.py trains a tiny Llama-style model (rope_theta 5e5 with llama3 rope scaling, on Acme's data) and
a tiny Qwen2-style one (rope_theta 1e6, on Tidewater Ferries' data). Each artifact is then loaded
through its own `code/inference.py` (as AWS's Hugging Face inference toolkit does) twice: in the
training environment, and in a separate virtualenv holding the serving image's transformers
(containers/images.yaml) — made by containers/serving/make_test_env.sh, which the README's test
command runs. Token ids, logits and generated text must agree; a rope misread (transformers 4.x reads
a transformers-5 config with rope_theta 10000) is shown to move the logits far beyond the tolerance.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ferry_company
import prepare
import train
from conftest import TINY_TRAIN_ARGS
from pipelines.images import IMAGES_FILE, load_catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVING_ENV = Path(os.environ.get("CONTINUUM_SERVING_ENV", REPO_ROOT / ".venv" / "serving"))
MAKE_ENV = "containers/serving/make_test_env.sh"
LOGITS_TOLERANCE = 1e-4
# The rope_theta transformers 4.x falls back to when a transformers-5 config has none at the top level.
LEGACY_DEFAULT_THETA = 10000.0
MODELS: dict[str, dict[str, Any]] = {
    "llama": {"model_type": "llama", "rope_parameters": {
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 32}},
    "qwen2": {"model_type": "qwen2", "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}},
}

# Runs in either environment: the artifact's handler loads the model exactly as an endpoint does; then the
# logits of each prompt, the handler's own generation, and (asked for) the logits with rope_theta misread.
_PROBE = r"""
import json, sys
import torch, transformers
request = json.loads(sys.argv[1])
results = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0], "models": {}}
for name, model_dir in request["models"].items():
    sys.path.insert(0, model_dir + "/code")
    sys.modules.pop("inference", None)
    import inference
    loaded = inference.model_fn(model_dir)
    ids, logits = [], []
    for prompt in request["prompts"]:
        encoded = loaded.tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            logits.append(loaded.model(**encoded).logits[0].tolist())
        ids.append(encoded["input_ids"][0].tolist())
    body = json.dumps({"inputs": request["prompts"], "parameters": {"max_new_tokens": 8}})
    reply = inference.output_fn(inference.predict_fn(inference.input_fn(body, "application/json"), loaded))
    entry = {"ids": ids, "logits": logits, "generated": json.loads(reply),
             "tokenizer": type(loaded.tokenizer).__name__, "rope": loaded.model.config.rope_parameters}
    if request.get("misread_theta"):
        config = transformers.AutoConfig.from_pretrained(model_dir)
        config.rope_parameters = {**config.rope_parameters, "rope_theta": request["misread_theta"]}
        misread = transformers.AutoModelForCausalLM.from_pretrained(model_dir, config=config, dtype=torch.float32).eval()
        with torch.no_grad():
            entry["misread_logits"] = [misread(**loaded.tokenizer(p, return_tensors="pt")).logits[0].tolist()
                                       for p in request["prompts"]]
    results["models"][name] = entry
    sys.path.remove(model_dir + "/code")
print(json.dumps(results))
"""


def _serving_python() -> Path:
    python = SERVING_ENV / "bin" / "python"
    if not python.is_file():
        pytest.fail(f"no serving test environment at {SERVING_ENV} (the serving image's transformers in a virtualenv "
                    f"of its own); make it with `{MAKE_ENV} {SERVING_ENV}` — the README's test command does")
    return python


def _tiny_base(kind: str, tokenizer_dir: Path, out: Path) -> Path:
    """A seeded 2-layer model of `kind` with non-default rope settings, sharing the tiny tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from pipelines.demo.tiny_model import LM_HEAD_INIT_STD

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    spec = MODELS[kind]
    config = AutoConfig.for_model(
        spec["model_type"], vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        rope_parameters=dict(spec["rope_parameters"]))
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(config).to(torch.float32)
    with torch.no_grad():
        model.lm_head.weight.normal_(mean=0.0, std=LM_HEAD_INIT_STD)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _train(base: Path, split: Path, out: Path, empty: Path) -> Path:
    argv = ["--train-dir", str(split / "train"), "--validation-dir", str(split / "validation"),
            "--report-dir", str(split / "report"), "--base-model-dir", str(empty), "--base_model", str(base),
            "--model-dir", str(out), *TINY_TRAIN_ARGS, "--max_steps", "6", "--fisher_samples", "8"]
    assert train.main(argv) == 0, f"train.py failed for {base}"
    return out


@pytest.fixture(scope="module")
def artifacts(tiny_model_dir: Path, prepared_rounds: dict[int, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, Path]:
    """Both tiny models trained by train.py: Llama-style on Acme's round 1, Qwen2-style on Tidewater's."""
    root = tmp_path_factory.mktemp("serving-compat")
    ferry_raw = ferry_company.write_round(1, root / "ferry-raw")
    prepare.prepare(ferry_raw, root / "ferry", validation_fraction=0.1, seed=42)
    (root / "empty").mkdir()
    splits = {"llama": prepared_rounds[1], "qwen2": root / "ferry"}
    return {kind: _train(_tiny_base(kind, tiny_model_dir, root / f"{kind}-base"), splits[kind],
                         root / f"{kind}-trained", root / "empty") for kind in MODELS}


def _probe(python: Path | str, artifacts: dict[str, Path], prompts: list[str], misread: bool) -> dict[str, Any]:
    request = {"models": {kind: str(path) for kind, path in artifacts.items()}, "prompts": prompts,
               "misread_theta": LEGACY_DEFAULT_THETA if misread else None}
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([str(python), "-c", _PROBE, json.dumps(request)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, f"{python}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _max_abs_diff(a: list, b: list) -> float:
    import torch

    return max(float((torch.tensor(x) - torch.tensor(y)).abs().max()) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def probes(artifacts: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """(training environment, serving environment) probes of both artifacts on the same prompts."""
    serving_python = _serving_python()
    prompts = ["What is the return window?", "When does the first ferry leave Port Alder for Gull Island?",
               "Tell me about the warehouse robot and its battery life, in one sentence please."]
    return {"training": _probe(sys.executable, artifacts, prompts, misread=True),
            "serving": _probe(serving_python, artifacts, prompts, misread=False)}


def test_the_serving_environment_has_the_serving_images_versions(probes: dict[str, dict[str, Any]]) -> None:
    catalog = load_catalog()
    recorded = {catalog.for_step("serving", accelerator).version("transformers") for accelerator in ("cpu", "gpu")}
    assert recorded == {probes["serving"]["transformers"]}, (
        f"{SERVING_ENV} has transformers {probes['serving']['transformers']}, {IMAGES_FILE} records {recorded}: "
        f"remake it with {MAKE_ENV}")
    assert probes["training"]["transformers"] != probes["serving"]["transformers"], "the check compares two versions"


@pytest.mark.parametrize("kind", list(MODELS))
def test_the_serving_image_reads_the_trained_model_as_training_does(kind: str, probes: dict[str, dict[str, Any]],
                                                                     artifacts: dict[str, Path]) -> None:
    trained, served = probes["training"]["models"][kind], probes["serving"]["models"][kind]
    saved = json.loads((artifacts[kind] / "config.json").read_text(encoding="utf-8"))
    assert saved["model_type"] == MODELS[kind]["model_type"]
    assert served["rope"] == trained["rope"]
    assert {key: served["rope"].get(key) for key in MODELS[kind]["rope_parameters"]} == MODELS[kind]["rope_parameters"]
    assert served["tokenizer"] == trained["tokenizer"]
    assert served["ids"] == trained["ids"]
    difference = _max_abs_diff(served["logits"], trained["logits"])
    print(f"{kind}: serving vs training logits max |diff| = {difference:.3g} "
          f"(transformers {probes['serving']['transformers']} vs {probes['training']['transformers']})")
    assert difference <= LOGITS_TOLERANCE
    assert served["generated"] == trained["generated"]
    assert any(item["generated_text"] for item in served["generated"])
    # the comparison can fail: the positions a 4.x reader would use move the logits far past the tolerance
    misread = _max_abs_diff(trained["misread_logits"], trained["logits"])
    print(f"{kind}: rope_theta misread as {LEGACY_DEFAULT_THETA:g}: logits max |diff| = {misread:.3g}")
    assert misread > 100 * LOGITS_TOLERANCE


def test_the_artifact_carries_what_the_serving_image_needs(artifacts: dict[str, Path]) -> None:
    for path in artifacts.values():
        shipped = (path / "code" / "requirements.txt").read_text(encoding="utf-8")
        assert shipped == (REPO_ROOT / "containers" / "serving" / "requirements.txt").read_text(encoding="utf-8")
        assert {"inference.py", "prompting.py", "requirements.txt"} <= {p.name for p in (path / "code").iterdir()}
