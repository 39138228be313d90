"""Per-sample statistics of a batch of score maps: the only step that touches pixels.

Maps are processed in small blocks (no per-sample Python loop), spread over threads, and every
number is bit-identical to the per-sample reference (`metrics.reference`):

* Order statistics without sorting, by histogram (radix) selection (`metrics._kernels.order_stats`):
  order-preserving integer keys of the float32 bits are counted in 4096 buckets, the buckets of the
  upper median and of the top-25 % boundary are found by a prefix sum, and only their values are
  selected exactly (blocks holding a NaN use numpy's introselect instead). Min-max
  normalisation is monotone, so sorted(P)[k] = normalise(sorted(x)[k]) exactly; the threshold is
  normalised once per map and compared with the normalised map as the reference does.
* Confidence = mean of the top k values in float64. The reference sums them sorted (numpy's
  pairwise summation). Every float32 value v ≥ t is a multiple of 2^(e(t) − 24), so when
  e(max) − e(t) + 24 + ceil(log2 k) ≤ 53 every partial sum, in any order, is exact in float64 and
  the unsorted sum is the same number. Rows that do not meet this (t ≤ 0, or a top range wider
  than about 2^15) have their top values sorted as the reference does.
* One compiled pass per map (`metrics._kernels.map_sums`, numba) computes the min-max map P, the
  binary map, the cIoU sums (multiples of 0.5 in [0, 1]: exact in any order) and (P − G)² in
  float64, summed in numpy's pairwise order, which is the order of the reference's `np.mean`.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from avslkit.metrics._kernels import ORDER_BUCKET_BITS, map_sums, order_stats
from avslkit.metrics.maps import CONFIDENCE_TOP_FRACTION, parse_binarize
from avslkit.metrics.registry import stored_statistics

#: The statistics of the fused pass (`_block_stats`); other registered statistics are computed by their function.
KERNEL_STATISTICS = ("ciou", "confidence", "area", "mse")
#: Precision of the confidence (mean of the top 25 %): float64 (avslkit) or float32 (SLAVC test.py).
CONFIDENCE_DTYPES = ("float64", "float32")


class SampleStats:
    """Per-sample arrays (length N), one per stored statistic of `metrics.registry` (built-in: cIoU,
    confidence, ground-truth area, MSE), read as attributes (`stats.ciou`).

    Built positionally in registry order or by name; every stored statistic must be given.
    """

    def __init__(self, *arrays: np.ndarray, **named: np.ndarray):
        names = [s.name for s in stored_statistics()]
        if len(arrays) > len(names):
            raise TypeError(f"SampleStats takes {len(names)} arrays ({', '.join(names)}), got {len(arrays)}")
        values = dict(zip(names, arrays))
        twice = sorted(set(values) & set(named))
        unknown = sorted(set(named) - set(names))
        missing = [n for n in names if n not in values and n not in named]
        if twice or unknown or missing:
            raise TypeError(f"SampleStats: given twice {twice}, unknown {unknown}, missing {missing} "
                            f"(the registered statistics are {', '.join(names)})")
        values.update(named)
        self._arrays = {n: values[n] for n in names}

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("_arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(f"SampleStats has no statistic {name!r} (registered: {', '.join(arrays)})")

    def __len__(self) -> int:
        return len(next(iter(self._arrays.values()))) if self._arrays else 0

    def __repr__(self) -> str:
        return f"SampleStats(n={len(self)}, statistics={list(self._arrays)})"

    def as_dict(self) -> dict[str, np.ndarray]:
        """The arrays by statistic name, in registry order."""
        return dict(self._arrays)

    @staticmethod
    def concat(parts: list["SampleStats"]) -> "SampleStats":
        names = [s.name for s in stored_statistics()]
        if not parts:
            return SampleStats(**{n: np.zeros(0) for n in names})
        return SampleStats(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})

    def take(self, index: np.ndarray) -> "SampleStats":
        return SampleStats(**{n: a[index] for n, a in self._arrays.items()})


BLOCK = 4  # maps per vectorised step: the block's work arrays (~2 MB at 224×224) stay in cache


def default_workers() -> int:
    """Threads for `sample_stats`: the cores this process may use (the heavy calls release the GIL)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def sample_stats(maps_abs: np.ndarray, gt: np.ndarray, binarize_spec: str = "relative",
                 top_fraction: float = CONFIDENCE_TOP_FRACTION, block: int = BLOCK,
                 workers: int | None = None, confidence_dtype: str = "float64") -> SampleStats:
    """cIoU, confidence (mean of the top 25% of the absolute map), GT area and MSE for N maps, plus
    every other per-sample statistic registered in `metrics.registry` (computed from the same maps).

    `maps_abs` (N, H, W) are absolute score maps already at the ground-truth resolution; `gt` the
    (N, H, W) ground-truth maps (zeros for negatives; values multiples of 0.5 in [0, 1]). Work is
    vectorised over blocks of `block` samples, spread over `workers` threads (numpy releases the
    GIL in the heavy calls; default: every core this process may use). The results depend on neither.
    `confidence_dtype` "float32" averages the sorted top values in float32 (numpy's pairwise mean of a
    float32 map, as SLAVC's test.py) instead of float64.
    """
    if confidence_dtype not in CONFIDENCE_DTYPES:
        raise ValueError(f"confidence_dtype must be one of {', '.join(CONFIDENCE_DTYPES)}, got {confidence_dtype!r}")
    rule, value = parse_binarize(binarize_spec)
    x = np.ascontiguousarray(maps_abs, dtype=np.float32)
    g = np.ascontiguousarray(gt, dtype=np.float32)
    if g.shape != x.shape:
        raise ValueError(f"maps {x.shape} and ground truth {g.shape} differ in shape")
    n_samples = x.shape[0]
    if n_samples == 0:
        return SampleStats.concat([])
    kernel = _kernel_stats(x, g, rule, value, top_fraction, block, workers, confidence_dtype)
    extra = {}
    for statistic in stored_statistics():  # registered statistics outside the fused pass
        if statistic.name in KERNEL_STATISTICS:
            continue
        if statistic.compute is None:
            raise ValueError(f"per-sample statistic '{statistic.name}' has no function and is not one of the "
                             f"fused pass ({', '.join(KERNEL_STATISTICS)})")
        extra[statistic.name] = np.asarray(statistic.compute(x, g), dtype=np.float64).reshape(n_samples)
    return SampleStats(**kernel, **extra)


