"""`generate()`: a toy audio-visual benchmark of real mp4 clips in the published file formats.

Output layout (OUT_DIR):
  videos/<id>.mp4     H.264 yuv420p + AAC mono at `sample_rate`
  annotations.json    VGG-SS format: [{"file": id, "class": name, "bbox": [[x1, y1, x2, y2]]}], normalised,
                      the sounding object's box at the annotated time, for every clip whose source is visible
  test.csv            test positives (visible source), one per line, no header (like vggss_test.csv:
                      every id has an entry in annotations.json)
  test_videos.txt     every test-split clip (positives + off-screen real negatives): what to preprocess
  train.txt           train ids, one per line (with and without a visible source)
  timestamps.csv      id,time (annotated time, seconds)
  offscreen.txt       ids whose sound source is not drawn (real negatives)
  metadata.csv        one row per clip
  README.md           what was generated
  synth_config.yaml   the resolved options (a re-run with other options into the same folder is refused)

Everything is a function of the options and the seed; clip i depends only on (seed, i), and a re-run
skips the videos already present (each written atomically).
"""

from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from avslkit.errors import AvslError
from avslkit.synth.classes import ObjectClass, folder_classes, procedural_classes
from avslkit.synth.encode import write_mp4
from avslkit.synth.options import SynthOptions, preset_options  # re-exported: the options live in a light module for the CLI
from avslkit.synth.scene import ClipPlan, SceneSettings, plan_clip, render_audio, render_frames
from avslkit.utils.console import log, make_progress
from avslkit.utils.io import atomic_write_json, atomic_write_text

CONFIG_NAME = "synth_config.yaml"
ID_PREFIX = "synth_"
# Options that do not change the generated data (ignored when checking a re-run against the folder).
_RUNTIME_OPTIONS = ("workers",)


@dataclass
class SynthSummary:
    """What `generate` produced."""

    out_dir: Path
    n_clips: int
    n_train: int
    n_test: int
    n_onscreen: int
    n_offscreen: int
    n_generated: int  # videos encoded by this call
    n_skipped: int  # videos already present (resumed)
    classes: list[str]
    paths: dict[str, Path] = field(default_factory=dict)


def clip_id(index: int) -> str:
    return f"{ID_PREFIX}{index:06d}"


def resolve_classes(options: SynthOptions) -> list[ObjectClass]:
    """The object classes: procedural (first n_classes) or the folder's (then n_classes is ignored)."""
    if options.objects_dir:
        return folder_classes(options.objects_dir)
    return procedural_classes(options.n_classes, options.sample_rate)


def plan_dataset(options: SynthOptions, classes: Sequence[ObjectClass]) -> list[ClipPlan]:
    """Splits, sounding classes, off-screen choice and layout of every clip (no rendering)."""
    n = options.n_clips
    rng = np.random.default_rng([options.seed, 0])
    order = rng.permutation(n)
    n_test = int(round(n * options.test_fraction))
    split = np.array(["train"] * n, dtype=object)
    split[order[:n_test]] = "test"
    offscreen = np.zeros(n, dtype=bool)
    for name in ("train", "test"):  # the same fraction of real negatives in each split
        members = np.flatnonzero(split == name)
        k = int(round(len(members) * options.offscreen_fraction))
        offscreen[rng.permutation(members)[:k]] = True
    sound_classes = rng.permutation(np.arange(n) % len(classes))  # balanced classes
    settings = options.scene()
    return [
        plan_clip(clip_id(i), i, str(split[i]), int(sound_classes[i]), not offscreen[i], classes, settings, options.seed)
        for i in range(n)
    ]


def _render_one(plan: ClipPlan, classes: Sequence[ObjectClass], settings: SceneSettings, path: str) -> dict[str, float]:
    """Worker: render, encode and write one clip; returns its audio stats."""
    frames = render_frames(plan, classes, settings)
    audio, stats = render_audio(plan, classes, settings)
    write_mp4(path, frames, audio, settings.fps, settings.sample_rate)
    return stats


