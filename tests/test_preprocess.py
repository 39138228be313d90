"""`avslkit preprocess`: frame/audio window correctness, faults, parallel run, resume, layouts, CLI."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile

import avslkit.data.preprocess as pp
from avslkit.data.preprocess import NoClipsStoredError, normalize_clip_id, parts_dir, preprocess
from avslkit.data.store import Store
from avslkit.data.video import ClipError, read_clip

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SR = 16000
FPS = 10
# A chirp: no two windows of it look alike, so a misplaced window cannot match by periodicity.
CHIRP = "0.5*sin(2*PI*(200+150*t)*t)"
# Brightness encodes the frame number, so the stored frame tells which frame was taken.
RAMP_VIDEO = f"color=c=black:s=96x64:r={FPS},format=yuv420p,geq=lum='40+N*4':cb=128:cr=128"


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-y", "-v", "error", *args], check=True)


def make_video(path: Path, seconds: float, *, audio: str | None = CHIRP, pcm: bool = False,
               faststart: bool = False, video: str = RAMP_VIDEO, audio_rate: int = SR) -> Path:
    """A tiny H.264 clip; audio AAC (or lossless PCM in .mkv so samples can be compared exactly)."""
    args = ["-f", "lavfi", "-i", video]
    if audio is not None:
        args += ["-f", "lavfi", "-i", f"aevalsrc='{audio}':s={audio_rate}"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-crf", "5", "-g", "10", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "pcm_s16le" if pcm else "aac"] if audio is not None else ["-an"]
    if faststart:
        args += ["-movflags", "+faststart"]
    ffmpeg(*args, str(path))
    return path


def reference_wav(path: Path, seconds: float, audio: str = CHIRP) -> np.ndarray:
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc='{audio}':s={SR}", "-t", str(seconds), "-c:a", "pcm_s16le", str(path))
    return wavfile.read(str(path))[1]


def frame_number(jpeg: bytes) -> int:
    """Which frame of RAMP_VIDEO a stored JPEG shows (inverse of lum = 40 + 4 N, limited range)."""
    gray = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=np.float64).mean()
    luma = gray * 219.0 / 255.0 + 16.0
    return int(round((luma - 40.0) / 4.0))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    m = {
        "pcm": make_video(d / "pcm.mkv", 4.5, pcm=True),
        "pcm_short": make_video(d / "pcm_short.mkv", 2.0, pcm=True),
        "aac": make_video(d / "aac.mp4", 4.0, audio_rate=44100),
        "faststart": make_video(d / "faststart.mp4", 4.0, faststart=True),
        "noaudio": make_video(d / "noaudio.mp4", 2.0, audio=None),
        "silent": make_video(d / "silent.mp4", 2.0, audio="0"),
    }
    reference_wav(d / "ref.wav", 4.5)
    m["ref"] = d / "ref.wav"
    m["empty"] = d / "empty.mp4"
    m["empty"].write_bytes(b"")
    m["garbage"] = d / "garbage.mp4"
    m["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    m["truncated"] = d / "truncated.mp4"
    m["truncated"].write_bytes(m["faststart"].read_bytes()[: m["faststart"].stat().st_size // 2])
    return m


def good_dir(root: Path, n: int, seconds: float = 2.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_video(root / f"clip{i:02d}.mp4", seconds)
    return root


# -- read_clip: frame and window ---------------------------------------------------------------------


def test_frame_is_first_frame_at_or_after_time(media):
    assert frame_number(read_clip(media["pcm"], 2.0, frame_size=0).frame_jpeg) == 20
    assert frame_number(read_clip(media["pcm"], 2.05, frame_size=0).frame_jpeg) == 21
    rec = read_clip(media["pcm"], frame_size=0)  # default: the middle of a 4.5 s clip
    assert rec.time == pytest.approx(2.25) and frame_number(rec.frame_jpeg) == 23
    assert rec.duration == pytest.approx(4.5, abs=0.05)
    single = read_clip(media["pcm"], 2.05, frame_size=0, decoder_threads=1)
    assert single.frame_jpeg == read_clip(media["pcm"], 2.05, frame_size=0).frame_jpeg
    small = read_clip(media["pcm"], 1.0, frame_size=32)
    assert (small.width, small.height) == (48, 32)
    assert Image.open(io.BytesIO(small.frame_jpeg)).size == (48, 32)


@pytest.mark.parametrize("t", [0.4, 2.0, 3.0])
def test_audio_window_is_exact_slice_centred_on_time(media, t):
    ref = wavfile.read(str(media["ref"]))[1]
    rec = read_clip(media["pcm"], t, sample_rate=SR, audio_seconds=3.0)
    start = int(round(max(t - 1.5, 0.0) * SR))
    assert rec.audio.dtype == np.int16 and rec.audio.shape == (3 * SR,)
    np.testing.assert_array_equal(rec.audio, ref[start : start + 3 * SR])


def test_window_rule_applies_to_video_audio(media):
    """start = 2.000046875 − 1.5 s = 8000.75 samples: truncate takes sample 8000, round 8001."""
    ref = wavfile.read(str(media["ref"]))[1]
    t = 1.5 + 8000.75 / SR
    for rule, start in (("truncate", 8000), ("round", 8001)):
        rec = read_clip(media["pcm"], t, sample_rate=SR, audio_seconds=3.0, window_rule=rule)
        np.testing.assert_array_equal(rec.audio, ref[start : start + 3 * SR])


def test_window_running_past_the_end_is_tiled_or_zero_padded(media):
    ref = wavfile.read(str(media["ref"]))[1]
    rec = read_clip(media["pcm"], 4.0)  # start 2.5 s, only 2.0 s left in a 4.5 s clip
    tail = ref[int(2.5 * SR) :]
    assert len(tail) == 2 * SR
    np.testing.assert_array_equal(rec.audio[: 2 * SR], tail)
    np.testing.assert_array_equal(rec.audio[2 * SR :], tail[: SR])
    zeros = read_clip(media["pcm"], 4.0, short_audio="zeros")
    np.testing.assert_array_equal(zeros.audio[: 2 * SR], tail)
    assert not zeros.audio[2 * SR :].any()


def test_short_clip_is_tiled_to_exact_length(media):
    ref = wavfile.read(str(media["ref"]))[1]
    rec = read_clip(media["pcm_short"])  # 2 s clip, middle 1.0 s, window start 0
    assert rec.audio.shape == (3 * SR,)
    np.testing.assert_array_equal(rec.audio, np.tile(ref[: 2 * SR], 2)[: 3 * SR])


def ffmpeg_window(path: Path, start: float, rate: int) -> np.ndarray:
    """The common approach: `ffmpeg -ss start -t 3 -ac 1 -ar rate` (trims at the input rate, then resamples)."""
    out = subprocess.run([FFMPEG, "-v", "error", "-ss", str(start), "-t", "3", "-i", str(path), "-vn", "-ac", "1",
                          "-ar", str(rate), "-f", "s16le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int16).astype(np.float64)


def test_aac_window_matches_ffmpeg_cli(media):
    # At the source rate (44.1 kHz, no resampling) the window equals ffmpeg's up to int16 rounding.
    native = read_clip(media["aac"], 2.0, sample_rate=44100).audio.astype(np.float64)
    ff = ffmpeg_window(media["aac"], 0.5, 44100)
    n = min(len(ff), len(native))
    assert n >= 3 * 44100 - 10 and np.abs(native[:n] - ff[:n]).max() <= 2
    # Resampled to 16 kHz the sample grids differ by < half a sample (31 µs): best alignment at lag 0.
    ours = read_clip(media["aac"], 2.5).audio.astype(np.float64)
    ff = ffmpeg_window(media["aac"], 1.0, SR)
    m = min(len(ff), len(ours)) - 400
    corr = {lag: np.corrcoef(ours[200:m], ff[200 + lag : m + lag])[0, 1] for lag in range(-5, 6)}
    assert max(corr, key=corr.get) == 0 and corr[0] > 0.97, corr


# -- read_clip: faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, reason",
    [
        ("empty", "empty file (0 bytes)"),
        ("garbage", "cannot decode"),
        ("noaudio", "no audio stream"),
        ("silent", "silent audio (peak 0)"),
        ("truncated", "truncated: no frame at 2.00 s (decoded up to"),
    ],
)
def test_faults_raise_clip_error_with_readable_reason(media, name, reason):
    with pytest.raises(ClipError) as info:
        read_clip(media[name])
    assert info.value.reason.startswith(reason), info.value.reason


def test_time_past_end_is_truncated_unless_clamped(media):
    with pytest.raises(ClipError, match=r"truncated: no frame at 9.00 s \(decoded up to 4.4"):
        read_clip(media["pcm"], 9.0)
    rec = read_clip(media["pcm"], 9.0, clamp_time=True, frame_size=0)
    assert rec.time == pytest.approx(4.4) and frame_number(rec.frame_jpeg) == 44
    assert read_clip(media["silent"], allow_silent=True).audio.shape == (3 * SR,)


# -- the pipeline --------------------------------------------------------------------------------------


def store_content(path: Path) -> dict[str, tuple]:
    with Store(path) as s:
        return {s.ids[i]: (s.frame_bytes(i), s.audio_int16(i).tobytes(), s.meta(i)["time"], s.meta(i)["label"])
                for i in range(len(s))}


def test_faulty_clips_are_recorded_and_run_goes_on(media, tmp_path):
    d = good_dir(tmp_path / "v", 2)
    for name in ("empty", "garbage", "noaudio", "silent", "truncated"):
        (d / media[name].name).write_bytes(media[name].read_bytes())
    report = preprocess(d, tmp_path / "s.h5", workers=0, progress=False)
    assert (report.n_stored, report.n_failed, report.n_total) == (2, 5, 2)
    with Store(tmp_path / "s.h5") as s:
        assert sorted(s.ids) == ["clip00", "clip01"]
        reasons = {f.id: f.reason for f in s.failures()}
    assert reasons["empty"] == "empty file (0 bytes)"
    assert reasons["noaudio"] == "no audio stream"
    assert reasons["silent"] == "silent audio (peak 0)"
    assert reasons["garbage"].startswith("cannot decode")
    assert reasons["truncated"].startswith("truncated: no frame at")
    assert not parts_dir(tmp_path / "s.h5").exists()
    assert (tmp_path / "s.h5.config.yaml").is_file()


def test_all_failed_raises_and_writes_nothing(media, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    for name in ("empty", "noaudio"):
        (d / media[name].name).write_bytes(media[name].read_bytes())
    with pytest.raises(NoClipsStoredError, match="no clip could be preprocessed: all 2 failed") as info:
        preprocess(d, tmp_path / "s.h5", workers=0, progress=False)
    assert info.value.report.n_failed == 2
    assert not (tmp_path / "s.h5").exists() and not parts_dir(tmp_path / "s.h5").exists()


def test_timestamps_labels_and_vggsound_ids(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    make_video(d / "AAAAAAAAAAA_30000_40000.mp4", 3.0)
    make_video(d / "BBBBBBBBBBB_000012.mp4", 3.0)
    (tmp_path / "times.csv").write_text("id,time\nAAAAAAAAAAA_000030,1.5\nBBBBBBBBBBB_000012.mp4,0.8\n")
    (tmp_path / "vggss.json").write_text(json.dumps([{"file": "AAAAAAAAAAA_000030", "class": "dog barking", "bbox": []}]))
    (tmp_path / "labels.csv").write_text("BBBBBBBBBBB_12,playing cello\n")
    preprocess(d, tmp_path / "a.h5", workers=0, timestamps=tmp_path / "times.csv", labels=tmp_path / "vggss.json",
               cfg={"frame_size": 0}, progress=False)
    with Store(tmp_path / "a.h5") as s:
        i = s.index_of("AAAAAAAAAAA_30000_40000")
        assert s.meta(i)["time"] == pytest.approx(1.5) and s.meta(i)["label"] == "dog barking"
        assert frame_number(s.frame_bytes(i)) == 15
        j = s.index_of("BBBBBBBBBBB_000012")
        assert s.meta(j)["time"] == pytest.approx(0.8) and frame_number(s.frame_bytes(j)) == 8
    preprocess(d, tmp_path / "b.h5", workers=0, labels=tmp_path / "labels.csv", progress=False)
    with Store(tmp_path / "b.h5") as s:
        assert s.meta(s.index_of("BBBBBBBBBBB_000012"))["label"] == "playing cello"
        assert s.meta(s.index_of("BBBBBBBBBBB_000012"))["time"] == pytest.approx(1.5)  # middle
    assert normalize_clip_id("x/AAAAAAAAAAA_30000_40000.mp4") == normalize_clip_id("AAAAAAAAAAA_000030")


def test_list_file_input_resolves_paths_and_ids(tmp_path):
    d = good_dir(tmp_path / "v", 3, seconds=1.0)
    (d / "sub").mkdir()
    (d / "clip02.mp4").rename(d / "sub" / "clip02.mp4")
    (d / "list.txt").write_text("clip00\nclip01.mp4\n# comment\nsub/clip02.mp4\nmissing_clip\n")
    report = preprocess(d / "list.txt", tmp_path / "s.h5", workers=0, progress=False)
    assert report.n_stored == 3 and [f.id for f in report.failures] == ["missing_clip"]
    assert report.failures[0].reason.startswith("file not found")
    (tmp_path / "list.csv").write_text("id,split\nclip00,train\nclip01,train\n")
    report = preprocess(tmp_path / "list.csv", tmp_path / "c.h5", root=d, workers=0, progress=False)
    assert report.n_stored == 2


def test_workers_2_equals_in_process(tmp_path):
    d = good_dir(tmp_path / "v", 5, seconds=1.0)
    (d / "broken.mp4").write_bytes(b"not a video at all")
    r0 = preprocess(d, tmp_path / "w0.h5", workers=0, progress=False)
    r2 = preprocess(d, tmp_path / "w2.h5", workers=2, cfg={"chunk_size": 2}, progress=False)
    assert (r0.n_stored, r0.n_failed) == (r2.n_stored, r2.n_failed) == (5, 1)
    assert store_content(tmp_path / "w0.h5") == store_content(tmp_path / "w2.h5")
    with Store(tmp_path / "w2.h5") as s:
        assert [f.id for f in s.failures()] == ["broken"]


def test_resume_from_leftover_shards(tmp_path):
    d = good_dir(tmp_path / "v", 4, seconds=1.0)
    out = tmp_path / "s.h5"
    parts = parts_dir(out)
    parts.mkdir()
    cfg = pp.resolve_config()
    opts = pp.clip_options(cfg)
    attrs = pp.StoreAttrs(sample_rate=opts.sample_rate, audio_samples=opts.audio_samples)
    # What a killed run leaves: one finished shard, a half-written temp file and an unreadable shard.
    done = [pp.ClipTask(id=f"clip0{i}", source=str(d / f"clip0{i}.mp4")) for i in (0, 1)]
    pp._run_chunk(pp._ChunkJob(str(parts / "chunk-00000000T000000000000-00000.h5"), done), opts, attrs)
    (parts / ".chunk-x.h5.xyz.h5.tmp").write_bytes(b"partial")
    (parts / "chunk-00000000T000000000000-00001.h5").write_bytes(b"garbage")
    report = preprocess(d, out, workers=0, progress=False)
    assert (report.n_skipped, report.n_stored, report.n_total) == (2, 2, 4)
    with Store(out) as s:
        assert sorted(s.ids) == ["clip00", "clip01", "clip02", "clip03"]
    assert not parts.exists()
    again = preprocess(d, out, workers=0, progress=False)
    assert (again.n_skipped, again.n_stored, again.n_total) == (4, 0, 4)


def test_interrupt_keeps_store_and_finished_shards(tmp_path, monkeypatch):
    d = good_dir(tmp_path / "v", 5, seconds=1.0)
    out = tmp_path / "s.h5"
    preprocess([d / "clip00.mp4"], out, workers=0, progress=False)  # an existing store
    real = pp.decode_task
    calls = {"n": 0}

    def flaky(task, opts):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(task, opts)

    monkeypatch.setattr(pp, "decode_task", flaky)
    with pytest.raises(KeyboardInterrupt):
        preprocess(d, out, workers=0, cfg={"chunk_size": 1}, progress=False)
    monkeypatch.setattr(pp, "decode_task", real)
    with Store(out) as s:  # the store is untouched and readable
        assert s.ids == ["clip00"]
    assert len(list(parts_dir(out).glob("chunk-*.h5"))) == 2  # clips decoded before Ctrl-C
    report = preprocess(d, out, workers=0, progress=False)
    assert (report.n_skipped, report.n_stored) == (3, 2)
    with Store(out) as s:
        assert sorted(s.ids) == [f"clip0{i}" for i in range(5)] and len(set(s.ids)) == 5


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_on_cli_then_rerun_completes(tmp_path, sig):
    d = good_dir(tmp_path / "v", 8, seconds=1.0)
    out = tmp_path / "s.h5"
    # Only the preprocess command is loaded (the full CLI imports torch, which is slow on a busy machine).
    cmd = [sys.executable, "-c", "import typer; from avslkit.cli.preprocess import command; typer.run(command)",
           str(d), "--out", str(out), "--workers", "1", "--set", "chunk_size=1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not list(parts_dir(out).glob("chunk-*.h5")):
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    print("first run exit code", proc.returncode, err)
    if proc.returncode == 130:  # interrupted mid-run (the usual case): shards kept, message says how to resume
        assert "re-run" in err
        assert list(parts_dir(out).glob("chunk-*.h5"))
        assert not out.exists() or len(Store(out)) < 8
    else:
        assert proc.returncode == 0, err  # the run won the race and finished
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    with Store(out) as s:
        assert sorted(s.ids) == [f"clip{i:02d}" for i in range(8)]
    assert not parts_dir(out).exists()


def test_frames_audio_layout(tmp_path):
    root = tmp_path / "dump"
    (root / "frames").mkdir(parents=True)
    (root / "audio").mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(root / "frames" / "a.jpg", quality=90)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(root / "frames" / "b.jpg")
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(root / "frames" / "c.jpg")
    wave = (np.sin(np.linspace(0, 2000, 4 * SR)) * 8000).astype(np.int16) + np.arange(4 * SR, dtype=np.int16) % 7
    wavfile.write(root / "audio" / "a.wav", SR, wave)
    wavfile.write(root / "audio" / "b.wav", 22050, (rng.standard_normal(22050 * 2) * 0.1).astype(np.float32))
    report = preprocess(root, tmp_path / "s.h5", workers=0, cfg={"frame_size": 90}, progress=False)
    assert report.n_stored == 2 and [(f.id, f.reason.split(":")[0]) for f in report.failures] == [("c", "no audio file")]
    with Store(tmp_path / "s.h5") as s:
        a, b = s.index_of("a"), s.index_of("b")
        assert s.frame_bytes(a) == (root / "frames" / "a.jpg").read_bytes()  # right size: stored as-is
        np.testing.assert_array_equal(s.audio_int16(a), wave[int(0.5 * SR) : int(3.5 * SR)])  # centred on 2.0 s
        assert (s.meta(b)["width"], s.meta(b)["height"]) == (120, 90) and s.frame(b).shape == (90, 120, 3)
        assert s.meta(b)["time"] == pytest.approx(1.0) and s.audio_int16(b).shape == (3 * SR,)
    (tmp_path / "ids.txt").write_text("a\nb\nzzz\n")
    report = preprocess(tmp_path / "ids.txt", tmp_path / "l.h5", root=root, workers=0, progress=False)
    assert report.n_stored == 2 and [f.id for f in report.failures] == ["zzz"]


def test_cli_preprocess_test_preset_keeps_original_frames_and_the_reference_window(tmp_path):
    """--preset ezvsl-test: original JPEG bytes (colour and greyscale, any size), silent clips kept, and
    the odd-length wav cut where the references' reader cuts it (sample 1, not the rounded 2)."""
    from typer.testing import CliRunner

    from avslkit.cli.main import app

    root = tmp_path / "dump"
    (root / "frames").mkdir(parents=True)
    (root / "audio").mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (333, 500, 3), dtype=np.uint8)).save(root / "frames" / "odd.jpg", quality=80)
    Image.fromarray(rng.integers(0, 255, (200, 150), dtype=np.uint8)).save(root / "frames" / "grey.jpg")
    wavfile.write(root / "audio" / "odd.wav", SR, np.arange(48003, dtype=np.int64).astype(np.int16))
    wavfile.write(root / "audio" / "grey.wav", SR, np.zeros(SR * 4, np.int16))  # silent: the references keep it
    out = tmp_path / "s.h5"
    res = CliRunner().invoke(app, ["preprocess", str(root), "--out", str(out), "--preset", "ezvsl-test", "--workers", "0", "-q"])
    assert res.exit_code == 0, res.output
    with Store(out) as s:
        for cid in ("odd", "grey"):
            assert s.frame_bytes(s.index_of(cid)) == (root / "frames" / f"{cid}.jpg").read_bytes()
        assert s.audio_int16(s.index_of("odd"))[:3].tolist() == [1, 2, 3]
    saved = (out.parent / (out.name + ".config.yaml")).read_text()
    assert "preset: ezvsl-test" in saved and "window_rule: seek_truncate" in saved
    rounded = preprocess(root, tmp_path / "r.h5", workers=0, cfg={"frame_size": 0, "allow_silent": True}, progress=False)
    assert rounded.n_stored == 2
    with Store(tmp_path / "r.h5") as s:
        assert s.audio_int16(s.index_of("odd"))[:3].tolist() == [2, 3, 4]  # avslkit default: nearest sample


