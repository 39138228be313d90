"""Benchmark `avslkit synth`: seconds per 10 s 224x224 clip, split into planning, frame rendering, audio
rendering and H.264/AAC encoding, and the end-to-end rate with 1 and N workers (same clips, one run).

Usage: python benchmarks/bench_synth.py --clips 20 --workers 2
Output goes to a temporary folder (removed afterwards).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from avslkit.synth import SynthOptions, generate, plan_dataset, render_audio, render_frames, resolve_classes
from avslkit.synth.encode import write_mp4


def stage_times(options: SynthOptions, n: int, tmp: Path) -> dict[str, float]:
    """Median seconds per clip of each stage, single process."""
    classes = resolve_classes(options)
    settings = options.scene()
    t0 = time.perf_counter()
    plans = plan_dataset(options, classes)
    per_plan = (time.perf_counter() - t0) / len(plans)
    frames_s, audio_s, encode_s = [], [], []
    for plan in plans[:n]:
        t0 = time.perf_counter()
        frames = render_frames(plan, classes, settings)
        t1 = time.perf_counter()
        audio, _ = render_audio(plan, classes, settings)
        t2 = time.perf_counter()
        write_mp4(tmp / "stage.mp4", frames, audio, settings.fps, settings.sample_rate)
        t3 = time.perf_counter()
        frames_s.append(t1 - t0)
        audio_s.append(t2 - t1)
        encode_s.append(t3 - t2)
    return {"plan": per_plan, "frames": statistics.median(frames_s), "audio": statistics.median(audio_s),
            "encode": statistics.median(encode_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    options = dict(n_clips=args.clips, n_classes=10, size=args.size, duration=args.duration, fps=25, seed=0)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"clips: {args.clips} x {args.duration:g} s at {args.size}x{args.size}, 25 fps, 16 kHz AAC")
    tmp = Path(tempfile.mkdtemp(prefix="avslkit_bench_synth_"))
    try:
        stages = stage_times(SynthOptions(**options), min(5, args.clips), tmp)
        print("per clip (median of 5, 1 process): " + ", ".join(f"{k} {v:.3f} s" for k, v in stages.items()))
        for workers in sorted({1, args.workers}):
            out = tmp / f"w{workers}"
            t0 = time.perf_counter()
            summary = generate(out, **options, workers=workers)
            elapsed = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in (out / "videos").glob("*.mp4")) / summary.n_clips
            print(f"workers={workers}: {elapsed:.1f} s total, {elapsed / summary.n_clips:.2f} s/clip, "
                  f"{size / 1024:.0f} KiB/clip, 200 clips ~ {200 * elapsed / summary.n_clips / 60:.1f} min")
        t0 = time.perf_counter()
        resumed = generate(tmp / "w1", **options, workers=1)
        print(f"re-run (all {resumed.n_skipped} clips present): {time.perf_counter() - t0:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