def _kernel_stats(x: np.ndarray, g: np.ndarray, rule, value: float | None, top_fraction: float, block: int,
                  workers: int | None, confidence_dtype: str) -> dict[str, np.ndarray]:
    """`KERNEL_STATISTICS` of every map, block by block over threads."""
    n_samples = x.shape[0]
    flat_all, g_all = x.reshape(n_samples, -1), g.reshape(n_samples, -1)
    starts = range(0, n_samples, block)
    n_workers = max(1, min(default_workers() if workers is None else workers, len(starts)))
    local = threading.local()

    def one_block(a: int) -> dict[str, np.ndarray]:
        work = getattr(local, "work", None)
        if work is None:  # one set of work arrays per thread
            work = local.work = _Buffers(min(block, n_samples), flat_all.shape[1])
        return _block_stats(flat_all[a:a + block], g_all[a:a + block], rule, value, top_fraction, work, confidence_dtype)

    if n_workers == 1:
        parts = [one_block(a) for a in starts]
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            parts = list(pool.map(one_block, starts))
    return {n: np.concatenate([p[n] for p in parts]) for n in KERNEL_STATISTICS}


class _Buffers:
    """Work arrays reused by every block: no page faults from fresh megabyte-sized temporaries."""

    def __init__(self, rows: int, n: int):
        self.part = np.empty((rows, n), np.float32)  # partitioned copy of the maps
        self.d = np.empty(n, np.float64)  # (P − G)² of one map, for the pairwise sum
        self.sums = np.empty((rows, 4), np.float64)  # Σ B·G, Σ G, Σ B·[G = 0], Σ (P − G)²
        self.order = np.empty((rows, 5), np.float64)  # min, max, median, t_k, Σ top k (order_stats)
        self.keys = np.empty(n, np.uint32)
        self.counts = np.empty(1 << ORDER_BUCKET_BITS, np.int64)
        self.buf_med = np.empty(n, np.float32)
        self.buf_top = np.empty(n, np.float32)


def _sum_is_exact(smallest: np.ndarray, largest: np.ndarray, k: int) -> np.ndarray:
    """Whether every float64 summation order of k float32 values in [smallest, largest] is exact.

    With e(v) the binary exponent (v < 2^e(v)): each value is a multiple of 2^(e(smallest) − 24) and
    every partial sum stays below 2^(ceil(log2 k) + e(largest)), so all are exact in float64 when
    e(largest) − e(smallest) ≤ 29 − ceil(log2 k); largest < smallest·2^(29 − ceil(log2 k)) implies it.
    """
    headroom = 2.0 ** (29 - math.ceil(math.log2(k)))
    return (smallest > 0) & (largest < smallest.astype(np.float64) * headroom)


