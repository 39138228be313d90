"""Localise sounds on any image + audio or video: the AV map, the OGL map and their fusion.

`Localizer` wraps a trained task and a frozen OGL network. For each (frame, audio window) pair it
returns the three absolute maps on the 224×224 evaluation grid (bicubic, align_corners=True) and
the confidence of the fused map (mean of its top 25%, the extended protocol's rule). Fusion follows
`avslkit.models.ogl.fuse`: ``slavc`` (absolute bounds, α = 0.9) or ``ezvsl`` (min-max, α = 0.4);
under ``ezvsl`` the fused map is min-max normalised, so its confidence only ranks windows of one
image. `localize_video` slides the audio window along a clip and renders a heatmap video with the
original audio track (bundled ffmpeg from imageio-ffmpeg).
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from avslkit.errors import AvslError
from avslkit.metrics.maps import EVAL_SIZE, confidence
from avslkit.utils.console import log
from avslkit.viz.overlay import caption_for, heatmap_overlay, resize_image, save_png

#: Names of the three maps, in the order they are drawn.
MAP_KINDS = ("av", "ogl", "fused")
MAP_TITLES = {"av": "AV", "ogl": "OGL", "fused": "fused"}
DEFAULT_AUDIO_SECONDS = 3.0


@dataclass
class MapSet:
    """The three absolute maps of one (frame, audio) pair on the size×size grid."""

    av: np.ndarray
    ogl: np.ndarray
    fused: np.ndarray
    confidence: float  # of the fused map
    av_confidence: float

    def get(self, kind: str) -> np.ndarray:
        if kind not in MAP_KINDS:
            raise AvslError(f"unknown map '{kind}' (choose {', '.join(MAP_KINDS)})")
        return getattr(self, kind)


def load_ogl(weights: str | Path | None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """OGL network: ImageNet weights from a local state dict (or 'imagenet'); random with a warning."""
    from avslkit.models.ogl import build_ogl

    if weights in (None, "", "none"):
        log.warning("no --ogl-weights: the OGL map comes from a RANDOMLY initialised ResNet-18 and is not an objectness "
                    "prior; pass an ImageNet ResNet-18 state dict (see 'avslkit weights')")
        weights = "none"
    elif weights != "imagenet" and not Path(weights).is_file():
        raise AvslError(f"OGL weights not found: {weights} (pass a local ImageNet ResNet-18 state dict)")
    return build_ogl(weights).to(device)


def _batch(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    from torchvision import tv_tensors

    from avslkit.data.transforms import eval_transform

    tf = eval_transform(image_size=size)
    return torch.stack([tf(tv_tensors.Image(torch.from_numpy(np.array(im, dtype=np.uint8, copy=True)).permute(2, 0, 1)))
                        .as_subclass(torch.Tensor) for im in images])


class Localizer:
    """A task (AV maps) + OGL network + fusion rule → `MapSet`s for image/audio pairs."""

    def __init__(self, task: Any, ogl: torch.nn.Module, rule: str = "slavc", alpha: float | None = None,
                 size: int = EVAL_SIZE):
        from avslkit.models.ogl import FUSIONS, OGL_UPPER_BOUND

        if rule not in FUSIONS:
            raise AvslError(f"unknown fusion rule '{rule}' (choose {', '.join(FUSIONS)})")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise AvslError(f"--alpha {alpha}: must be in [0, 1]")
        self.task, self.ogl, self.rule, self.size = task, ogl, rule, size
        self.alpha = FUSIONS[rule].default_alpha if alpha is None else float(alpha)
        self.tau = float(getattr(task, "tau", 0.03))
        self.ogl_scale = 1.0 / OGL_UPPER_BOUND if rule == "slavc" else 1.0
        self.image_size = int(task.cfg.get("image_size", EVAL_SIZE))
        self.sample_rate = int(task.cfg.get("audio", {}).get("sample_rate") or 16000)
        self.device = next(ogl.parameters()).device

    @torch.no_grad()
    def maps(self, images: Sequence[np.ndarray], audio: np.ndarray) -> list[MapSet]:
        """RGB uint8 frames (any size) and float waveforms (B×L in [-1, 1]) → one MapSet per pair."""
        from avslkit.metrics.maps import upsample_maps
        from avslkit.models.ogl import fuse

        if len(images) != len(audio):
            raise AvslError(f"{len(images)} images but {len(audio)} audio windows")
        av = self.task.localization_maps(_batch(images, self.image_size), torch.as_tensor(np.asarray(audio, np.float32)))
        ogl_raw = self.ogl(_batch(images, EVAL_SIZE).to(self.device))
        # SLAVC's rule expects OGL/2.5 and fuse_slavc divides again: hand it the raw map.
        av_g = upsample_maps(av.float().cpu(), self.size)
        ogl_g = upsample_maps(ogl_raw.float().cpu(), self.size)
        fused = np.asarray(fuse(self._as_cosine_scores(av_g), ogl_g, self.rule, self.alpha, self.tau), dtype=np.float32)
        conf, av_conf = confidence(fused), confidence(av_g)
        return [MapSet(av_g[i], ogl_g[i] * self.ogl_scale, fused[i], float(conf[i]), float(av_conf[i]))
                for i in range(len(images))]

    def _as_cosine_scores(self, av: np.ndarray) -> np.ndarray:
        """AV maps rescaled so that their known range `task.score_bounds` maps onto [−1/τ, 1/τ], the range the
        SLAVC rule's (S·τ + 1)/2 expects; EZ-VSL/SLAVC maps (cos/τ) are unchanged."""
        bounds = getattr(self.task, "score_bounds", None)
        if not bounds:
            return av
        lo, hi = float(bounds[0]), float(bounds[1])
        return ((2.0 * (av - lo) / (hi - lo) - 1.0) / self.tau).astype(np.float32)

    def refuse(self, maps: MapSet, alpha: float) -> np.ndarray:
        """The fused map of an already computed MapSet at another α (no network call)."""
        from avslkit.models.ogl import fuse

        raw_ogl = maps.ogl / self.ogl_scale
        av = self._as_cosine_scores(maps.av[None])
        return np.asarray(fuse(av, raw_ogl[None], self.rule, float(alpha), self.tau), dtype=np.float32)[0]


