"""The one inference path: checkpoint → task (+ OGL) → maps, for eval, viz, localize and demo.

* `load_task_for_inference("runs/slavc")` picks `best.pt` (best validation checkpoint) or else
  `last.pt`, says which, rebuilds the task from the config saved in the checkpoint and returns it in
  eval mode. Official EZ-VSL/SLAVC checkpoint files (not avslkit's format) load too when `method` is
  given (or guessed from the keys).
* `InputEncoder` turns stored clips (JPEG frame bytes + int16 audio window) into the model's input
  tensors with the run's `data` settings (frame decoder, float rule, int16 scale) — the same for a
  test store (`predict_maps`, what `avslkit eval` and `avslkit viz` score) and for a single file
  (`avslkit localize`, `avslkit demo`, which first cut the file as preprocessing would).
* `Localizer` adds the OGL prior and the fusion: the rule is the method's own (`METHOD_FUSION`,
  else `DEFAULT_FUSION`) and τ is the run's `model.tau`, so every front end fuses the same way.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from avslkit.engine.checkpoint import CHECKPOINT_FORMAT, find_run_checkpoint, load_checkpoint
from avslkit.engine.distributed import DistContext, resolve_device
from avslkit.config import ConfigError
from avslkit.config_spec import train_config
from avslkit.errors import AvslError
from avslkit.methods import Task, build_task
from avslkit.metrics.maps import EVAL_SIZE, confidence, upsample_maps
from avslkit.utils.console import log

#: Fusion rule of each training method (the rule its paper uses); other methods get DEFAULT_FUSION.
METHOD_FUSION: dict[str, str] = {"slavc": "slavc", "ezvsl": "ezvsl"}
DEFAULT_FUSION = "slavc"
#: Names of the three maps of a `MapSet`, in the order they are drawn.
MAP_KINDS = ("av", "ogl", "fused")


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
        config = train_config(cfg)
        applies = True
        if key == "use_momentum_eval":
            applies = config.model.use_momentum_eval is not None  # None: the method has no momentum encoders
        elif key == "spectrogram_backend":
            applies = config.audio.feature == "spectrogram"
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


class InputEncoder:
    """Stored clip → model input, with a run's `data` settings: the JPEG frame decoded by `data.decoder`,
    the evaluation view at `image_size` (`data.float_rule`), int16 audio divided by `data.int16_scale`.
    The same object serves test stores and single files, so both give the same tensors."""

    def __init__(self, cfg: Mapping[str, Any]):
        from avslkit.data.dataset import FRAME_DECODERS, INT16_SCALES, dataset_options
        from avslkit.data.transforms import build_image_transform

        opts = dataset_options(cfg.get("data") or {})
        if opts["decoder"] not in FRAME_DECODERS:
            raise ConfigError(f"data.decoder: unknown frame decoder '{opts['decoder']}' (choose {', '.join(FRAME_DECODERS)})")
        if opts["int16_scale"] not in INT16_SCALES:
            raise ConfigError(f"data.int16_scale: must be one of {', '.join(str(int(v)) for v in INT16_SCALES)}")
        self.image_size = int(cfg["image_size"])
        self.decode = FRAME_DECODERS[opts["decoder"]]
        self.transform = build_image_transform("test", image_size=self.image_size, **opts["transform_opts"])
        self.int16_scale = float(opts["int16_scale"])

    def image(self, jpeg: bytes) -> torch.Tensor:
        return self.transform({"image": self.decode(jpeg)})["image"]

    def audio(self, samples: np.ndarray) -> torch.Tensor:
        from avslkit.data.dataset import int16_to_float

        return torch.from_numpy(int16_to_float(np.asarray(samples, dtype=np.int16), self.int16_scale))

    def batch(self, jpegs: Sequence[bytes], audio: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(jpegs) != len(audio):
            raise AvslError(f"{len(jpegs)} frames but {len(audio)} audio windows")
        return torch.stack([self.image(j) for j in jpegs]), torch.stack([self.audio(a) for a in audio])


class _PairDataset(Dataset):
    """Frame of `video` with audio of `audio`, for each (video, audio) pair, from one store."""

    def __init__(self, store: str | Path, pairs: Sequence[Any], inputs: InputEncoder):
        from avslkit.data.store import Store

        self.pairs = [(p.video, p.audio) if hasattr(p, "video") else tuple(p) for p in pairs]
        self.store, self.inputs = Store(store), inputs
        missing = sorted({c for pair in self.pairs for c in pair if c not in self.store})
        if missing:
            raise AvslError(f"{store}: clip '{missing[0]}' requested but not in the store (check the id list, or "
                            "preprocess those videos into the store)")
        self.row = {cid: k for k, cid in enumerate(self.store.ids)}
        self.store.close()  # never hand an open HDF5 handle to forked workers

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, k: int) -> dict[str, Any]:
        video, audio = self.pairs[k]
        return {"image": self.inputs.image(self.store.frame_bytes(self.row[video])),
                "audio": self.inputs.audio(self.store.audio_int16(self.row[audio]))}


def predict_maps(ckpt: str | Path | Task, store: str | Path, pairs: Sequence[Any], device: str = "cpu",
                 batch_size: int = 32, workers: int = 0, method: str | None = None,
                 inference: Mapping[str, Any] | None = None) -> np.ndarray:
    """Absolute score maps (N, h, w) for (video, audio) pairs (EvalItem-like or tuples) of `store`.

    The frames and audio are read with the task's `data` settings (decoder, float rule, int16 scale).
    """
    task = ckpt if isinstance(ckpt, Task) else load_task_for_inference(ckpt, device, method, inference=inference)
    from avslkit.data.store import Store

    sr = Store(store).sample_rate
    trained_sr = int(task.cfg["audio"]["sample_rate"] or sr)
    if sr != trained_sr:
        raise AvslError(f"{store}: audio is {sr} Hz but the model was trained on {trained_sr} Hz audio; preprocess the test videos with --sample-rate {trained_sr}")
    data = _PairDataset(store, pairs, InputEncoder(task.cfg))
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers, generator=torch.Generator().manual_seed(0))
    out = []
    for batch in loader:
        out.append(task.localization_maps(batch["image"], batch["audio"]).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0, 0), dtype=np.float32)


# -- AV + OGL + fusion ---------------------------------------------------------------------------------
def fusion_rule(cfg: Mapping[str, Any]) -> str:
    """The fusion rule of a run: its method's own (`METHOD_FUSION`), else `DEFAULT_FUSION`."""
    return METHOD_FUSION.get(str(cfg.get("method") or ""), DEFAULT_FUSION)


