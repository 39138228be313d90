"""Tests for `avslkit synth`: real mp4 files, VGG-SS annotations that match the pixels, class sounds
that are in the audio, off-screen negatives, determinism, resume, user cut-outs and the CLI."""

from __future__ import annotations

import colorsys
import csv
import functools
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile
from scipy.signal import welch
from typer.testing import CliRunner

from avslkit.errors import AvslError
from avslkit.synth import MAX_PROCEDURAL_CLASSES, class_names, generate, procedural_classes
from avslkit.synth import sounds

TINY = dict(n_clips=6, n_classes=4, size=96, duration=2.0, fps=10, seed=7, offscreen_fraction=0.34, test_fraction=0.34)
SR = 16000


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "toy"
    generate(out, **TINY)
    return out


def _read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def _metadata(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "metadata.csv") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def _decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _decode_audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return np.concatenate(chunks).astype(np.float32), stream.codec_context.sample_rate


def _band_profile(x: np.ndarray, sr: int) -> np.ndarray:
    """Unit-norm band magnitudes (sqrt of energy in 40 log-spaced bands, 60 Hz - 7 kHz): dominated by
    where the source's energy sits, so a broadband noise floor 5-25 dB down barely moves it."""
    freqs, power = welch(x, sr, nperseg=1024)
    edges = np.geomspace(60, 7000, 41)
    bands = np.sqrt([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
    return bands / (np.linalg.norm(bands) + 1e-12)


@functools.lru_cache(maxsize=None)
def _references(sr: int, n_classes: int) -> tuple[np.ndarray, ...]:
    return tuple(
        _band_profile(sounds.synthesize(c.family, c.params, sr * 2, sr, np.random.default_rng(123)), sr)
        for c in procedural_classes(n_classes, sr)
    )


def _nearest_class(x: np.ndarray, sr: int, n_classes: int) -> int:
    references = _references(sr, n_classes)
    return int(np.argmax([np.dot(_band_profile(x, sr), ref) for ref in references]))


def _hue_mask(frame: np.ndarray, hue: float, tolerance: float = 0.05) -> np.ndarray:
    rgb = frame.astype(np.float32) / 255
    hsv = np.vectorize(colorsys.rgb_to_hsv)(rgb[..., 0], rgb[..., 1], rgb[..., 2])
    diff = np.abs(hsv[0] - hue)
    diff = np.minimum(diff, 1 - diff)
    return (diff < tolerance) & (hsv[1] > 0.5) & (hsv[2] > 0.2)


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union


def test_class_registry() -> None:
    names = class_names(12)
    assert len(set(names)) == 12 and names[:3] == ["organ", "siren", "rain"]
    assert class_names(MAX_PROCEDURAL_CLASSES)[:12] == names  # stable prefix
    assert len(set(class_names(MAX_PROCEDURAL_CLASSES))) == MAX_PROCEDURAL_CLASSES
    with pytest.raises(AvslError):
        class_names(MAX_PROCEDURAL_CLASSES + 1)


def test_class_sounds_are_distinct() -> None:
    """Each class's sound (fresh random draw) is nearest to its own reference spectrum, not another's."""
    classes = procedural_classes(24, SR)
    for index, c in enumerate(classes[:24]):
        x = sounds.synthesize(c.family, c.params, SR * 2, SR, np.random.default_rng(999))
        assert _nearest_class(x, SR, 24) == index, c.name
    centroids = []
    for c in classes[:12]:
        x = sounds.synthesize(c.family, c.params, SR * 2, SR, np.random.default_rng(0))
        f, p = welch(x, SR, nperseg=1024)
        centroids.append(float((f * p).sum() / p.sum()))
    assert len({round(np.log2(cen) * 4) for cen in centroids}) >= 8  # spread over many quarter-octaves


def test_files_streams_and_formats(toy: Path) -> None:
    ids = [f"synth_{i:06d}" for i in range(6)]
    test_ids, train_ids = _read_lines(toy / "test_videos.txt"), _read_lines(toy / "train.txt")
    assert sorted(test_ids + train_ids) == ids and len(test_ids) == 2
    offscreen = set(_read_lines(toy / "offscreen.txt"))
    annotated = {e["file"] for e in json.loads((toy / "annotations.json").read_text())}
    positives = _read_lines(toy / "test.csv")  # like vggss_test.csv: exactly the annotated test clips
    assert positives == [i for i in test_ids if i not in offscreen] and set(positives) <= annotated
    assert "," not in (toy / "test.csv").read_text()
    with open(toy / "timestamps.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "time"] and [r[0] for r in rows[1:]] == ids
    assert all(float(r[1]) == 1.0 for r in rows[1:])  # no jitter: the middle
    for clip in ids:
        path = toy / "videos" / f"{clip}.mp4"
        with av.open(str(path)) as container:
            assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
            assert (video.codec_context.width, video.codec_context.height) == (96, 96)
            assert audio.codec_context.name == "aac" and audio.codec_context.sample_rate == SR
            assert container.duration / 1e6 == pytest.approx(2.0, abs=0.1)
        assert len(_decode_frames(path)) == 20
        samples, rate = _decode_audio(path)
        assert rate == SR and len(samples) == pytest.approx(2 * SR, abs=0.05 * SR)
    annotations = json.loads((toy / "annotations.json").read_text())
    offscreen = set(_read_lines(toy / "offscreen.txt"))
    assert {a["file"] for a in annotations} == set(ids) - offscreen
    for a in annotations:
        assert set(a) == {"file", "class", "bbox"} and a["class"] in class_names(4)
        (box,) = a["bbox"]
        assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1
    meta = _metadata(toy)
    assert set(meta) == set(ids)
    assert {"split", "class", "onscreen", "n_objects", "classes_shown", "bbox", "loudness_db", "snr_db", "time", "duration"} <= set(meta[ids[0]])
    assert "6 clips" in (toy / "README.md").read_text() or "| total | 6 |" in (toy / "README.md").read_text()
    assert "n_clips: 6" in (toy / "synth_config.yaml").read_text()


def test_bbox_matches_the_drawn_object(toy: Path) -> None:
    """Decode the annotated frame: the sounding class's colour lies in the annotated box and fills it."""
    hues = {c.name: c.hue for c in procedural_classes(4)}
    times = {row["id"]: float(row["time"]) for row in _metadata(toy).values()}
    annotations = json.loads((toy / "annotations.json").read_text())
    assert annotations
    for a in annotations:
        frame = _decode_frames(toy / "videos" / f"{a['file']}.mp4")[int(round(times[a["file"]] * 10))]
        h, w = frame.shape[:2]
        mask = _hue_mask(frame, hues[a["class"]])
        x1, y1, x2, y2 = a["bbox"][0]
        px = [int(round(x1 * w)), int(round(y1 * h)), int(round(x2 * w)), int(round(y2 * h))]
        inside = mask[max(px[1] - 2, 0) : px[3] + 2, max(px[0] - 2, 0) : px[2] + 2].sum()
        assert inside >= 0.95 * mask.sum(), a["file"]
        assert mask[px[1] : px[3], px[0] : px[2]].mean() >= 0.3, a["file"]
        ys, xs = np.nonzero(mask)
        found = [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]
        assert _iou(found, a["bbox"][0]) >= 0.7, (a["file"], found, a["bbox"][0])


def test_audio_holds_the_sounding_class(toy: Path) -> None:
    meta = _metadata(toy)
    names = class_names(4)
    for clip, row in meta.items():
        samples, rate = _decode_audio(toy / "videos" / f"{clip}.mp4")
        assert 20 * np.log10(np.sqrt(np.mean(samples**2))) == pytest.approx(float(row["loudness_db"]), abs=3.0)
        assert names[_nearest_class(samples, rate, 4)] == row["class"], clip


def test_offscreen_negatives(toy: Path) -> None:
    meta = _metadata(toy)
    offscreen = _read_lines(toy / "offscreen.txt")
    assert len(offscreen) == 2  # round(0.34 * 4) train + round(0.34 * 2) test
    for clip, row in meta.items():
        shown = row["classes_shown"].split(";")
        assert len(shown) == int(row["n_objects"]) >= 1 and len(set(shown)) == len(shown)
        if clip in offscreen:
            assert row["onscreen"] == "0" and row["class"] not in shown and row["bbox"] == ""
        else:
            assert row["onscreen"] == "1" and row["class"] in shown
    splits = {meta[c]["split"] for c in offscreen}
    assert splits == {"train", "test"}


def test_deterministic_and_resumable(toy: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, **TINY)
    for name in ("annotations.json", "test.csv", "train.txt", "timestamps.csv", "offscreen.txt", "metadata.csv", "README.md"):
        assert (again / name).read_bytes() == (toy / name).read_bytes(), name
    for clip in ("synth_000000", "synth_000003"):
        a, b = _decode_frames(toy / "videos" / f"{clip}.mp4"), _decode_frames(again / "videos" / f"{clip}.mp4")
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
        assert np.array_equal(_decode_audio(toy / "videos" / f"{clip}.mp4")[0], _decode_audio(again / "videos" / f"{clip}.mp4")[0])

    (again / "videos" / "synth_000002.mp4").unlink()
    summary = generate(again, **TINY)
    assert (summary.n_generated, summary.n_skipped) == (1, 5)
    assert (again / "metadata.csv").read_bytes() == (toy / "metadata.csv").read_bytes()
    with pytest.raises(AvslError, match="synth_config.yaml"):
        generate(again, **{**TINY, "seed": 8})

    other = generate(tmp_path / "other", **{**TINY, "seed": 8, "n_clips": 3})
    assert (other.paths["metadata"]).read_text() != (toy / "metadata.csv").read_text()
    assert json.loads(other.paths["annotations"].read_text()) != json.loads((toy / "annotations.json").read_text())[:3]


def test_time_jitter_and_non_square(tmp_path: Path) -> None:
    summary = generate(tmp_path / "t", n_clips=4, n_classes=3, width=80, height=64, duration=2.0, fps=8, seed=1,
                       offscreen_fraction=0.0, time_jitter=0.8, size_range=(0.1, 0.2))
    meta = _metadata(summary.out_dir)
    times = [float(r["time"]) for r in meta.values()]
    assert all(0.2 <= t <= 1.8 for t in times) and len(set(times)) > 1
    assert all(t * 8 == pytest.approx(round(t * 8), abs=1e-6) for t in times)  # snapped to frame timestamps
    with av.open(str(summary.out_dir / "videos" / "synth_000000.mp4")) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (80, 64)
    for a in json.loads(summary.paths["annotations"].read_text()):
        x1, y1, x2, y2 = a["bbox"][0]
        assert max((x2 - x1) * 80, (y2 - y1) * 64) <= 0.2 * 64 + 1  # small objects honoured


def _write_cutout(path: Path, rgb: tuple[int, int, int], size: tuple[int, int]) -> None:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = (((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2 <= 1) * 255
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = alpha
    Image.fromarray(rgba, "RGBA").save(path)


def _write_tone(path: Path, freq: float, sr: int = 8000) -> None:
    t = np.arange(sr) / sr
    wavfile.write(path, sr, (0.5 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16))


def test_objects_dir(tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    (objects / "blue").mkdir(parents=True)
    _write_cutout(objects / "blue" / "one.png", (0, 0, 255), (40, 20))
    _write_tone(objects / "blue" / "beep.wav", 400.0)
    _write_cutout(objects / "red.png", (255, 0, 0), (30, 30))
    _write_tone(objects / "red.wav", 2500.0)
    summary = generate(tmp_path / "out", n_clips=4, size=64, duration=2.0, fps=8, seed=3, objects_dir=objects,
                       offscreen_fraction=0.0, snr_range=(20.0, 25.0))
    assert summary.classes == ["blue", "red"]
    tone = {"blue": 400.0, "red": 2500.0}
    hue = {"blue": 2 / 3, "red": 0.0}
    for a in json.loads(summary.paths["annotations"].read_text()):
        path = summary.out_dir / "videos" / f"{a['file']}.mp4"
        samples, rate = _decode_audio(path)
        freqs, power = welch(samples, rate, nperseg=2048)
        assert freqs[np.argmax(power)] == pytest.approx(tone[a["class"]], rel=0.03)
        frame = _decode_frames(path)[8]  # t = 1.0 s at 8 fps
        mask = _hue_mask(frame, hue[a["class"]])
        ys, xs = np.nonzero(mask)
        found = [xs.min() / 64, ys.min() / 64, (xs.max() + 1) / 64, (ys.max() + 1) / 64]
        assert _iou(found, a["bbox"][0]) >= 0.6


def test_bad_objects_dir(tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    objects.mkdir()
    _write_cutout(objects / "cat.png", (0, 255, 0), (20, 20))
    with pytest.raises(AvslError, match="cat.png"):
        generate(tmp_path / "out", n_clips=2, objects_dir=objects)
    (objects / "cat.wav").write_bytes(b"not a wav")
    with pytest.raises(AvslError, match="cat.wav"):
        generate(tmp_path / "out", n_clips=2, objects_dir=objects)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AvslError, match="no object classes"):
        generate(tmp_path / "out", n_clips=2, objects_dir=tmp_path / "empty")
    with pytest.raises(AvslError, match="not found"):
        generate(tmp_path / "out", n_clips=2, objects_dir=tmp_path / "missing")
    with pytest.raises(AvslError, match="even"):
        generate(tmp_path / "odd", n_clips=2, size=63)


def test_cli(tmp_path: Path) -> None:
    from avslkit.cli.main import app

    runner = CliRunner()
    help_result = runner.invoke(app, ["synth", "--help"])
    assert help_result.exit_code == 0 and "Example:" in help_result.output
    out = tmp_path / "cli"
    result = runner.invoke(app, ["--quiet", "synth", str(out), "--clips", "3", "--classes", "3", "--size", "64",
                                 "--duration", "1", "--fps", "8", "--offscreen", "0", "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "3 clips" in result.output
    assert len(list((out / "videos").glob("*.mp4"))) == 3
    assert len(json.loads((out / "annotations.json").read_text())) == 3
    objects = tmp_path / "bad"
    objects.mkdir()
    _write_cutout(objects / "dog.png", (0, 255, 0), (20, 20))
    bad = runner.invoke(app, ["synth", str(tmp_path / "x"), "--objects", str(objects)])
    assert bad.exit_code == 1 and "dog.png" in bad.output and "Traceback" not in bad.output
    shutil.rmtree(out)


def test_sound_is_on_around_the_annotated_time() -> None:
    """Onsets/offsets vary, but the 3 s around the annotated time always hold the source."""
    from avslkit.synth import SynthOptions, plan_dataset, render_audio, resolve_classes

    options = SynthOptions(n_clips=12, n_classes=5, size=32, duration=8.0, fps=5, seed=2, time_jitter=1.5,
                           snr_range=(15.0, 15.0), loudness_range=(-20.0, -20.0))
    classes = resolve_classes(options)
    plans = plan_dataset(options, classes)
    assert any(p.onset > 0.5 for p in plans) and any(p.offset < 8.0 for p in plans)
    for plan in plans:
        assert plan.onset <= max(plan.time - 1.5, 0.0) and plan.offset >= min(plan.time + 1.5, 8.0)
        audio, stats = render_audio(plan, classes, options.scene())
        window = audio[int((plan.time - 1.5) * SR) : int((plan.time + 1.5) * SR)]
        assert 20 * np.log10(np.sqrt(np.mean(window**2))) == pytest.approx(stats["loudness_db"], abs=1.0)
        if plan.onset > 0.5:  # before the onset only the ambient noise (15 dB down) is left
            quiet = audio[: int((plan.onset - 0.1) * SR)]
            assert 20 * np.log10(np.sqrt(np.mean(quiet**2))) < stats["loudness_db"] - 10
