"""Training as the app layer runs it: the method registry builds the task, the engine trains it.

`avslkit train` (cli/train.py), the workflow and the tests call `run_training` /
`prepare_training` here; `avslkit.engine.run` does the rest without knowing any method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from avslkit.engine.distributed import DistContext
from avslkit.engine.run import prepare_training as _prepare_engine
from avslkit.engine.run import run_training as _run_engine
from avslkit.engine.trainer import Trainer
from avslkit.errors import AvslError

__all__ = ["prepare_training", "run_training"]


def _task_factory(cfg: Mapping[str, Any]) -> Any:
    """`build_task` of the method registry, after checking the method name (clear error before any work)."""
    from avslkit.methods import build_task, get_method

    if not cfg.get("method"):
        raise AvslError("no method given (use 'avslkit train METHOD')")
    get_method(str(cfg["method"]))
    return build_task


def prepare_training(cfg: Mapping[str, Any], out: str | Path, resume: bool = False, quiet: bool = False,
                     ctx: DistContext | None = None) -> tuple[Trainer, Path | None]:
    """Set up a run of `cfg['method']`: (trainer, checkpoint to resume from or None)."""
    return _prepare_engine(cfg, out, _task_factory(cfg), resume, quiet, ctx)


def run_training(cfg: Mapping[str, Any], out: str | Path, resume: bool = False, quiet: bool = False,
                 ctx: DistContext | None = None) -> dict[str, Any]:
    """Train `cfg['method']` into run directory `out`; returns the Trainer summary."""
    return _run_engine(cfg, out, _task_factory(cfg), resume, quiet, ctx)
