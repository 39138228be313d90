"""Decode one clip into a `ClipRecord`: the frame at the annotation time and the audio window around it.

Decoding runs in-process with PyAV (seek, decode, resample with libswresample), which is several
times faster than spawning two ffmpeg processes per clip. The conventions are those of DESIGN.md §3:

* frame: the first decoded frame whose timestamp is >= the annotation time (what `ffmpeg -ss t`
  returns), resized so its shorter side is `frame_size` (0 keeps the decoded size), stored as JPEG;
* audio: mono at `sample_rate`, window start = max(t − audio_seconds/2, 0), cut to `audio_seconds`;
  a shorter window is tiled (option `short_audio="tile"`, the published convention) or zero-padded
  (`"zeros"`) to exactly `audio_seconds`.

Every fault raises `ClipError` with a short readable reason ("no audio stream", "cannot decode: ...",
"truncated: no frame at 5.00 s (decoded up to 2.96 s)", "silent audio (peak 0)"), which the
preprocessing pipeline records in the store's failures table.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from avslkit.data.store import ClipRecord
from avslkit.errors import AvslError

#: Extensions picked up when scanning a directory of videos.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".avi", ".mov")
#: Extensions accepted for frame images in the frames/ + audio/ layout.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")

# Resize filters by name: (PIL resampling constant name, swscale interpolation name).
RESIZE_FILTERS: dict[str, tuple[str, str]] = {
    "bicubic": ("BICUBIC", "BICUBIC"),
    "bilinear": ("BILINEAR", "BILINEAR"),
    "area": ("BOX", "AREA"),
    "lanczos": ("LANCZOS", "LANCZOS"),
}

_TIME_TOLERANCE = 1e-4  # seconds; a frame stamped 4.99995 s counts as "at 5 s"
_AUDIO_PREROLL = 0.25  # seconds before the window start to seek to, so the first packet needed is decoded
_AUDIO_POSTROLL = 0.1  # seconds decoded past the window end before stopping


class ClipError(AvslError):
    """A clip that cannot be turned into a record; `reason` is short and meant for the failures table."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ClipOptions:
    """How a clip is cut and encoded (the keys of `avslkit/configs/preprocess.yaml`)."""

    sample_rate: int = 16000
    audio_seconds: float = 3.0
    short_audio: str = "tile"
    frame_size: int = 256
    jpeg_quality: int = 92
    resize_filter: str = "bicubic"
    clamp_time: bool = False
    allow_silent: bool = False
    silence_floor: float = 1e-4
    decoder_threads: int = 0
    window_rule: str = "round"

    @property
    def audio_samples(self) -> int:
        return int(round(self.sample_rate * self.audio_seconds))

    def validate(self) -> "ClipOptions":
        if self.sample_rate <= 0:
            raise AvslError(f"sample_rate must be positive, got {self.sample_rate} (set e.g. --sample-rate 16000)")
        if self.audio_seconds <= 0:
            raise AvslError(f"audio_seconds must be positive, got {self.audio_seconds}")
        if self.short_audio not in SHORT_AUDIO:
            raise AvslError(f"short_audio must be one of {sorted(SHORT_AUDIO)}, got '{self.short_audio}'")
        if self.window_rule not in WINDOW_RULES:
            raise AvslError(f"window_rule must be one of {', '.join(WINDOW_RULES)}, got '{self.window_rule}'")
        if self.resize_filter not in RESIZE_FILTERS:
            raise AvslError(f"resize_filter must be one of {sorted(RESIZE_FILTERS)}, got '{self.resize_filter}'")
        if self.frame_size < 0:
            raise AvslError(f"frame_size must be >= 0 (0 keeps the decoded size), got {self.frame_size}")
        if self.decoder_threads < 0:
            raise AvslError(f"decoder_threads must be >= 0 (0 = automatic), got {self.decoder_threads}")
        if not 1 <= self.jpeg_quality <= 100:
            raise AvslError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        return self


# -- audio window ---------------------------------------------------------------------------------


def _tile(x: np.ndarray, n: int) -> np.ndarray:
    return np.tile(x, math.ceil(n / len(x)))[:n]


def _zero_pad(x: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=x.dtype)
    out[: len(x)] = x
    return out


#: How a window shorter than `audio_seconds` is brought to exact length.
SHORT_AUDIO: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"tile": _tile, "zeros": _zero_pad}


def window_start(time: float, audio_seconds: float) -> float:
    """Start of the audio window centred on `time` (never before the clip start)."""
    return max(time - audio_seconds / 2.0, 0.0)


