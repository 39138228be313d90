"""Evaluation protocol: vectorised avslkit metrics vs a straightforward per-sample numpy implementation.

Generates N structured 224×224 score maps (a Gaussian blob near a random box, plus noise; some
constant maps), half positives with box ground truth and half negatives of the three types in the
proportions of Extended VGG-SS (379 real / 3594 easy / 1185 hard). Both implementations see the same
maps chunk by chunk (generation time excluded). Reports the per-sample stage (min-max, binarise,
cIoU, confidence, MSE), the aggregate stage (LocAcc, AUC, AP/max-F1 at θ = .5/.75, size buckets,
negative types) and the total, and checks the numbers are identical.

    python benchmarks/bench_eval.py --n 10000
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from avslkit.evaluation.protocol import summarize
from avslkit.metrics import reference as ref
from avslkit.metrics.samples import SampleStats, sample_stats

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
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    fast_parts, slow_rows, all_kinds = [], [], []
    t_fast = t_slow = 0.0
    for start in range(0, args.n, args.chunk):
        maps, gt, kinds = make_chunk(rng, min(args.chunk, args.n - start))
        all_kinds.extend(kinds)
        t0 = time.perf_counter()
        fast_parts.append(sample_stats(maps, gt, "relative"))
        t_fast += time.perf_counter() - t0
        t0 = time.perf_counter()
        slow_rows.extend(ref.sample_stats(maps[i], gt[i], "relative") for i in range(len(maps)))
        t_slow += time.perf_counter() - t0
    fast = SampleStats.concat(fast_parts)
    slow = {k: np.array([r[k] for r in slow_rows]) for k in ("ciou", "conf", "area", "mse")}
    kinds = np.array(all_kinds, dtype=object)

    t0 = time.perf_counter()
    m_fast = summarize(fast, kinds)
    a_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    m_slow = ref.summarize_reference(list(slow["ciou"]), list(slow["conf"]), list(slow["area"]), list(slow["mse"]),
                                     list(kinds))
    a_slow = time.perf_counter() - t0

    identical_samples = (np.array_equal(fast.ciou, slow["ciou"]) and np.array_equal(fast.confidence, slow["conf"])
                         and np.array_equal(fast.area, slow["area"]))
    mse_rel = float(np.max(np.abs(fast.mse - slow["mse"]) / np.maximum(np.abs(slow["mse"]), 1e-300)))
    mse_f, mse_s = m_fast.pop("mse"), m_slow.pop("mse")
    identical_metrics = m_fast == m_slow

    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, numpy {np.__version__}")
    print(f"N = {args.n} maps at {SIZE}x{SIZE} ({int((kinds == 'positive').sum())} positives), chunk {args.chunk}")
    print(f"{'stage':<28}{'vectorised s':>14}{'per-sample s':>14}{'speed-up':>10}")
    for name, f, s in (("per-sample stats", t_fast, t_slow), ("aggregates (AP/F1/AUC/...)", a_fast, a_slow),
                       ("total", t_fast + a_fast, t_slow + a_slow)):
        print(f"{name:<28}{f:>14.3f}{s:>14.3f}{s / f:>9.1f}x")
    print(f"per-sample cIoU/confidence/area bit-identical: {identical_samples}; MSE max relative diff {mse_rel:.1e}")
    print(f"summary metrics identical (all keys except MSE): {identical_metrics}; MSE {mse_f!r} vs {mse_s!r}")
    print(json.dumps({k: m_fast[k] for k in ("locacc", "auc", "ap", "max_f1")}))


if __name__ == "__main__":
    main()
