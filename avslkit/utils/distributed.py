"""DDP helpers: process-group set-up from torchrun's environment and exact per-sample gathering.

`DistributedSampler(shuffle=False)` pads the dataset to a multiple of the world size by repeating
the first indices, and gives rank r the indices r, r + W, r + 2W, ... `gather_per_sample`
all-gathers each rank's per-sample results, restores dataset order and drops the padding, so
metrics computed afterwards are exactly the single-process ones.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the default process group when launched by torchrun (WORLD_SIZE > 1).

    Returns True when running distributed. Uses NCCL with CUDA, else gloo.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    return True


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _unpad_order(per_rank_lengths: int, ws: int, dataset_len: int) -> list[int]:
    # Position p of rank r holds global sample r + p·W; return the order to read gathered items.
    return [r * per_rank_lengths + p for p in range(per_rank_lengths) for r in range(ws)][:dataset_len]


def gather_per_sample(values: torch.Tensor | Sequence[Any], dataset_len: int) -> torch.Tensor | list[Any]:
    """All-gather this rank's per-sample results (first dim / list order = its sampler order).

    Returns every sample's result in dataset order, padding removed, on every rank. Works for
    tensors (any trailing shape; gathered with all_gather, moved back to the input device) and for
    lists of picklable objects (names, dicts). Assumes DistributedSampler(shuffle=False, drop_last=False).
    Without a process group, returns the input (truncated to `dataset_len`).
    """
    ws = world_size()
    if ws == 1:
        return values[:dataset_len] if isinstance(values, torch.Tensor) else list(values)[:dataset_len]
    per_rank = -(-dataset_len // ws)
    if len(values) != per_rank:
        raise ValueError(f"rank {rank()} has {len(values)} results; DistributedSampler gives {per_rank} per rank")
    order = _unpad_order(per_rank, ws, dataset_len)
    if isinstance(values, torch.Tensor):
        device = values.device
        comm = values if dist.get_backend() != "nccl" else values.cuda()
        parts = [torch.empty_like(comm) for _ in range(ws)]
        dist.all_gather(parts, comm.contiguous())
        stacked = torch.cat(parts, dim=0)
        return stacked[torch.as_tensor(order, device=stacked.device)].to(device)
    gathered: list[list[Any]] = [None] * ws  # type: ignore[list-item]
    dist.all_gather_object(gathered, list(values))
    flat = [item for part in gathered for item in part]
    return [flat[i] for i in order]
