"""The training step's run: data, starting model, LoRA and the strategy's penalties, the loop, the saved version
(entry: steps/train.py, whose docstring is the --help text)."""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from common.examples import ExampleError
from common.examples import read_examples as load_examples
from train.args import parse_args, recorded_hyperparameters
from train.artifacts import save_adapter, save_merged, ship_inference_handler, write_metadata
from train.checkpoint import (
    INTERRUPTED_EXIT_CODE,
    CheckpointManager,
    StopSignal,
    TrainingInterrupted,
    data_digest,
    fingerprint,
    model_identity,
)
from train.data import (
    REPLAY_SOURCE_PREFIX,
    TrainExample,
    encode_records,
    epoch_batches,
    resolve_prompt_template,
    step_plan,
    token_budget,
)
from train.distributed import Distributed, init_distributed
from train.fisher import FISHER_FILE, FactoredFisher, compute_fisher, load_fisher, save_fisher
from train.history import ADAPTER_WEIGHTS, HistoryEntry, read_history, write_history
from train.lora import add_lora, adapter_a_matrices, lora_modules
from train.loop import LoopSettings, TrainingOutcome, evaluation_loss, log_metric, run_training
from train.metadata import strategy_record, version_metadata
from train.model import StartingModel, TrainingSetupError, load_starting_model
from train.quiet import quiet_libraries
from train.online_replay import OnlineReplay, build_online_replay
from train.replay_budget import ReplayChoice, amount_of, covers_history, select_replay
from train.strategies import ContinualPenalty, build_distillation, build_penalty, distilled_per_epoch


class NoTrainingData(ValueError):
    """Nothing to train on; the message says why."""


@dataclass
class Run:
    """Everything one training run works with, once data and model are loaded."""

    start: StartingModel
    template: str
    train_examples: list[TrainExample]
    validation_examples: list[TrainExample]
    skipped: int
    budget: int | None  # tokens per packed step; None: padded batches
    plan: list[list[int]]
    history: list[HistoryEntry]
    previous_fisher: dict[str, FactoredFisher] | None
    peft_model: Any
    penalty: ContinualPenalty
    replay: ReplayChoice | None = None  # what of the replayed history this round trains on, and why
    known_examples: list[TrainExample] | None = None  # new data + the whole replayed history: this version's Fisher
    epoch_members: Callable[[int], list[int]] | None = None  # rotating replay: the examples of each epoch
    distill_pool: list[TrainExample] | None = None  # distill: the history's examples (their inputs)
    online_history: list[TrainExample] | None = None  # replay selection online: the history, out of the step plan
    online: OnlineReplay | None = None  # built from online_history before the first step (train_adapter)
    plan_budget: int | None = None  # the plan's packing budget: `budget` less the room the riders take