# -- decoding -------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise AvslError(f"image not found: {p}")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise AvslError(f"{p}: cannot read as an image ({exc}); pass a JPEG/PNG") from None


def decode_audio(path: str | Path, sample_rate: int) -> tuple[np.ndarray, float]:
    """The whole audio track of a file (wav, mp3, mp4, ...) as mono int16 at `sample_rate`, and the
    time (s) of its first sample, decoded with PyAV."""
    import av

    p = Path(path)
    if not p.is_file():
        raise AvslError(f"audio not found: {p}")
    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AvslError(f"{p}: no audio stream (pass a file with sound)")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=int(sample_rate))
            chunks, first = [], None
            for frame in container.decode(stream):
                if first is None and frame.time is not None:
                    first = float(frame.time)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise AvslError(f"{p}: cannot decode audio ({exc})") from None
    if not chunks:
        raise AvslError(f"{p}: the audio stream is empty")
    return np.concatenate(chunks).astype(np.int16), max(first or 0.0, 0.0)


def decode_frames(path: str | Path, times: Sequence[float]) -> list[np.ndarray]:
    """RGB frames of a video at `times` (first frame stamped ≥ t; the last frame past the end)."""
    import av

    p = Path(path)
    if not p.is_file():
        raise AvslError(f"video not found: {p}")
    wanted = sorted(range(len(times)), key=lambda i: times[i])
    out: list[np.ndarray | None] = [None] * len(times)
    k, last = 0, None
    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise AvslError(f"{p}: no video stream")
            for frame in container.decode(container.streams.video[0]):
                last = frame
                t = float(frame.time or 0.0)
                while k < len(wanted) and t + 1e-4 >= times[wanted[k]]:
                    out[wanted[k]] = frame.to_ndarray(format="rgb24")
                    k += 1
                if k == len(wanted):
                    break
    except av.FFmpegError as exc:
        raise AvslError(f"{p}: cannot decode video ({exc})") from None
    if last is None:
        raise AvslError(f"{p}: no decodable video frame")
    tail = last.to_ndarray(format="rgb24")
    return [f if f is not None else tail for f in out]


def video_duration(path: str | Path) -> float:
    """Duration of a video in seconds (container, else video stream)."""
    import av

    if not Path(path).is_file():
        raise AvslError(f"video not found: {path}")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise AvslError(f"{path}: no video stream (pass a video file to --video)")
            if container.duration:
                return container.duration / 1_000_000
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    except av.FFmpegError as exc:
        raise AvslError(f"{path}: cannot decode video ({exc}); pass a readable video file") from None
    raise AvslError(f"{path}: unknown duration; pass --time")