def _round_bounds(start: float, end: float, n: int, rate: int) -> tuple[int, int]:
    return int(round(start * rate)), n


def _truncate_bounds(start: float, end: float, n: int, rate: int) -> tuple[int, int]:
    return int(start * rate), n


def _seek_truncate_bounds(start: float, end: float, n: int, rate: int) -> tuple[int, int]:
    # audio_io.load_audio_av of EZ-VSL/SLAVC on a wav: container.seek(int(start·1e6)) lands on the sample
    # s0 nearest to that microsecond (ffmpeg's av_rescale), the window starts int((start − s0/rate)·rate)
    # samples later, and it holds int(min(seconds, end − start)·rate) samples (one fewer at some lengths).
    s0 = (int(start * 1_000_000) * rate + 500_000) // 1_000_000
    return s0 + int((start - s0 / rate) * rate), min(n, int(min(n / rate, end - start) * rate))


#: Window rules: (start, end of the audio in seconds, window samples, rate) → (first sample, samples taken),
#: both relative to the first decoded sample. The window is then tiled/padded to exact length (short_audio).
WINDOW_RULES: dict[str, Callable[[float, float, int, int], tuple[int, int]]] = {
    "round": _round_bounds,              # nearest sample (avslkit default)
    "truncate": _truncate_bounds,        # int((start − t0)·rate)
    "seek_truncate": _seek_truncate_bounds,  # the references' wav reader, bit for bit (see docs/conventions.md)
}


def cut_window(samples: np.ndarray, first_sample_time: float, time: float, opts: ClipOptions) -> np.ndarray:
    """The int16 window of `opts.audio_samples` samples centred on `time`, cut by `opts.window_rule`.

    `samples` is mono int16 audio whose first sample plays at `first_sample_time` seconds.
    """
    n = opts.audio_samples
    start = window_start(time, opts.audio_seconds)
    end = first_sample_time + len(samples) / opts.sample_rate
    offset, take = WINDOW_RULES[opts.window_rule](start - first_sample_time, end - first_sample_time, n, opts.sample_rate)
    if offset < 0:  # audio begins after the window start (stream offset or priming): pad with silence
        samples = np.concatenate([np.zeros(-offset, dtype=samples.dtype), samples])
        offset = 0
    window = samples[offset : offset + take]
    if len(window) == 0:
        raise ClipError(f"truncated: no audio at {start:.2f} s (audio ends at {end:.2f} s)")
    if len(window) < n:
        window = SHORT_AUDIO[opts.short_audio](window, n)
    return np.ascontiguousarray(window, dtype=np.int16)


def check_not_silent(window: np.ndarray, opts: ClipOptions) -> None:
    """Reject all-zero / near-silent windows unless `allow_silent` (they carry no localisation cue)."""
    if opts.allow_silent:
        return
    peak = float(np.abs(window.astype(np.int32)).max()) / 32768.0 if len(window) else 0.0
    if peak < opts.silence_floor:
        shown = "0" if peak == 0 else f"{peak:.2g}"
        raise ClipError(f"silent audio (peak {shown})")


def float_to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


# -- frames ---------------------------------------------------------------------------------------


def target_size(width: int, height: int, frame_size: int) -> tuple[int, int]:
    """(width, height) with the shorter side scaled to `frame_size`; unchanged when frame_size is 0."""
    if frame_size <= 0 or min(width, height) == frame_size:
        return width, height
    scale = frame_size / min(width, height)
    if width <= height:
        return frame_size, max(1, int(round(height * scale)))
    return max(1, int(round(width * scale))), frame_size


