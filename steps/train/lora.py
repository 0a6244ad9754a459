"""LoRA on top of the starting model (peft), and a view of its adapted layers for the continual-learning penalties."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PEFT_PREFIX = "base_model.model."
ADAPTER_NAME = "default"


@dataclass(frozen=True)
class LoraModule:
    """One adapted linear layer: its delta is `scaling * B @ A` (B: out x r, A: r x in)."""

    name: str  # the layer's name in the plain model, e.g. "model.layers.0.self_attn.q_proj"
    lora_a: Any  # torch.nn.Parameter, r x in
    lora_b: Any  # torch.nn.Parameter, out x r
    scaling: float


def target_modules(spec: str) -> str | list[str]:
    """'all-linear' or the comma list as a list; an empty list is an error."""
    spec = spec.strip()
    if spec == "all-linear":
        return spec
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise ValueError("--target_modules is empty; use 'all-linear' or a comma list of module names")
    return names


def add_lora(model: Any, r: int, alpha: float, dropout: float, targets: str) -> Any:
    """Wrap `model` with a fresh LoRA adapter (fp32 adapter weights even on a bf16 base)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules(targets), task_type="CAUSAL_LM"
    )
    return get_peft_model(model, config, autocast_adapter_dtype=True)


def plain_name(peft_name: str) -> str:
    """A peft module/parameter name without the wrapper prefix (the name in the plain model)."""
    return peft_name[len(PEFT_PREFIX):] if peft_name.startswith(PEFT_PREFIX) else peft_name


def lora_modules(peft_model: Any) -> list[LoraModule]:
    """Every adapted layer of `peft_model` (a PeftModel or its DDP/compiled wrapper's inner module), by name."""
    from peft.tuners.lora import LoraLayer

    found = []
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and ADAPTER_NAME in getattr(module, "lora_A", {}):
            found.append(LoraModule(
                name=plain_name(name),
                lora_a=module.lora_A[ADAPTER_NAME].weight,
                lora_b=module.lora_B[ADAPTER_NAME].weight,
                scaling=float(module.scaling[ADAPTER_NAME]),
            ))
    if not found:
        raise ValueError("the model has no LoRA layers; check --target_modules")
    return found


def adapter_a_matrices(adapter_file: Any) -> dict[str, Any]:
    """{layer name: A (r x in)} from a saved peft adapter's safetensors file."""
    from safetensors.torch import load_file

    suffix = ".lora_A.weight"
    return {
        plain_name(key[: -len(suffix)]): tensor
        for key, tensor in load_file(str(adapter_file)).items()
        if key.endswith(suffix)
    }


def trainable_state(peft_model: Any) -> dict[str, Any]:
    """The trainable tensors (the adapter) by parameter name, detached copies on CPU."""
    return {name: p.detach().to("cpu", copy=True) for name, p in peft_model.named_parameters() if p.requires_grad}


def load_trainable_state(peft_model: Any, state: dict[str, Any]) -> None:
    """Copy a `trainable_state` back into the model; names must match exactly."""
    import torch

    params = {name: p for name, p in peft_model.named_parameters() if p.requires_grad}
    if set(params) != set(state):
        missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        raise ValueError(f"checkpoint does not match the model's adapter (missing {missing[:3]}, unexpected {extra[:3]})")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
