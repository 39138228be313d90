"""An evaluated run as `avslkit viz` sees it: metrics, per-sample rows, config, and maps on demand.

`avslkit eval --out OUT.json` writes `OUT.json`, `OUT.samples.csv` and `OUT.config.yaml`.
Maps are found, in order: `OUT.maps.npz` (written by `save_eval_maps`, i.e. `eval --save-maps`),
the `--maps` file the evaluation read, or they are recomputed for just the drawn samples from the
recorded checkpoint or baseline and the test store. Frames come from the test store; boxes from the
recorded annotations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avslkit.errors import AvslError
from avslkit.utils.console import log
from avslkit.viz.select import SampleRow, read_samples_csv

METRICS_NAME = "metrics.json"


def find_metrics(path: str | Path) -> Path | None:
    """The metrics.json of an evaluation file or directory (None for a training run without one)."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise AvslError(f"not found: {p} (pass an 'avslkit eval' metrics.json, its directory, or a run directory)")
    if (p / METRICS_NAME).is_file():
        return p / METRICS_NAME
    candidates = sorted(j for j in p.glob("*.json") if j.with_suffix(".samples.csv").is_file())
    return candidates[0] if candidates else None


def saved_maps_path(metrics_path: str | Path) -> Path:
    """Where `save_eval_maps` puts the maps of an evaluation: `<out>.maps.npz`."""
    return Path(metrics_path).with_suffix(".maps.npz")


@dataclass
class EvalRun:
    """One evaluation's outputs, plus caches for what viz recomputes."""

    metrics_path: Path
    metrics: dict[str, Any]
    rows: list[SampleRow]
    config: dict[str, Any]
    _task: Any = field(default=None, repr=False)
    _ann: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """Short name for figure titles: the evaluation directory name (or file stem)."""
        stem = self.metrics_path.stem
        return self.metrics_path.parent.name if stem == "metrics" else stem

    def row(self, name: str) -> SampleRow | None:
        return next((r for r in self.rows if r.name == name), None)

    def resolve(self, key: str) -> Path | None:
        """A path recorded in the config, tried as given, then relative to the metrics file."""
        value = self.config.get(key)
        if value in (None, ""):
            return None
        p = Path(str(value))
        if p.exists() or p.is_absolute():
            return p
        other = self.metrics_path.parent / p
        return other if other.exists() else p

    # -- what viz draws ------------------------------------------------------------------------------
    def frames(self, videos: Sequence[str]) -> list[np.ndarray]:
        """RGB frames of `videos` from the recorded test store."""
        from avslkit.data.store import Store

        store = self.resolve("test")
        if store is None or not store.is_file():
            raise AvslError(f"{self.metrics_path}: drawing needs the test frames, but the evaluation recorded no test store "
                            f"({store}); re-run 'avslkit eval' with --test STORE.h5 or pass --test to viz")
        with Store(store) as s:
            missing = [v for v in videos if v not in s]
            if missing:
                raise AvslError(f"{store}: clip '{missing[0]}' is not in the test store (pass the store the evaluation used)")
            return [s.frame(s.index_of(v)) for v in videos]

    def annotations(self) -> Any:
        if self._ann is None:
            from avslkit.data.annotations import read_annotations

            path = self.resolve("annotations")
            if path is None:
                raise AvslError(f"{self.metrics_path}: no annotations recorded in the evaluation config")
            self._ann = read_annotations(path, self.config.get("ann_format") or "auto")
        return self._ann

    def boxes(self, video: str) -> np.ndarray:
        """Normalised x1, y1, x2, y2 boxes of a clip (empty for clips without annotation)."""
        ann = self.annotations()
        if video not in ann:
            return np.zeros((0, 4))
        boxes = ann[video].normalized_boxes()
        keep = np.isfinite(boxes).all(axis=1) & (np.abs(boxes) < 1e6).all(axis=1)  # VGG-SS sentinel boxes
        return np.clip(boxes[keep], 0.0, 1.0)

    def task(self, device: str = "cpu") -> Any:
        """The evaluated checkpoint, loaded once, with the evaluation's `inference` settings."""
        if self._task is None:
            from avslkit.evaluation.runner import checkpoint_inference
            from avslkit.inference import load_task_for_inference

            self._task = load_task_for_inference(str(self.resolve("checkpoint")), device, inference=checkpoint_inference(self.config))
        return self._task

    def maps(self, rows: Sequence[SampleRow], device: str = "cpu", ogl_weights: str | None = None) -> np.ndarray:
        """Absolute score maps (k, h, w) of `rows`: the saved maps, else from the evaluation's own source
        (`evaluation.runner.map_source`: its maps file, baseline or checkpoint), for just these rows."""
        from avslkit.evaluation.items import EvalItem
        from avslkit.evaluation.runner import map_source

        items = [EvalItem(r.name, r.video, r.audio, r.kind) for r in rows]
        saved = saved_maps_path(self.metrics_path)
        maps_file = saved if saved.is_file() else self.resolve("maps")
        recorded = {k: self.config.get(k) for k in ("baseline", "checkpoint")}
        if maps_file is not None and maps_file.is_file():
            recorded = {"maps": str(maps_file)}
        elif not any(recorded.values()):
            raise AvslError(f"{self.metrics_path}: cannot find the maps (no {saved.name}, no --maps file, checkpoint or "
                            "baseline recorded); re-run eval with --save-maps")
        cfg = {**self.config, "maps": None, "baseline": None, "checkpoint": None, **recorded, "skip_missing": False,
               "device": device, "batch_size": int(self.config.get("batch_size") or 32),
               "test": None if self.resolve("test") is None else str(self.resolve("test")),
               "ogl_weights": ogl_weights or self.config.get("ogl_weights")}
        task = self.task(device) if cfg.get("checkpoint") else None
        source, _, _ = map_source(cfg, items, task=task)
        return np.asarray(source(np.arange(len(items))), dtype=np.float32)


def load_eval(path: str | Path) -> EvalRun:
    """Read metrics.json, `<out>.samples.csv` and `<out>.config.yaml` of an evaluation."""
    import yaml

    metrics_path = find_metrics(path)
    if metrics_path is None:
        raise AvslError(f"{path}: no evaluation found (metrics.json with its .samples.csv); run 'avslkit eval --out {Path(path) / METRICS_NAME}' first")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AvslError(f"{metrics_path}: not a JSON metrics file ({exc})") from None
    if not isinstance(metrics, dict) or "locacc" not in metrics:
        raise AvslError(f"{metrics_path}: not an 'avslkit eval' metrics.json (no 'locacc')")
    rows = read_samples_csv(metrics_path.with_suffix(".samples.csv"))
    cfg_path = metrics_path.with_suffix(".config.yaml")
    config: dict[str, Any] = {}
    if cfg_path.is_file():
        config = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    else:
        log.warning("%s not found: frames, boxes and maps must come from options", cfg_path)
    return EvalRun(metrics_path, metrics, rows, config)


def save_eval_maps(metrics_path: str | Path, out: str | Path | None = None, device: str = "cpu",
                   batch_size: int = 64) -> Path:
    """Write every evaluated sample's absolute map to `<out>.maps.npz` (names, maps) so `avslkit viz`
    can draw any sample without the model. The maps come from the evaluation's own source."""
    from avslkit.evaluation.runner import save_maps_npz

    run = load_eval(metrics_path)
    target = Path(out) if out is not None else saved_maps_path(run.metrics_path)
    save_maps_npz(target, [r.name for r in run.rows], lambda sel: run.maps([run.rows[i] for i in sel], device), batch_size)
    return target
