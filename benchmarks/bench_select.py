"""Exact order statistics of a score map: histogram (radix) selection vs numpy's introselect.

The evaluation needs, per 224×224 float32 map, sorted(x)[n/2] (the relative threshold) and the
k = n/4 largest values (their minimum and their sum: the confidence). `metrics.samples` gets them
with numpy's `partition` (introselect, AVX-512 on this machine): copy, partition at the median,
partition the upper half at the top-k boundary.

The radix idea (issue #13): map the float32 bits to order-preserving uint32 keys; one pass finds
min/max, one pass counts the keys in 4096 buckets of the key range (monotone bucket index, so
ranks are kept), a prefix sum locates the buckets holding both ranks, and a last pass gathers only
those two buckets' values (plus the sum of everything above the top-k bucket), where the exact
element is selected. The kernel is the evaluator's own (`avslkit.metrics._kernels.order_stats`);
both methods are checked to agree exactly on every map.

    python benchmarks/bench_select.py --maps 2000
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from avslkit.metrics._kernels import ORDER_BUCKET_BITS, order_stats

def numpy_stats(flat: np.ndarray, k_med: int, k_top: int) -> tuple[np.ndarray, ...]:
    """What `metrics.samples._block_stats` does for a block of maps."""
    part = flat.copy()
    part.partition(k_med, axis=1)
    lo = part[:, :k_med].min(axis=1)
    x_med = part[:, k_med].copy()
    upper = part[:, k_med:]
    upper.partition(upper.shape[1] - k_top, axis=1)
    top = upper[:, upper.shape[1] - k_top:]
    return lo, top.max(axis=1), x_med, top.min(axis=1), top.sum(axis=1, dtype=np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=2000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--block", type=int, default=250)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.size * args.size
    k_med, k_top = n // 2, -(-n // 4)
    yy, xx = np.mgrid[0:args.size, 0:args.size].astype(np.float32)
    maps = np.empty((args.maps, n), np.float32)
    for i in range(args.maps):  # structured maps as in bench_eval, plus noise; a few ties-heavy ones
        cx, cy, s = rng.uniform(0, args.size, 3)
        m = rng.uniform(0.2, 3) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (s / 4 + 8) ** 2))
        m += rng.normal(0, 0.05, m.shape)
        if i % 50 == 0:
            m = np.round(m, 1)
        maps[i] = m.reshape(-1)
    keys = np.empty(n, np.uint32)
    counts = np.empty(1 << ORDER_BUCKET_BITS, np.int64)
    buf_med, buf_top = np.empty(n, np.float32), np.empty(n, np.float32)
    out_radix = np.empty((args.maps, 5), np.float64)
    order_stats(maps[:1], k_med, k_top, out_radix[:1], keys, counts, buf_med, buf_top)  # compile / load the cache
    c0, w0 = time.process_time(), time.perf_counter()
    assert order_stats(maps, k_med, k_top, out_radix, keys, counts, buf_med, buf_top)  # the evaluator's kernel
    radix_cpu, radix_wall = time.process_time() - c0, time.perf_counter() - w0
    parts = []
    c0, w0 = time.process_time(), time.perf_counter()
    for a in range(0, args.maps, args.block):
        parts.append(np.stack(numpy_stats(maps[a:a + args.block], k_med, k_top), axis=1))
    np_cpu, np_wall = time.process_time() - c0, time.perf_counter() - w0
    out_np = np.concatenate(parts)
    same_order_stats = bool(np.array_equal(out_radix[:, :4], out_np[:, :4]))
    sum_rel = float(np.max(np.abs(out_radix[:, 4] - out_np[:, 4]) / np.abs(out_np[:, 4])))
    print(f"{args.maps} maps of {args.size}x{args.size}; load average {os.getloadavg()[0]:.1f}; 1 thread each")
    print(f"  numpy introselect (copy + 2 partitions + min/max/sum): {1e6 * np_cpu / args.maps:6.1f} µs/map CPU "
          f"({1e6 * np_wall / args.maps:.1f} wall)")
    print(f"  radix/histogram selection (numba):                     {1e6 * radix_cpu / args.maps:6.1f} µs/map CPU "
          f"({1e6 * radix_wall / args.maps:.1f} wall)")
    print(f"  ratio numpy / radix (CPU): {np_cpu / radix_cpu:.2f}x")
    print(f"  min, max, median, t_k identical: {same_order_stats}; top-k sums max relative difference {sum_rel:.1e} "
          "(summation order; the evaluator re-sums sorted where the order matters)")


if __name__ == "__main__":
    main()
