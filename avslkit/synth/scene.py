"""One clip: its plan (what is where and when, what sounds), then its frames and its audio.

Planning is cheap and done for every clip in the main process, so the annotation files can be
written (and resumed runs re-derived) without rendering; rendering is deterministic given the plan.
Annotated times are frame timestamps (k / fps), so the annotated frame is frame k whichever way a
reader maps a time to a frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from avslkit.synth import sounds
from avslkit.synth.appearance import BACKGROUNDS, alpha_box, render_background, render_sprite
from avslkit.synth.classes import ObjectClass, read_rgba, read_wav_mono


@dataclass(frozen=True)
class SceneSettings:
    """The clip-level options a plan needs (a subset of SynthOptions)."""

    width: int
    height: int
    duration: float
    fps: int
    sample_rate: int
    size_range: tuple[float, float]
    max_objects: int
    loudness_range: tuple[float, float]
    snr_range: tuple[float, float]
    time_jitter: float
    camera_jitter: float
    max_overlap: float

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.duration * self.fps)))

    @property
    def n_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))


@dataclass
class ObjectPlan:
    """One drawn object: sprite size, trajectory (top-left, pixels) and surface details."""

    class_index: int
    sounding: bool
    width: int
    height: int
    start: tuple[float, float]
    end: tuple[float, float]
    bob_amplitude: float
    bob_frequency: float
    bob_phase: float
    texture_phase: float
    image_index: int = 0
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # tight alpha box inside the sprite


@dataclass
class ClipPlan:
    """Everything needed to render one clip and to write its annotations."""

    clip_id: str
    index: int
    split: str
    sound_class: int
    onscreen: bool
    objects: list[ObjectPlan]  # in drawing order (last on top)
    background: str
    background_seed: int
    pan: tuple[float, float]
    shake_phases: tuple[float, float, float, float]
    time: float
    frame_index: int
    loudness_db: float
    snr_db: float
    noise_colour: str
    onset: float
    offset: float
    audio_seed: int
    pitch_jitter: float
    sound_index: int = 0
    sound_start: float = 0.0
    bbox: list[float] | None = field(default=None)  # normalised [x1, y1, x2, y2] at `time`


# ---------------------------------------------------------------------------------------------
# Sprites


@functools.lru_cache(maxsize=64)
def _cutout(path: str) -> np.ndarray:
    return read_rgba(path)


def sprite_size(cls: ObjectClass, obj_side: int, aspect: float, image_index: int) -> tuple[int, int]:
    """Sprite (width, height) with its longest side `obj_side` (cut-outs keep their aspect ratio)."""
    if not cls.is_procedural:
        h, w = _cutout(cls.images[image_index]).shape[:2]
        aspect = w / h
    if aspect >= 1:
        return obj_side, max(2, int(round(obj_side / aspect)))
    return max(2, int(round(obj_side * aspect))), obj_side


def make_sprite(cls: ObjectClass, obj: ObjectPlan) -> tuple[np.ndarray, np.ndarray]:
    """(premultiplied RGB float32 in [0, 1], alpha float32) for one object."""
    if cls.is_procedural:
        return render_sprite(cls.shape, cls.texture, cls.hue, obj.width, obj.height, cls.texture_angle, obj.texture_phase)
    from PIL import Image

    rgba = Image.fromarray(_cutout(cls.images[obj.image_index])).resize((obj.width, obj.height), Image.LANCZOS)
    arr = np.asarray(rgba).astype(np.float32) / 255.0
    alpha = arr[..., 3]
    return arr[..., :3] * alpha[..., None], alpha


# ---------------------------------------------------------------------------------------------
# Motion


def _shake(plan: ClipPlan, settings: SceneSettings) -> np.ndarray:
    """Camera shake offsets (n_frames x 2, pixels): two slow sinusoids per axis."""
    t = np.arange(settings.n_frames) / settings.fps
    amplitude = settings.camera_jitter * min(settings.width, settings.height)
    p = plan.shake_phases
    dx = amplitude * (0.7 * np.sin(2 * np.pi * 0.9 * t + p[0]) + 0.3 * np.sin(2 * np.pi * 2.3 * t + p[1]))
    dy = amplitude * (0.7 * np.sin(2 * np.pi * 0.7 * t + p[2]) + 0.3 * np.sin(2 * np.pi * 1.9 * t + p[3]))
    return np.stack([dx, dy], axis=1)


def object_positions(obj: ObjectPlan, plan: ClipPlan, settings: SceneSettings) -> np.ndarray:
    """Integer top-left corners (n_frames x 2: x, y) of a sprite, kept inside the frame."""
    n = settings.n_frames
    t = np.arange(n) / settings.fps
    progress = (t / settings.duration)[:, None]
    start, end = np.asarray(obj.start), np.asarray(obj.end)
    xy = start + (end - start) * progress
    xy[:, 1] += obj.bob_amplitude * np.sin(2 * np.pi * obj.bob_frequency * t + obj.bob_phase)
    xy += _shake(plan, settings)
    xy = np.rint(xy).astype(np.int64)
    xy[:, 0] = np.clip(xy[:, 0], 0, settings.width - obj.width)
    xy[:, 1] = np.clip(xy[:, 1], 0, settings.height - obj.height)
    return xy


def _margin(settings: SceneSettings) -> int:
    side = min(settings.width, settings.height)
    return int(math.ceil(0.05 * side + settings.camera_jitter * side)) + 1


def background_offsets(plan: ClipPlan, settings: SceneSettings) -> np.ndarray:
    """Crop offsets (n_frames x 2: x, y) into the background canvas: slow pan plus the camera shake."""
    margin = _margin(settings)
    t = np.arange(settings.n_frames) / settings.fps
    pan = np.asarray(plan.pan)[None, :] * (t / settings.duration - 0.5)[:, None]
    xy = np.rint(margin + pan + _shake(plan, settings)).astype(np.int64)
    return np.clip(xy, 0, 2 * margin)


def _box_at(obj: ObjectPlan, xy: np.ndarray) -> np.ndarray:
    """Absolute pixel boxes (n x 4) of an object's tight alpha box at the given positions."""
    x1, y1, x2, y2 = obj.box
    return np.stack([xy[:, 0] + x1, xy[:, 1] + y1, xy[:, 0] + x2, xy[:, 1] + y2], axis=1)


