"""Decode demo uploads into (RGB frame, mono int16 audio window), sniffing types by content.

A file's extension is never trusted: images are opened with PIL, audio and video with PyAV, and a
file that does not decode as what its form field asks for is rejected with an `UploadError` whose
message names the field, the file and what to upload instead (shown as-is in the page).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image

from avslkit.data.video import ClipError, ClipOptions, _audio_window, _av_message, read_clip_with
from avslkit.errors import AvslError

IMAGE_HINT = "upload a PNG, JPEG, WebP, BMP or GIF image"
AUDIO_HINT = "upload a wav, mp3, flac or ogg file"
VIDEO_HINT = "upload an mp4, webm or mov video with a sound track"
MAX_IMAGE_PIXELS = 40_000_000  # larger frames are refused (decompression bombs, browser-sized demo)


class UploadError(AvslError):
    """A rejected upload; the message is meant for the person using the page."""


@dataclass
class DecodedInput:
    """What the model sees: an RGB frame and the audio window centred on `time` (seconds)."""

    frame: PIL.Image.Image
    audio: np.ndarray  # int16, mono, ClipOptions.audio_samples long
    time: float
    source: str  # "image+audio" | "video"
    notices: list[str] = field(default_factory=list)
    frame_jpeg: bytes | None = None  # the frame as preprocessing stores it (videos); images are encoded by the model side


def _name(filename: str) -> str:
    return repr(Path(filename or "upload").name[:80])


def decode_image(data: bytes, filename: str) -> PIL.Image.Image:
    """Bytes → RGB PIL image, or an UploadError saying why not."""
    if not data:
        raise UploadError(f"image {_name(filename)} is empty (0 bytes); {IMAGE_HINT}")
    try:
        with PIL.Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise UploadError(f"image {_name(filename)} is {im.width}×{im.height} pixels, more than the demo's "
                                  f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels; upload a smaller image")
            im.load()
            return im.convert("RGB")
    except UploadError:
        raise
    except (PIL.UnidentifiedImageError, PIL.Image.DecompressionBombError):
        raise UploadError(f"{_name(filename)} is not a readable image; {IMAGE_HINT}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        msg = " ".join(str(exc).split())[:120]
        raise UploadError(f"image {_name(filename)} is damaged ({msg}); {IMAGE_HINT}") from None


def _open_av(path: Path, filename: str, what: str, hint: str):
    import av

    if path.stat().st_size == 0:
        raise UploadError(f"{what} {_name(filename)} is empty (0 bytes); {hint}")
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise UploadError(f"{_name(filename)} is not a readable {what} file ({_av_message(exc)}); {hint}") from None


def decode_audio_file(path: Path, filename: str, opts: ClipOptions, time: float | None = None) -> tuple[np.ndarray, float]:
    """An audio file (any container PyAV reads) → (int16 window of `opts.audio_seconds` around
    `time`, time); `time` defaults to the middle of the file."""
    import av

    container = _open_av(path, filename, "audio", AUDIO_HINT)
    with container:
        if not container.streams.audio:
            raise UploadError(f"{_name(filename)} has no audio stream; {AUDIO_HINT}")
        astream = container.streams.audio[0]
        duration = container.duration / 1_000_000.0 if container.duration else None
        if time is None:
            time = duration / 2.0 if duration else 0.0
        if duration is not None and time > duration:
            raise UploadError(f"time {time:.2f} s is past the end of {_name(filename)} ({duration:.2f} s); pick an earlier time")
        try:
            window = _audio_window(container, astream, float(time), opts)
        except ClipError as exc:
            raise UploadError(f"audio {_name(filename)}: {exc.reason}; {AUDIO_HINT}") from None
        except av.FFmpegError as exc:
            raise UploadError(f"audio {_name(filename)} is damaged ({_av_message(exc)}); {AUDIO_HINT}") from None
    return window, float(time)


_IMAGE_DEMUXERS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "gif", "tiff_pipe"}


def decode_video_file(path: Path, filename: str, opts: ClipOptions, time: float | None = None) -> tuple[PIL.Image.Image, np.ndarray, float, bytes]:
    """A video with sound → (frame at `time` or the middle, audio window around it, time, the stored frame JPEG)."""
    container = _open_av(path, filename, "video", VIDEO_HINT)
    with container:
        kind = container.format.name.split(",")[0]
        has_video, has_audio = bool(container.streams.video), bool(container.streams.audio)
    if kind in _IMAGE_DEMUXERS:
        raise UploadError(f"{_name(filename)} is an image, not a video; put it in the image field (with an audio file) or {VIDEO_HINT}")
    if not has_video:
        raise UploadError(f"{_name(filename)} has no video stream; {VIDEO_HINT} (or use the image + audio fields)")
    if not has_audio:
        raise UploadError(f"{_name(filename)} has no audio stream; the demo needs the sound; {VIDEO_HINT}")
    try:
        record = read_clip_with(path, time, opts)
    except ClipError as exc:
        raise UploadError(f"video {_name(filename)}: {exc.reason}") from None
    frame = decode_image(record.frame_jpeg, filename)
    return frame, record.audio, record.time, record.frame_jpeg


def demo_clip_options(sample_rate: int, audio_seconds: float) -> ClipOptions:
    """How the demo cuts clips: preprocessing's defaults (256-px frames), but the time is clamped to
    the last frame and silent audio is accepted (the page says so instead of refusing)."""
    return ClipOptions(sample_rate=int(sample_rate), audio_seconds=float(audio_seconds), clamp_time=True,
                       allow_silent=True).validate()


def is_silent(audio: np.ndarray, floor: float = 1e-4) -> bool:
    return len(audio) == 0 or float(np.abs(audio.astype(np.int32)).max()) / 32768.0 < floor