def _check_existing_config(out_dir: Path, options: SynthOptions) -> None:
    path = out_dir / CONFIG_NAME
    if not path.exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = options.as_dict()
    diff = sorted(k for k in new if k not in _RUNTIME_OPTIONS and old.get(k) != new[k])
    if diff:
        raise AvslError(
            f"{path}: this folder was generated with other options ({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); "
            "use a new output folder or delete this one"
        )


def generate(out_dir: str | os.PathLike, **kwargs: Any) -> SynthSummary:
    """Generate the benchmark into `out_dir` (see module docstring); keyword arguments are SynthOptions fields."""
    unknown = sorted(set(kwargs) - set(SynthOptions.__dataclass_fields__))
    if unknown:
        raise TypeError(f"generate() got unknown options: {', '.join(unknown)}")
    if kwargs.get("objects_dir") is not None:
        kwargs["objects_dir"] = str(Path(kwargs["objects_dir"]).resolve())
    for key in ("duration", "offscreen_fraction", "test_fraction", "time_jitter", "camera_jitter", "max_overlap"):
        if key in kwargs:
            kwargs[key] = float(kwargs[key])
    for key in ("size_range", "loudness_range", "snr_range"):
        if key in kwargs:
            kwargs[key] = tuple(float(v) for v in kwargs[key])
    options = SynthOptions(**kwargs)
    classes = resolve_classes(options)
    options.validate(len(classes))
    out = Path(out_dir)
    _check_existing_config(out, options)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_NAME, yaml.safe_dump(options.as_dict(), sort_keys=False))

    plans = plan_dataset(options, classes)
    settings = options.scene()
    videos = out / "videos"
    videos.mkdir(exist_ok=True)
    todo = [p for p in plans if not (videos / f"{p.clip_id}.mp4").exists()]
    todo_ids = {p.clip_id for p in todo}
    # Resumed clips: their audio stats are re-derived (audio is cheap; the video is not re-encoded).
    stats: dict[str, dict[str, float]] = {
        p.clip_id: render_audio(p, classes, settings)[1] for p in plans if p.clip_id not in todo_ids
    }
    if len(todo) < len(plans):
        log.info("%d of %d clips already present in %s; generating the other %d", len(plans) - len(todo), len(plans), videos, len(todo))

    with make_progress() as progress:
        task = progress.add_task("synth clips", total=len(todo))
        if options.workers == 1 or len(todo) <= 1:
            for plan in todo:
                stats[plan.clip_id] = _render_one(plan, classes, settings, str(videos / f"{plan.clip_id}.mp4"))
                progress.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=options.workers, mp_context=get_context("spawn")) as pool:
                futures = {
                    pool.submit(_render_one, plan, classes, settings, str(videos / f"{plan.clip_id}.mp4")): plan.clip_id
                    for plan in todo
                }
                for future in as_completed(futures):
                    stats[futures[future]] = future.result()
                    progress.advance(task)

    paths = _write_outputs(out, options, classes, plans, stats)
    n_test = sum(p.split == "test" for p in plans)
    n_off = sum(not p.onscreen for p in plans)
    return SynthSummary(
        out_dir=out, n_clips=len(plans), n_train=len(plans) - n_test, n_test=n_test, n_onscreen=len(plans) - n_off,
        n_offscreen=n_off, n_generated=len(todo), n_skipped=len(plans) - len(todo), classes=[c.name for c in classes],
        paths=paths,
    )


def _lines(items: Sequence[str]) -> str:
    return "".join(f"{item}\n" for item in items)


