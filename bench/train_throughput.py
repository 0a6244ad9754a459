"""Training throughput: a plain HF Trainer + PEFT baseline vs this project's training step.

Same model (random init from a config), same LoRA, same examples (synthetic instructions with
lognormal lengths), one pass over them each:
(a) baseline as in typical SageMaker example scripts: transformers.Trainer, fp32, batch 4,
    DataCollatorForLanguageModeling (pad to the longest in the batch), no packing, loss on all tokens;
(b) our step (steps/common/train_loop.run_training): packed rows (no cross-example attention),
    completion-only loss with logits only where scored, bf16 autocast + fused AdamW on GPUs,
    flash-attention varlen when installed, optional torch.compile.
Prints useful (non-padding) tokens/s for both, the ratio, and
MFU = tokens/s x (4 N_frozen + 6 N_lora + attention FLOPs per token) / measured matmul peak
(bf16 on GPUs; fp32 on CPU, where both runs compute in fp32). N_frozen counts frozen matmul
weights (lm_head included); attention FLOPs per token = 6 x layers x heads x head_dim x (L + 1)
averaged over tokens (causal, forward + backward). Note our step skips the vocabulary projection
on prompt tokens, work the formula still credits.

    python bench/train_throughput.py                               # tiny demo model on CPU
    python bench/train_throughput.py --model qwen2.5-0.5b --examples 4000 --tokens-per-batch 16384
    python bench/train_throughput.py --model qwen2.5-1.5b --skip-baseline --compile
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "steps"))

from common.examples import IGNORE_INDEX  # noqa: E402  (steps/ on sys.path)
from common.train_checkpoint import StopSignal  # noqa: E402
from common.train_data import TrainExample, group_batches, token_budget  # noqa: E402
from common.train_distributed import Distributed  # noqa: E402
from common.train_lora import add_lora  # noqa: E402
from common.train_loop import LoopSettings, run_training  # noqa: E402
from common.train_model import choose_attention, choose_precision  # noqa: E402
from common.train_strategies import ContinualPenalty  # noqa: E402

# Public Qwen2.5 shapes (config.json of Qwen/Qwen2.5-0.5B and -1.5B); weights are random.
QWEN_SHAPES: dict[str, dict[str, Any]] = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, tie_word_embeddings=True),
}
QWEN_COMMON = dict(vocab_size=151936, max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6)


@dataclass
class Measured:
    name: str
    tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def build_config(name: str, work: Path) -> Any:
    """A transformers config: the tiny demo model's, or a Qwen2.5 shape."""
    from transformers import AutoConfig, Qwen2Config

    if name == "tiny":
        from pipelines.demo.sample_data import corpus_texts
        from pipelines.demo.tiny_model import ensure_tiny_model

        return AutoConfig.from_pretrained(ensure_tiny_model(work / "tiny-base", corpus_texts()))
    if name in QWEN_SHAPES:
        return Qwen2Config(**QWEN_COMMON, **QWEN_SHAPES[name])
    return AutoConfig.from_pretrained(name)


def synthetic_examples(count: int, median: float, sigma: float, max_length: int, vocab: int, seed: int,
                       prompt_share: float) -> list[TrainExample]:
    """Random-token examples, lengths lognormal(median, sigma) clipped to [8, max_length]; the first
    `prompt_share` of each is the (masked) prompt."""
    import random

    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        length = min(max(int(rng.lognormvariate(math.log(median), sigma)), 8), max_length)
        ids = [rng.randrange(10, vocab) for _ in range(length)]
        prompt = max(1, int(length * prompt_share))
        examples.append(TrainExample(ids, [IGNORE_INDEX] * prompt + ids[prompt:], 1.0, False))
    return examples


def fresh_model(config: Any, dtype: str, device: str, attention: str, lora_r: int, targets: str, seed: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype), attn_implementation=attention)
    model.config.use_cache = False
    return add_lora(model.to(device), lora_r, 2 * lora_r, 0.0, targets)


def run_baseline(config: Any, examples: list[TrainExample], args: argparse.Namespace, device: str) -> Measured:
    """transformers.Trainer, fp32, batch 4, DataCollatorForLanguageModeling padding, one epoch."""
    import torch
    from tokenizers import Tokenizer, models
    from transformers import (DataCollatorForLanguageModeling, PreTrainedTokenizerFast, Trainer, TrainerCallback,
                              TrainingArguments)

    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False  # the example scripts' fp32
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<unk>": 1}, "<unk>")),
                                        pad_token="<pad>")
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    counts: list[int] = []

    def counting_collator(features: list[dict[str, Any]]) -> dict[str, Any]:
        counts.append(sum(len(f["input_ids"]) for f in features))
        return collator(features)

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *unused: Any, **kwargs: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    model = fresh_model(config, "float32", device, "sdpa", args.lora_r, args.target_modules, args.seed)
    dataset = [{"input_ids": example.input_ids} for example in examples]
    training_args = TrainingArguments(output_dir=str(args.work_dir / "baseline"), per_device_train_batch_size=4,
                                      num_train_epochs=1, learning_rate=2e-4, logging_steps=10**9, save_strategy="no",
                                      report_to=[], seed=args.seed, disable_tqdm=True, remove_unused_columns=False,
                                      use_cpu=not device.startswith("cuda"))
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=counting_collator,
                      callbacks=[Clock()])
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    warm = min(args.warmup_steps, len(stamps) - 2)
    return Measured("baseline (HF Trainer, fp32, batch 4, padding)", sum(counts[warm + 1 : len(stamps)]),
                    stamps[-1] - stamps[warm])