def audio_windows(samples: np.ndarray, first_time: float, times: Sequence[float], sample_rate: int,
                  seconds: float = DEFAULT_AUDIO_SECONDS) -> np.ndarray:
    """Float32 windows (len(times)×L) of `seconds` centred on each time (published convention)."""
    from avslkit.data.video import ClipOptions, cut_window

    opts = ClipOptions(sample_rate=sample_rate, audio_seconds=seconds).validate()
    return np.stack([cut_window(samples, first_time, t, opts).astype(np.float32) / 32768.0 for t in times])


# -- outputs --------------------------------------------------------------------------------------------
def overlays(image: np.ndarray, maps: MapSet, size: int = EVAL_SIZE) -> dict[str, np.ndarray]:
    """The three overlays of one pair, each captioned with its name (and the fused confidence)."""
    out = {}
    for kind in MAP_KINDS:
        conf = maps.confidence if kind == "fused" else (maps.av_confidence if kind == "av" else None)
        out[kind] = _captioned(heatmap_overlay(image, maps.get(kind), size), caption_for(confidence=conf, title=MAP_TITLES[kind]))
    return out


def _captioned(img: np.ndarray, text: str) -> np.ndarray:
    from avslkit.viz.overlay import Annotated, annotate

    return annotate(img, Annotated(caption=text))


def write_overlays(image: np.ndarray, maps: MapSet, out_dir: str | Path, stem: str = "localize",
                   size: int = EVAL_SIZE) -> dict[str, Path]:
    """`<stem>_input.png`, `<stem>_av.png`, `<stem>_ogl.png`, `<stem>_fused.png` in `out_dir`."""
    out_dir = Path(out_dir)
    paths = {"input": save_png(resize_image(image, size), out_dir / f"{stem}_input.png")}
    for kind, img in overlays(image, maps, size).items():
        paths[kind] = save_png(img, out_dir / f"{stem}_{kind}.png")
    return paths


def write_alpha_sweep(localizer: Localizer, image: np.ndarray, maps: MapSet, alphas: Sequence[float],
                      path: str | Path, size: int = EVAL_SIZE) -> Path:
    """One strip of fused overlays at several α (the IPOL analysis' Fig. 3): α = 0 is OGL, α = 1 AV.

    Each tile is min-max normalised on its own, so the strip shows where the fused map is high."""
    from avslkit.viz.overlay import grid

    tiles = []
    for a in alphas:
        if not 0.0 <= a <= 1.0:
            raise AvslError(f"--alpha-sweep value {a}: must be in [0, 1]")
        fused = localizer.refuse(maps, a)
        text = caption_for(confidence=float(confidence(fused[None])[0]), title=f"alpha {a:g}")
        tiles.append(_captioned(heatmap_overlay(image, fused, size), text))
    return save_png(grid([tiles], pad=2), path)


def localize_pair(localizer: Localizer, image: np.ndarray, samples: np.ndarray, first_time: float, time: float,
                  seconds: float = DEFAULT_AUDIO_SECONDS) -> MapSet:
    """Maps for one frame and the audio window centred on `time`."""
    window = audio_windows(samples, first_time, [time], localizer.sample_rate, seconds)
    return localizer.maps([image], window)[0]


