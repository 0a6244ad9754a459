"""Continual-learning penalties on the new adapter's weight change, combinable per run.

Every version trains a fresh LoRA adapter on the previous version's merged weights, so the change
to an adapted matrix is exactly delta = s * B @ A. The penalties, summed over adapted matrices:
- l2sp:    lambda * ||delta||^2                            (L2-SP: stay near the previous weights)
- ewc:     lambda * sum(F~ * delta^2)                      (EWC: F~ the previous version's Fisher,
           factored F_ij ~ r_i c_j / S and normalised to mean 1 over all adapted weights)
- modular: lambda * sum_k ||A @ unit_rows(A_k)^T||^2       (keep the new adapter's input subspace
           orthogonal to the kept adapters' A_k, as O-LoRA does)
All are computed in the rank space (r x r products), never materialising delta: cheap at any size.
`replay` weights replayed examples in the loss instead (train.data).
- distill: lambda * T^2 * KL(teacher_T || student_T) over the answer positions of old inputs, where the
           teacher is the starting model itself (the new adapter disabled: the previous version's merged
           weights, no copy) and T = DISTILL_TEMPERATURE. Learning without Forgetting (Li & Hoiem, "Learning
           without Forgetting", ECCV 2016, arXiv:1606.09282) with the old task's inputs: each step a slice
           of the history (`Distillation`), the targets the previous version's distributions, never the
           stored answers. Costs a forward of the teacher and a forward/backward of the student per slice.
"""
from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from train.fisher import FactoredFisher
from train.lora import LoraModule


@dataclass
class _EwcTerm:
    module: LoraModule
    rows: Any  # normalised row factor (out), on device
    cols: Any  # normalised column factor (in), on device


@dataclass
class ContinualPenalty:
    """The configured penalties for one run; call it for (total, {name: value})."""

    l2sp: list[LoraModule] = field(default_factory=list)
    ewc: list[_EwcTerm] = field(default_factory=list)
    orthogonal: list[tuple[LoraModule, Any]] = field(default_factory=list)  # (module, stacked unit-row A_k)
    l2sp_lambda: float = 0.0
    ewc_lambda: float = 0.0
    orthogonal_lambda: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.l2sp or self.ewc or self.orthogonal)

    def __call__(self) -> tuple[Any, dict[str, Any]]:
        parts: dict[str, Any] = {}
        if self.l2sp:
            parts["l2sp"] = self.l2sp_lambda * sum(l2sp_term(m) for m in self.l2sp)
        if self.ewc:
            parts["ewc"] = self.ewc_lambda * sum(ewc_term(t.module, t.rows, t.cols) for t in self.ewc)
        if self.orthogonal:
            parts["orthogonal"] = self.orthogonal_lambda * sum(orthogonal_term(m, a) for m, a in self.orthogonal)
        return sum(parts.values()), parts


DISTILL_TEMPERATURE = 2.0  # Li & Hoiem's T (Hinton et al.'s soft targets); the term is scaled by T^2


def distill_term(model: Any, teacher: Any, batch: Any) -> Any:
    """T^2 * mean over the batch's scored positions of KL(teacher || student) at temperature T. `teacher()`
    is a context in which `model` computes the teacher's outputs (peft's disable_adapter)."""
    import torch
    import torch.nn.functional as F

    from common.examples import IGNORE_INDEX

    keep = torch.zeros_like(batch.labels, dtype=torch.bool)
    keep[:, :-1] = batch.labels[:, 1:] != IGNORE_INDEX
    with torch.no_grad(), teacher():
        target = model(**batch.inputs, logits_to_keep=keep, use_cache=False).logits
    logits = model(**batch.inputs, logits_to_keep=keep, use_cache=False).logits
    t = DISTILL_TEMPERATURE
    student = F.log_softmax(logits.reshape(-1, logits.shape[-1]).float() / t, dim=-1)
    teacher_lp = F.log_softmax(target.reshape(-1, target.shape[-1]).float() / t, dim=-1)
    return t * t * F.kl_div(student, teacher_lp, log_target=True, reduction="batchmean")


@dataclass
class Distillation:
    """The distill component for one run: `per_step` history examples a step (a seeded order, cycling, so an
    epoch covers `distill_budget` of the history), their KL to the starting model weighted by `weight`."""

    model: Any  # the PeftModel; its disable_adapter() is the teacher
    pool: list[Any]  # TrainExample: the history's examples (old inputs)
    per_step: int
    weight: float
    pad_id: int
    order: list[int] = field(default_factory=list)

    def batch(self, step: int) -> Any:
        """Step `step`'s (1-based) slice of the history as a packed batch."""
        from train.data import make_batch

        start = (step - 1) * self.per_step
        picked = [self.pool[self.order[(start + j) % len(self.order)]] for j in range(self.per_step)]
        return make_batch(picked, self.pad_id, packing=True)

    def __call__(self, step: int, device: Any) -> tuple[Any, int]:
        """(weighted KL term, tokens forwarded through the student) for step `step`."""
        batch = self.batch(step).to(device)
        return self.weight * distill_term(self.model, self.model.disable_adapter, batch), batch.token_count