# -- CLI ----------------------------------------------------------------------------------------------


def test_cli_preprocess(media, tmp_path):
    from typer.testing import CliRunner

    from avslkit.cli.main import app

    d = good_dir(tmp_path / "v", 2, seconds=1.0)
    (d / "noaudio.mp4").write_bytes(media["noaudio"].read_bytes())
    out = tmp_path / "s.h5"
    runner = CliRunner()
    result = runner.invoke(app, ["preprocess", str(d), "--out", str(out), "--workers", "0", "--frame-size", "32",
                                 "--set", "jpeg_quality=60", "--quiet"])
    assert result.exit_code == 0, result.output
    with Store(out) as s:
        assert len(s) == 2 and s.meta(0)["height"] == 32
        assert s.store_attrs().options["config"]["jpeg_quality"] == 60
        assert [f.reason for f in s.failures()] == ["no audio stream"]
    assert "jpeg_quality: 60" in (tmp_path / "s.h5.config.yaml").read_text()

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.mp4").write_bytes(b"")
    result = runner.invoke(app, ["preprocess", str(bad), "--out", str(tmp_path / "n.h5"), "--workers", "0", "-q"])
    assert result.exit_code == 1 and "no clip could be preprocessed" in result.output
    result = runner.invoke(app, ["preprocess", str(tmp_path / "nope"), "--out", str(tmp_path / "n.h5")])
    assert result.exit_code == 1 and "input not found" in result.output
    (tmp_path / "emptydir").mkdir()
    result = runner.invoke(app, ["preprocess", str(tmp_path / "emptydir"), "--out", str(tmp_path / "n.h5")])
    assert result.exit_code == 1 and "no videos found" in result.output
    result = runner.invoke(app, ["preprocess", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


# -- end to end with the synthetic dataset (when avslkit.synth is available) -------------------------


def test_synth_end_to_end(tmp_path):
    synth = pytest.importorskip("avslkit.synth")
    if not hasattr(synth, "generate"):
        pytest.skip("avslkit.synth.generate not available yet")
    import av

    toy = tmp_path / "toy"
    synth.generate(toy, n_clips=3, size=96, duration=3.0, fps=10, seed=0, time_jitter=0.5)
    videos = sorted((toy / "videos").glob("*.mp4"))
    assert videos
    times = pp.load_timestamps(toy / "timestamps.csv")
    classes = pp.load_labels(toy / "annotations.json")
    out = tmp_path / "toy.h5"
    report = preprocess(toy / "videos", out, workers=0, cfg={"frame_size": 0}, timestamps=toy / "timestamps.csv",
                        labels=toy / "annotations.json", progress=False)
    assert report.n_stored == len(videos)
    with Store(out) as s:
        for i, clip_id in enumerate(s.ids):
            assert s.meta(i)["time"] == pytest.approx(times[clip_id])
            assert s.meta(i)["label"] == classes.get(clip_id, "")
    with Store(out) as s:
        for i in range(len(s)):
            meta = s.meta(i)
            with av.open(meta["source"]) as c:
                frames = [f for f in c.decode(video=0)]
            ref = next(f for f in frames if f.time >= meta["time"] - 1e-4).to_ndarray(format="rgb24")
            assert np.abs(s.frame(i).astype(float) - ref).mean() < 4.0
            with av.open(meta["source"]) as c:
                rs = av.AudioResampler(format="s16", layout="mono", rate=SR)
                chunks = [o.to_ndarray().reshape(-1) for f in c.decode(audio=0) for o in rs.resample(f)]
            full = np.concatenate(chunks)
            start = int(round(max(meta["time"] - 1.5, 0.0) * SR))
            want = full[start : start + 3 * SR]
            got = s.audio_int16(i)[: len(want)].astype(float)
            assert np.corrcoef(got[400:], want[400:].astype(float))[0, 1] > 0.99
