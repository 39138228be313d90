"""Training-side distributed setup: device choice, DDP process group from torchrun's environment,
and the all-gather-with-gradient used to let contrastive negatives span the global batch.

`torchrun --nproc-per-node N -m avslkit train ...` sets RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT; `init_distributed` reads them (backend nccl on CUDA, gloo on CPU).
Without them the run is a single process and nothing here touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from avslkit.errors import AvslError


@dataclass
class DistContext:
    """Where this process sits in the job: rank, world size, its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and draws progress."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def all_reduce_mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average scalar metrics over ranks (for logging)."""
        if not self.distributed or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        t /= self.world_size
        return dict(zip(keys, t.tolist()))


def resolve_device(spec: str | None, local_rank: int = 0) -> torch.device:
    """'auto' → cuda if visible else cpu; 'cuda' → cuda:LOCAL_RANK; errors name the fix."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AvslError(f"CUDA requested (--device {spec}) but no GPU is visible; use --device cpu")
        if spec == "cuda":
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AvslError(f"--device {spec}: only {torch.cuda.device_count()} GPU(s) visible; pick cuda:0..")
        return device
    raise AvslError(f"unknown device '{spec}' (use cpu, cuda, cuda:N or auto)")


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str | None = "auto", backend: str = "auto") -> DistContext:
    """Set up this process: single-process, or a DDP member when launched by torchrun."""
    world = env_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(0, 1, 0, dev, None)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "init_method": "env://"}
        if dev.type == "cuda" and backend == "nccl":
            kwargs["device_id"] = dev
        dist.init_process_group(**kwargs)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, backend)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from every rank along dim 0, keeping the gradient path to all ranks.

    Uses `torch.distributed.nn.functional.all_gather`, whose backward sums the incoming gradients
    over ranks; combined with DDP's gradient averaging this gives the gradient of the mean of the
    per-rank losses, i.e. of the loss over the global batch. Single process: returns `tensor`.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor), dim=0)


def rank_offset(local_batch: int) -> int:
    """Index of this rank's first sample inside the gathered global batch."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0
    return dist.get_rank() * local_batch
