"""Mean-teacher EMA: θ_t ← β·θ_t + (1 − β)·θ_s (DMT Eq. 14, β = 0.999 in App. B.4).

The teacher is a frozen copy of the student (``make_teacher``): no parameter requires grad, so no
loss can ever reach it; ``ema_update_`` runs under ``torch.no_grad``. Floating-point buffers
(BatchNorm running mean/var) are *copied* from the student, integer buffers (num_batches_tracked)
too: the teacher's normalisation statistics are the student's current ones, the usual mean-teacher
choice (the paper only specifies the parameter update).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from avslkit.errors import AvslError

__all__ = ["ema_update_", "make_teacher", "unwrap"]


def unwrap(module: nn.Module) -> nn.Module:
    """The inner module of a DDP/DataParallel wrapper (parameter names then match the teacher's)."""
    return module.module if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else module


def make_teacher(student: nn.Module) -> nn.Module:
    """A deep copy of `student` with every parameter frozen (requires_grad False), ready for EMA."""
    teacher = copy.deepcopy(unwrap(student))
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, beta: float) -> None:
    """In place, for every parameter: θ_t ← β·θ_t + (1 − β)·θ_s; buffers: copied from the student.

    `teacher` and `student` must have the same parameter/buffer names and shapes (a DDP-wrapped
    student is unwrapped). β = 1 freezes the teacher, β = 0 copies the student.
    """
    if not 0.0 <= beta <= 1.0:
        raise AvslError(f"EMA decay beta must be in [0, 1], got {beta}")
    student = unwrap(student)
    t_params, s_params = dict(teacher.named_parameters()), dict(student.named_parameters())
    if t_params.keys() != s_params.keys():
        diff = sorted(set(t_params) ^ set(s_params))
        raise AvslError(
            f"teacher and student parameters differ ({len(diff)} names, e.g. {diff[0]}); "
            "build the teacher with make_teacher(student)"
        )
    for name, t in t_params.items():
        s = s_params[name].detach()
        if t.shape != s.shape:
            raise AvslError(f"teacher/student parameter {name} shapes differ: {tuple(t.shape)} vs {tuple(s.shape)}")
        if t.is_floating_point():
            t.mul_(beta).add_(s.to(t.dtype), alpha=1.0 - beta)
        else:
            t.copy_(s)
    s_buffers = dict(student.named_buffers())
    for name, buf in teacher.named_buffers():
        if name in s_buffers:
            buf.copy_(s_buffers[name])