def seed_everything(seed: int) -> None:
    """Seed Python and torch RNGs so CPU runs repeat exactly."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def data_files(*folders: Path | None) -> list[Path]:
    return [path for folder in folders if folder is not None and Path(folder).is_dir()
            for path in sorted(Path(folder).rglob("*.jsonl"))]


def _silent(*args: Any, **kwargs: Any) -> None:
    """print() for processes other than rank 0."""


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    """Run the training job; return the process exit code (143 after a SIGTERM checkpoint)."""
    args = parse_args(argv, description)
    quiet_libraries(args.verbose)
    stop = StopSignal().install()
    started = time.monotonic()
    dist = init_distributed()
    try:
        run = prepare_run(args, dist, print if dist.is_main else _silent)
        outcome = train_adapter(run, args, dist, stop)
        if dist.is_main:
            save_version(run, outcome, args, dist, stop, started)
        dist.barrier()
        return 0
    except TrainingInterrupted as interrupted:
        print(f"training interrupted ({interrupted}); a restarted job resumes from the last checkpoint", flush=True)
        return INTERRUPTED_EXIT_CODE
    except (TrainingSetupError, ExampleError, NoTrainingData) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        dist.shutdown()
        stop.uninstall()


def prepare_run(args: argparse.Namespace, dist: Distributed, say: Callable[..., None]) -> Run:
    """Read and encode the data, load the starting model, add LoRA and the strategy's penalties, plan the steps."""
    train_records = load_examples(args.train_dir)
    if not train_records:
        raise NoTrainingData(f"no training examples (*.jsonl) under {args.train_dir}")
    replayed = sum(str(r.get("source", "")).startswith(REPLAY_SOURCE_PREFIX) for r in train_records)
    distill_records = []  # the history's inputs for the distill component (it trains on no stored answer)
    if "distill" in args.strategy:
        distill_records = [r for r in train_records if str(r.get("source", "")).startswith(REPLAY_SOURCE_PREFIX)]
    if replayed and "replay" not in args.strategy:
        say(f"strategy {args.strategy} has no replay: leaving out {replayed} replayed examples")
        train_records = [r for r in train_records if not str(r.get("source", "")).startswith(REPLAY_SOURCE_PREFIX)]
    seed_everything(args.seed)
    start = load_starting_model(args, dist.local_rank)
    template, template_origin = resolve_prompt_template(args.prompt_template, start.metadata, start.tokenizer)
    max_length = min(args.max_seq_length, getattr(start.model.config, "max_position_embeddings", args.max_seq_length))
    train_examples, skipped = encode_records(train_records, start.tokenizer, template, max_length, args.replay_weight)
    validation_examples, validation_skipped = encode_records(load_examples(args.validation_dir), start.tokenizer,
                                                             template, max_length, 1.0)
    if not train_examples:
        raise NoTrainingData(f"no training example leaves room for a completion within {max_length} tokens")
    replay = None
    epoch_members = None
    online_history = None
    known_examples = train_examples
    history_examples = [example for example in train_examples if example.replay]
    # the distill riders are the replayed history itself (same order), so online replay reads their margins too
    distill_pool = history_examples if replayed and "replay" in args.strategy else encode_records(
        distill_records, start.tokenizer, template, max_length, 1.0)[0]
    if (history_examples and args.replay_selection == "online"
            and not covers_history(args.replay_budget, args.replay_budget_unit, history_examples)):
        online_history = history_examples
        train_examples = [example for example in train_examples if not example.replay]
        say(f"replay: online, {args.replay_budget:g} {args.replay_budget_unit} of {len(history_examples)} history "
            f"examples per epoch, re-chosen each epoch by their current answer margins", flush=True)
    elif history_examples:
        replay = select_replay(start.model, train_examples, args.replay_selection, args.replay_budget,
                               args.replay_budget_unit, args.seed, start.tokenizer.pad_token_id,
                               args.tokens_per_batch or 2048, start.precision.autocast_bf16, math.ceil(args.epochs))
        if replay.windows is None:
            keep = set(replay.indices)
            train_examples = [e for i, e in enumerate(train_examples) if not e.replay or i in keep]
        else:  # the epochs' windows are planned below; every replayed example stays addressable
            epoch_members = replay.epoch_members([i for i, e in enumerate(train_examples) if not e.replay])
        say(f"replay: {len(replay.chosen)} of {len(replay.candidates)} history examples "
            f"({replay.record()['chosen_tokens']} of {replay.record()['candidate_tokens']} tokens; budget "
            f"{args.replay_budget:g} {args.replay_budget_unit}, selection {replay.selection}, "
            f"scored in {replay.scoring_seconds:.1f}s)", flush=True)
    lengths = [len(example.input_ids) for example in train_examples]
    budget = token_budget(lengths, args.batch_size, args.tokens_per_batch) if args.packing else None
    epoch_tokens = sum(lengths[i] for i in epoch_members(0)) if epoch_members else sum(lengths)
    plan_budget = rider_room(budget, epoch_tokens, rider_tokens_per_epoch(args, distill_pool, online_history),
                             max(lengths))
    # max_steps counts optimizer steps; each step takes one batch per process.
    plan = step_plan(lengths, args.seed, args.epochs, args.max_steps * dist.world_size, args.batch_size, plan_budget,
                     epoch_members)
    say(f"starting model: {start.source} (generation {start.metadata.get('generation', 0)}); "
        f"train examples: {len(train_examples)} ({sum(e.replay for e in train_examples)} replayed); "
        f"validation: {len(validation_examples)}; prompt template: {template_origin}; "
        f"{start.precision.device} {start.precision.dtype}{' 4-bit base' if start.quantized else ''}, "
        f"attention {start.attn_implementation}, "
        f"{f'packing {budget} tokens/step' if budget else f'batches of {args.batch_size}'}"
        f"{f' ({plan_budget} of them new data, the rest riders)' if plan_budget != budget else ''}, "
        f"{len(plan)} batches on {dist.world_size} process(es)", flush=True)

    history = read_history(start.model_dir, start.metadata)
    previous_fisher = load_fisher(start.model_dir) if "ewc" in args.strategy else None
    seed_everything(args.seed)
    peft_model = add_lora(start.model, args.lora_r, args.lora_alpha, args.lora_dropout, args.target_modules)
    history_a = [adapter_a_matrices(entry.path / ADAPTER_WEIGHTS) for entry in history] if "modular" in args.strategy else []
    penalty = build_penalty(args.strategy, lora_modules(peft_model), previous_fisher, history_a, args, say)
    return Run(start, template, train_examples, validation_examples, skipped + validation_skipped, budget, plan,
               history, previous_fisher, peft_model, penalty, replay, known_examples, epoch_members, distill_pool,
               online_history, plan_budget=plan_budget)