def _kernel_mode(rule) -> int:
    """The compiled pass's binary-map rule (`_kernels._map_pass`): 0 = P ≥ thr, 1 = LVS, 2 = raw map ≥ thr."""
    if rule.on_raw and (rule.strict or rule.median):
        raise ValueError(f"binarize rule {rule.name!r}: on_raw rules compare the raw map with T (no median, not strict)")
    return 2 if rule.on_raw else int(rule.strict)


def _sorted_top_mean(top: np.ndarray, confidence_dtype: str) -> np.ndarray:
    """The reference's mean of the sorted top values: float64 (default) or float32 row by row."""
    if confidence_dtype == "float32":  # np.sort(x)[-k:].mean() of each float32 map, row by row
        return np.array([row.mean() for row in np.sort(top, axis=1)], dtype=np.float64)
    return np.sort(top, axis=1).astype(np.float64).mean(axis=1)


def _order_stats_numpy(flat: np.ndarray, part: np.ndarray, uses_median: bool, k_med: int, k_top: int,
                       confidence_dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """min, max, sorted(x)[k_med] (None without a median rule) and confidence with numpy's introselect."""
    rows, n = flat.shape
    # Partition a copy at the median, then its upper part at the top-k boundary.
    np.copyto(part, flat)
    split = min(k_med, n - k_top) if uses_median else 0
    if split:
        part.partition(split, axis=1)
        lo = part[:, :split].min(axis=1)
        x_split = part[:, split].copy()  # sorted(x)[split]
    upper = part[:, split:]
    upper.partition(upper.shape[1] - k_top, axis=1)
    top = upper[:, upper.shape[1] - k_top:]  # the k_top largest values, unsorted
    t_k, hi = top.min(axis=1), top.max(axis=1)
    if not split:
        lo = upper.min(axis=1)
    if confidence_dtype == "float32":
        conf = _sorted_top_mean(top, confidence_dtype)
    else:
        conf = top.sum(axis=1, dtype=np.float64) / k_top  # = the reference's sorted mean where exact
        inexact = ~_sum_is_exact(t_k, hi, k_top)
        if inexact.any():
            conf[inexact] = _sorted_top_mean(top[inexact], confidence_dtype)
    x_med = None
    if uses_median:
        j = k_med - split
        x_med = x_split if split and j == 0 else np.partition(upper, j, axis=1)[:, j]
    return lo, hi, x_med, conf


def _block_stats(flat: np.ndarray, g: np.ndarray, rule, value: float | None, top_fraction: float,
                 work: _Buffers, confidence_dtype: str = "float64") -> dict[str, np.ndarray]:
    rows, n = flat.shape
    k_top = max(1, math.ceil(n * top_fraction))
    uses_median = rule.median
    k_med = min(int((0.5 if value is None else value) * n), n - 1)

    # Exact order statistics by histogram selection (`_kernels.order_stats`); numpy's introselect
    # for blocks holding a NaN (same results either way, `benchmarks/bench_select.py`).
    order = work.order[:rows]
    if order_stats(flat, k_med if uses_median else -1, k_top, order, work.keys, work.counts, work.buf_med, work.buf_top):
        lo, hi = order[:, 0].astype(np.float32), order[:, 1].astype(np.float32)
        x_med, t_k = order[:, 2].astype(np.float32), order[:, 3].astype(np.float32)
        conf = order[:, 4] / k_top  # = the reference's sorted mean where every order sums exactly
        # rows whose top values must be summed sorted: all of them for a float32 mean
        inexact = np.ones(rows, bool) if confidence_dtype == "float32" else ~_sum_is_exact(t_k, hi, k_top)
        if inexact.any():
            top = np.partition(flat[inexact], n - k_top, axis=1)[:, n - k_top:]
            conf[inexact] = _sorted_top_mean(top, confidence_dtype)
    else:
        lo, hi, x_med, conf = _order_stats_numpy(flat, work.part[:rows], uses_median, k_med, k_top, confidence_dtype)
    rng = hi - lo
    rng[rng == 0] = 1  # constant maps become all-zero (see metrics.maps.minmax_normalize)
    if uses_median:
        thr = (x_med - lo) / rng  # = sorted(P)[k_med]: normalisation is monotone
    else:  # fixed:T on P, absolute:T on the raw map; numpy compares float32 maps with float32(T)
        thr = np.full(rows, 0.5 if value is None else value, np.float32)
    sums = work.sums[:rows]
    map_sums(flat, g, lo, rng, thr, _kernel_mode(rule), sums, work.d)  # thr: float32 either way
    inter, g_sum, false_pos = sums[:, 0], sums[:, 1], sums[:, 2]
    denom = g_sum + false_pos
    cious = np.where(denom > 0, inter / np.where(denom > 0, denom, 1.0), 0.0)
    return {"ciou": cious, "confidence": conf, "area": g_sum.copy(), "mse": sums[:, 3] / n}
