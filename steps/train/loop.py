"""The training loop: AdamW with linear warmup/decay over a precomputed step plan, resumable at any step.

Each step: one batch per process (step s, rank k takes plan[s * world + k], wrapping around),
weighted completion loss (bf16 autocast on GPUs) + the continual-learning penalty, clip, step.
Logs one `step s/n: epoch=…; train_loss=…;` line about 20 times a run (SageMaker metric regexes); the
continual-learning penalty's terms only with `verbose`. Checkpoints every
`checkpoint_every_seconds`, at the end, and on SIGTERM (then raises TrainingInterrupted).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from train.checkpoint import (
    CheckpointManager,
    StopSignal,
    TrainingInterrupted,
    restore_rng_state,
    rng_state,
)
from train.data import TrainExample, group_batches, make_batch
from train.distributed import Distributed
from train.lora import load_trainable_state, trainable_state
from train.loss import autocast_context, token_losses
from train.online_replay import OnlineReplay
from train.scoring import lowest_margins
from train.strategies import ContinualPenalty, Distillation


@dataclass(frozen=True)
class LoopSettings:
    learning_rate: float
    warmup_ratio: float
    max_grad_norm: float
    packing: bool
    pad_id: int
    autocast_bf16: bool
    steps_per_epoch: float
    pad_to: int | None = None
    flash_kwargs: bool = False
    checkpoint_every_seconds: float = 600.0
    verbose: bool = False  # also log the penalty's terms at each log step


@dataclass(frozen=True)
class TrainingOutcome:
    metrics: dict[str, float]
    resumed_from_step: int  # 0 when the run started fresh


def log_metric(name: str, value: float) -> None:
    """Print one `name=value;` line (fixed-point, as the metric regexes expect) and flush."""
    print(f"{name}={value:.6f};", flush=True)


def metrics_line(**values: float) -> str:
    """`name=value;` pairs on one line (fixed-point, as the metric regexes expect)."""
    return " ".join(f"{name}={value:.6f};" for name, value in values.items())


def _fresh_logs() -> dict[str, Any]:
    return {"first_loss": None, "last_loss": None, "window_sum": 0.0, "window_count": 0, "penalty": {},
            "tokens": 0, "examples": 0, "distill_tokens": 0}


def run_training(model: Any, peft_model: Any, examples: list[TrainExample], plan: list[list[int]],
                 penalty: ContinualPenalty, settings: LoopSettings, dist: Distributed,
                 checkpoints: CheckpointManager | None, stop: StopSignal,
                 log: Callable[[str], None] = print, distill: Distillation | None = None,
                 online: OnlineReplay | None = None) -> TrainingOutcome:
    """Train `model` (peft_model, possibly DDP-wrapped) through `plan`; return the loss summary. `distill`: the
    distill component, whose history examples ride along in each step's batch (their tokens count as trained);
    `online`: the online replay, whose chosen history examples ride along with the replay weight (the same
    history as distill's pool, same order, when both are on)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    if not dist.is_main:
        log = _silent
    device = next(peft_model.parameters()).device
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=0.0,
                                  fused=device.type == "cuda")
    total_steps = max(1, math.ceil(len(plan) / dist.world_size))
    warmup = max(1, int(total_steps * settings.warmup_ratio))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    logs: dict[str, Any] = _fresh_logs()
    start = 0
    resumed = checkpoints.latest(log) if checkpoints is not None else None
    if resumed is not None:
        load_trainable_state(peft_model, resumed.trainable)
        optimizer.load_state_dict(resumed.state["optimizer"])
        scheduler.load_state_dict(resumed.state["scheduler"])
        restore_rng_state(resumed.state["rng"])
        logs, start = resumed.logs, resumed.step
        if online is not None and "online_replay" in logs:
            online.restore(logs["online_replay"])
        log(f"resumed from {resumed.path} (step {start} of {total_steps})")

    def save(step: int) -> None:
        if checkpoints is not None and dist.is_main:
            logs["window_sum"] = float(window)
            if online is not None:
                logs["online_replay"] = online.state()
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state()}
            path = checkpoints.save(step, trainable_state(peft_model), state, logs)
            log(f"checkpoint saved: {path}")
        dist.barrier()

    if dist.any_true([stop.requested], device)[0]:
        raise TrainingInterrupted(f"stopped before step {start + 1}")
    log_every = max(1, total_steps // 20)
    window = torch.tensor(float(logs["window_sum"]), dtype=torch.float64, device=device)
    last_save = loop_started = time.monotonic()
    cpu_started = time.process_time()
    model.train()
    for step in range(start + 1, total_steps + 1):
        indices = plan[((step - 1) * dist.world_size + dist.rank) % len(plan)]
        chosen = [examples[i] for i in indices]
        picked = distill.picked(step) if distill is not None else []
        replayed = online.picked(step, peft_model) if online is not None else []
        riders = ([online.pool[i] for i in replayed] if online is not None else []) + (
            [distill.pool[i] for i in picked] if distill is not None else [])  # replay weight, then weight 0
        batch = make_batch(chosen + riders, settings.pad_id, settings.packing, settings.pad_to,
                           settings.flash_kwargs).to(device)
        with autocast_context(settings.autocast_bf16, device.type):
            losses = token_losses(model, batch)
            loss = losses.weighted_mean()
        total = loss
        parts: dict[str, Any] = {}
        if penalty.active:
            penalty_value, parts = penalty()
            total = loss + penalty_value
        if distill is not None and picked:
            parts["distill"] = distill.term(losses.logits[losses.segments >= len(chosen) + len(replayed)], picked)
            total = total + parts["distill"]
            logs["distill_tokens"] = logs.get("distill_tokens", 0) + sum(len(distill.pool[i].input_ids) for i in picked)
        if online is not None:
            margins = lowest_margins(losses.logits, losses.targets, losses.segments, len(chosen) + len(riders))
            online.observe(replayed + (picked if distill is not None else []), margins[len(chosen):])
            logs["replay_tokens"] = logs.get("replay_tokens", 0) + sum(len(online.pool[i].input_ids) for i in replayed)
        total.backward()
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        window += loss.detach().double()
        logs["window_count"] += 1
        logs["tokens"] += batch.token_count
        logs["examples"] += len(chosen)
        if logs["first_loss"] is None:
            logs["first_loss"] = loss.item()
        if step % log_every == 0 or step == total_steps:
            mean = _mean_across(window, logs["window_count"], dist)
            logs["last_loss"] = mean
            window.zero_()
            logs["window_count"] = 0
            if dist.is_main:
                print(f"step {step}/{total_steps}: "
                      + metrics_line(epoch=step * dist.world_size / settings.steps_per_epoch, train_loss=mean), flush=True)
            if parts:
                logs["penalty"] = {name: float(value.detach()) for name, value in parts.items()}
                if settings.verbose:
                    log("penalty " + " ".join(f"{k}={v:.6f}" for k, v in logs["penalty"].items()))
        # Agreed by all processes, so every one of them reaches save()'s barrier at the same step.
        stopping, due = dist.any_true([stop.requested, time.monotonic() - last_save >= settings.checkpoint_every_seconds],
                                      device)
        if stopping or (due and step < total_steps):
            save(step)
            last_save = time.monotonic()
        if stopping:
            raise TrainingInterrupted(f"stopped after step {step} of {total_steps}")
    if start < total_steps:
        save(total_steps)
    metrics = {
        "train_loss": float(logs["last_loss"]),
        "initial_train_loss": float(logs["first_loss"]),
        "epoch": total_steps * dist.world_size / settings.steps_per_epoch,
        "steps": float(total_steps),
        "train_tokens": _sum_across(float(logs["tokens"]), dist, device),  # with the distill riders
        "train_seconds": time.monotonic() - loop_started,  # the steps (this process, since a resume)
        "train_cpu_seconds": time.process_time() - cpu_started,  # the same, in CPU time of this process's threads
        **{f"penalty_{name}": value for name, value in logs["penalty"].items()},
    }
    if distill is not None:  # already in train_tokens
        metrics["distill_tokens"] = _sum_across(float(logs.get("distill_tokens", 0)), dist, device)
        metrics["distill_teacher_cpu_seconds"] = distill.teacher_seconds  # before the first step
    if online is not None:  # riders already in train_tokens; scoring seconds already in train_cpu_seconds
        metrics["replay_tokens"] = _sum_across(float(logs.get("replay_tokens", 0)), dist, device)
        metrics["replay_scoring_cpu_seconds"] = online.scoring_seconds
    return TrainingOutcome(metrics, start)


def _silent(message: str) -> None:
    """The log of processes other than rank 0."""


def _sum_across(value: float, dist: Distributed, device: Any) -> float:
    """`value` summed over all processes."""
    if not dist.enabled:
        return value
    import torch
    import torch.distributed as dist_api

    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist_api.all_reduce(total)
    return float(total[0])


def _mean_across(window: Any, count: int, dist: Distributed) -> float:
    if not dist.enabled:
        return float(window) / max(count, 1)
    import torch
    import torch.distributed as dist_api

    total = torch.stack([window, torch.tensor(float(count), dtype=torch.float64, device=window.device)])
    dist_api.all_reduce(total)
    return float(total[0] / total[1].clamp_min(1))


def evaluation_loss(model: Any, examples: list[TrainExample], pad_id: int, packing: bool, batch_size: int,
                    budget: int | None, bf16: bool) -> float:
    """Mean NLL over all completion tokens (unweighted), examples in order."""
    import torch

    device = next(model.parameters()).device
    lengths = [len(example.input_ids) for example in examples]
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for indices in group_batches(list(range(len(examples))), lengths, batch_size, budget if packing else None):
            batch = make_batch([examples[i] for i in indices], pad_id, packing).to(device)
            with autocast_context(bf16, device.type):
                losses = token_losses(model, batch)
            total += float(losses.nll.double().sum())
            count += int(losses.nll.numel())
    model.train()
    return total / max(count, 1)
