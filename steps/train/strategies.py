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
"""
from __future__ import annotations

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
