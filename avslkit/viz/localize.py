"""`avslkit localize`: the AV, OGL and fused maps of a trained model on any image + audio or video, drawn.

The maps come from `avslkit.inference.Localizer` (the one inference path: the run's fusion rule and
τ, the evaluation's 224×224 grid). Files are cut as preprocessing cuts a clip (`avslkit.data.video`):
the frame at the time stored as a 256-px JPEG, the audio window centred on it — so a clip gives the
same maps and confidence here as in `avslkit eval`'s per-sample CSV (the AV confidence). Under the
``ezvsl`` rule the fused map is min-max normalised, so its confidence only ranks windows of one image.
`localize_video` slides the audio window along a clip and renders a heatmap video with the original
audio track (bundled ffmpeg from imageio-ffmpeg).
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from avslkit.errors import AvslError
from avslkit.inference import MAP_KINDS, Localizer, MapSet, load_ogl
from avslkit.metrics.maps import EVAL_SIZE, confidence
from avslkit.viz.overlay import caption_for, heatmap_overlay, resize_image, save_png

__all__ = ["MAP_KINDS", "Localizer", "MapSet", "load_ogl", "localize_video", "overlays", "run_localize",
           "write_alpha_sweep", "write_overlays"]

MAP_TITLES = {"av": "AV", "ogl": "OGL", "fused": "fused"}
DEFAULT_AUDIO_SECONDS = 3.0


@dataclasses.dataclass
class Clip:
    """One cut of a file: the stored frame (JPEG), its RGB pixels for drawing, the int16 audio window, the time."""

    jpeg: bytes
    image: np.ndarray
    audio: np.ndarray
    time: float


def _clip_options(localizer: Localizer, seconds: float) -> Any:
    # a file given on the command line is cut like a preprocessed clip, but a time past the last frame
    # uses the last frame and silent audio is drawn rather than refused
    return dataclasses.replace(localizer.clip_options, audio_seconds=float(seconds), clamp_time=True,
                               allow_silent=True).validate()


def _pixels(jpeg: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        return np.asarray(im.convert("RGB"))


def _clip_error(path: Path, exc: Exception) -> AvslError:
    return AvslError(f"{path}: {getattr(exc, 'reason', exc)} (pass a readable file with sound)")


def cut_video(localizer: Localizer, video: str | Path, time: float | None,
              seconds: float = DEFAULT_AUDIO_SECONDS) -> Clip:
    """The frame at `time` (default: the middle) and the audio window around it, as preprocessing stores them."""
    from avslkit.data.video import ClipError, read_clip_with

    try:
        record = read_clip_with(Path(video), time, _clip_options(localizer, seconds))
    except ClipError as exc:
        raise _clip_error(Path(video), exc) from None
    return Clip(record.frame_jpeg, _pixels(record.frame_jpeg), record.audio, record.time)


def cut_image_audio(localizer: Localizer, image: str | Path, audio: str | Path, time: float | None,
                    seconds: float = DEFAULT_AUDIO_SECONDS) -> Clip:
    """An image file and the audio window around `time` (default: the middle) of an audio or video file."""
    from avslkit.data.video import ClipError, image_file_jpeg, read_audio_window

    opts = _clip_options(localizer, seconds)
    for path, what in ((Path(image), "image"), (Path(audio), "audio")):
        if not path.is_file():
            raise AvslError(f"{what} not found: {path}")
    try:
        jpeg = image_file_jpeg(Path(image).read_bytes(), opts)[0]
    except ClipError as exc:
        raise AvslError(f"{image}: cannot read as an image ({exc.reason}); pass a JPEG/PNG") from None
    try:
        window, t = read_audio_window(audio, time, opts)
    except ClipError as exc:
        raise _clip_error(Path(audio), exc) from None
    return Clip(jpeg, _pixels(jpeg), window, t)


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
    """Heatmap video: one overlay every `every` seconds (frame and audio window cut there as for one
    clip), muxed with the clip's original audio into an H.264/AAC mp4. Returns times and fused confidences."""
    from avslkit.data.video import ClipError, media_duration
    from avslkit.utils.console import track
    from avslkit.viz.overlay import grid

    if every <= 0:
        raise AvslError(f"--every {every}: must be > 0 seconds")
    if map_kind not in MAP_KINDS:
        raise AvslError(f"unknown --map '{map_kind}' (choose {', '.join(MAP_KINDS)})")
    video = Path(video)
    if not video.is_file():
        raise AvslError(f"video not found: {video}")
    try:
        duration = media_duration(video)
    except ClipError as exc:
        raise AvslError(f"{video}: cannot decode video ({exc.reason}); pass a readable video file") from None
    if duration is None:
        raise AvslError(f"{video}: unknown duration; pass --time")
    times = [round(i * every, 6) for i in range(max(1, math.ceil(duration / every - 1e-9)))]
    confs: list[float] = []
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="avslkit_viz_") as tmp:
        starts = range(0, len(times), batch_size)
        for a in track(starts, "heatmap frames", total=len(starts)):
            sel = list(range(a, min(len(times), a + batch_size)))
            clips = [cut_video(localizer, video, times[i], seconds) for i in sel]
            for i, clip, ms in zip(sel, clips, localizer.maps([c.jpeg for c in clips], [c.audio for c in clips])):
                confs.append(ms.confidence)
                tiles = overlays(clip.image, ms, size)
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
                 out: str | Path = "localize", fusion: str | None = None, alpha: float | None = None,
                 ogl_weights: str | None = None, audio_seconds: float = DEFAULT_AUDIO_SECONDS, size: int = EVAL_SIZE,
                 map_kind: str = "fused", side_by_side: bool = False, device: str = "cpu",
                 alpha_sweep: Sequence[float] = ()) -> dict[str, Any]:
    """The `avslkit localize` command: overlays of one pair, or a heatmap video with --every.
    `fusion` None = the run's own rule (`avslkit.inference.fusion_rule`)."""
    if (image is None) == (video is None):
        raise AvslError("pass either --image IMG --audio AUDIO or --video VIDEO")
    if image is not None and audio is None:
        raise AvslError("--image needs --audio AUDIO (a wav/mp3 file or a video with sound)")
    if every is not None and video is None:
        raise AvslError("--every renders a heatmap video: pass --video VIDEO")
    if every is not None and alpha_sweep:
        raise AvslError("--alpha-sweep draws one frame: pass --time T instead of --every")
    localizer = Localizer.from_checkpoint(ckpt, device, ogl_weights=ogl_weights, rule=fusion, alpha=alpha, size=size)
    out = Path(out)
    base = {"alpha": localizer.alpha, "rule": localizer.rule}
    if video is not None and every is not None:
        res = localize_video(localizer, video, out / f"{Path(video).stem}_heatmap.mp4", every, map_kind, audio_seconds,
                             size, side_by_side=side_by_side)
        return {**base, "paths": {"video": Path(res["video"])}, "times": res["times"], "confidences": res["confidence"]}
    if video is not None:
        clip = cut_video(localizer, video, time, audio_seconds)
    else:
        clip = cut_image_audio(localizer, image, audio, time, audio_seconds)  # type: ignore[arg-type]
    maps = localizer.maps([clip.jpeg], [clip.audio])[0]
    stem = Path(video if video is not None else image).stem  # type: ignore[arg-type]
    paths = write_overlays(clip.image, maps, out, stem, size)
    if alpha_sweep:
        paths["alpha_sweep"] = write_alpha_sweep(localizer, clip.image, maps, alpha_sweep, out / f"{stem}_alpha_sweep.png", size)
    return {**base, "paths": paths, "time": clip.time, "confidence": maps.confidence, "av_confidence": maps.av_confidence}
