"""Packing correctness: the per-example loss of examples packed into one row equals their loss unpacked.

Our training step packs examples back to back with position_ids restarting per example (flash-attention
varlen on CUDA when installed, else the block-diagonal mask transformers builds from position_ids), so
no example attends to another. This runs the step's own loss (train.loss.token_losses) on the
same synthetic examples both ways, at a Qwen2.5 shape (random init + LoRA, bf16 autocast on GPUs), and
compares the per-example mean losses: max |diff| within bf16 tolerance on GPUs (0.02, relative to a
loss of ~12), 1e-4 in fp32 on CPU.

    python bench/packing_check.py --shape qwen2.5-0.5b --examples 16 --json out/packing.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "steps"))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from train.data import make_batch  # noqa: E402
from train.loss import autocast_context, token_losses  # noqa: E402
from train.model import choose_attention, choose_precision  # noqa: E402
from train.quiet import quiet_libraries  # noqa: E402
from shapes import QWEN_SHAPES, finish, shape_config  # noqa: E402
from train_throughput import fresh_model, synthetic_examples  # noqa: E402

TOLERANCE = {"bfloat16": 0.02, "float32": 1e-4}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(QWEN_SHAPES))
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--median-tokens", type=float, default=150)
    parser.add_argument("--attn-implementation", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    quiet_libraries(verbose=False)
    import torch

    cuda = torch.cuda.is_available()
    precision = choose_precision("auto", cuda, cuda and torch.cuda.is_bf16_supported())
    attention = choose_attention(args.attn_implementation, cuda, precision.dtype)
    config = shape_config(args.shape)
    model = fresh_model(config, precision.dtype, precision.device, attention, 16, "all-linear", args.seed)
    with torch.no_grad():  # a trained-looking adapter: B != 0, so the LoRA path takes part in the comparison
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.02)
    model.eval()
    examples = synthetic_examples(args.examples, args.median_tokens, 0.6, 1024, config.vocab_size, args.seed, 0.4)
    device = torch.device(precision.device)
    with torch.no_grad(), autocast_context(precision.autocast_bf16, device.type):
        packed = token_losses(model, make_batch(examples, 0, packing=True,
                                                flash_kwargs=attention == "flash_attention_2").to(device))
        unpacked = token_losses(model, make_batch(examples, 0, packing=False).to(device))
    a, b = packed.per_example(len(examples)), unpacked.per_example(len(examples))
    diff = float((a - b).abs().max())
    compute = "bfloat16" if precision.autocast_bf16 or precision.dtype == "bfloat16" else "float32"
    tolerance = TOLERANCE[compute]
    result = {"shape": args.shape, "device": precision.device, "dtype": compute, "attention": attention,
              "examples": len(examples), "tokens": sum(len(e.input_ids) for e in examples),
              "max_abs_diff": diff, "mean_loss": float(b.mean()), "tolerance": tolerance, "passed": diff <= tolerance}
    print(f"packing ({args.shape}, {precision.device} {compute}, {attention}, {len(examples)} examples): packed vs "
          f"unpacked per-example loss max |diff| {diff:.2e} (mean loss {result['mean_loss']:.3f}, tolerance "
          f"{tolerance:g}): {'PASSED' if result['passed'] else 'FAILED'}", flush=True)
    return finish(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
