"""Evaluation protocol: vectorised avslkit metrics vs a straightforward per-sample numpy implementation.

Generates N structured 224×224 score maps (a Gaussian blob near a random box, plus noise; some
constant maps), half positives with box ground truth and half negatives of the three types in the
proportions of Extended VGG-SS (379 real / 3594 easy / 1185 hard). Both implementations see the same
maps chunk by chunk (generation time excluded). Reports the per-sample stage (min-max, binarise,
cIoU, confidence, MSE), the aggregate stage (LocAcc, AUC, AP/max-F1 at θ = .5/.75, size buckets,
negative types) and the total, as wall-clock and as CPU time of this process (the CPU figures are
the steadier ones on a shared machine: both implementations are single-threaded numpy), and checks
that every per-sample number and every summary metric is identical.

    python benchmarks/bench_eval.py --n 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from avslkit.evaluation.protocol import summarize
from avslkit.metrics import reference as ref
from avslkit.metrics.samples import SampleStats, default_workers, sample_stats

SIZE = 224


def make_chunk(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Structured maps, ground truth and kinds for n samples."""
    kinds = rng.choice(np.array(["positive", "real", "easy", "hard"], dtype=object), n,
                       p=[0.5, 0.5 * 379 / 5158, 0.5 * 3594 / 5158, 0.5 * 1185 / 5158])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    x1, y1 = rng.uniform(0, 180, n), rng.uniform(0, 180, n)
    w, h = rng.uniform(8, 200, n), rng.uniform(8, 200, n)
    x2, y2 = np.minimum(x1 + w, SIZE), np.minimum(y1 + h, SIZE)
    cx = (x1 + x2) / 2 + rng.normal(0, 25, n)
    cy = (y1 + y2) / 2 + rng.normal(0, 25, n)
    s = rng.uniform(10, 60, n)
    amp = rng.uniform(0.2, 3.0, n)
    maps = np.empty((n, SIZE, SIZE), np.float32)
    gt = np.zeros((n, SIZE, SIZE), np.float32)
    for i in range(n):  # data generation only (not timed)
        maps[i] = amp[i] * np.exp(-((xx - cx[i]) ** 2 + (yy - cy[i]) ** 2) / (2 * s[i] ** 2))
        if kinds[i] == "positive":
            gt[i, int(y1[i]):int(y2[i]), int(x1[i]):int(x2[i])] = 1
    maps += rng.normal(0, 0.05, maps.shape).astype(np.float32)
    maps[rng.random(n) < 0.002] = 1.0  # a few constant maps
    return maps, gt, kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--chunk", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None,
                    help="threads of the vectorised per-sample stage (default: every usable core)")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    fast_parts, slow_rows, all_kinds = [], [], []
    wall = {"fast": 0.0, "slow": 0.0}
    cpu = {"fast": 0.0, "slow": 0.0}

    def timed(key: str, fn):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall[key] += time.perf_counter() - w0
        cpu[key] += time.process_time() - c0
        return out

    # One-time cost of the compiled kernel (numba: compile, or load from its on-disk cache), reported
    # separately and excluded from the per-map figures.
    w0 = time.perf_counter()
    sample_stats(*make_chunk(np.random.default_rng(args.seed + 1), 2)[:2], "relative", workers=args.workers)
    warmup_s = time.perf_counter() - w0

    load_before = os.getloadavg()[0]
    for start in range(0, args.n, args.chunk):
        maps, gt, kinds = make_chunk(rng, min(args.chunk, args.n - start))
        all_kinds.extend(kinds)
        fast_parts.append(timed("fast", lambda: sample_stats(maps, gt, "relative", workers=args.workers)))
        slow_rows.extend(timed("slow", lambda: [ref.sample_stats(m, g, "relative") for m, g in zip(maps, gt)]))
    fast = SampleStats.concat(fast_parts)
    slow = {k: np.array([r[k] for r in slow_rows]) for k in ("ciou", "conf", "area", "mse")}
    kinds = np.array(all_kinds, dtype=object)
    stage_wall, stage_cpu = dict(wall), dict(cpu)

    wall = {"fast": 0.0, "slow": 0.0}
    cpu = {"fast": 0.0, "slow": 0.0}
    m_fast = timed("fast", lambda: summarize(fast, kinds))
    m_slow = timed("slow", lambda: ref.summarize_reference(list(slow["ciou"]), list(slow["conf"]), list(slow["area"]),
                                                           list(slow["mse"]), list(kinds)))
    load_after = os.getloadavg()[0]

    identical_samples = {f: bool(np.array_equal(getattr(fast, f), slow[k]))
                         for f, k in (("ciou", "ciou"), ("confidence", "conf"), ("area", "area"), ("mse", "mse"))}
    identical_metrics = m_fast == m_slow

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, numpy {np.__version__}; "
          f"load average {load_before:.1f} before, {load_after:.1f} after")
    workers = args.workers or default_workers()
    print(f"vectorised stage: {workers} thread(s); one-time kernel compile/cache load {warmup_s:.2f} s (not in the figures)")
    print(f"N = {args.n} maps at {SIZE}x{SIZE} ({int((kinds == 'positive').sum())} positives), chunk {args.chunk}")
    print(f"{'stage':<28}{'vectorised s':>14}{'per-sample s':>14}{'speed-up':>10}   (wall | CPU)")
    rows = (("per-sample stats", stage_wall, stage_cpu), ("aggregates (AP/F1/AUC/...)", wall, cpu),
            ("total", {k: stage_wall[k] + wall[k] for k in wall}, {k: stage_cpu[k] + cpu[k] for k in cpu}))
    for name, w, c in rows:
        print(f"{name:<28}{w['fast']:>7.2f} |{c['fast']:>6.2f}{w['slow']:>7.2f} |{c['slow']:>6.2f}"
              f"{w['slow'] / w['fast']:>6.1f}x |{c['slow'] / max(c['fast'], 1e-9):>5.1f}x")
    print(f"per-sample numbers bit-identical: {identical_samples}")
    print(f"summary metrics identical (every key, MSE included): {identical_metrics}")
    print(json.dumps({k: m_fast[k] for k in ("locacc", "auc", "ap", "max_f1", "mse")}))


if __name__ == "__main__":
    main()
