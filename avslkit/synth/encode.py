"""Write frames + audio as an mp4 (H.264 yuv420p + AAC) with the bundled ffmpeg.

Raw RGB frames go to ffmpeg's stdin; the audio goes through a temporary 16-bit WAV. Single-threaded,
bit-exact encoding and no metadata make the bytes reproducible for a given ffmpeg build.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from avslkit.errors import AvslError
from avslkit.utils.io import atomic_path


def ffmpeg_exe() -> str:
    """Path of the static ffmpeg that imageio-ffmpeg ships."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    audio: np.ndarray,
    fps: int,
    sample_rate: int,
    crf: int = 20,
    preset: str = "veryfast",
    audio_bitrate: str = "96k",
) -> None:
    """Encode uint8 frames (n, H, W, 3) and mono float audio in [-1, 1] into `path`, atomically."""
    import ffmpeg
    from scipy.io import wavfile

    n, height, width, _ = frames.shape
    if width % 2 or height % 2:
        raise AvslError(f"{path}: H.264 yuv420p needs even frame sizes (got {width}x{height}); use an even --width/--height")
    pcm = (np.clip(audio, -1, 1) * 32767).round().astype(np.int16)
    with tempfile.TemporaryDirectory(prefix="avslkit-synth-") as tmp, atomic_path(path, suffix=".mp4") as out_tmp:
        wav = Path(tmp) / "audio.wav"
        wavfile.write(wav, sample_rate, pcm)
        video_in = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", framerate=fps)
        audio_in = ffmpeg.input(str(wav))
        stream = ffmpeg.output(
            video_in.video,
            audio_in.audio,
            str(out_tmp),
            format="mp4",
            vcodec="libx264",
            pix_fmt="yuv420p",
            preset=preset,
            crf=crf,
            g=2 * fps,
            acodec="aac",
            audio_bitrate=audio_bitrate,
            ar=sample_rate,
            ac=1,
            threads=1,
            map_metadata=-1,
            fflags="+bitexact",
            **{"flags:v": "+bitexact", "flags:a": "+bitexact", "x264-params": "threads=1:sliced-threads=0"},
        ).global_args("-hide_banner", "-nostdin", "-loglevel", "error")
        proc = stream.run_async(cmd=ffmpeg_exe(), pipe_stdin=True, pipe_stdout=True, pipe_stderr=True, overwrite_output=True)
        _, err = proc.communicate(input=np.ascontiguousarray(frames).tobytes())
        if proc.returncode != 0:
            raise AvslError(f"{path}: ffmpeg failed to encode the clip: {err.decode(errors='replace').strip()[-500:]}")
        os.chmod(out_tmp, 0o644)  # mkstemp makes 0600 files; datasets are meant to be shared