def ffmpeg_exe() -> str:
    """The bundled static ffmpeg (imageio-ffmpeg)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise AvslError("rendering a video needs imageio-ffmpeg: pip install imageio-ffmpeg") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def localize_video(localizer: Localizer, video: str | Path, out: str | Path, every: float = 0.5,
                   map_kind: str = "fused", seconds: float = DEFAULT_AUDIO_SECONDS, size: int = EVAL_SIZE,
                   batch_size: int = 8, side_by_side: bool = False) -> dict[str, Any]:
    """Heatmap video: one overlay every `every` seconds (audio window centred there), muxed with the
    clip's original audio into an H.264/AAC mp4. Returns times and fused confidences."""
    from avslkit.utils.console import track
    from avslkit.viz.overlay import grid

    if every <= 0:
        raise AvslError(f"--every {every}: must be > 0 seconds")
    if map_kind not in MAP_KINDS:
        raise AvslError(f"unknown --map '{map_kind}' (choose {', '.join(MAP_KINDS)})")
    duration = video_duration(video)
    times = [round(i * every, 6) for i in range(max(1, math.ceil(duration / every - 1e-9)))]
    samples, first = decode_audio(video, localizer.sample_rate)
    frames = decode_frames(video, times)
    confs: list[float] = []
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="avslkit_viz_") as tmp:
        starts = range(0, len(times), batch_size)
        for a in track(starts, "heatmap frames", total=len(starts)):
            sel = list(range(a, min(len(times), a + batch_size)))
            windows = audio_windows(samples, first, [times[i] for i in sel], localizer.sample_rate, seconds)
            for i, ms in zip(sel, localizer.maps([frames[i] for i in sel], windows)):
                confs.append(ms.confidence)
                tiles = overlays(frames[i], ms, size)
                img = grid([[tiles[k] for k in MAP_KINDS]], pad=0) if side_by_side else tiles[map_kind]
                h, w = img.shape[:2]
                save_png(img[: h - h % 2, : w - w % 2], Path(tmp) / f"{i:06d}.png")  # yuv420p needs even sizes
        rate = Fraction(every).limit_denominator(1000)
        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-framerate", f"{rate.denominator}/{rate.numerator}",
               "-i", str(Path(tmp) / "%06d.png"), "-i", str(video), "-map", "0:v:0", "-map", "1:a:0?",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-r", str(max(1, math.ceil(1 / every))),
               "-c:a", "aac", "-t", f"{duration:.3f}", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise AvslError(f"ffmpeg could not write {out}: {proc.stderr.strip()[-300:]}")
    return {"video": str(out), "times": times, "confidence": confs}


def run_localize(ckpt: str | Path, *, image: str | Path | None = None, audio: str | Path | None = None,
                 video: str | Path | None = None, time: float | None = None, every: float | None = None,
                 out: str | Path = "localize", fusion: str = "slavc", alpha: float | None = None,
                 ogl_weights: str | None = None, audio_seconds: float = DEFAULT_AUDIO_SECONDS, size: int = EVAL_SIZE,
                 map_kind: str = "fused", side_by_side: bool = False, device: str = "cpu",
                 alpha_sweep: Sequence[float] = ()) -> dict[str, Any]:
    """The `avslkit localize` command: overlays of one pair, or a heatmap video with --every."""
    from avslkit.engine.distributed import resolve_device
    from avslkit.methods.inference import load_task_for_inference

    if (image is None) == (video is None):
        raise AvslError("pass either --image IMG --audio AUDIO or --video VIDEO")
    if image is not None and audio is None:
        raise AvslError("--image needs --audio AUDIO (a wav/mp3 file or a video with sound)")
    if every is not None and video is None:
        raise AvslError("--every renders a heatmap video: pass --video VIDEO")
    if every is not None and alpha_sweep:
        raise AvslError("--alpha-sweep draws one frame: pass --time T instead of --every")
    dev = resolve_device(device)
    task = load_task_for_inference(ckpt, dev)
    localizer = Localizer(task, load_ogl(ogl_weights, dev), fusion, alpha, size)
    out = Path(out)
    base = {"alpha": localizer.alpha, "rule": fusion}
    if video is not None and every is not None:
        res = localize_video(localizer, video, out / f"{Path(video).stem}_heatmap.mp4", every, map_kind, audio_seconds,
                             size, side_by_side=side_by_side)
        return {**base, "paths": {"video": Path(res["video"])}, "times": res["times"], "confidences": res["confidence"]}
    source = Path(video if video is not None else audio)  # type: ignore[arg-type]
    samples, first = decode_audio(source, localizer.sample_rate)
    if time is None:
        time = (video_duration(video) if video is not None else first + len(samples) / localizer.sample_rate) / 2.0
    frame = decode_frames(video, [time])[0] if video is not None else read_image(image)  # type: ignore[arg-type]
    maps = localize_pair(localizer, frame, samples, first, float(time), audio_seconds)
    stem = Path(video if video is not None else image).stem  # type: ignore[arg-type]
    paths = write_overlays(frame, maps, out, stem, size)
    if alpha_sweep:
        paths["alpha_sweep"] = write_alpha_sweep(localizer, frame, maps, alpha_sweep, out / f"{stem}_alpha_sweep.png", size)
    return {**base, "paths": paths, "time": float(time), "confidence": maps.confidence, "av_confidence": maps.av_confidence}