def _overlap_fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection area over the area of a (per row)."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    return iw * ih / np.maximum(area, 1)


# ---------------------------------------------------------------------------------------------
# Planning


def _annotated_time(rng: np.random.Generator, settings: SceneSettings) -> tuple[float, int]:
    """The annotated time, snapped to a frame's timestamp so "frame shown at t" and "first frame at or
    after t" agree (readers differ in which they use)."""
    t = settings.duration / 2 + (rng.uniform(-settings.time_jitter, settings.time_jitter) if settings.time_jitter > 0 else 0.0)
    frame_index = int(np.clip(round(t * settings.fps), 0, settings.n_frames - 1))
    return round(frame_index / settings.fps, 6), frame_index


def _new_object(
    rng: np.random.Generator, class_index: int, cls: ObjectClass, sounding: bool, settings: SceneSettings
) -> ObjectPlan:
    lo, hi = settings.size_range
    side = min(settings.width, settings.height)
    fraction = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # log-uniform: small objects are common
    obj_side = max(4, int(round(fraction * side)))
    image_index = int(rng.integers(len(cls.images))) if cls.images else 0
    w, h = sprite_size(cls, obj_side, float(np.exp(rng.uniform(np.log(0.75), np.log(1.33)))), image_index)
    w, h = min(w, settings.width), min(h, settings.height)
    max_x, max_y = settings.width - w, settings.height - h
    start = np.array([rng.uniform(0, max_x), rng.uniform(0, max_y)])
    drift = rng.normal(0, 0.12 * side, size=2)
    end = np.clip(start + drift, [0, 0], [max_x, max_y])
    obj = ObjectPlan(
        class_index=class_index,
        sounding=sounding,
        width=w,
        height=h,
        start=(float(start[0]), float(start[1])),
        end=(float(end[0]), float(end[1])),
        bob_amplitude=float(rng.uniform(0, 0.03 * side)),
        bob_frequency=float(rng.uniform(0.2, 1.0)),
        bob_phase=float(rng.uniform(0, 2 * np.pi)),
        texture_phase=float(rng.uniform(0, 2 * np.pi)),
        image_index=image_index,
    )
    _, alpha = make_sprite(cls, obj)
    obj.box = alpha_box(alpha)
    return obj


