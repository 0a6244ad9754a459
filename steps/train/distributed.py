"""Data-parallel training across GPUs and instances, as launched by torchrun.

SageMaker's `torch_distributed` distribution starts `torchrun` with this same script on every
instance (one process per GPU) and sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR; run by hand or
on one device, WORLD_SIZE is unset and everything here is a no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def any_true(self, flags: list[bool], device: Any) -> list[bool]:
        """Each flag: whether it is set on any process (all processes must call this at the same step)."""
        if not self.enabled:
            return list(flags)
        import torch
        import torch.distributed as dist

        values = torch.tensor([1 if flag else 0 for flag in flags], device=device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return [bool(value) for value in values.tolist()]

    def wrap(self, model: Any) -> Any:
        """The model in DistributedDataParallel when distributed, else unchanged."""
        if not self.enabled:
            return model
        import torch
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if torch.cuda.is_available() else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def shutdown(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def init_distributed() -> Distributed:
    """Join the process group when torchrun started this process (NCCL on GPUs, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=world_size, local_rank=local_rank)