def train_adapter(run: Run, args: argparse.Namespace, dist: Distributed, stop: StopSignal) -> TrainingOutcome:
    """The training loop over the plan, resuming from this run's last checkpoint when there is one."""
    model = dist.wrap(run.peft_model)
    if args.compile:
        import torch

        model = torch.compile(model)
    checkpoints = None
    if args.checkpoint_dir is not None:
        run_id = fingerprint({"hyperparameters": recorded_hyperparameters(args), "world_size": dist.world_size,
                              "data": data_digest(data_files(args.train_dir, args.validation_dir)),
                              "model": model_identity(run.start.source, run.start.model_dir)})
        checkpoints = CheckpointManager(args.checkpoint_dir, run_id, args.keep_checkpoints)
    lengths = [len(example.input_ids) for example in run.train_examples]
    settings = LoopSettings(
        learning_rate=args.learning_rate, warmup_ratio=args.warmup_ratio, max_grad_norm=args.max_grad_norm,
        packing=args.packing, pad_id=run.start.tokenizer.pad_token_id,
        autocast_bf16=run.start.precision.autocast_bf16,
        steps_per_epoch=float(len(epoch_batches(lengths, args.seed, 0, args.batch_size, run.plan_budget,
                                                run.epoch_members(0) if run.epoch_members else None))),
        pad_to=run.budget if args.compile else None,
        flash_kwargs=args.packing and run.start.attn_implementation == "flash_attention_2",
        checkpoint_every_seconds=args.checkpoint_every_seconds,
        verbose=args.verbose,
    )
    # forward-only passes keep no activations for a backward: twice a step's tokens fit where a step fits
    scoring_tokens = 2 * (run.budget or args.tokens_per_batch or 256)
    distill = build_distillation(args.strategy, run.peft_model, run.distill_pool or [], args.distill_budget,
                                 args.distill_lambda, settings.steps_per_epoch, settings.pad_id, args.seed,
                                 scoring_tokens, settings.autocast_bf16, print if dist.is_main else _silent)
    if distill is not None and dist.is_main:
        print(f"distill: {distill.per_epoch} of {len(distill.pool)} history examples an epoch "
              f"(lambda {args.distill_lambda:g}, budget {args.distill_budget:g} of the history per epoch)", flush=True)
    if run.online_history:
        shared = distill is not None and run.distill_pool is run.online_history  # one pass scored them already
        run.online = build_online_replay(run.peft_model, run.online_history, args.replay_budget,
                                         args.replay_budget_unit, settings.steps_per_epoch, settings.pad_id,
                                         scoring_tokens, settings.autocast_bf16,
                                         distill.start_margins if shared else None)
    seed_everything(args.seed)
    return run_training(model, run.peft_model, run.train_examples, run.plan, run.penalty, settings, dist,
                        checkpoints, stop, distill=distill, online=run.online)