def plan_clip(
    clip_id: str,
    index: int,
    split: str,
    sound_class: int,
    onscreen: bool,
    classes: Sequence[ObjectClass],
    settings: SceneSettings,
    seed: int,
) -> ClipPlan:
    """Lay out one clip deterministically from (seed, index)."""
    rng = np.random.default_rng([seed, 1, index])
    others = [c for c in range(len(classes)) if c != sound_class]
    time, frame_index = _annotated_time(rng, settings)
    if onscreen:
        n_distractors = int(rng.integers(0, min(settings.max_objects - 1, len(others)) + 1))
    else:
        n_distractors = int(rng.integers(1, min(settings.max_objects, len(others)) + 1))
    distractor_classes = [int(c) for c in rng.permutation(others)[:n_distractors]]

    plan = ClipPlan(
        clip_id=clip_id, index=index, split=split, sound_class=sound_class, onscreen=onscreen, objects=[],
        background=list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))],
        background_seed=int(rng.integers(2**31)),
        pan=(float(rng.normal(0, 0.02)) * settings.width, float(rng.normal(0, 0.02)) * settings.height),
        shake_phases=tuple(float(x) for x in rng.uniform(0, 2 * np.pi, size=4)),  # type: ignore[arg-type]
        time=time, frame_index=frame_index,
        loudness_db=float(rng.uniform(*settings.loudness_range)),
        snr_db=float(rng.uniform(*settings.snr_range)),
        noise_colour=list(sounds.NOISE_COLOURS)[int(rng.integers(len(sounds.NOISE_COLOURS)))],
        onset=0.0, offset=settings.duration,
        audio_seed=int(rng.integers(2**31)),
        pitch_jitter=float(rng.uniform(-0.03, 0.03)),
    )
    # The sound is on for at least the 3 s around the annotated time; it may start late / stop early.
    if rng.random() < 0.5:
        plan.onset = round(float(rng.uniform(0, max(0.0, time - 1.5))), 3)
    if rng.random() < 0.5:
        plan.offset = round(float(rng.uniform(min(settings.duration, time + 1.5), settings.duration)), 3)
    sound_cls = classes[sound_class]
    if sound_cls.sounds:
        plan.sound_index = int(rng.integers(len(sound_cls.sounds)))
        plan.sound_start = float(rng.uniform(0, 1))  # fraction into the recording

    below: list[ObjectPlan] = []
    above: list[ObjectPlan] = []
    sounding_obj = None
    if onscreen:
        sounding_obj = _new_object(rng, sound_class, sound_cls, True, settings)
        sounding_boxes = _box_at(sounding_obj, object_positions(sounding_obj, plan, settings))
    for class_index in distractor_classes:
        obj = _new_object(rng, class_index, classes[class_index], False, settings)
        if sounding_obj is None:
            above.append(obj)
            continue
        # Keep the sounding object mostly visible: re-draw the trajectory while it covers too much.
        for _ in range(30):
            covered = _overlap_fraction(sounding_boxes, _box_at(obj, object_positions(obj, plan, settings))).max()
            if covered <= settings.max_overlap:
                break
            obj = _new_object(rng, class_index, classes[class_index], False, settings)
        # A distractor that still covers too much goes beneath; the others go above or below at random.
        (above if covered <= settings.max_overlap and rng.random() < 0.5 else below).append(obj)
    plan.objects = below + ([sounding_obj] if sounding_obj is not None else []) + above
    if sounding_obj is not None:
        xy = object_positions(sounding_obj, plan, settings)[frame_index]
        x1, y1, x2, y2 = sounding_obj.box
        box = [(xy[0] + x1) / settings.width, (xy[1] + y1) / settings.height,
               (xy[0] + x2) / settings.width, (xy[1] + y2) / settings.height]
        plan.bbox = [round(float(c), 6) for c in box]
    return plan


