"""Rebuild a trained task for inference from a run directory or a checkpoint file.

`load_task_for_inference("runs/slavc")` picks `best.pt` (best validation checkpoint) or else
`last.pt`, says which, rebuilds the task from the config saved in the checkpoint and returns it in
eval mode; evaluation then calls `task.localization_maps(images, audio)`. Official EZ-VSL/SLAVC
checkpoint files (not avslkit's format) load too when `method` is given (or guessed from the keys).
`predict_maps` is the seam `avslkit eval` uses for checkpoints.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from avslkit.engine.checkpoint import CHECKPOINT_FORMAT, find_run_checkpoint, load_checkpoint
from avslkit.engine.distributed import DistContext, resolve_device
from avslkit.errors import AvslError
from avslkit.methods.base import Task, build_task
from avslkit.utils.console import log


def _inference_config(cfg: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The training config, made safe to rebuild anywhere: no pretrained-weight downloads
    (the checkpoint holds every weight), no AMP/channels_last outside CUDA."""
    cfg = copy.deepcopy(dict(cfg))
    model = cfg.setdefault("model", {})
    if "visual_weights" in model:
        model["visual_weights"] = "none"
    if "audio_weights" in model:
        model["audio_weights"] = None
    for unit in (cfg.get("units") or {}).values():  # DMT/XPL units may name their own weight files
        if isinstance(unit, dict):
            for key, value in (("visual_weights", "none"), ("audio_weights", None)):
                if key in unit:
                    unit[key] = value
    if device.type != "cuda":
        cfg["amp"] = "none"
        cfg["channels_last"] = False
    return cfg


#: Keys of the eval config's `inference` section and where each lives in a task config.
INFERENCE_KEYS: dict[str, tuple[str, ...]] = {
    "use_momentum_eval": ("model", "use_momentum_eval"),
    "decoder": ("data", "decoder"),
    "float_rule": ("data", "float_rule"),
    "int16_scale": ("data", "int16_scale"),
    "spectrogram_backend": ("audio", "options", "backend"),
}


def apply_inference_settings(cfg: Mapping[str, Any], inference: Mapping[str, Any] | None) -> dict[str, Any]:
    """`cfg` with the eval `inference` settings (null = keep) written in; settings the task has no place
    for (use_momentum_eval without momentum encoders, a spectrogram backend for another audio feature)
    are skipped with a log line."""
    cfg = copy.deepcopy(dict(cfg))
    for key, value in (inference or {}).items():
        if value is None:
            continue
        if key not in INFERENCE_KEYS:
            raise AvslError(f"unknown inference setting '{key}' (known: {', '.join(INFERENCE_KEYS)})")
        path = INFERENCE_KEYS[key]
        applies = {
            "use_momentum_eval": "use_momentum_eval" in (cfg.get("model") or {}),
            "spectrogram_backend": (cfg.get("audio") or {}).get("feature", "spectrogram") == "spectrogram",
        }.get(key, True)
        if not applies:
            log.info("inference.%s=%s does not apply to a '%s' checkpoint; ignored", key, value, cfg.get("method"))
            continue
        node = cfg
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return cfg


def _is_avslkit_checkpoint(path: Path) -> bool:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - unreadable here means "not ours"; the official loader reports it
        return False
    return isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT


def _guess_official_method(path: Path) -> str:
    from avslkit.models.weights import read_state_dict

    keys = read_state_dict(path).keys()
    if any(k.startswith("momentum_") or k.startswith("img_proj1.") for k in keys):
        return "slavc"
    if any(k.startswith("img_proj.") for k in keys):
        return "ezvsl"
    raise AvslError(f"{path}: neither an avslkit checkpoint nor an official EZ-VSL/SLAVC one (pass method=...)")


#: The packaged preset that reproduces each official repository's test.py (avslkit/configs/presets/).
OFFICIAL_PRESETS: dict[str, str] = {"slavc": "slavc-test", "ezvsl": "ezvsl-test"}


def official_checkpoint_method(path: str | Path) -> str | None:
    """'slavc' or 'ezvsl' when `path` (a checkpoint file or run directory) holds an official checkpoint
    of that repository; None for avslkit checkpoints and for anything unreadable (loading reports it)."""
    try:
        ckpt_path, _ = find_run_checkpoint(path)
        if _is_avslkit_checkpoint(ckpt_path):
            return None
        return _guess_official_method(ckpt_path)
    except AvslError:
        return None


