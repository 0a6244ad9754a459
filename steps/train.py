"""SageMaker training step: LoRA/QLoRA fine-tune of the previous version on prompt/completion JSONL.

Channels (SM_CHANNEL_*): `train`, `validation`, `base_model` (the previous approved version: a model
directory or its model.tar.gz; else `--base_model`, an HF id or path), optional `report` (the
prepare step's report.json, for the data version). Writes SM_MODEL_DIR: merged model + tokenizer,
`adapter/`, `continuum.json` (strategy, hyperparameters, metrics, cost), `continual/fisher.safetensors`,
`adapters/` (modular history), `code/inference.py`.

Loss on completion tokens only (prompt labelled -100; EOS ends each completion), weighted for
replayed examples; EWC / L2-SP / modular penalties per --strategy. Examples are packed into one
row per step without attending to each other. bf16 on GPUs, QLoRA with --quantization 4bit (CUDA),
data parallel under torchrun. Checkpoints in /opt/ml/checkpoints; SIGTERM checkpoints and exits
143, and a restarted job resumes from the last checkpoint.

    python train.py --train-dir data/train --model-dir out --base_model path/to/model --epochs 3
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from common.examples import ExampleError
from common.examples import read_examples as load_examples
from common.train_args import parse_args, recorded_hyperparameters
from common.train_artifacts import save_adapter, save_merged, ship_inference_handler, write_metadata
from common.train_checkpoint import (
    INTERRUPTED_EXIT_CODE,
    CheckpointManager,
    StopSignal,
    TrainingInterrupted,
    data_digest,
    fingerprint,
    model_identity,
)
from common.train_cost import cost_estimate, current_instance
from common.train_data import encode_records, epoch_batches, resolve_prompt_template, step_plan, token_budget
from common.train_distributed import Distributed, init_distributed
from common.train_fisher import FISHER_FILE, compute_fisher, load_fisher, save_fisher
from common.train_history import ADAPTER_WEIGHTS, read_history, write_history
from common.train_lora import add_lora, adapter_a_matrices, lora_modules
from common.train_loop import LoopSettings, evaluation_loss, log_metric, run_training
from common.train_model import StartingModel, TrainingSetupError, load_starting_model
from common.train_strategies import build_penalty

REPORT_FILE = "report.json"


def seed_everything(seed: int) -> None:
    """Seed Python and torch RNGs so CPU runs repeat exactly."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def data_version(report_dir: Path | None) -> str | None:
    """The prepare step's data_version from the `report` channel, when it is there."""
    path = Path(report_dir) / REPORT_FILE if report_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("data_version")
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err


def data_files(*folders: Path | None) -> list[Path]:
    return [path for folder in folders if folder is not None and Path(folder).is_dir()
            for path in sorted(Path(folder).rglob("*.jsonl"))]


