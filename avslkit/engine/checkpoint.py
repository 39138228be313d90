"""Checkpoints: atomic writes, RNG capture/restore, and the last/best bookkeeping of a run.

A checkpoint file (`last.pt`, `best.pt`) is a dict::

    format="avslkit-checkpoint", format_version=1, avslkit_version, method, config (resolved),
    task    = OptimizationStep.state_dict()   (models, momentum/EMA copies, optimiser, scaler, scheduler, step, extra)
    trainer = {epoch, position, global_step, epoch_done, best, loaders}
    rng     = [per-rank {torch, cuda, numpy, python}]  (exact resume)

Everything in it is a tensor, number, string, list or dict, so it loads with
`torch.load(weights_only=True)` (no pickle code execution). `checkpoints.json` beside the files says
which checkpoint is which (epoch, step, selection metric and value).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from avslkit import __version__
from avslkit.errors import AvslError
from avslkit.utils.io import atomic_path, atomic_write_json

CHECKPOINT_FORMAT = "avslkit-checkpoint"
CHECKPOINT_VERSION = 1
#: Files of a run directory written atomically (temp file + rename).
RUN_FILES = ("last.pt", "best.pt", "checkpoints.json", "config.yaml", "log.jsonl")


# -- RNG -----------------------------------------------------------------------------------------
def capture_rng(device: torch.device | None = None) -> dict[str, Any]:
    """The process's RNG states in a weights_only-loadable form."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: Mapping[str, Any], device: torch.device | None = None) -> None:
    """Inverse of `capture_rng`."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if device is not None and device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# -- files ---------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write a checkpoint atomically (temp file + rename: never a half-written `last.pt`)."""
    full = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "avslkit_version": __version__, **payload}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(full, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read an avslkit checkpoint to CPU; errors name the file and the fix."""
    p = Path(path)
    if not p.is_file():
        raise AvslError(f"checkpoint not found: {p} (pass a run directory or an existing .pt file)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a file problem for the user
        raise AvslError(f"{p}: cannot read checkpoint ({exc.__class__.__name__}); the file is damaged or not a "
                        "PyTorch checkpoint: restore it from a copy, or train into a new --out") from exc
    if not isinstance(obj, Mapping) or obj.get("format") != CHECKPOINT_FORMAT:
        raise AvslError(f"{p}: not an avslkit training checkpoint (official EZ-VSL/SLAVC weights: pass them to load_task_for_inference with method=...)")
    if int(obj.get("format_version", 0)) > CHECKPOINT_VERSION:
        raise AvslError(f"{p}: checkpoint format {obj.get('format_version')} is newer than this avslkit reads; upgrade avslkit")
    return dict(obj)


class CheckpointManager:
    """`last.pt` every epoch (and optionally every N steps), `best.pt` by a validation metric.

    Writes `checkpoints.json`: {"last": {...}, "best": {...} | null, "selection": "..."} where each
    entry has file, epoch (completed epochs), global_step and, for best, metric/value/split.
    """

    def __init__(self, run_dir: str | Path, metric: str = "loc_acc", mode: str = "max", enabled: bool = True):
        if mode not in ("max", "min"):
            raise ValueError("mode must be 'max' or 'min'")
        self.run_dir = Path(run_dir)
        self.metric = metric
        self.mode = mode
        self.enabled = enabled
        self.best: dict[str, Any] | None = None
        self.validated = False  # set by the trainer when a validation ran (the selection message says why no best.pt)
        self.last: dict[str, Any] | None = None

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete half-written files of a save that was killed (`.last.pt.*.tmp`, ...); returns them.

        `save_checkpoint` writes a temp file and renames it, so a kill mid-save leaves only such a
        file (a checkpoint can be 100+ MB); it is never read, so the next start of the run removes it.
        """
        removed = []
        for name in RUN_FILES:
            for tmp in self.run_dir.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        return removed

    def is_better(self, value: float) -> bool:
        """Strictly better than the best so far (ties keep the earlier checkpoint)."""
        if value is None or not np.isfinite(value):
            return False
        if self.best is None:
            return True
        return value > self.best["value"] if self.mode == "max" else value < self.best["value"]

    def save_last(self, payload: Mapping[str, Any], epoch: int, global_step: int, epoch_done: bool) -> None:
        self.last = {"file": self.last_path.name, "epoch": epoch, "global_step": global_step, "epoch_complete": epoch_done}
        if self.enabled:
            save_checkpoint(self.last_path, payload)
            self._write_index()

    def update_best(self, payload: Mapping[str, Any], value: float, epoch: int, global_step: int) -> bool:
        """Save `best.pt` if `value` beats the best so far; returns whether it did."""
        if not self.is_better(value):
            return False
        self.best = {
            "file": self.best_path.name,
            "epoch": epoch,
            "global_step": global_step,
            "metric": self.metric,
            "value": float(value),
            "split": "validation",
        }
        if self.enabled:
            save_checkpoint(self.best_path, payload)
            self._write_index()
        return True

    def selection(self) -> str:
        if self.best is not None:
            return f"best.pt: highest validation {self.metric}" if self.mode == "max" else f"best.pt: lowest validation {self.metric}"
        if self.validated:
            return "last.pt: last epoch (validation ran, but no epoch could choose best.pt: a method's warm-up epochs cannot)"
        return "last.pt: last epoch (no validation annotations given, so no best-by-validation checkpoint)"

    def _write_index(self) -> None:
        atomic_write_json(self.run_dir / "checkpoints.json", {"last": self.last, "best": self.best, "selection": self.selection()})

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "metric": self.metric, "mode": self.mode}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = state.get("best")


def find_run_checkpoint(path: str | Path) -> tuple[Path, str]:
    """A run dir → (best.pt if present else last.pt, why); a file → (file, 'given')."""
    p = Path(path)
    if p.is_dir():
        for name, why in (("best.pt", "best validation checkpoint"), ("last.pt", "last checkpoint (no best.pt in the run)")):
            if (p / name).is_file():
                return p / name, why
        raise AvslError(f"{p}: no best.pt or last.pt in this run directory (train with 'avslkit train METHOD --out {p}')")
    if p.is_file():
        return p, "checkpoint file given"
    raise AvslError(f"not found: {p} (pass a run directory or a checkpoint file)")