def build_distillation(strategy: Collection[str], peft_model: Any, history: list[Any], budget: float, weight: float,
                       steps_per_epoch: float, pad_id: int, seed: int, log: Any = print) -> Distillation | None:
    """The distill component when `strategy` asks for it and there is a history to distil on, else None."""
    import random

    if "distill" not in strategy or weight <= 0 or budget <= 0:
        return None
    if not history:
        log("distill: no history examples (a first version, or no replayed data); distillation is off for this run")
        return None
    per_epoch = max(1, round(min(budget, 1.0) * len(history)))
    per_step = max(1, math.ceil(per_epoch / max(steps_per_epoch, 1.0)))
    order = list(range(len(history)))
    random.Random(seed * 7919 + 17).shuffle(order)
    return Distillation(peft_model, list(history), per_step, weight, pad_id, order)


def l2sp_term(module: LoraModule) -> Any:
    """||s B A||_F^2 = s^2 * sum((A A^T) * (B^T B))."""
    a, b = module.lora_a.float(), module.lora_b.float()
    return module.scaling**2 * ((a @ a.T) * (b.T @ b)).sum()


def ewc_term(module: LoraModule, rows: Any, cols: Any) -> Any:
    """sum_ij r_i c_j (s B A)_ij^2 = s^2 * sum((A diag(c) A^T) * (B^T diag(r) B))."""
    a, b = module.lora_a.float(), module.lora_b.float()
    return module.scaling**2 * (((a * cols) @ a.T) * (b.T @ (b * rows[:, None]))).sum()


def orthogonal_term(module: LoraModule, previous_a: Any) -> Any:
    """||A P^T||_F^2 with P the kept adapters' A rows (unit length), stacked."""
    return ((module.lora_a.float() @ previous_a.T) ** 2).sum()


def normalised_fisher(fisher: dict[str, FactoredFisher], names: list[str]) -> dict[str, tuple[Any, Any]]:
    """{name: (row factor, column factor)} with F~_ij = rows_i * cols_j and mean(F~) = 1 over `names`' weights."""
    import math

    total = sum(fisher[n].total for n in names)
    size = sum(len(fisher[n].rows) * len(fisher[n].cols) for n in names)
    if total <= 0 or size == 0:
        return {}
    mean = total / size
    factors = {}
    for name in names:
        item = fisher[name]
        if item.total > 0:
            scale = 1.0 / math.sqrt(item.total * mean)
            factors[name] = (item.rows.double() * scale, item.cols.double() * scale)
    return factors


def unit_rows(matrix: Any) -> Any:
    return matrix / matrix.norm(dim=1, keepdim=True).clamp_min(1e-12)


def build_penalty(strategy: Collection[str], modules: list[LoraModule], fisher: dict[str, FactoredFisher] | None,
                  history_a: list[dict[str, Any]], args: Any, log: Any = print) -> ContinualPenalty:
    """The penalties `strategy` asks for, given what the starting model provides; says what it cannot apply."""
    import torch

    penalty = ContinualPenalty(l2sp_lambda=args.l2sp_lambda, ewc_lambda=args.ewc_lambda,
                               orthogonal_lambda=args.orthogonal_lambda)
    if "l2sp" in strategy and args.l2sp_lambda > 0:
        penalty.l2sp = list(modules)
    if "ewc" in strategy and args.ewc_lambda > 0:
        if not fisher:
            log("ewc: the starting model has no Fisher information (a base model, or trained with --fisher_samples 0); "
                "EWC is off for this run")
        else:
            covered = [m for m in modules if m.name in fisher
                       and tuple(fisher[m.name].rows.shape + fisher[m.name].cols.shape) == (m.lora_b.shape[0], m.lora_a.shape[1])]
            factors = normalised_fisher(fisher, [m.name for m in covered])
            penalty.ewc = [_EwcTerm(m, factors[m.name][0].to(m.lora_b.device, torch.float32),
                                    factors[m.name][1].to(m.lora_a.device, torch.float32))
                           for m in covered if m.name in factors]
            if len(penalty.ewc) < len(modules):
                log(f"ewc: {len(modules) - len(penalty.ewc)} of {len(modules)} adapted layers have no Fisher entry; "
                    "EWC covers the others")
    if "modular" in strategy and args.orthogonal_lambda > 0:
        for module in modules:
            previous = [a[module.name] for a in history_a
                        if module.name in a and a[module.name].shape[1] == module.lora_a.shape[1]]
            if previous:
                stacked = unit_rows(torch.cat([p.float() for p in previous])).to(module.lora_a.device)
                penalty.orthogonal.append((module, stacked))
        if not penalty.orthogonal:
            log("modular: the starting model keeps no adapters (a base model); nothing to stay orthogonal to")
    return penalty
