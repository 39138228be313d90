"""Helpers of the training tests: tiny registered backbones, a tiny store, tiny configs.

The engine tests exercise the loop, checkpoints and DDP, not ResNet-18: the same methods run
with a tiny visual net (B×16×h×w, BatchNorm) and a tiny audio net (global max pool → B×16) so a
step costs milliseconds on a shared 2-core machine. Imported by the tests and by the torchrun
worker script of the DDP test (the registry entries are created once per process).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch import nn

from avslkit.config import load_config
from avslkit.data.store import ClipRecord, StoreAttrs, write_store
from avslkit.models.registry import _REGISTRY, register_model

SAMPLE_RATE = 16000


class TinyVisual(nn.Module):
    out_channels = 16

    def __init__(self, weights: Any = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4, padding=2), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=4, padding=1))
        self.pretrained = False

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class TinyAudio(nn.Module):
    out_dim = 16

    def __init__(self, weights: Any = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 5, stride=4, padding=2), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.pretrained = False

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.pool(self.net(spec)).flatten(1)


if "visual.tiny_test" not in _REGISTRY:
    register_model("visual.tiny_test")(TinyVisual)
    register_model("audio.tiny_test")(TinyAudio)


def make_store(path: Path, n: int = 8, size: int = 72, seconds: float = 0.5, seed: int = 0, prefix: str = "clip") -> Path:
    """A store of `n` random JPEG frames with noise audio (16 kHz)."""
    rng = np.random.default_rng(seed)
    samples = int(SAMPLE_RATE * seconds)
    records = []
    for i in range(n):
        img = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        buf = io.BytesIO()
        PIL.Image.fromarray(img).save(buf, format="JPEG")
        audio = (rng.standard_normal(samples) * 3000).clip(-32768, 32767).astype(np.int16)
        records.append(ClipRecord(f"{prefix}{i:03d}", "synthetic", 1.0, 2.0, buf.getvalue(), size, size, audio, SAMPLE_RATE, "noise"))
    write_store(path, records, StoreAttrs(sample_rate=SAMPLE_RATE, audio_samples=samples))
    return path


def write_vggss_annotations(path: Path, ids: list[str], seed: int = 0) -> Path:
    """A vggss.json-format file with one random box per clip."""
    rng = np.random.default_rng(seed)
    items = []
    for cid in ids:
        x1, y1 = rng.uniform(0, 0.5, 2)
        items.append({"file": cid, "class": "noise", "bbox": [[float(x1), float(y1), float(x1 + 0.4), float(y1 + 0.4)]]})
    path.write_text(json.dumps(items))
    return path


TINY_MODEL = ["model.visual=tiny_test", "model.audio=tiny_test", "model.visual_weights=none", "model.dim=8"]


def tiny_train_args(store: Path, out: Path, *more: str) -> list[str]:
    """`avslkit train slavc` arguments of a tiny CPU run on `store` into `out` (for CliRunner)."""
    sets = [x for item in TINY_MODEL for x in ("--set", item)]
    return ["--quiet", "train", "slavc", "--data", str(store), "--out", str(out), "--device", "cpu", "--workers", "0",
            "--image-size", "64", "--batch-size", "4", *sets, *more]


def tiny_config(method: str, train: Path, *overrides: str, **extra: Any) -> dict[str, Any]:
    """Resolved config of a tiny CPU run of `method` on `train`."""
    base = [*TINY_MODEL, "image_size=64", "batch_size=4", "workers=0", "epochs=1", "device=cpu", f"data.train={train}"]
    cfg = load_config(["train", f"methods/{method}"], overrides=[*base, *overrides], extra=extra or None)
    cfg["method"] = method
    return cfg


def engine_step(task: Any, batch: dict, epoch: int | None = None) -> dict[str, float]:
    """One optimisation step of `task` as the Trainer runs it (one `OptimizationStep` per task, kept
    on it so that optimiser moments and the step counter carry over between calls)."""
    from avslkit.engine.step import OptimizationStep

    step = getattr(task, "_test_engine_step", None)
    if step is None:
        step = task._test_engine_step = OptimizationStep(task, task.cfg)
    return step(batch, getattr(task, "current_epoch", 0) if epoch is None else epoch)


def start_epoch(task: Any, epoch: int, run_dir: Path | None = None) -> None:
    """`task.on_epoch_start` with the values the Trainer passes (one epoch = one pass over the first stream)."""
    step = getattr(task, "_test_engine_step", None)
    first = next(iter(task.train_datasets().values()))
    per_epoch = max(1, len(first) // max(1, int(task.cfg.get("batch_size", 1))))
    task.on_epoch_start(epoch, step=0 if step is None else step.global_step, steps_per_epoch=per_epoch,
                        total_steps=per_epoch * int(task.cfg.get("epochs", 1)), run_dir=run_dir)