# ---------------------------------------------------------------------------------------------
# Rendering


def render_frames(plan: ClipPlan, classes: Sequence[ObjectClass], settings: SceneSettings) -> np.ndarray:
    """All frames of a clip, uint8 (n_frames, height, width, 3). Sprites are drawn once, then pasted."""
    margin = _margin(settings)
    canvas = render_background(
        plan.background, np.random.default_rng(plan.background_seed), settings.height + 2 * margin, settings.width + 2 * margin
    ).astype(np.float32)
    bg_xy = background_offsets(plan, settings)
    layers = []
    for obj in plan.objects:
        premultiplied, alpha = make_sprite(classes[obj.class_index], obj)
        layers.append((premultiplied * 255.0, 1.0 - alpha[..., None], object_positions(obj, plan, settings), obj))
    frames = np.empty((settings.n_frames, settings.height, settings.width, 3), dtype=np.uint8)
    for k in range(settings.n_frames):
        ox, oy = bg_xy[k]
        frame = canvas[oy : oy + settings.height, ox : ox + settings.width].copy()
        for colour, transparency, xy, obj in layers:
            x, y = xy[k]
            region = frame[y : y + obj.height, x : x + obj.width]
            region *= transparency
            region += colour
        np.rint(frame, out=frame)
        frames[k] = np.clip(frame, 0, 255)
    return frames


def _source_waveform(plan: ClipPlan, cls: ObjectClass, settings: SceneSettings, rng: np.random.Generator) -> np.ndarray:
    n, sr = settings.n_samples, settings.sample_rate
    if cls.is_procedural:
        params = sounds.transpose(cls.params, 1 + plan.pitch_jitter, 1.0, sr)
        return sounds.synthesize(cls.family, params, n, sr, rng)
    data, rate = read_wav_mono(cls.sounds[plan.sound_index])
    data = sounds.resample(data, rate, sr)
    start = int(plan.sound_start * len(data))
    reps = int(math.ceil((n + start) / len(data)))
    return np.tile(data, reps)[start : start + n].astype(np.float32)


def render_audio(plan: ClipPlan, classes: Sequence[ObjectClass], settings: SceneSettings) -> tuple[np.ndarray, dict[str, float]]:
    """The clip's mono soundtrack in [-1, 1] and its measured loudness / SNR (dB).

    Loudness is the source's RMS (dBFS) while it is on; ambient noise sits `snr_db` below it. If the
    mix would clip, both are scaled down together (the SNR is kept, the loudness reported drops).
    """
    n, sr = settings.n_samples, settings.sample_rate
    rng = np.random.default_rng(plan.audio_seed)
    source = _source_waveform(plan, classes[plan.sound_class], settings, rng)
    envelope = sounds.fade_envelope(n, sr, plan.onset, plan.offset)
    active = envelope > 0.5
    source = source * envelope
    rms = float(np.sqrt(np.mean(source[active] ** 2))) if active.any() else 1.0
    gain = 10 ** (plan.loudness_db / 20) / max(rms, 1e-9)
    noise = sounds.ambient_noise(plan.noise_colour, n, sr, rng) * 10 ** ((plan.loudness_db - plan.snr_db) / 20)
    mix = source * gain + noise
    peak = float(np.abs(mix).max())
    scale = min(1.0, 0.98 / peak) if peak > 0 else 1.0
    mix = (mix * scale).astype(np.float32)
    return mix, {"loudness_db": round(plan.loudness_db + 20 * math.log10(scale), 2), "snr_db": round(plan.snr_db, 2)}
