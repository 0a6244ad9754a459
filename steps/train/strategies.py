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
           teacher is the starting model (the previous version's merged weights, scored once before the
           first step while the fresh adapter is still zero: one forward over the history, its top
           DISTILL_TOP_K tokens per position kept) and T = DISTILL_TEMPERATURE. Learning without Forgetting
           (Li & Hoiem, "Learning without Forgetting", ECCV 2016, arXiv:1606.09282) on the old task's
           inputs: each step a slice of the history rides along in the step's batch with loss weight 0
           (`Distillation`), its targets the previous version's distributions, never the stored answers.
"""
from __future__ import annotations

import math
import time
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
DISTILL_TOP_K = 64  # the teacher's distribution kept per position: its top k tokens and the rest's mass


def soft_targets(logits: Any, top_k: int = DISTILL_TOP_K) -> tuple[Any, Any]:
    """(top-k token ids (N x k), log-probabilities (N x k+1): the top k and the rest's mass) at temperature T."""
    import torch

    log_probs = torch.log_softmax(logits.float() / DISTILL_TEMPERATURE, dim=-1)
    top, ids = log_probs.topk(min(top_k, log_probs.shape[-1]), dim=-1)
    return ids, torch.cat([top, _rest(top)[:, None]], dim=1)


def _rest(top_log_probs: Any) -> Any:
    """log(1 - sum(exp(top))), the mass outside the top k (floored at 1e-12)."""
    import torch

    return torch.log((1 - top_log_probs.exp().sum(-1)).clamp_min(1e-12))


def distill_kl(student_logits: Any, ids: Any, teacher: Any) -> Any:
    """T^2 * mean over positions of KL(teacher || student) on the teacher's top k tokens and the rest (k+1 bins:
    a lower bound of the full KL that needs only k numbers per position from the teacher)."""
    import torch

    log_probs = torch.log_softmax(student_logits.float() / DISTILL_TEMPERATURE, dim=-1)
    top = log_probs.gather(1, ids)
    student = torch.cat([top, _rest(top)[:, None]], dim=1)
    kl = (teacher.exp() * (teacher - student)).sum(-1)
    return DISTILL_TEMPERATURE**2 * kl.mean()


def teacher_pass(model: Any, pool: list[Any], pad_id: int, tokens_per_batch: int,
                 bf16: bool = False) -> tuple[list[tuple[Any, Any]], list[float]]:
    """Every pool example's soft targets under `model` (the starting model: before the first step the fresh
    adapter is zero), (ids, log-probs) per example on CPU, and its answer margin (train.scoring), which online
    replay starts from; one forward pass over the pool, packed."""
    from train.scoring import scored_batches

    targets: list[tuple[Any, Any]] = [None] * len(pool)  # type: ignore[list-item]
    margins = [math.inf] * len(pool)
    for scored in scored_batches(model, pool, pad_id, tokens_per_batch, bf16):
        ids, log_probs = soft_targets(scored.logits)
        for j, (index, margin) in enumerate(zip(scored.indices, scored.margins_and_losses()[0])):
            mine = scored.segments == j
            targets[index] = (ids[mine].cpu(), log_probs[mine].cpu())
            margins[index] = margin
    return targets, margins


@dataclass
class Distillation:
    """The distill component for one run: each epoch `per_epoch` history examples (a seeded order, cycling: an epoch
    covers `distill_budget` of the history), spread evenly over its steps, ride along with loss weight 0, and their
    answer positions are pulled toward the starting model's distributions (computed once, `teacher_pass`)."""

    pool: list[Any]  # TrainExample: the history's examples (old inputs), weight 0
    targets: list[tuple[Any, Any]]  # per pool example: the teacher's (top-k ids, log-probs) at its answer positions
    per_epoch: int  # examples distilled on per epoch (distilled_per_epoch), spread evenly over its steps
    steps_per_epoch: float
    weight: float
    order: list[int] = field(default_factory=list)
    teacher_seconds: float = 0.0  # CPU seconds of the teacher's pass (teacher_pass)
    start_margins: list[float] = field(default_factory=list)  # the pool's answer margins under the teacher

    def picked(self, step: int) -> list[int]:
        """Step `step`'s (1-based) pool indices."""
        start = math.floor((step - 1) * self.per_epoch / self.steps_per_epoch)
        end = math.floor(step * self.per_epoch / self.steps_per_epoch)
        return [self.order[j % len(self.order)] for j in range(start, end)]

    def term(self, logits: Any, picked: list[int]) -> Any:
        """The weighted KL for the scored positions' student `logits` of the `picked` examples, in order."""
        import torch

        ids = torch.cat([self.targets[i][0] for i in picked]).to(logits.device)
        teacher = torch.cat([self.targets[i][1] for i in picked]).to(logits.device)
        if ids.shape[0] != logits.shape[0]:
            raise ValueError(f"distill: {logits.shape[0]} scored positions for {ids.shape[0]} teacher targets")
        return self.weight * distill_kl(logits, ids, teacher)


def distilled_per_epoch(budget: float, history_size: int) -> int:
    """How many history examples the distill component rides along per epoch (`distill_budget`, a share <= 1)."""
    return max(1, round(min(budget, 1.0) * history_size)) if history_size and budget > 0 else 0


def build_distillation(strategy: Collection[str], model: Any, history: list[Any], budget: float, weight: float,
                       steps_per_epoch: float, pad_id: int, seed: int, tokens_per_batch: int = 2048,
                       bf16: bool = False, log: Any = print) -> Distillation | None:
    """The distill component when `strategy` asks for it and there is a history to distil on, else None. Call it
    before the first step: `model`'s outputs then are the starting model's."""
    import random
    from dataclasses import replace

    if "distill" not in strategy or weight <= 0 or budget <= 0:
        return None
    if not history:
        log("distill: no history examples (a first version, or no replayed data); distillation is off for this run")
        return None
    pool = [replace(example, weight=0.0) for example in history]
    per_epoch = distilled_per_epoch(budget, len(pool))
    order = list(range(len(pool)))
    random.Random(seed * 7919 + 17).shuffle(order)
    started = time.process_time()
    targets, margins = teacher_pass(model, pool, pad_id, tokens_per_batch, bf16)
    return Distillation(pool, targets, per_epoch, max(steps_per_epoch, 1.0), weight, order,
                        time.process_time() - started, margins)


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
