"""Fisher information of a trained version, for the next version's EWC penalty.

The diagonal empirical Fisher of every adapted weight matrix W (the weights LoRA changes):
F = mean over examples of (d log p(completion | prompt) / dW)^2, taken at the trained weights.
Per-example gradients come from forward/backward hooks on the adapted layers (dL/dW = g^T x per
example; packed rows are split by example, which is exact because examples do not attend to each
other), so it also works on a 4-bit base. It is stored factored like Adafactor's second moment:
row sums r, column sums c and the total S per matrix, F_ij ~ r_i c_j / S: (out + in) numbers per
matrix instead of out x in, and the EWC penalty can be computed in the LoRA rank space.
File: `continual/fisher.safetensors` in the model artifact (`<layer>.rows|.cols|.total`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.data import TrainExample, epoch_batches, epoch_order, make_batch
from train.loss import autocast_context, token_losses

FISHER_FILE = Path("continual") / "fisher.safetensors"
FISHER_FORMAT = "continuum-fisher-factored-v1"
FISHER_EPOCH = -1  # the seeded example order used to pick the Fisher sample


@dataclass
class FactoredFisher:
    """One weight matrix's Fisher: row sums (out), column sums (in), total."""

    rows: Any
    cols: Any
    total: float

    def dense(self) -> Any:
        """The out x in approximation r c^T / S (tests and small models)."""
        import torch

        if self.total <= 0:
            return torch.zeros(len(self.rows), len(self.cols))
        return torch.outer(self.rows, self.cols) / self.total


def _lora_layers(peft_model: Any) -> dict[str, Any]:
    from peft.tuners.lora import LoraLayer

    from train.lora import ADAPTER_NAME, plain_name

    return {plain_name(name): module for name, module in peft_model.named_modules()
            if isinstance(module, LoraLayer) and ADAPTER_NAME in getattr(module, "lora_A", {})}


def compute_fisher(peft_model: Any, examples: list[TrainExample], samples: int, seed: int, budget: int | None,
                   batch_size: int, pad_id: int, packing: bool, bf16: bool) -> tuple[dict[str, FactoredFisher], int]:
    """Factored diagonal Fisher of every adapted layer over up to `samples` examples; (fisher, examples used)."""
    import torch

    layers = _lora_layers(peft_model)
    device = next(peft_model.parameters()).device
    chosen = [examples[i] for i in epoch_order(len(examples), seed, FISHER_EPOCH)[:samples]]
    lengths = [len(example.input_ids) for example in chosen]
    batches = epoch_batches(lengths, seed, FISHER_EPOCH, batch_size, budget if packing else None)
    inputs: dict[str, Any] = {}
    grads: dict[str, Any] = {}
    sums = {name: [torch.zeros(m.out_features, device=device), torch.zeros(m.in_features, device=device), 0.0]
            for name, m in layers.items()}

    def forward_hook(name: str) -> Any:
        def hook(module: Any, args: tuple[Any, ...], output: Any) -> None:
            inputs[name] = args[0].detach()
            if output.requires_grad:
                output.register_hook(lambda grad: grads.__setitem__(name, grad.detach()))
        return hook

    handles = [module.register_forward_hook(forward_hook(name)) for name, module in layers.items()]
    was_training = peft_model.training
    peft_model.eval()
    try:
        for indices in batches:
            batch = make_batch([chosen[i] for i in indices], pad_id, packing).to(device)
            with autocast_context(bf16, device.type):
                losses = token_losses(peft_model, batch)
            losses.nll.sum().backward()  # each example's summed log-likelihood; examples are independent
            segments = batch.segments.reshape(-1)
            for name, acc in sums.items():
                x = inputs[name].reshape(-1, inputs[name].shape[-1]).float()
                g = grads[name].reshape(-1, grads[name].shape[-1]).float()
                for example in range(batch.example_count):
                    rows = segments == example
                    per_example = g[rows].T @ x[rows]
                    squared = per_example * per_example
                    acc[0] += squared.sum(1)
                    acc[1] += squared.sum(0)
                    acc[2] += float(squared.sum())
            peft_model.zero_grad(set_to_none=True)
            inputs.clear()
            grads.clear()
    finally:
        for handle in handles:
            handle.remove()
        peft_model.train(was_training)
    count = max(len(chosen), 1)
    fisher = {name: FactoredFisher((rows / count).cpu(), (cols / count).cpu(), total / count)
              for name, (rows, cols, total) in sums.items()}
    return fisher, len(chosen)


def save_fisher(fisher: dict[str, FactoredFisher], model_dir: Path, samples: int) -> Path:
    """Write `continual/fisher.safetensors` under model_dir."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    for name, item in sorted(fisher.items()):
        tensors[f"{name}.rows"] = item.rows.float().contiguous()
        tensors[f"{name}.cols"] = item.cols.float().contiguous()
        tensors[f"{name}.total"] = torch.tensor([item.total], dtype=torch.float64)
    path = Path(model_dir) / FISHER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": FISHER_FORMAT, "samples": str(samples)})
    return path


def load_fisher(model_dir: Path | None) -> dict[str, FactoredFisher] | None:
    """The Fisher stored with a model (None when it has none); a malformed file is an error naming it."""
    from safetensors import safe_open

    if model_dir is None or not (Path(model_dir) / FISHER_FILE).is_file():
        return None
    path = Path(model_dir) / FISHER_FILE
    with safe_open(str(path), framework="pt") as handle:
        if (handle.metadata() or {}).get("format") != FISHER_FORMAT:
            raise ValueError(f"{path}: not a {FISHER_FORMAT} file")
        names = {key.rsplit(".", 1)[0] for key in handle.keys()}
        try:
            return {name: FactoredFisher(handle.get_tensor(f"{name}.rows"), handle.get_tensor(f"{name}.cols"),
                                         float(handle.get_tensor(f"{name}.total")[0])) for name in sorted(names)}
        except Exception as err:  # safetensors raises its own error types for missing keys
            raise ValueError(f"{path}: incomplete Fisher entries: {err}") from err
