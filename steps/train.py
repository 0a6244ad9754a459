"""SageMaker training step: LoRA fine-tune a causal LM on prompt/completion JSONL, save the merged model.

Reads the `train`, `validation` and `base_model` channels (SM_CHANNEL_*), writes SM_MODEL_DIR:
the merged model + tokenizer at the root, the PEFT adapter in `adapter/`, and `continuum.json`.
The base comes from the `base_model` channel when it holds a model (a directory or the previous
version's model.tar.gz: continual training), else from `--base_model` (HF id or path).
The loss covers completion tokens only (prompt tokens are labelled -100); EOS ends each completion.

    python train.py --train-dir data/train --model-dir out --base_model path/to/model --epochs 3
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common.examples import IGNORE_INDEX, EncodedExample, collate, encode_example
from common.examples import read_examples as load_examples
from common.model_io import METADATA_FILE, contains_model, materialize_model_dir, read_metadata
from common.prompting import template_from_metadata

# Below this size, intra-op threads cost more than they save on CPU (10x slower on a busy 2-core box).
SINGLE_THREAD_MAX_PARAMETERS = 20_000_000
ADAPTER_SUBDIR = "adapter"
HYPERPARAMETERS = (
    "base_model", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate",
    "epochs", "max_steps", "batch_size", "max_seq_length", "seed",
)  # fmt: skip



def build_parser() -> argparse.ArgumentParser:
    """The CLI: contract hyperparameters (`--name value`) plus the channel/output folders."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    parser.add_argument("--train-dir", type=Path, default=env("SM_CHANNEL_TRAIN"), help="default: $SM_CHANNEL_TRAIN")
    parser.add_argument(
        "--validation-dir", type=Path, default=env("SM_CHANNEL_VALIDATION"), help="default: $SM_CHANNEL_VALIDATION"
    )
    parser.add_argument(
        "--base-model-dir", type=Path, default=env("SM_CHANNEL_BASE_MODEL"), help="default: $SM_CHANNEL_BASE_MODEL"
    )
    parser.add_argument("--model-dir", type=Path, default=env("SM_MODEL_DIR"), help="default: $SM_MODEL_DIR")
    parser.add_argument("--base_model", default="", help="HF id or path, used when the base_model channel is empty")
    parser.add_argument("--lora_r", type=int, default=32)
    parser.add_argument("--lora_alpha", type=float, default=64.0)
    parser.add_argument("--lora_dropout", type=float, default=0.0)
    parser.add_argument("--target_modules", default="all-linear", help="'all-linear' or a comma list")
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--epochs", type=float, default=20.0)
    parser.add_argument("--max_steps", type=int, default=-1, help="-1: run for --epochs")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check the arguments; a missing folder or bad value exits with a message naming it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train_dir is None:
        parser.error("no training data: pass --train-dir or set SM_CHANNEL_TRAIN")
    if args.model_dir is None:
        parser.error("no output folder: pass --model-dir or set SM_MODEL_DIR")
    for name in ("lora_r", "batch_size", "max_seq_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.learning_rate <= 0 or args.epochs <= 0:
        parser.error("--learning_rate and --epochs must be > 0")
    if not 0 <= args.lora_dropout < 1:
        parser.error(f"--lora_dropout must be in [0, 1), got {args.lora_dropout}")
    return args





def load_base(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any], str]:
    """Load (model, tokenizer, base metadata, where it came from) from the channel or `--base_model`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.base_model_dir is not None and contains_model(args.base_model_dir):
        source: str | Path = materialize_model_dir(args.base_model_dir)
        metadata = read_metadata(Path(source))
    elif args.base_model:
        source, metadata = args.base_model, {}
        if Path(args.base_model).exists():
            source = materialize_model_dir(Path(args.base_model))
            metadata = read_metadata(Path(source))
    else:
        raise ValueError(
            f"no base model: the base_model channel ({args.base_model_dir}) holds no model and --base_model is empty"
        )
    use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.bfloat16 if use_bf16 else torch.float32)
    return model, tokenizer, metadata, str(source)


def limit_threads_for_small_models(model: Any) -> None:
    """Train a small model on one CPU thread unless OMP_NUM_THREADS says otherwise or a GPU is in use."""
    import torch

    if "OMP_NUM_THREADS" in os.environ or torch.cuda.is_available():
        return
    if model.num_parameters() <= SINGLE_THREAD_MAX_PARAMETERS:
        torch.set_num_threads(1)


def add_lora(model: Any, args: argparse.Namespace) -> Any:
    """Wrap `model` with a fresh LoRA adapter as configured."""
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = args.target_modules.strip()
    if targets != "all-linear":
        targets = [name.strip() for name in args.target_modules.split(",") if name.strip()]
        if not targets:
            raise ValueError("--target_modules is empty; use 'all-linear' or a comma list of module names")
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def log_metric(name: str, value: float) -> None:
    """Print one `name=value;` line (fixed-point, as the metric regexes expect) and flush."""
    print(f"{name}={value:.6f};", flush=True)


def mean_loss(model: Any, examples: list[EncodedExample], batch_size: int, pad_id: int) -> float:
    """Completion-token-weighted mean loss of `model` over `examples`."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate(examples[start : start + batch_size], pad_id).items()}
            tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            total += float(model(**batch).loss) * tokens
            count += tokens
    return total / max(count, 1)


