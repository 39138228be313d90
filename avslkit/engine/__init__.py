"""The training engine: one loop (`Trainer`) for every method, resumable data order, checkpoints, logs.

Methods plug in as `avslkit.methods.base.Task` objects; the engine knows nothing about models.
"""

from avslkit.engine.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from avslkit.engine.data import ResumableLoader, SeededDataset
from avslkit.engine.distributed import DistContext, init_distributed
from avslkit.engine.logging import JsonlLogger
from avslkit.engine.trainer import Trainer

__all__ = [
    "CheckpointManager",
    "DistContext",
    "JsonlLogger",
    "ResumableLoader",
    "SeededDataset",
    "Trainer",
    "init_distributed",
    "load_checkpoint",
    "save_checkpoint",
]
