"""The training step: label masking, model_io, and real LoRA runs on the tiny model with round-1 data."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import train
from common.examples import IGNORE_INDEX, collate, encode_example
from common.examples import read_examples as load_examples
from common.model_io import contains_model, materialize_model_dir, read_metadata
from common.prompting import DEFAULT_PROMPT_TEMPLATE, format_prompt, template_from_metadata
from conftest import TINY_TRAIN_ARGS

REPO_ROOT = Path(__file__).resolve().parents[1]


def _tar_directory(folder: Path, archive: Path) -> Path:
    """A SageMaker-style model.tar.gz: the folder's contents at the archive root."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


@pytest.fixture(scope="module")
def round1_splits(prepared_rounds: dict[int, Path]) -> Path:
    """Round 1 through the prepare step: `train/`, `validation/` and `report/` folders."""
    return prepared_rounds[1]


@pytest.fixture(scope="module")
def trained(trained_round1: dict) -> dict:
    """One training run with the default hyperparameters; its output folder, stdout and wall time."""
    return trained_round1


def test_prompt_tokens_are_masked(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt_ids = tokenizer(format_prompt(DEFAULT_PROMPT_TEMPLATE, "What is the return window?"))["input_ids"]
    completion_ids = tokenizer("30 days", add_special_tokens=False)["input_ids"]
    example = encode_example(tokenizer, DEFAULT_PROMPT_TEMPLATE, "What is the return window?", "30 days", 256)
    assert example is not None
    assert example.input_ids == prompt_ids + completion_ids + [tokenizer.eos_token_id]
    assert example.labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert example.labels[len(prompt_ids) :] == completion_ids + [tokenizer.eos_token_id]

    clipped = encode_example(tokenizer, DEFAULT_PROMPT_TEMPLATE, "What is the return window?", "30 days",
                                   len(prompt_ids) + 1)  # fmt: skip
    assert clipped is not None and clipped.labels[-1] == completion_ids[0]
    assert encode_example(tokenizer, DEFAULT_PROMPT_TEMPLATE, "What is the return window?", "30 days",
                                len(prompt_ids)) is None  # fmt: skip

    batch = collate([example, clipped], tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, len(example.input_ids))
    assert batch["attention_mask"][1].tolist() == [1] * len(clipped.input_ids) + [0] * (
        len(example.input_ids) - len(clipped.input_ids)
    )
    assert batch["labels"][1, len(clipped.input_ids) :].eq(IGNORE_INDEX).all()


def test_prompting_template_rules() -> None:
    assert format_prompt("Q: {prompt} {x}\nA:", "a {b}") == "Q: a {b} {x}\nA:"
    assert template_from_metadata({}) == DEFAULT_PROMPT_TEMPLATE
    assert template_from_metadata({"prompt_template": "<{prompt}>"}) == "<{prompt}>"
    with pytest.raises(ValueError, match="exactly once"):
        format_prompt("no placeholder", "x")


def test_materialize_model_dir_layouts(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert materialize_model_dir(tiny_model_dir) == tiny_model_dir
    nested = tmp_path / "channel"
    nested.mkdir()
    (nested / "model").symlink_to(tiny_model_dir, target_is_directory=True)
    assert materialize_model_dir(nested) == nested / "model"

    archive_channel = tmp_path / "archive-channel"
    archive_channel.mkdir()
    archive = _tar_directory(tiny_model_dir, archive_channel / "model.tar.gz")
    assert contains_model(archive_channel) and contains_model(archive)
    extracted = materialize_model_dir(archive_channel)
    assert (extracted / "config.json").read_bytes() == (tiny_model_dir / "config.json").read_bytes()
    stamp = (extracted / "model.safetensors").stat().st_mtime_ns
    assert materialize_model_dir(archive) == extracted
    assert (extracted / "model.safetensors").stat().st_mtime_ns == stamp

    empty = tmp_path / "empty"
    empty.mkdir()
    assert not contains_model(empty)
    with pytest.raises(FileNotFoundError, match="neither a model directory"):
        materialize_model_dir(empty)


def test_materialize_rejects_unsafe_archive(tmp_path: Path) -> None:
    import io

    channel = tmp_path / "channel"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        payload = b"{}"
        info = tarfile.TarInfo("../escaped.json")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ValueError, match="cannot extract"):
        materialize_model_dir(channel)
    assert not (tmp_path / "escaped.json").exists()


def test_read_metadata(tmp_path: Path) -> None:
    assert read_metadata(tmp_path) == {}
    (tmp_path / "continuum.json").write_text('{"prompt_template": "{prompt}"}')
    assert read_metadata(tmp_path) == {"prompt_template": "{prompt}"}
    (tmp_path / "continuum.json").write_text('{"prompt_template": ')
    with pytest.raises(ValueError, match="continuum.json: invalid JSON at line 1"):
        read_metadata(tmp_path)


def test_bad_training_data_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    with pytest.raises(ValueError, match=r"train.jsonl:2: field 'completion'"):
        load_examples(tmp_path)


def test_missing_base_model_is_a_clear_error(round1_splits: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = train.main(["--train-dir", str(round1_splits / "train"), "--model-dir", str(tmp_path / "out"),
                       "--base-model-dir", str(tmp_path)])  # fmt: skip
    assert code == 2 and "no base model" in capsys.readouterr().err


def test_empty_training_channel_fails(tiny_model_dir: Path, tmp_path: Path) -> None:
    code = train.main(["--train-dir", str(tmp_path), "--model-dir", str(tmp_path / "out"),
                       "--base_model", str(tiny_model_dir)])  # fmt: skip
    assert code == 2 and not (tmp_path / "out").exists()


def test_help_runs_without_training() -> None:
    result = subprocess.run([sys.executable, "steps/train.py", "--help"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0
    for flag in ("--lora_r", "--target_modules", "--max_steps", "--base-model-dir", "--model-dir"):
        assert flag in result.stdout


def test_training_learns_and_saves_artifacts(trained: dict) -> None:
    assert trained["code"] == 0
    model_dir: Path = trained["dir"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "continuum.json",
                 "adapter/adapter_config.json", "adapter/adapter_model.safetensors"):  # fmt: skip
        assert (model_dir / name).is_file(), name
    meta = json.loads((model_dir / "continuum.json").read_text())
    metrics = meta["metrics"]
    assert metrics["train_loss"] < 0.1 * metrics["initial_train_loss"]
    assert metrics["eval_loss"] < 0.25 * metrics["initial_train_loss"]
    assert meta["prompt_template"] == DEFAULT_PROMPT_TEMPLATE
    assert meta["generation"] == 1 and meta["data"]["train_examples"] > 150
    assert meta["hyperparameters"]["target_modules"] == "all-linear"
    assert meta["duration_seconds"] > 0

    logged = [float(value) for value in re.findall(r"train_loss=([0-9.eE+-]+);", trained["log"])]
    assert len(logged) >= 10 and logged[-1] < logged[0] / 10
    assert f"eval_loss={metrics['eval_loss']:.6f};" in trained["log"]
    print(f"train time {trained['seconds']:.1f}s, loss {metrics['initial_train_loss']:.3f} -> {metrics['train_loss']:.4f}")


def test_artifact_ships_the_hf_toolkit_handler(trained: dict, round1_splits: Path) -> None:
    """code/inference.py in the artifact is what AWS's HF inference containers run: its hooks answer."""
    import importlib.util

    handler_path = trained["dir"] / "code" / "inference.py"
    assert handler_path.read_text() == (REPO_ROOT / "containers" / "serving" / "inference.py").read_text()
    # The rendering it imports is the training step's own: prompts and chats render as they were trained.
    shipped_prompting = trained["dir"] / "code" / "prompting.py"
    assert shipped_prompting.read_text() == (REPO_ROOT / "steps" / "common" / "prompting.py").read_text()
    spec = importlib.util.spec_from_file_location("shipped_inference", handler_path)
    handler = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = handler
    spec.loader.exec_module(handler)
    record = next(r for r in load_examples(round1_splits / "train") if r["source"].startswith("product_catalog"))
    model = handler.model_fn(str(trained["dir"]))
    data = handler.input_fn(json.dumps({"inputs": record["prompt"], "parameters": {"max_new_tokens": 16}}),
                            "application/json")
    body = handler.output_fn(handler.predict_fn(data, model), "application/json")
    assert json.loads(body) == [{"generated_text": record["completion"]}]
    assert Path(handler.prompting.__file__) == shipped_prompting
    with pytest.raises(ValueError, match="unsupported content type"):
        handler.input_fn(b"a,b", "text/csv")


def test_merged_model_matches_peft_model(trained: dict, tiny_model_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir: Path = trained["dir"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    merged = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), model_dir / "adapter")
    batch = tokenizer([format_prompt(DEFAULT_PROMPT_TEMPLATE, "How heavy is the Rover X1?")], return_tensors="pt")
    with torch.no_grad():
        expected = peft_model.eval()(**batch).logits
        actual = merged(**batch).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()(**batch).logits
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=0)
    assert (actual - base).abs().max() > 1.0


def test_trained_model_answers_its_training_questions(trained: dict, round1_splits: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir: Path = trained["dir"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    records = load_examples(round1_splits / "train")
    qa = [r for r in records if r["source"].startswith(("product_catalog", "support_faq"))]
    matches = 0
    for record in qa:
        inputs = tokenizer(format_prompt(DEFAULT_PROMPT_TEMPLATE, record["prompt"]), return_tensors="pt")
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        matches += answer.strip() == record["completion"]
    share = matches / len(qa)
    print(f"exact match on {len(qa)} training questions: {share:.3f}")
    assert len(qa) > 100 and share >= 0.8


def test_continual_training_from_previous_model_archive(trained: dict, round1_splits: Path, tmp_path: Path) -> None:
    first_dir: Path = trained["dir"]
    channel = tmp_path / "base_model"
    channel.mkdir()
    _tar_directory(first_dir, channel / "model.tar.gz")
    out = tmp_path / "second"
    code = train.main([*TINY_TRAIN_ARGS, "--train-dir", str(round1_splits / "train"), "--base-model-dir", str(channel),
                       "--model-dir", str(out), "--max_steps", "4", "--learning_rate", "1e-4"])  # fmt: skip
    assert code == 0
    first, second = (json.loads((d / "continuum.json").read_text()) for d in (first_dir, out))
    assert second["generation"] == 2 and second["base_model"] == first["base_model"]
    assert second["initialized_from"] == str(materialize_model_dir(channel))
    assert second["prompt_template"] == first["prompt_template"]
    # It starts from the trained weights: its first batch is already nearly solved.
    assert second["metrics"]["initial_train_loss"] < 0.2 < first["metrics"]["initial_train_loss"]
    assert (out / "model.safetensors").is_file() and (out / "adapter" / "adapter_model.safetensors").is_file()


def test_metadata_records_strategy_data_fisher_and_cost(trained: dict, round1_splits: Path) -> None:
    from train.fisher import load_fisher

    meta = json.loads((trained["dir"] / "continuum.json").read_text())
    report = json.loads((round1_splits / "report" / "report.json").read_text())
    assert meta["data"]["data_version"] == report["data_version"]
    assert meta["data"]["replay_examples"] == 0 and len(meta["data"]["train_sha256"]) == 64
    # The default strategy; a first version has no Fisher to start from, so nothing is penalised yet.
    assert meta["strategy"]["names"] == ["replay", "ewc", "distill"] and meta["strategy"]["penalty_applied"] is False
    assert meta["strategy"]["ewc"] == {"lambda": 0.3, "fisher_from_starting_model": False}
    assert meta["hyperparameters"]["strategy"] == "replay,ewc,distill" and meta["hyperparameters"]["packing"] is True
    assert "distill: no history examples" in trained["log"] and meta["replay"] is None
    assert "ewc: the starting model has no Fisher information" in trained["log"]
    assert meta["training"] == {**meta["training"], "device": "cpu", "dtype": "float32", "quantized_base": False,
                                "attn_implementation": "sdpa", "world_size": 1, "resumed_from_step": 0}
    assert meta["cost"]["instance_type"] == "local" and meta["cost"]["usd"] == 0.0
    assert meta["cost"]["seconds"] == pytest.approx(meta["duration_seconds"], abs=1e-3)
    fisher = load_fisher(trained["dir"])
    assert meta["continual"]["fisher"] == {"path": "continual/fisher.safetensors",
                                           "samples": min(256, meta["data"]["train_examples"])}
    # One factored entry per adapted layer (2 layers x 7 linear layers), all informative.
    assert fisher is not None and len(fisher) == 14
    assert all(item.total > 0 and bool((item.rows >= 0).all()) for item in fisher.values())
    assert sorted(p.name for p in trained["dir"].glob("*.safetensors")) == ["model.safetensors"]


def test_chat_template_is_honoured(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from train.data import chat_prompt_template, resolve_prompt_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert resolve_prompt_template("auto", {}, tokenizer) == (DEFAULT_PROMPT_TEMPLATE, "default")
    tokenizer.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n"
                               "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    # BOS is dropped from the text: the tokenizer adds it, and the prompt must not carry two.
    assert chat_prompt_template(tokenizer) == "<|user|>{prompt}\n<|assistant|>"
    template, origin = resolve_prompt_template("auto", {}, tokenizer)
    assert origin == "tokenizer chat template"
    example = encode_example(tokenizer, template, "Is the Rover X1 waterproof?", "No", 128)
    expected_prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Is the Rover X1 waterproof?"}],
                                                    tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(example.input_ids[: example.labels.count(IGNORE_INDEX)]) == expected_prompt
    assert tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX], skip_special_tokens=True) == "No"
    # A continuing version keeps the template it was trained with; an explicit template wins.
    assert resolve_prompt_template("auto", {"prompt_template": "Q: {prompt} A:"}, tokenizer)[0] == "Q: {prompt} A:"
    assert resolve_prompt_template("<{prompt}>", {"prompt_template": "Q: {prompt} A:"}, tokenizer)[0] == "<{prompt}>"


def test_qlora_is_a_clear_error_without_cuda(round1_splits: Path, tiny_model_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    from train.model import TrainingSetupError, quantization_config

    assert quantization_config("none", False, "float32") is None
    with pytest.raises(TrainingSetupError, match="needs a CUDA GPU"):
        quantization_config("4bit", False, "float32")
    code = train.main(["--train-dir", str(round1_splits / "train"), "--model-dir", str(tmp_path / "out"),
                       "--base_model", str(tiny_model_dir), "--quantization", "4bit"])
    assert code == 2 and "QLoRA" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_precision_and_attention_choice() -> None:
    from train.model import TrainingSetupError, choose_attention, choose_precision

    assert choose_precision("auto", False, False) == train_model_precision("cpu", "float32", False)
    assert choose_precision("auto", True, True, local_rank=3) == train_model_precision("cuda:3", "bfloat16", True)
    assert choose_precision("auto", True, False) == train_model_precision("cuda:0", "float32", False)
    assert choose_precision("bf16", False, False) == train_model_precision("cpu", "bfloat16", False)
    with pytest.raises(TrainingSetupError, match="does not support bfloat16"):
        choose_precision("bf16", True, False)
    assert choose_attention("auto", False, "float32") == "sdpa"
    assert choose_attention("eager", True, "bfloat16") == "eager"


def train_model_precision(device: str, dtype: str, autocast: bool) -> object:
    from train.model import Precision

    return Precision(device=device, dtype=dtype, autocast_bf16=autocast)


def test_cost_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    from train.cost import cost_estimate, current_instance

    estimate = cost_estimate("ml.g5.2xlarge", 2, 1800.0)
    assert estimate["usd"] == pytest.approx(1.515) and estimate["usd_per_instance_hour"] == 1.515
    assert cost_estimate("ml.x9.huge", 1, 60.0)["usd"] is None
    assert cost_estimate("ml.x9.huge", 1, 3600.0, price_override=2.5)["usd"] == pytest.approx(2.5)
    monkeypatch.delenv("SM_CURRENT_INSTANCE_TYPE", raising=False)
    monkeypatch.setenv("SM_HOSTS", "[]")
    assert current_instance() == ("local", 1)
    monkeypatch.setenv("SM_CURRENT_INSTANCE_TYPE", "ml.p4d.24xlarge")
    monkeypatch.setenv("SM_HOSTS", '["algo-1", "algo-2"]')
    assert current_instance() == ("ml.p4d.24xlarge", 2)


def test_bad_arguments_name_the_flag(capsys: pytest.CaptureFixture) -> None:
    import argparse

    from common.contract import parse_bool
    from train.args import parse_args
    from train.contract import parse_strategy

    assert parse_strategy("ewc, replay,ewc").names == ("replay", "ewc") and str(parse_strategy("EWC,replay")) == "replay,ewc"
    assert parse_strategy("naive") == frozenset() and str(parse_strategy("none")) == "naive"
    for bad, message in (("naive,ewc", "cannot be combined"), ("replay,forget", "unknown strategy forget"), (" ", "empty")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse_strategy(bad)
    assert parse_bool("True") is True and parse_bool("0") is False
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        parse_bool("maybe")
    for argv, message in ((["--compile", "true", "--packing", "false"], "--compile needs --packing true"),
                          (["--strategy", "ewc,naive"], "cannot be combined"), (["--ewc_lambda", "-1"], "--ewc_lambda")):
        with pytest.raises(SystemExit):
            parse_args(["--train-dir", "x", "--model-dir", "y", *argv])
        assert message in capsys.readouterr().err


def test_qlora_on_cuda_is_nf4_with_double_quantization() -> None:
    """The QLoRA config a CUDA run gets; without bitsandbytes installed, the error names it."""
    import importlib.util

    import torch

    from train.model import TrainingSetupError, quantization_config

    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(TrainingSetupError, match="needs the bitsandbytes package"):
            quantization_config("4bit", True, "bfloat16")
        return
    config = quantization_config("4bit", True, "bfloat16")
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_qlora_merge_path_reloads_the_base_in_full_precision(trained: dict, tiny_model_dir: Path, tmp_path: Path) -> None:
    """With a 4-bit base, the saved adapter is merged into the base reloaded unquantized: same weights as merging in place."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from train.artifacts import save_merged

    shutil.copytree(trained["dir"] / "adapter", tmp_path / "adapter")
    save_merged(None, tmp_path, quantized=True, source=str(tiny_model_dir), dtype="float32")
    expected, actual = load_file(str(trained["dir"] / "model.safetensors")), load_file(str(tmp_path / "model.safetensors"))
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=1e-6, rtol=0)
