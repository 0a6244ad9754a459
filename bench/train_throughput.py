"""Training throughput: a plain HF Trainer + PEFT baseline, TRL's SFTTrainer and this project's training step.

Same model (random init from a config), same LoRA, same examples (synthetic instructions with
lognormal lengths), one pass over them each (`--recipe`, a comma list):
(hf-baseline) as in typical SageMaker example scripts: transformers.Trainer, fp32, batch 4,
    DataCollatorForLanguageModeling (pad to the longest in the batch), no packing, loss on all tokens;
(trl-sft) the strong peer a careful user would pick: TRL's SFTTrainer, bf16 on GPUs, padding-free
    packing (best-fit, position_ids) into rows of our step's token budget, completion-only loss,
    Liger kernels when liger-kernel is installed; skipped with a line saying so when trl is not installed;
(ours) our step (steps/train/loop.run_training): packed rows (no cross-example attention),
    completion-only loss with logits only where scored, bf16 autocast + fused AdamW on GPUs,
    flash-attention varlen when installed, optional torch.compile.
After training, each recipe's model is scored on the same held-out examples (completion-token mean
loss): after the same tokens they must have learned alike.
Prints useful (non-padding) tokens/s for each, the ratios to ours, and
MFU = tokens/s x (4 N_frozen + 6 N_lora + attention FLOPs per token) / measured matmul peak
(bf16 on GPUs; fp32 on CPU, where both runs compute in fp32). N_frozen counts frozen matmul
weights (lm_head included); attention FLOPs per token = 6 x layers x heads x head_dim x (L + 1)
averaged over tokens (causal, forward + backward). Note our step skips the vocabulary projection
on prompt tokens, work the formula still credits.

    python bench/train_throughput.py                               # tiny demo model on CPU
    python bench/train_throughput.py --model qwen2.5-0.5b --examples 4000 --tokens-per-batch 16384
    python bench/train_throughput.py --model qwen2.5-1.5b --recipe ours --compile
    python bench/train_throughput.py --model qwen2.5-tiny --recipe hf-baseline,trl-sft,ours --examples 64
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
sys.path.insert(0, str(REPO_ROOT / "bench"))

from common.examples import IGNORE_INDEX  # noqa: E402  (steps/ on sys.path)
from train.checkpoint import StopSignal  # noqa: E402
from train.data import TrainExample, group_batches, make_batch, token_budget  # noqa: E402
from train.distributed import Distributed  # noqa: E402
from train.lora import add_lora  # noqa: E402
from train.loop import LoopSettings, run_training  # noqa: E402
from train.loss import autocast_context, token_losses  # noqa: E402
from train.model import choose_attention, choose_precision  # noqa: E402
from train.quiet import quiet_libraries  # noqa: E402
from train.strategies import ContinualPenalty  # noqa: E402
from shapes import QWEN_SHAPES, shape_config  # noqa: E402  (bench/ is the script's folder)

RECIPES = ("hf-baseline", "trl-sft", "ours")


@dataclass
class Measured:
    name: str
    tokens: int
    seconds: float
    recipe: str = ""
    heldout_loss: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def build_config(name: str, work: Path) -> Any:
    """A transformers config: the tiny demo model's, or a Qwen2.5 shape."""
    from transformers import AutoConfig

    if name == "tiny":
        from pipelines.demo.sample_data import corpus_texts
        from pipelines.demo.tiny_model import ensure_tiny_model

        return AutoConfig.from_pretrained(ensure_tiny_model(work / "tiny-base", corpus_texts()))
    if name in QWEN_SHAPES:
        return shape_config(name)
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


def run_baseline(config: Any, examples: list[TrainExample], args: argparse.Namespace, device: str) -> tuple[Measured, Any]:
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
                    stamps[-1] - stamps[warm], "hf-baseline"), model


