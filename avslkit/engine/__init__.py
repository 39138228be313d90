"""The training engine: one loop (`Trainer`) for every method, resumable data order, checkpoints, logs.

Methods plug in as objects with the `avslkit.methods.base.Task` interface (handed over by the app
layer, `avslkit.training`); the engine owns the optimisation step and never imports the methods.
"""

from avslkit.engine.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from avslkit.engine.data import ResumableLoader, SeededDataset
from avslkit.engine.distributed import DistContext, init_distributed
from avslkit.engine.logging import JsonlLogger
from avslkit.engine.optim import OPTIMIZERS, SCHEDULES, register_optimizer, register_schedule
from avslkit.engine.step import OptimizationStep
from avslkit.engine.trainer import Trainer

__all__ = [
    "CheckpointManager",
    "DistContext",
    "JsonlLogger",
    "OPTIMIZERS",
    "OptimizationStep",
    "ResumableLoader",
    "SCHEDULES",
    "SeededDataset",
    "Trainer",
    "init_distributed",
    "load_checkpoint",
    "register_optimizer",
    "register_schedule",
    "save_checkpoint",
]