def save_version(run: Run, outcome: TrainingOutcome, args: argparse.Namespace, dist: Distributed, stop: StopSignal,
                 started: float) -> None:
    """Validation loss, this version's Fisher, then the artifact: adapter(s), merged model, tokenizer, metadata."""
    start, bf16 = run.start, run.start.precision.autocast_bf16
    pad_id = start.tokenizer.pad_token_id
    metrics = dict(outcome.metrics)
    if run.validation_examples:
        metrics["eval_loss"] = evaluation_loss(run.peft_model, run.validation_examples, pad_id, args.packing,
                                               args.batch_size, run.budget, bf16)
        log_metric("eval_loss", metrics["eval_loss"])
    fisher = None
    if args.fisher_samples > 0:
        # Over everything this version should know (the whole history, not only what the budget replayed), so the
        # next version's EWC protects it all; a sample of fisher_samples examples: a fixed cost.
        values, samples = compute_fisher(run.peft_model, run.known_examples or run.train_examples, args.fisher_samples,
                                         args.seed, run.budget, args.batch_size, pad_id, args.packing, bf16)
        save_fisher(values, args.model_dir, samples)
        fisher = {"path": str(FISHER_FILE), "samples": samples}
    if stop.requested:
        raise TrainingInterrupted("stopped after training, before the model was saved")
    generation = int(start.metadata.get("generation", 0)) + 1
    save_adapter(run.peft_model, args.model_dir)
    kept = write_history(args.model_dir, run.history, generation) if "modular" in args.strategy else []
    start.tokenizer.save_pretrained(args.model_dir)
    save_merged(run.peft_model, args.model_dir, start.quantized, start.source, start.precision.dtype)
    ship_inference_handler(args.model_dir)
    seconds = time.monotonic() - started
    replay_record = run.replay.record() if run.replay else run.online.record() if run.online else None
    replayed = replay_record["chosen"] if replay_record else 0  # distinct examples (rotating, online: all epochs)
    write_metadata(args.model_dir, version_metadata(
        args, start_metadata=start.metadata, source=start.source, template=run.template,
        strategy=strategy_record(args, int(start.metadata.get("generation", 0)), len(run.history),
                                 run.previous_fisher is not None, run.penalty.active),
        metrics=metrics,
        data={"train_sha256": data_digest(data_files(args.train_dir)),
              "train_examples": sum(not e.replay for e in run.train_examples) + replayed,
              "replay_examples": replayed,
              "new_tokens_per_epoch": sum(len(e.input_ids) for e in run.train_examples if not e.replay),
              "replay_tokens_per_epoch": replay_tokens_per_epoch(run, metrics),
              "validation_examples": len(run.validation_examples), "skipped_examples": run.skipped},
        training={"device": start.precision.device, "dtype": start.precision.dtype, "quantized_base": start.quantized,
                  "attn_implementation": start.attn_implementation, "tokens_per_step": run.budget,
                  "world_size": dist.world_size, "resumed_from_step": outcome.resumed_from_step},
        fisher=fisher, adapter_history=kept, seconds=seconds,
        replay=replay_record,
    ))
    print(f"saved model to {args.model_dir} in {seconds:.1f}s", flush=True)


def rider_tokens_per_epoch(args: argparse.Namespace, distill_pool: list[TrainExample],
                           online_history: list[TrainExample] | None) -> float:
    """Tokens the riders add to each epoch: online replay's budget and the distill component's share."""
    tokens = 0.0
    if online_history:
        total = sum(len(example.input_ids) for example in online_history)
        if args.replay_budget_unit == "tokens":
            tokens += amount_of(args.replay_budget, total)
        else:
            tokens += amount_of(args.replay_budget, len(online_history)) * total / len(online_history)
    if "distill" in args.strategy and args.distill_lambda > 0 and distill_pool:
        mean = sum(len(example.input_ids) for example in distill_pool) / len(distill_pool)
        tokens += distilled_per_epoch(args.distill_budget, len(distill_pool)) * mean
    return tokens


def rider_room(budget: int | None, epoch_tokens: int, rider_tokens: float, longest: int) -> int | None:
    """The plan's packing budget so that a step's row (its planned examples and its share of the riders) stays at
    `budget` tokens: longer rows cost more per token (attention is quadratic in the row)."""
    if budget is None or rider_tokens <= 0:
        return budget
    return max(longest, round(budget * epoch_tokens / (epoch_tokens + rider_tokens)))


def replay_tokens_per_epoch(run: Run, metrics: dict[str, float]) -> float:
    """Replayed tokens an epoch trains on (rotating: the mean over the epochs' windows; online: as counted)."""
    if run.online is not None:
        return metrics.get("replay_tokens", 0.0) / max(metrics.get("epoch", 1.0), 1e-9)
    if run.replay is None or run.replay.windows is None:
        return sum(len(example.input_ids) for example in run.train_examples if example.replay)
    windows = run.replay.windows
    return sum(len(run.train_examples[i].input_ids) for w in windows for i in w) / len(windows)