def trl_missing() -> str | None:
    """Why the TRL recipe cannot run here, or None."""
    import importlib.util

    if importlib.util.find_spec("trl") is None:
        return "trl is not installed (pip install trl, or from a wheel: see bench/gpu_check.sh)"
    return None


def run_trl(config: Any, examples: list[TrainExample], args: argparse.Namespace, device: str) -> tuple[Measured, Any]:
    """TRL SFTTrainer: bf16 on GPUs, padding-free best-fit packing into rows of our token budget (one row per
    step, as ours), completion-only loss, Liger kernels when installed; one epoch, timed after warm-up steps."""
    import importlib.util
    import warnings

    import datasets
    import torch
    from datasets import Dataset
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    cuda = device.startswith("cuda")
    bf16 = cuda and torch.cuda.is_bf16_supported()
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    liger = cuda and importlib.util.find_spec("liger_kernel") is not None
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"<pad>": 0, "<unk>": 1, "</s>": 2}, "<unk>")),
        pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    lengths = [len(example.input_ids) for example in examples]
    budget = token_budget(lengths, 4, args.tokens_per_batch)
    dataset = Dataset.from_list([{"input_ids": e.input_ids,
                                  "completion_mask": [int(label != IGNORE_INDEX) for label in e.labels]}
                                 for e in examples])
    counts: list[int] = []
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *unused: Any, **kwargs: Any) -> None:
            if cuda:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    attention = choose_attention(args.attn_implementation, cuda, "bfloat16" if bf16 else "float32")
    model = fresh_model(config, "bfloat16" if bf16 else "float32", device, attention, args.lora_r, args.target_modules,
                        args.seed)
    training_args = SFTConfig(
        output_dir=str(args.work_dir / "trl"), per_device_train_batch_size=1, num_train_epochs=1, learning_rate=2e-4,
        logging_steps=10**9, save_strategy="no", report_to=[], seed=args.seed, disable_tqdm=True, bf16=bf16,
        use_cpu=not cuda, packing=True, packing_strategy="bfd", padding_free=True, max_length=budget,
        completion_only_loss=True, use_liger_kernel=liger, dataset_num_proc=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # use_liger_kernel's deprecation notice
        trainer = SFTTrainer(model=model, args=training_args, train_dataset=dataset, processing_class=tokenizer,
                             callbacks=[Clock()])
    collator = trainer.data_collator

    def counting_collator(features: list[dict[str, Any]]) -> Any:
        counts.append(sum(len(f["input_ids"]) for f in features))
        return collator(features)

    trainer.data_collator = counting_collator
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    warm = min(args.warmup_steps, len(stamps) - 2)
    label = f"TRL SFTTrainer ({'bf16' if bf16 else 'fp32'}, padding-free packing {budget}, {attention}" \
            f"{', Liger' if liger else ''})"
    return Measured(label, sum(counts[warm + 1 : len(stamps)]), stamps[-1] - stamps[warm], "trl-sft"), model


def heldout_loss(model: Any, examples: list[TrainExample], bf16: bool) -> float:
    """Mean completion-token loss of `examples` (the same measure for every recipe's trained model)."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(examples), 8):
            batch = make_batch(examples[start:start + 8], 0, packing=False).to(device)
            with autocast_context(bf16, device.type):
                losses = token_losses(model, batch)
            total += float(losses.nll.sum())
            count += int(losses.nll.numel())
    return total / max(count, 1)


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
    return Measured(label, tokens, seconds, "ours"), peft_model, precision.dtype


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


def _free(model: Any) -> None:
    import gc

    import torch

    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny",
                        help=f"tiny (the demo model) | {' | '.join(QWEN_SHAPES)} | a config path or id")
    parser.add_argument("--recipe", default="hf-baseline,ours", help=f"comma list of {', '.join(RECIPES)}")
    parser.add_argument("--examples", type=int, default=1200)
    parser.add_argument("--heldout", type=int, default=32, help="held-out examples scored after training (0: none)")
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
    parser.add_argument("--skip-baseline", action="store_true", help="same as leaving hf-baseline out of --recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/continuum-throughput"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    recipes = [name.strip() for name in args.recipe.split(",") if name.strip()]
    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipe {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    if args.skip_baseline and "hf-baseline" in recipes:
        recipes.remove("hf-baseline")
    quiet_libraries(verbose=False)
    import torch

    small = args.model in ("tiny", "qwen2.5-tiny")
    median = args.median_tokens or (40 if small else 150)
    max_length = args.max_seq_length or (256 if small else 1024)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if small and "OMP_NUM_THREADS" not in __import__("os").environ:
        torch.set_num_threads(1)  # as train.py runs small models on CPU
    config = build_config(args.model, args.work_dir)
    everything = synthetic_examples(args.examples + args.heldout, median, args.sigma, max_length, config.vocab_size,
                                    args.seed, args.prompt_share)
    examples, heldout = everything[: args.examples], everything[args.examples:]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    card = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"model {args.model} on {card}: {len(examples)} examples, "
          f"{sum(len(e.input_ids) for e in examples)} tokens, median length {median}", flush=True)
    results: list[Measured] = []
    skipped: dict[str, str] = {}
    ours_model = None
    for recipe in recipes:
        if recipe == "trl-sft" and trl_missing():
            skipped[recipe] = str(trl_missing())
            print(f"trl-sft: skipped: {skipped[recipe]}", flush=True)
            continue
        if recipe == "hf-baseline":
            result, model = run_baseline(config, examples, args, device)
            bf16 = False
        elif recipe == "trl-sft":
            result, model = run_trl(config, examples, args, device)
            bf16 = False  # the model's own dtype (bf16 weights on GPUs)
        else:
            result, model, dtype = run_ours(config, examples, args)
            bf16 = device == "cuda" and dtype == "bfloat16"
        if heldout:
            result.heldout_loss = heldout_loss(model, heldout, bf16)
        results.append(result)
        loss = "" if result.heldout_loss is None else f", held-out loss {result.heldout_loss:.4f}"
        print(f"{result.name}: {result.tokens_per_second:,.0f} tokens/s{loss}", flush=True)
        if recipe == "ours":
            ours_model = model
        else:
            _free(model)
    if ours_model is None and results:  # FLOPs per token from a fresh model of the same shape
        ours_model = fresh_model(config, "float32", "cpu", "sdpa", args.lora_r,
                                 args.target_modules, args.seed)
    payload: dict[str, Any] = {"model": args.model, "device": device, "card": card, "skipped": skipped, "results": []}
    if results:
        flops, frozen, lora = flops_per_token(ours_model, config, examples)
        peak_dtype = "bfloat16" if device == "cuda" else "float32"
        peak = matmul_peak(peak_dtype, device)
        print(f"N_frozen {frozen:,}  N_lora {lora:,}  FLOPs/token {flops:,.0f}  measured {peak_dtype} peak "
              f"{peak / 1e12:.2f} TFLOP/s")
        ours = next((r for r in results if r.recipe == "ours"), None)
        for result in results:
            ratio = "" if ours is None or result is ours else \
                f"   ours is {ours.tokens_per_second / result.tokens_per_second:.2f}x"
            print(f"{result.name:<60} {result.tokens_per_second:>12,.0f} tokens/s   "
                  f"MFU {result.tokens_per_second * flops / peak:6.1%}{ratio}")
        payload.update(peak_flops=peak, peak_dtype=peak_dtype, flops_per_token=flops, results=[
            {"recipe": r.recipe, "name": r.name, "tokens": r.tokens, "seconds": r.seconds,
             "tokens_per_second": r.tokens_per_second, "mfu": r.tokens_per_second * flops / peak,
             "heldout_loss": r.heldout_loss} for r in results])
    if args.json:
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