def train_loop(model: Any, examples: list[EncodedExample], args: argparse.Namespace, pad_id: int) -> dict[str, float]:
    """AdamW with linear decay over shuffled batches; log train_loss/epoch; return the loss summary."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    device = next(model.parameters()).device
    steps_per_epoch = math.ceil(len(examples) / args.batch_size)
    total_steps = args.max_steps if args.max_steps > 0 else max(1, round(args.epochs * steps_per_epoch))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.learning_rate, weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, max(1, total_steps // 20), total_steps)
    generator = torch.Generator().manual_seed(args.seed)
    log_every = max(1, total_steps // 20)
    order: list[int] = []
    window: list[float] = []
    first_loss = last_loss = float("nan")
    model.train()
    for step in range(1, total_steps + 1):
        if not order:
            order = torch.randperm(len(examples), generator=generator).tolist()
        batch_ids, order = order[: args.batch_size], order[args.batch_size :]
        batch = {k: v.to(device) for k, v in collate([examples[i] for i in batch_ids], pad_id).items()}
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        window.append(loss.detach().item())
        if step == 1:
            first_loss = window[0]
        if step % log_every == 0 or step == total_steps:
            last_loss = sum(window) / len(window)
            window = []
            log_metric("epoch", step / steps_per_epoch)
            log_metric("train_loss", last_loss)
    return {
        "train_loss": last_loss,
        "initial_train_loss": first_loss,
        "epoch": total_steps / steps_per_epoch,
        "steps": float(total_steps),
    }


def save_model(model: Any, tokenizer: Any, model_dir: Path, metadata: dict[str, Any]) -> None:
    """Save the adapter to `adapter/`, then the merged model + tokenizer + continuum.json at the root."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(model_dir / ADAPTER_SUBDIR)
    merged = model.merge_and_unload()
    merged.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    ship_inference_handler(model_dir)


def inference_handler_source() -> Path | None:
    """The serving handler: packaged beside this script as `serving/` (the estimator's dependency),
    or in a repository checkout under `containers/serving/`."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "serving" / "inference.py", here.parent / "containers" / "serving" / "inference.py"):
        if candidate.is_file():
            return candidate
    return None


def ship_inference_handler(model_dir: Path) -> None:
    """Put the handler in the artifact as `code/inference.py`: AWS's HF inference containers run it,
    so the endpoint applies the model's prompt template exactly as the local endpoint does."""
    source = inference_handler_source()
    if source is None:
        print("warning: no serving handler found (serving/inference.py); the artifact has no code/inference.py",
              file=sys.stderr, flush=True)
        return
    (model_dir / "code").mkdir(exist_ok=True)
    shutil.copyfile(source, model_dir / "code" / "inference.py")


def seed_everything(seed: int) -> None:
    """Seed Python and torch RNGs so CPU runs repeat exactly."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str] | None = None) -> int:
    """Run the training job; return the process exit code."""
    args = parse_args(argv)
    started = time.monotonic()
    import torch

    seed_everything(args.seed)
    train_records = load_examples(args.train_dir)
    if not train_records:
        print(f"error: no training examples (*.jsonl) under {args.train_dir}", file=sys.stderr)
        return 2
    validation_records = load_examples(args.validation_dir)
    model, tokenizer, base_metadata, source = load_base(args)
    template = template_from_metadata(base_metadata)
    max_length = min(args.max_seq_length, getattr(model.config, "max_position_embeddings", args.max_seq_length))

    def encode_all(records: list[dict[str, str]]) -> list[EncodedExample]:
        encoded = (encode_example(tokenizer, template, r["prompt"], r["completion"], max_length) for r in records)
        return [ex for ex in encoded if ex is not None]

    train_examples, validation_examples = encode_all(train_records), encode_all(validation_records)
    if not train_examples:
        print(f"error: no training example leaves room for a completion within {max_length} tokens", file=sys.stderr)
        return 2
    print(f"base model: {source}; train examples: {len(train_examples)}; validation: {len(validation_examples)}")
    if torch.cuda.is_available():
        model.to("cuda")
    limit_threads_for_small_models(model)
    model = add_lora(model, args)
    seed_everything(args.seed)
    metrics = train_loop(model, train_examples, args, tokenizer.pad_token_id)
    if validation_examples:
        metrics["eval_loss"] = mean_loss(model, validation_examples, args.batch_size, tokenizer.pad_token_id)
        log_metric("eval_loss", metrics["eval_loss"])
    duration = time.monotonic() - started
    metadata = {
        "base_model": base_metadata.get("base_model") or args.base_model or source,
        "initialized_from": source,
        "generation": int(base_metadata.get("generation", 0)) + 1,
        "prompt_template": template,
        "hyperparameters": {name: getattr(args, name) for name in HYPERPARAMETERS},
        "metrics": metrics,
        "data": {
            "train_examples": len(train_examples),
            "validation_examples": len(validation_examples),
            "skipped_examples": len(train_records) + len(validation_records)
            - len(train_examples) - len(validation_examples),
        },
        "duration_seconds": round(duration, 3),
    }  # fmt: skip
    save_model(model, tokenizer, args.model_dir, metadata)
    print(f"saved model to {args.model_dir} in {duration:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
