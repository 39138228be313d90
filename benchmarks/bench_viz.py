"""Visualisation throughput: overlays, the HTML report, and `localize` with full-size networks.

* overlay: `render_sample` (bicubic upsampling 7×7 → 224, min-max, JET, GT box, prediction contour,
  caption) per 224×224 sample;
* localize: `Localizer.maps` per frame with a freshly initialised SLAVC task (ResNet-18 visual and
  audio, 224×224 frames, 3 s spectrogram) plus the OGL ResNet-18, batch `--batch`;
* heatmap video: `localize_video` end to end (decode, maps, overlays, H.264/AAC mux) on a
  synthetic clip, one map every `--every` s.

    python benchmarks/bench_viz.py --overlays 200 --frames 16 --video-seconds 4 --every 0.25
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def bench_overlays(n: int) -> float:
    from avslkit.viz.overlay import render_sample

    rng = np.random.default_rng(0)
    image = (rng.random((256, 341, 3)) * 255).astype(np.uint8)
    maps = rng.standard_normal((n, 7, 7)).astype(np.float32)
    boxes = np.array([[0.2, 0.3, 0.6, 0.8]])
    render_sample(image, maps[0], boxes=boxes)  # warm-up (colormap, fonts)
    t = time.perf_counter()
    for m in maps:
        render_sample(image, m, boxes=boxes, ciou=0.5, confidence=1.0)
    return (time.perf_counter() - t) / n


def full_size_localizer():
    from avslkit.config import load_config
    from avslkit.methods.base import build_task
    from avslkit.viz.localize import Localizer, load_ogl

    cfg = load_config(["train", "methods/slavc"], overrides=["model.visual_weights=none", "device=cpu"])
    cfg["method"] = "slavc"
    cfg["audio"]["sample_rate"] = 16000
    task = build_task(cfg).eval()
    return Localizer(task, load_ogl("none"), "slavc")


def bench_localize(localizer, frames: int, batch: int) -> float:
    rng = np.random.default_rng(0)
    images = [(rng.random((256, 341, 3)) * 255).astype(np.uint8) for _ in range(batch)]
    audio = list((rng.standard_normal((batch, 48000)) * 3000).astype(np.int16))
    localizer.maps(images[:1], audio[:1])  # warm-up
    t = time.perf_counter()
    done = 0
    while done < frames:
        localizer.maps(images, audio)
        done += batch
    return (time.perf_counter() - t) / done


def bench_video(localizer, seconds: float, every: float) -> tuple[float, int]:
    from avslkit.synth import generate
    from avslkit.viz.localize import localize_video

    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, n_clips=1, size=128, duration=seconds, fps=15)
        video = next((Path(tmp) / "videos").glob("*.mp4"))
        t = time.perf_counter()
        res = localize_video(localizer, video, Path(tmp) / "out.mp4", every)
        return time.perf_counter() - t, len(res["times"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--overlays", type=int, default=200)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--video-seconds", type=float, default=4.0)
    ap.add_argument("--every", type=float, default=0.25)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    per = bench_overlays(args.overlays)
    print(f"overlay (render_sample, 224x224): {1000 * per:.2f} ms/sample ({1 / per:.0f} samples/s), n={args.overlays}")
    loc = full_size_localizer()
    per = bench_localize(loc, args.frames, args.batch)
    print(f"localize maps (SLAVC ResNet-18 x2 + OGL, 224, 3 s audio, batch {args.batch}): {1000 * per:.1f} ms/frame ({1 / per:.2f} frames/s)")
    wall, n = bench_video(loc, args.video_seconds, args.every)
    print(f"heatmap video ({args.video_seconds:g} s clip, every {args.every:g} s = {n} maps, incl. decode + mux): "
          f"{wall:.2f} s total, {1000 * wall / n:.0f} ms/map")


if __name__ == "__main__":
    main()