def load_official_task(path: str | Path, method: str | None = None, device: str | torch.device = "cpu",
                       sample_rate: int = 16000, overrides: Mapping[str, Any] | None = None,
                       inference: Mapping[str, Any] | None = None) -> Task:
    """An official EZ-VSL/SLAVC checkpoint as a Task (packaged defaults + `overrides` for options,
    then the eval `inference` settings)."""
    from avslkit.config import load_config, merge
    from avslkit.models.official import map_official_state_dict
    from avslkit.models.weights import load_into, read_state_dict

    path = Path(path)
    method = method or _guess_official_method(path)
    dev = resolve_device(str(device))
    cfg = load_config(["train", f"methods/{method}"])
    cfg["audio"]["sample_rate"] = int(sample_rate)
    if overrides:
        cfg = merge(cfg, overrides)
    cfg = apply_inference_settings(cfg, inference)
    task = build_task(_inference_config(cfg, dev), DistContext(device=dev))
    load_into(task.model, map_official_state_dict(read_state_dict(path), method), str(path))
    task.checkpoint_info = {"path": str(path), "why": f"official {method} checkpoint", "epoch": None}
    return task.eval()


def load_task_for_inference(path: str | Path, device: str | torch.device = "cpu", method: str | None = None,
                            official_overrides: Mapping[str, Any] | None = None,
                            inference: Mapping[str, Any] | None = None) -> Task:
    """A run directory (best.pt, else last.pt) or checkpoint file → the task, in eval mode, on `device`.

    `task.checkpoint_info` records the file used, why it was chosen and its epoch. A file that is not
    an avslkit checkpoint is read as an official EZ-VSL/SLAVC checkpoint (`method` names which, or
    it is guessed from the keys; `official_overrides` sets config values such as model options).
    `inference` (the eval config's `inference` section) overrides how maps are computed for either kind.
    """
    ckpt_path, why = find_run_checkpoint(path)
    if not _is_avslkit_checkpoint(ckpt_path):
        return load_official_task(ckpt_path, method, device, overrides=official_overrides, inference=inference)
    ckpt = load_checkpoint(ckpt_path)
    dev = resolve_device(str(device))
    if method is not None and ckpt.get("method") != method:
        raise AvslError(f"{ckpt_path}: a '{ckpt.get('method')}' checkpoint, but method '{method}' was asked for")
    task = build_task(_inference_config(apply_inference_settings(ckpt["config"], inference), dev), DistContext(device=dev))
    task.load_state_dict(ckpt["task"], weights_only=True)
    epoch = ckpt.get("trainer", {}).get("epoch")
    task.checkpoint_info = {"path": str(ckpt_path), "why": why, "epoch": epoch, "global_step": ckpt.get("trainer", {}).get("global_step")}
    log.info("loaded %s (%s, %s epochs completed)", ckpt_path, why, epoch)
    return task.eval()


class _PairDataset(Dataset):
    """Frame of `video` with audio of `audio`, for each (video, audio) pair, from one store."""

    def __init__(self, store: str | Path, pairs: Sequence[Any], image_size: int, data: Mapping[str, Any] | None = None):
        from avslkit.data.dataset import AVDataset, dataset_options

        self.pairs = [(p.video, p.audio) if hasattr(p, "video") else tuple(p) for p in pairs]
        needed = sorted({c for pair in self.pairs for c in pair})
        self.data = AVDataset(store, ids=needed, image_transform="test", image_size=image_size, **dataset_options(data or {}))
        self.row = {cid: k for k, cid in enumerate(self.data.ids)}

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict[str, Any]:
        video, audio = self.pairs[k]
        return {"image": self.data[self.row[video]]["image"], "audio": self.data[self.row[audio]]["audio"]}


def predict_maps(ckpt: str | Path | Task, store: str | Path, pairs: Sequence[Any], device: str = "cpu",
                 batch_size: int = 32, workers: int = 0, method: str | None = None,
                 inference: Mapping[str, Any] | None = None) -> np.ndarray:
    """Absolute score maps (N, h, w) for (video, audio) pairs (EvalItem-like or tuples) of `store`.

    The frames and audio are read with the task's `data` settings (decoder, float rule, int16 scale).
    """
    task = ckpt if isinstance(ckpt, Task) else load_task_for_inference(ckpt, device, method, inference=inference)
    from avslkit.data.store import Store

    sr = Store(store).sample_rate
    trained_sr = int(task.cfg.get("audio", {}).get("sample_rate") or sr)
    if sr != trained_sr:
        raise AvslError(f"{store}: audio is {sr} Hz but the model was trained on {trained_sr} Hz audio; preprocess the test videos with --sample-rate {trained_sr}")
    data = _PairDataset(store, pairs, int(task.cfg.get("image_size", 224)), task.cfg.get("data"))
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers, generator=torch.Generator().manual_seed(0))
    out = []
    for batch in loader:
        out.append(task.localization_maps(batch["image"], batch["audio"]).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0, 0), dtype=np.float32)