def encode_jpeg(image: "object", quality: int) -> bytes:
    """JPEG bytes of a PIL image (baseline JPEG, 4:2:0 chroma subsampling: PIL defaults)."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=int(quality))  # type: ignore[attr-defined]
    return buf.getvalue()


# -- video files ----------------------------------------------------------------------------------


def _av_message(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(msg).split())[:160]


def _container_duration(container: "object", vstream: "object") -> float | None:
    if getattr(container, "duration", None):
        return container.duration / 1_000_000.0  # type: ignore[attr-defined]
    if vstream.duration is not None and vstream.time_base is not None:  # type: ignore[attr-defined]
        return float(vstream.duration * vstream.time_base)  # type: ignore[attr-defined]
    return None


def _seek(container: "object", stream: "object", seconds: float) -> None:
    if seconds <= 0:
        container.seek(0, stream=stream, backward=True)  # type: ignore[attr-defined]
        return
    container.seek(int(seconds / stream.time_base), stream=stream, backward=True)  # type: ignore[attr-defined]


def _frame_at(container: "object", vstream: "object", time: float, clamp: bool) -> tuple["object", float]:
    """The first frame with timestamp >= `time` (or the last frame when `clamp` and `time` is past the end)."""
    import av

    last = None
    last_time = -1.0
    try:
        _seek(container, vstream, time)
        for frame in container.decode(vstream):  # type: ignore[attr-defined]
            ft = frame.time if frame.time is not None else last_time + 1e-3
            if ft >= time - _TIME_TOLERANCE:
                return frame, float(ft)
            last, last_time = frame, float(ft)
    except av.FFmpegError as exc:
        if last is None:
            raise ClipError(f"cannot decode: {_av_message(exc)}") from None
        if not clamp:
            raise ClipError(f"truncated: no frame at {time:.2f} s (decoded up to {last_time:.2f} s)") from None
    if last is None and time > 0:  # the seek landed past the data (file cut short): find where it ends
        last, last_time = _last_frame(container, vstream)
    if last is None:
        raise ClipError(f"cannot decode: no video frame at or before {time:.2f} s")
    if not clamp:
        raise ClipError(f"truncated: no frame at {time:.2f} s (decoded up to {last_time:.2f} s)")
    return last, last_time


def _last_frame(container: "object", vstream: "object") -> tuple["object", float]:
    """The last decodable frame from the start (used only to describe or clamp truncated files)."""
    import av

    last, last_time = None, -1.0
    try:
        _seek(container, vstream, 0.0)
        for frame in container.decode(vstream):  # type: ignore[attr-defined]
            last, last_time = frame, float(frame.time if frame.time is not None else last_time + 1e-3)
    except av.FFmpegError:
        pass
    return last, last_time


def _drop_leading(frame: "object", n: int) -> "object":
    """A copy of an audio frame without its first `n` samples (timestamps moved accordingly)."""
    import av

    arr = frame.to_ndarray()  # type: ignore[attr-defined]
    step = 1 if frame.format.is_planar else len(frame.layout.channels)  # type: ignore[attr-defined]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr[:, n * step :]), format=frame.format.name,  # type: ignore[attr-defined]
                                     layout=frame.layout.name)  # type: ignore[attr-defined]
    out.sample_rate = frame.sample_rate  # type: ignore[attr-defined]
    if frame.pts is not None and frame.time_base is not None:  # type: ignore[attr-defined]
        out.time_base = frame.time_base  # type: ignore[attr-defined]
        out.pts = frame.pts + int(round(n / frame.sample_rate / frame.time_base))  # type: ignore[attr-defined]
    return out


def _audio_window(container: "object", astream: "object", time: float, opts: ClipOptions) -> np.ndarray:
    """Decode only the stretch of audio around the window and resample it to mono int16 at sample_rate.

    Decoded audio is trimmed at the source rate to start exactly at the window start before it is
    resampled (as `ffmpeg -ss` does), so the output sample grid is aligned to the window start.
    """
    import av

    start = window_start(time, opts.audio_seconds)
    stop = start + opts.audio_seconds + _AUDIO_POSTROLL
    resampler = av.AudioResampler(format="s16", layout="mono", rate=opts.sample_rate)
    chunks: list[np.ndarray] = []
    first_time: float | None = None
    have = 0
    try:
        _seek(container, astream, start - _AUDIO_PREROLL)
        for frame in container.decode(astream):  # type: ignore[attr-defined]
            if first_time is None:
                frame_time = float(frame.time) if frame.time is not None else 0.0
                lead = (start - frame_time) * frame.sample_rate  # window_rule, applied at the source rate
                skip = int(round(lead)) if opts.window_rule == "round" else int(lead)
                if skip >= frame.samples:
                    continue  # pre-roll before the window
                if skip > 0:
                    frame = _drop_leading(frame, skip)
                    frame_time += skip / frame.sample_rate
                first_time = frame_time
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                have += out.samples
            if first_time + have / opts.sample_rate >= stop:
                break
        else:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        if not chunks:
            raise ClipError(f"cannot decode audio: {_av_message(exc)}") from None
    if first_time is None or not chunks:
        raise ClipError("no audio decoded (empty audio stream)")
    samples = np.concatenate(chunks).astype(np.int16, copy=False)
    return cut_window(samples, first_time, time, opts)


def read_clip(
    path: str | Path,
    time: float | None = None,
    *,
    sample_rate: int = 16000,
    audio_seconds: float = 3.0,
    frame_size: int = 256,
    jpeg_quality: int = 92,
    short_audio: str = "tile",
    resize_filter: str = "bicubic",
    clamp_time: bool = False,
    allow_silent: bool = False,
    silence_floor: float = 1e-4,
    decoder_threads: int = 0,
    window_rule: str = "round",
    clip_id: str | None = None,
    label: str = "",
) -> ClipRecord:
    """Decode a video into a `ClipRecord` (frame at `time`, default the middle; audio window around it).

    Raises `ClipError` with a readable `reason` on any fault (missing/empty/corrupt file, no audio or
    video stream, time past the end unless `clamp_time`, silent audio unless `allow_silent`).
    """
    opts = ClipOptions(sample_rate, audio_seconds, short_audio, frame_size, jpeg_quality, resize_filter,
                       clamp_time, allow_silent, silence_floor, decoder_threads, window_rule).validate()
    return read_clip_with(Path(path), time, opts, clip_id=clip_id, label=label)


def read_clip_with(path: Path, time: float | None, opts: ClipOptions, *, clip_id: str | None = None,
                   label: str = "") -> ClipRecord:
    """`read_clip` with options already bundled (used by the pipeline's workers)."""
    import av

    if not path.is_file():
        raise ClipError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise ClipError("empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise ClipError(f"cannot decode: {_av_message(exc)}") from None
    with container:
        if not container.streams.video:
            raise ClipError("no video stream")
        if not container.streams.audio:
            raise ClipError("no audio stream")
        vstream = container.streams.video[0]
        astream = container.streams.audio[0]
        if opts.decoder_threads == 1:
            vstream.thread_count = 1
        else:
            vstream.thread_type = "AUTO"
            vstream.thread_count = opts.decoder_threads
        duration = _container_duration(container, vstream)
        if duration is not None and duration <= 0:
            raise ClipError("zero-length video (duration 0 s)")
        if time is None:
            if duration is None:
                raise ClipError("unknown duration: cannot find the middle (pass --timestamps)")
            time = duration / 2.0
        if time < 0:
            raise ClipError(f"negative annotation time {time:.2f} s")
        frame, frame_time = _frame_at(container, vstream, float(time), opts.clamp_time)
        if opts.clamp_time and frame_time < time:
            time = frame_time
        width, height = target_size(frame.width, frame.height, opts.frame_size)
        image = frame.to_image(width=width, height=height,
                               interpolation=RESIZE_FILTERS[opts.resize_filter][1])
        jpeg = encode_jpeg(image, opts.jpeg_quality)
        audio = _audio_window(container, astream, float(time), opts)
    check_not_silent(audio, opts)
    return ClipRecord(
        id=clip_id or path.stem, source=str(path), time=float(time), duration=float(duration or 0.0),
        frame_jpeg=jpeg, height=height, width=width, audio=audio, sample_rate=opts.sample_rate, label=label,
    )


# -- frames/ + audio/ layout ----------------------------------------------------------------------


def read_wav_mono(path: Path, sample_rate: int) -> np.ndarray:
    """A wav file as mono int16 at `sample_rate` (resampled with torchaudio when the rate differs)."""
    from scipy.io import wavfile

    try:
        sr, data = wavfile.read(str(path))
    except (ValueError, OSError, EOFError) as exc:
        raise ClipError(f"cannot read wav: {' '.join(str(exc).split())[:160]}") from None
    data = np.asarray(data)
    if data.size == 0:
        raise ClipError("empty wav (0 samples)")
    if data.dtype == np.int16:
        x = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        x = data.astype(np.float32) / 2147483648.0
    elif data.dtype == np.uint8:
        x = (data.astype(np.float32) - 128.0) / 128.0
    else:
        x = data.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if sr != sample_rate:
        import torch
        import torchaudio.functional as taf

        x = taf.resample(torch.from_numpy(np.ascontiguousarray(x)), int(sr), int(sample_rate)).numpy()
    elif data.dtype == np.int16 and data.ndim == 1:
        return data
    return float_to_int16(x)


def read_frame_audio_pair(
    frame_path: Path,
    wav_path: Path,
    time: float | None,
    opts: ClipOptions,
    *,
    clip_id: str | None = None,
    label: str = "",
) -> ClipRecord:
    """A clip from an already-extracted frame image plus wav (the layout the public repos ship).

    The image is stored as-is when it is a JPEG of the right size, otherwise resized/re-encoded.
    The audio window is centred on `time` (default: the middle of the wav).
    """
    if not frame_path.is_file():
        raise ClipError(f"file not found: {frame_path}")
    if not wav_path.is_file():
        raise ClipError(f"no audio file: {wav_path}")
    samples = read_wav_mono(wav_path, opts.sample_rate)
    duration = len(samples) / opts.sample_rate
    if time is None:
        time = duration / 2.0
    if time > duration and not opts.clamp_time:
        raise ClipError(f"truncated: no audio at {time:.2f} s (wav lasts {duration:.2f} s)")
    time = min(float(time), duration)
    audio = cut_window(samples, 0.0, time, opts)
    check_not_silent(audio, opts)
    jpeg, width, height = image_file_jpeg(frame_path.read_bytes(), opts)
    return ClipRecord(
        id=clip_id or frame_path.stem, source=str(frame_path), time=float(time), duration=float(duration),
        frame_jpeg=jpeg, height=height, width=width, audio=audio, sample_rate=opts.sample_rate, label=label,
    )


def image_file_jpeg(raw: bytes, opts: ClipOptions) -> tuple[bytes, int, int]:
    """(stored JPEG, width, height) of an image file's bytes, as preprocessing stores a frame: the
    original bytes when they are a JPEG of the right size, else resized (shorter side `frame_size`,
    `resize_filter`) and re-encoded at `jpeg_quality`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            width, height = target_size(im.width, im.height, opts.frame_size)
            if im.format == "JPEG" and (width, height) == (im.width, im.height) and im.mode in ("RGB", "L"):
                return raw, width, height  # the original bytes: every decoder converts to RGB as the references' PIL loader
            return frame_jpeg(im, opts), width, height
    except (UnidentifiedImageError, OSError) as exc:
        raise ClipError(f"cannot decode image: {' '.join(str(exc).split())[:160]}") from None


def frame_jpeg(image: "object", opts: ClipOptions) -> bytes:
    """The stored JPEG of a decoded frame (PIL image or H×W×3 uint8 RGB array): shorter side resized to
    `frame_size` with `resize_filter`, encoded at `jpeg_quality` (the preprocessing rule)."""
    from PIL import Image

    im = Image.fromarray(np.asarray(image, dtype=np.uint8)) if isinstance(image, np.ndarray) else image
    rgb = im.convert("RGB")  # type: ignore[attr-defined]
    width, height = target_size(rgb.width, rgb.height, opts.frame_size)
    if (width, height) != (rgb.width, rgb.height):
        rgb = rgb.resize((width, height), getattr(Image.Resampling, RESIZE_FILTERS[opts.resize_filter][0]))
    return encode_jpeg(rgb, opts.jpeg_quality)


def media_duration(path: str | Path) -> float | None:
    """Duration in seconds of an audio or video file (container, else first stream); None when unknown."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if container.duration:
                return container.duration / 1_000_000.0
            stream = (container.streams.video or container.streams.audio or [None])[0]
            if stream is not None and stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    except av.FFmpegError as exc:
        raise ClipError(f"cannot decode: {_av_message(exc)}") from None
    return None


def read_audio_window(path: str | Path, time: float | None, opts: ClipOptions) -> tuple[np.ndarray, float]:
    """(int16 window of `opts.audio_seconds` centred on `time`, time) of any audio or video file, cut as
    preprocessing cuts it: a wav as in the frames/ + audio/ layout, anything else as a video's track.
    `time` defaults to the middle of the file."""
    import av

    path = Path(path)
    if not path.is_file():
        raise ClipError(f"file not found: {path}")
    if path.suffix.lower() == ".wav":
        samples = read_wav_mono(path, opts.sample_rate)
        time = len(samples) / opts.sample_rate / 2.0 if time is None else float(time)
        window = cut_window(samples, 0.0, time, opts)
    else:
        try:
            container = av.open(str(path), mode="r", metadata_errors="ignore")
        except av.FFmpegError as exc:
            raise ClipError(f"cannot decode: {_av_message(exc)}") from None
        with container:
            if not container.streams.audio:
                raise ClipError("no audio stream")
            if time is None:
                duration = _container_duration(container, container.streams.audio[0])
                time = (duration or 0.0) / 2.0
            window = _audio_window(container, container.streams.audio[0], float(time), opts)
    check_not_silent(window, opts)
    return window, float(time)


def iter_video_files(directory: Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> Iterator[Path]:
    """Video files under `directory`, recursively, in sorted order."""
    exts = {e.lower() for e in extensions}
    for p in sorted(directory.rglob("*")):
        if p.suffix.lower() in exts and p.is_file():
            yield p