def main(argv: list[str] | None = None) -> int:
    """Run the training job; return the process exit code (143 after a SIGTERM checkpoint)."""
    args = parse_args(argv, __doc__)
    stop = StopSignal().install()
    try:
        return train(args, stop)
    except TrainingInterrupted as interrupted:
        print(f"training interrupted ({interrupted}); a restarted job resumes from the last checkpoint", flush=True)
        return INTERRUPTED_EXIT_CODE
    except (TrainingSetupError, ExampleError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        stop.uninstall()


def train(args: argparse.Namespace, stop: StopSignal) -> int:
    started = time.monotonic()
    dist = init_distributed()
    try:
        return _train(args, stop, dist, started)
    finally:
        dist.shutdown()


def _train(args: argparse.Namespace, stop: StopSignal, dist: Distributed, started: float) -> int:
    train_records = load_examples(args.train_dir)
    if not train_records:
        print(f"error: no training examples (*.jsonl) under {args.train_dir}", file=sys.stderr)
        return 2
    validation_records = load_examples(args.validation_dir)
    replayed = sum(str(r.get("source", "")).startswith("replay:") for r in train_records)
    if replayed and "replay" not in args.strategy:
        if dist.is_main:
            print(f"strategy {','.join(args.strategy) or 'naive'} has no replay: leaving out {replayed} replayed examples")
        train_records = [r for r in train_records if not str(r.get("source", "")).startswith("replay:")]
    seed_everything(args.seed)
    start = load_starting_model(args, dist.local_rank)
    template, template_origin = resolve_prompt_template(args.prompt_template, start.metadata, start.tokenizer)
    max_length = min(args.max_seq_length, getattr(start.model.config, "max_position_embeddings", args.max_seq_length))
    train_examples, skipped = encode_records(train_records, start.tokenizer, template, max_length, args.replay_weight)
    validation_examples, validation_skipped = encode_records(validation_records, start.tokenizer, template, max_length, 1.0)
    if not train_examples:
        print(f"error: no training example leaves room for a completion within {max_length} tokens", file=sys.stderr)
        return 2
    lengths = [len(example.input_ids) for example in train_examples]
    budget = token_budget(lengths, args.batch_size, args.tokens_per_batch) if args.packing else None
    # max_steps counts optimizer steps; each step takes one batch per process.
    plan = step_plan(lengths, args.seed, args.epochs, args.max_steps * dist.world_size, args.batch_size, budget)
    say = print if dist.is_main else _silent
    say(f"starting model: {start.source} (generation {start.metadata.get('generation', 0)}); "
          f"train examples: {len(train_examples)} ({replayed if 'replay' in args.strategy else 0} replayed); "
          f"validation: {len(validation_examples)}; prompt template: {template_origin}; "
          f"{start.precision.device} {start.precision.dtype}{' 4-bit base' if start.quantized else ''}, "
          f"attention {start.attn_implementation}, "
          f"{f'packing {budget} tokens/step' if budget else f'batches of {args.batch_size}'}, "
          f"{len(plan)} batches on {dist.world_size} process(es)", flush=True)

    history = read_history(start.model_dir, start.metadata)
    previous_fisher = load_fisher(start.model_dir) if "ewc" in args.strategy else None
    seed_everything(args.seed)
    peft_model = add_lora(start.model, args.lora_r, args.lora_alpha, args.lora_dropout, args.target_modules)
    history_a = [adapter_a_matrices(entry.path / ADAPTER_WEIGHTS) for entry in history] if "modular" in args.strategy else []
    penalty = build_penalty(args.strategy, lora_modules(peft_model), previous_fisher, history_a, args, say)
    model = dist.wrap(peft_model)
    if args.compile:
        import torch

        model = torch.compile(model)
    checkpoints = None
    if args.checkpoint_dir is not None:
        run_id = fingerprint({"hyperparameters": recorded_hyperparameters(args), "world_size": dist.world_size,
                              "data": data_digest(data_files(args.train_dir, args.validation_dir)),
                              "model": model_identity(start.source, start.model_dir)})
        checkpoints = CheckpointManager(args.checkpoint_dir, run_id, args.keep_checkpoints)
    settings = LoopSettings(
        learning_rate=args.learning_rate, warmup_ratio=args.warmup_ratio, max_grad_norm=args.max_grad_norm,
        packing=args.packing, pad_id=start.tokenizer.pad_token_id, autocast_bf16=start.precision.autocast_bf16,
        steps_per_epoch=float(len(epoch_batches(lengths, args.seed, 0, args.batch_size, budget))),
        pad_to=budget if args.compile else None,
        flash_kwargs=args.packing and start.attn_implementation == "flash_attention_2",
        checkpoint_every_seconds=args.checkpoint_every_seconds,
    )
    seed_everything(args.seed)
    outcome = run_training(model, peft_model, train_examples, plan, penalty, settings, dist, checkpoints, stop)
    if dist.is_main:
        metrics = dict(outcome.metrics)
        if validation_examples:
            metrics["eval_loss"] = evaluation_loss(peft_model, validation_examples, settings.pad_id, args.packing,
                                                   args.batch_size, budget, settings.autocast_bf16)
            log_metric("eval_loss", metrics["eval_loss"])
        fisher_samples = 0
        if args.fisher_samples > 0:
            fisher, fisher_samples = compute_fisher(peft_model, train_examples, args.fisher_samples, args.seed, budget,
                                                    args.batch_size, settings.pad_id, args.packing,
                                                    settings.autocast_bf16)
            save_fisher(fisher, args.model_dir, fisher_samples)
        if stop.requested:
            raise TrainingInterrupted("stopped after training, before the model was saved")
        generation = int(start.metadata.get("generation", 0)) + 1
        save_adapter(peft_model, args.model_dir)
        kept = write_history(args.model_dir, history, generation) if "modular" in args.strategy else []
        start.tokenizer.save_pretrained(args.model_dir)
        save_merged(peft_model, args.model_dir, start.quantized, start.source, start.precision.dtype,
                    start.precision.device)
        ship_inference_handler(args.model_dir)
        duration = time.monotonic() - started
        instance_type, instance_count = current_instance()
        write_metadata(args.model_dir, {
            "base_model": start.metadata.get("base_model") or args.base_model or start.source,
            "initialized_from": start.source,
            "generation": generation,
            "prompt_template": template,
            "hyperparameters": recorded_hyperparameters(args),
            "strategy": strategy_record(args, start, history, previous_fisher is not None, penalty.active),
            "metrics": metrics,
            "data": {
                "data_version": data_version(args.report_dir),
                "train_sha256": data_digest(data_files(args.train_dir)),
                "train_examples": len(train_examples),
                "replay_examples": sum(example.replay for example in train_examples),
                "validation_examples": len(validation_examples),
                "skipped_examples": skipped + validation_skipped,
            },
            "training": {
                "device": start.precision.device, "dtype": start.precision.dtype, "quantized_base": start.quantized,
                "attn_implementation": start.attn_implementation, "tokens_per_step": budget,
                "world_size": dist.world_size, "resumed_from_step": outcome.resumed_from_step,
            },
            "continual": {"fisher": {"path": str(FISHER_FILE), "samples": fisher_samples} if fisher_samples else None},
            "adapter_history": kept,
            "duration_seconds": round(duration, 3),
            "cost": cost_estimate(instance_type, instance_count, duration, args.instance_price_per_hour),
        })
        print(f"saved model to {args.model_dir} in {duration:.1f}s", flush=True)
    dist.barrier()
    return 0


def _silent(*args: Any, **kwargs: Any) -> None:
    """print() for processes other than rank 0."""


def strategy_record(args: argparse.Namespace, start: StartingModel, history: list[Any], had_fisher: bool,
                    penalised: bool) -> dict[str, Any]:
    """What the continual-learning strategy did in this run (continuum.json `strategy`)."""
    names = list(args.strategy)
    return {
        "names": names or ["naive"],
        "replay_weight": args.replay_weight if "replay" in names else None,
        "ewc": {"lambda": args.ewc_lambda, "fisher_from_starting_model": had_fisher} if "ewc" in names else None,
        "l2sp": {"lambda": args.l2sp_lambda} if "l2sp" in names else None,
        "modular": {"lambda": args.orthogonal_lambda, "previous_adapters": len(history)} if "modular" in names else None,
        "penalty_applied": penalised,
        "started_from_generation": int(start.metadata.get("generation", 0)),
    }


if __name__ == "__main__":
    sys.exit(main())