def run_tau(cfg: Mapping[str, Any]) -> float:
    """τ of a run (`model.tau`): the AV maps are cos/τ, and the SLAVC rule maps them back to [0, 1]."""
    try:
        return float(cfg["model"]["tau"])
    except (KeyError, TypeError):
        raise ConfigError("model.tau is missing from the run's config (every method config sets it; re-save the "
                          "checkpoint with a config that has model.tau)") from None


def load_ogl(weights: str | Path | None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """OGL network: ImageNet weights from a local state dict (or 'imagenet'); without weights a randomly
    initialised ResNet-18 (the same one on every start, seed 0) with a warning."""
    from avslkit.models.ogl import build_ogl

    if weights in (None, "", "none"):
        log.warning("no --ogl-weights: the OGL map comes from a RANDOMLY initialised ResNet-18 and is not an objectness "
                    "prior; pass an ImageNet ResNet-18 state dict (see 'avslkit weights')")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return build_ogl("none").to(device)
    if weights != "imagenet" and not Path(weights).is_file():
        raise AvslError(f"OGL weights not found: {weights} (pass a local ImageNet ResNet-18 state dict)")
    return build_ogl(weights).to(device)


@dataclass
class MapSet:
    """The maps of one (frame, audio) pair on the size×size grid: `av` absolute scores, `ogl` as the fusion
    sees it (OGL/2.5 under the SLAVC rule), `fused`, and the confidences (mean of the top 25%)."""

    av: np.ndarray
    ogl: np.ndarray
    fused: np.ndarray
    confidence: float  # of the fused map
    av_confidence: float  # of the AV map: what `avslkit eval` records for the same clip

    def get(self, kind: str) -> np.ndarray:
        if kind not in MAP_KINDS:
            raise AvslError(f"unknown map '{kind}' (choose {', '.join(MAP_KINDS)})")
        return getattr(self, kind)


class Localizer:
    """A task (AV maps) + OGL network + the run's fusion rule and τ → `MapSet`s for stored clips.

    `maps(frames, audio)` takes frames as stored (JPEG bytes; or RGB arrays / PIL images, encoded as
    preprocessing would) and int16 audio windows, so a clip gives the maps `avslkit eval` scores.
    `rule` None = the run's own (`fusion_rule`); `alpha` None = the rule's default.
    """

    def __init__(self, task: Any, ogl: torch.nn.Module, rule: str | None = None, alpha: float | None = None,
                 size: int = EVAL_SIZE):
        from avslkit.data.video import ClipOptions
        from avslkit.models.ogl import FUSIONS, OGL_UPPER_BOUND

        rule = rule or fusion_rule(task.cfg)
        if rule not in FUSIONS:
            raise AvslError(f"unknown fusion rule '{rule}' (choose {', '.join(FUSIONS)})")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise AvslError(f"--alpha {alpha}: must be in [0, 1]")
        self.task, self.ogl, self.rule, self.size = task, ogl.eval(), rule, int(size)
        self.alpha = FUSIONS[rule].default_alpha if alpha is None else float(alpha)
        self.tau = run_tau(task.cfg)
        self.ogl_scale = 1.0 / OGL_UPPER_BOUND if rule == "slavc" else 1.0
        self.inputs = InputEncoder(task.cfg)
        self.sample_rate = int(task.cfg["audio"]["sample_rate"] or 16000)
        self.clip_options = ClipOptions(sample_rate=self.sample_rate)  # how a non-stored image is turned into a frame
        self.device = next(ogl.parameters()).device
        self._ogl_transform = None

    @classmethod
    def from_checkpoint(cls, ckpt: str | Path, device: str = "cpu", *, ogl_weights: str | Path | None = None,
                        rule: str | None = None, alpha: float | None = None, size: int = EVAL_SIZE,
                        inference: Mapping[str, Any] | None = None) -> "Localizer":
        """Load a run (best.pt, else last.pt) or checkpoint file and the OGL prior on `device`."""
        dev = resolve_device(str(device))
        return cls(load_task_for_inference(ckpt, dev, inference=inference), load_ogl(ogl_weights, dev), rule, alpha, size)

    def _jpeg(self, frame: Any) -> bytes:
        from avslkit.data.video import frame_jpeg

        return frame if isinstance(frame, (bytes, bytearray)) else frame_jpeg(frame, self.clip_options)

    def _ogl_view(self, jpegs: Sequence[bytes]) -> torch.Tensor:
        from avslkit.data.transforms import build_image_transform

        if self._ogl_transform is None:  # OGL is an ImageNet ResNet-18: 224 input → 7×7 map
            self._ogl_transform = build_image_transform("test", image_size=EVAL_SIZE)
        return torch.stack([self._ogl_transform({"image": self.inputs.decode(j)})["image"] for j in jpegs])

    @torch.no_grad()
    def maps(self, frames: Sequence[Any], audio: Sequence[np.ndarray]) -> list[MapSet]:
        """Frames (JPEG bytes, RGB uint8 arrays or PIL images) and int16 audio windows → one MapSet per pair."""
        jpegs = [self._jpeg(f) for f in frames]
        images, waves = self.inputs.batch(jpegs, audio)
        av = self.task.localization_maps(images, waves)
        ogl_raw = self.ogl(self._ogl_view(jpegs).to(self.device))
        av_g = upsample_maps(av.float().cpu(), self.size)
        ogl_g = upsample_maps(ogl_raw.float().cpu(), self.size)
        fused = self.fuse(av_g, ogl_g, self.alpha)
        conf, av_conf = confidence(fused), confidence(av_g)
        return [MapSet(av_g[i], ogl_g[i] * self.ogl_scale, fused[i], float(conf[i]), float(av_conf[i]))
                for i in range(len(jpegs))]

    def fuse(self, av: np.ndarray, ogl_raw: np.ndarray, alpha: float) -> np.ndarray:
        """Fused maps (N, s, s) of absolute AV maps and raw OGL maps at weight `alpha` on AV."""
        from avslkit.models.ogl import fuse

        return np.asarray(fuse(self._as_cosine_scores(av), ogl_raw, self.rule, float(alpha), self.tau), dtype=np.float32)

    def refuse(self, maps: MapSet, alpha: float) -> np.ndarray:
        """The fused map of an already computed MapSet at another α (no network call)."""
        return self.fuse(maps.av[None], (maps.ogl / self.ogl_scale)[None], alpha)[0]

    def _as_cosine_scores(self, av: np.ndarray) -> np.ndarray:
        """AV maps rescaled so that their known range `task.score_bounds` maps onto [−1/τ, 1/τ], the range the
        SLAVC rule's (S·τ + 1)/2 expects; EZ-VSL/SLAVC maps (cos/τ) are unchanged. (The EZ-VSL rule
        min-max normalises, so this affine rescaling does not change it.)"""
        bounds = getattr(self.task, "score_bounds", None)
        if not bounds:
            return av
        lo, hi = float(bounds[0]), float(bounds[1])
        if (lo, hi) == (-1.0 / self.tau, 1.0 / self.tau):
            return av
        return ((2.0 * (av - lo) / (hi - lo) - 1.0) / self.tau).astype(np.float32)