def _write_outputs(
    out: Path, options: SynthOptions, classes: Sequence[ObjectClass], plans: Sequence[ClipPlan], stats: dict[str, dict[str, float]]
) -> dict[str, Path]:
    paths = {
        "videos": out / "videos",
        "annotations": out / "annotations.json",
        "test": out / "test.csv",
        "test_videos": out / "test_videos.txt",
        "train": out / "train.txt",
        "timestamps": out / "timestamps.csv",
        "offscreen": out / "offscreen.txt",
        "metadata": out / "metadata.csv",
        "readme": out / "README.md",
        "config": out / CONFIG_NAME,
    }
    atomic_write_json(
        paths["annotations"],
        [{"file": p.clip_id, "class": classes[p.sound_class].name, "bbox": [p.bbox]} for p in plans if p.onscreen],
    )
    atomic_write_text(paths["test"], _lines([p.clip_id for p in plans if p.split == "test" and p.onscreen]))
    atomic_write_text(paths["test_videos"], _lines([p.clip_id for p in plans if p.split == "test"]))
    atomic_write_text(paths["train"], _lines([p.clip_id for p in plans if p.split == "train"]))
    atomic_write_text(paths["offscreen"], _lines([p.clip_id for p in plans if not p.onscreen]))
    atomic_write_text(paths["timestamps"], "id,time\n" + _lines([f"{p.clip_id},{p.time!r}" for p in plans]))

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "split", "class", "onscreen", "n_objects", "classes_shown", "bbox", "loudness_db", "snr_db",
                     "time", "duration", "sound_onset", "sound_offset", "noise", "background"])
    for p in plans:
        writer.writerow([
            p.clip_id, p.split, classes[p.sound_class].name, int(p.onscreen), len(p.objects),
            ";".join(classes[o.class_index].name for o in p.objects),
            " ".join(f"{c:.6f}" for c in p.bbox) if p.bbox else "",
            stats[p.clip_id]["loudness_db"], stats[p.clip_id]["snr_db"], repr(p.time), f"{options.duration:g}",
            f"{p.onset:g}", f"{p.offset:g}", p.noise_colour, p.background,
        ])
    atomic_write_text(paths["metadata"], buffer.getvalue())
    atomic_write_text(paths["readme"], _readme(options, classes, plans))
    return paths


def _readme(options: SynthOptions, classes: Sequence[ObjectClass], plans: Sequence[ClipPlan]) -> str:
    n_test = sum(p.split == "test" for p in plans)
    n_off = sum(not p.onscreen for p in plans)
    per_class = {c.name: 0 for c in classes}
    for p in plans:
        per_class[classes[p.sound_class].name] += 1
    small = sum(1 for p in plans if p.bbox and (p.bbox[2] - p.bbox[0]) * (p.bbox[3] - p.bbox[1]) * 224 * 224 < 32**2)
    option_lines = "\n".join(f"| `{k}` | `{v}` |" for k, v in options.as_dict().items())
    class_lines = "\n".join(
        f"| {c.name} | {per_class[c.name]} | " + (f"{c.shape}, {c.texture}, hue {c.hue:.3f} | {c.family}" if c.is_procedural
                                                  else f"{len(c.images)} cut-out(s) | {len(c.sounds)} sound file(s)") + " |"
        for c in classes
    )
    return f"""# Synthetic audio-visual source localisation benchmark

Generated by `avslkit synth` (avslkit.synth.generate). {len(plans)} clips of {options.duration:g} s at
{options.frame_width}x{options.frame_height}, {options.fps} fps, audio {options.sample_rate} Hz (H.264 yuv420p + AAC mono mp4).
Each clip shows 1-{options.max_objects} objects on a textured background; at most one of them makes the sound.
Off-screen clips (real negatives) play a class that is not drawn; the drawn objects are silent.

## Counts

| | clips |
|---|---|
| total | {len(plans)} |
| train | {len(plans) - n_test} |
| test | {n_test} |
| sound source visible (in annotations.json) | {len(plans) - n_off} |
| off-screen (offscreen.txt) | {n_off} |
| visible sources with box < 32² px on the 224 grid | {small} |

## Files

- `videos/<id>.mp4`, `annotations.json` (VGG-SS format, box of the sounding object at the annotated time),
  `test.csv` (test positives, no header, as vggss_test.csv), `test_videos.txt` (all test-split clips,
  positives and off-screen negatives: preprocess these into the test store), `train.txt`, `timestamps.csv` (`id,time`), `offscreen.txt`, `metadata.csv`.
- Annotated times are frame timestamps: the annotated frame is index round(time x fps).
- The sound is on for at least the 3 s around the annotated time.

## Classes

| class | clips | look | sound |
|---|---|---|---|
{class_lines}

## Options

| option | value |
|---|---|
{option_lines}
"""