def run_ours(config: Any, examples: list[TrainExample], args: argparse.Namespace) -> tuple[Measured, Any, str]:
    """run_training over a warm-up plan, then (timed) over the measured plan."""
    import torch

    cuda = torch.cuda.is_available()
    precision = choose_precision("auto", cuda, cuda and torch.cuda.is_bf16_supported())
    attention = choose_attention(args.attn_implementation, cuda, precision.dtype)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    peft_model = fresh_model(config, precision.dtype, precision.device, attention, args.lora_r, args.target_modules,
                             args.seed)
    if args.gradient_checkpointing:
        peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        peft_model.enable_input_require_grads()
    model = torch.compile(peft_model) if args.compile else peft_model
    lengths = [len(example.input_ids) for example in examples]
    budget = token_budget(lengths, 4, args.tokens_per_batch)
    plan = group_batches(list(range(len(examples))), lengths, 4, budget)
    settings = LoopSettings(learning_rate=2e-4, warmup_ratio=0.0, max_grad_norm=1.0, packing=True, pad_id=0,
                            autocast_bf16=precision.autocast_bf16, steps_per_epoch=float(len(plan)),
                            pad_to=budget if args.compile else None,
                            flash_kwargs=attention == "flash_attention_2", checkpoint_every_seconds=math.inf)
    stop = StopSignal()
    with contextlib.redirect_stdout(io.StringIO()):
        run_training(model, peft_model, examples, plan[: args.warmup_steps], ContinualPenalty(), settings,
                     Distributed(), None, stop, log=lambda message: None)
        measured = plan[args.warmup_steps :]
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        run_training(model, peft_model, examples, measured, ContinualPenalty(), settings, Distributed(), None, stop,
                     log=lambda message: None)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    tokens = sum(lengths[i] for batch in measured for i in batch)
    label = f"ours (packed {budget} tokens/step, {precision.dtype}, {attention}{', compiled' if args.compile else ''})"
    return Measured(label, tokens, seconds), peft_model, precision.dtype


def matmul_peak(dtype: str, device: str) -> float:
    """Measured dense matmul FLOP/s for `dtype` on `device`."""
    import torch

    size = 8192 if device.startswith("cuda") else 1024
    a = torch.randn(size, size, dtype=getattr(torch, dtype), device=device)
    b = torch.randn(size, size, dtype=getattr(torch, dtype), device=device)
    for _ in range(3):
        a @ b
    repeats = 20 if device.startswith("cuda") else 5
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def flops_per_token(peft_model: Any, config: Any, examples: list[TrainExample]) -> tuple[float, int, int]:
    """(4 N_frozen + 6 N_lora + attention FLOPs per token, N_frozen, N_lora)."""
    import torch

    frozen_ids = {id(m.weight) for m in peft_model.modules() if isinstance(m, torch.nn.Linear)}
    frozen = sum(p.numel() for p in peft_model.parameters() if not p.requires_grad and id(p) in frozen_ids)
    lora = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    lengths = [len(example.input_ids) for example in examples]
    mean_context = sum(n * (n + 1) for n in lengths) / sum(lengths)
    attention = 6 * config.num_hidden_layers * config.num_attention_heads * head_dim * mean_context
    return 4 * frozen + 6 * lora + attention, frozen, lora


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny | qwen2.5-0.5b | qwen2.5-1.5b | a config path or id")
    parser.add_argument("--examples", type=int, default=1200)
    parser.add_argument("--median-tokens", type=float, default=None, help="default: 150 (40 for tiny)")
    parser.add_argument("--sigma", type=float, default=0.6)
    parser.add_argument("--max-seq-length", type=int, default=None, help="default: 1024 (256 for tiny)")
    parser.add_argument("--prompt-share", type=float, default=0.4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--target-modules", default="all-linear")
    parser.add_argument("--tokens-per-batch", type=int, default=0, help="our packing budget; 0: 4 x mean length")
    parser.add_argument("--attn-implementation", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/continuum-throughput"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    tiny = args.model == "tiny"
    median = args.median_tokens or (40 if tiny else 150)
    max_length = args.max_seq_length or (256 if tiny else 1024)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if tiny and "OMP_NUM_THREADS" not in __import__("os").environ:
        torch.set_num_threads(1)  # as train.py runs small models on CPU
    config = build_config(args.model, args.work_dir)
    examples = synthetic_examples(args.examples, median, args.sigma, max_length, config.vocab_size, args.seed,
                                  args.prompt_share)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"model {args.model} on {torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}: {len(examples)} examples, "
          f"{sum(len(e.input_ids) for e in examples)} tokens, median length {median}", flush=True)
    results = []
    if not args.skip_baseline:
        results.append(run_baseline(config, examples, args, device))
        print(f"{results[-1].name}: {results[-1].tokens_per_second:,.0f} tokens/s", flush=True)
    ours, peft_model, dtype = run_ours(config, examples, args)
    results.append(ours)
    flops, frozen, lora = flops_per_token(peft_model, config, examples)
    peak_dtype = "bfloat16" if device == "cuda" else "float32"
    peak = matmul_peak(peak_dtype, device)
    print(f"N_frozen {frozen:,}  N_lora {lora:,}  FLOPs/token {flops:,.0f}  measured {peak_dtype} peak "
          f"{peak / 1e12:.2f} TFLOP/s")
    for result in results:
        print(f"{result.name:<60} {result.tokens_per_second:>12,.0f} tokens/s   MFU {result.tokens_per_second * flops / peak:6.1%}")
    if len(results) == 2:
        print(f"speed-up (ours / baseline): {results[1].tokens_per_second / results[0].tokens_per_second:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "device": device, "peak_flops": peak, "flops_per_token": flops,
                                         "results": [{"name": r.name, "tokens": r.tokens, "seconds": r.seconds,
                                                      "tokens_per_second": r.tokens_per_second} for r in results]},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
