"""QLoRA check: a short run of our training step on a 4-bit NF4 base, then save, merge, reload, compare.

The base is a random-init model of a Qwen2.5 shape (bench/shapes.py) with the demo tokenizer; the data
are the demo company's facts. steps/train.py runs with `--quantization 4bit` (bitsandbytes NF4, CUDA
only) for `--steps` steps; the check then asserts:
- the loss went down (continuum.json: train_loss < initial_train_loss);
- the adapter and the merged model were saved;
- reloaded, the 4-bit base + adapter (unmerged) and the merged model give the same logits on the
  training prompts within tolerance (mean |diff| <= 2% of the logits' std, top-1 agreement >= 98%).
Without CUDA or bitsandbytes the NF4 part prints "skipped: needs CUDA" and, so that the rest of the
path still runs, the same check runs on a full-precision base (`--quantization none`).

    python bench/qlora_check.py --shape qwen2.5-0.5b --steps 60 --json out/qlora.json
    python bench/qlora_check.py --shape qwen2.5-tiny --steps 20          # CPU: the fp32 fallback
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "steps"))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from train.quiet import quiet_libraries  # noqa: E402
from shapes import QWEN_SHAPES, demo_training_data, finish, random_model_dir  # noqa: E402

MEAN_DIFF_SHARE = 0.02  # of the unmerged logits' standard deviation
MIN_TOP1_AGREEMENT = 0.98


def nf4_missing() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return "needs CUDA"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "needs CUDA and bitsandbytes (not installed: see bench/gpu_check.sh)"
    return None


def train(base: Path, data: Path, out: Path, steps: int, quantization: str) -> tuple[dict[str, Any], float, str]:
    """steps/train.py in this process; returns continuum.json, the wall seconds and the step's log."""
    import train as train_step

    argv = ["--train-dir", str(data), "--base_model", str(base), "--base-model-dir", str(out / "no-channel"),
            "--model-dir", str(out / "model"), "--max_steps", str(steps), "--quantization", quantization,
            "--fisher_samples", "0", "--strategy", "naive", "--learning_rate", "2e-3", "--lora_r", "16", "--lora_alpha", "64",
            "--max_seq_length", "128"]
    (out / "no-channel").mkdir(parents=True, exist_ok=True)
    log = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(log):
        code = train_step.main(argv)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"train.py exited {code}:\n{log.getvalue()[-3000:]}")
    return json.loads((out / "model" / "continuum.json").read_text()), seconds, log.getvalue()


def compare_logits(base: Path, model_dir: Path, data: Path, quantized: bool) -> dict[str, float]:
    """Unmerged (base, 4-bit when `quantized`, + the saved adapter) vs the merged model, on the training prompts."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(REPO_ROOT / "steps"))
    from train.model import quantization_config

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts = [json.loads(line)["prompt"] for line in (data / "data.jsonl").read_text().splitlines()[:16]]
    batch = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quantized:
        kwargs.update(quantization_config=quantization_config("4bit", True, "bfloat16" if dtype == torch.bfloat16
                                                              else "float32"), device_map={"": 0})
    unmerged_base = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    if not quantized:
        unmerged_base.to(device)
    unmerged = PeftModel.from_pretrained(unmerged_base, model_dir / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    with torch.no_grad():
        a = unmerged(**batch).logits.float()
        b = merged(**batch).logits.float()
    real = batch["attention_mask"].bool()
    a, b = a[real], b[real]
    diff = (a - b).abs()
    return {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "logits_std": float(a.std()),
            "top1_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean()), "positions": int(a.shape[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(QWEN_SHAPES))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/continuum-qlora"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    quiet_libraries(verbose=False)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    base = random_model_dir(args.shape, args.work_dir)
    data = demo_training_data(args.work_dir / "data")
    missing = nf4_missing()
    if missing:
        print(f"qlora NF4: skipped: {missing}; running the same check on a full-precision base", flush=True)
    quantization = "none" if missing else "4bit"
    out = args.work_dir / f"run-{quantization}"
    metadata, seconds, _ = train(base, data, out, args.steps, quantization)
    metrics = metadata["metrics"]
    saved = {"adapter": (out / "model" / "adapter" / "adapter_config.json").is_file(),
             "merged": (out / "model" / "config.json").is_file()}
    logits = compare_logits(base, out / "model", data, quantized=not missing)
    checks = {
        "loss_decreased": metrics["train_loss"] < metrics["initial_train_loss"],
        "adapter_saved": saved["adapter"], "merged_saved": saved["merged"],
        "logits_match": logits["mean_abs_diff"] <= MEAN_DIFF_SHARE * logits["logits_std"]
        and logits["top1_agreement"] >= MIN_TOP1_AGREEMENT,
    }
    result = {"shape": args.shape, "quantization": quantization, "nf4_skipped": missing, "steps": args.steps,
              "seconds": seconds, "initial_train_loss": metrics["initial_train_loss"],
              "train_loss": metrics["train_loss"], "logits": logits, "checks": checks, "passed": all(checks.values()),
              "model_dir": str(out / "model")}
    print(f"qlora ({quantization} base, {args.shape}, {args.steps} steps, {seconds:.1f}s): loss "
          f"{metrics['initial_train_loss']:.3f} -> {metrics['train_loss']:.3f}; adapter saved {saved['adapter']}, "
          f"merged saved {saved['merged']}; unmerged vs merged logits: mean |diff| {logits['mean_abs_diff']:.2e} "
          f"(std {logits['logits_std']:.2f}), max {logits['max_abs_diff']:.2e}, top-1 agreement "
          f"{logits['top1_agreement']:.1%}: {'PASSED' if result['passed'] else 'FAILED'}", flush=True)
    return finish(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
