"""Optimiser and LR-schedule factories, as registries (``optim.name``, ``optim.schedule``).

A new optimiser or schedule is one decorated function here (or in user code imported before
training); the engine builds them from the run's ``optim`` config section. The references use
Adam, lr 1e-4, no weight decay, constant LR.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from avslkit.config_spec import OptimSection, packaged_section
from avslkit.errors import AvslError

OptimizerFactory = Callable[[list[nn.Parameter], float, float, OptimSection], torch.optim.Optimizer]
ScheduleShape = Callable[[float, float], float]  # (progress in [0, 1], min_factor) -> factor after warm-up

OPTIMIZERS: dict[str, OptimizerFactory] = {}
SCHEDULES: dict[str, ScheduleShape] = {}


def register_optimizer(name: str) -> Callable[[OptimizerFactory], OptimizerFactory]:
    """Decorator: make ``factory(params, lr, weight_decay, optim)`` (`optim` the typed OptimSection) available as ``optim.name=NAME``."""

    def decorator(factory: OptimizerFactory) -> OptimizerFactory:
        OPTIMIZERS[name] = factory
        return factory

    return decorator


def register_schedule(name: str) -> Callable[[ScheduleShape], ScheduleShape]:
    """Decorator: make ``shape(progress, min_factor) -> factor`` available as ``optim.schedule=NAME``."""

    def decorator(shape: ScheduleShape) -> ScheduleShape:
        SCHEDULES[name] = shape
        return shape

    return decorator


@register_optimizer("adam")
def _adam(params: list[nn.Parameter], lr: float, weight_decay: float, o: OptimSection) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=tuple(o.betas))


@register_optimizer("adamw")
def _adamw(params: list[nn.Parameter], lr: float, weight_decay: float, o: OptimSection) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(o.betas))


@register_optimizer("sgd")
def _sgd(params: list[nn.Parameter], lr: float, weight_decay: float, o: OptimSection) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=float(o.momentum))


@register_schedule("constant")
def _constant(progress: float, min_factor: float) -> float:
    return 1.0


@register_schedule("cosine")
def _cosine(progress: float, min_factor: float) -> float:
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(params: Iterable[nn.Parameter], optim: OptimSection | Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimiser named by ``optim.name`` over `params` (lr, weight_decay from the same section)."""
    optim = packaged_section(OptimSection, optim)
    name = str(optim.name).lower()
    factory = OPTIMIZERS.get(name)
    if factory is None:
        raise AvslError(f"unknown optim.name '{name}' (use {', '.join(sorted(OPTIMIZERS))})")
    return factory(list(params), float(optim.lr), float(optim.weight_decay), optim)


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int, min_factor: float = 0.0) -> float:
    """Multiplier of the base LR at `step`: linear warm-up, then the registered schedule's shape."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    shape = SCHEDULES.get(schedule)
    if shape is None:
        raise AvslError(f"unknown optim.schedule '{schedule}' (use {' or '.join(sorted(SCHEDULES))})")
    span = max(1, total_steps - warmup_steps)
    return shape(min(1.0, (step - warmup_steps) / span), min_factor)
