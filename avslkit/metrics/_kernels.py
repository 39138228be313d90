"""Compiled (numba) per-map pass behind `metrics.samples.sample_stats`.

Why compiled: after the order statistics, the protocol needs a min-max map, a binary map, three
cIoU sums and a float64 MSE per map. In numpy each is a separate pass over the 50,176 pixels with
megabyte temporaries; here it is one vectorised pass per map plus a pairwise sum, with the same
floating-point operations in the same order as the per-sample reference (`metrics.reference`), so
the numbers are bit-identical to it:

* P = (x − lo)/rng in float32 and d = (P − G)² in float64, exactly as numpy computes them (the loop's
  fast-math flags allow reassociation only, used for the cIoU sums, which are multiples of 0.5
  below 2^24 and therefore exact in any order);
* Σ d in numpy's pairwise order (leaves of ≤ 128 values with 8 accumulators, halves rounded to a
  multiple of 8), which is what `np.mean` does on a contiguous map.

Measured: 28 µs per 224×224 map against ~115 µs for the numpy passes it replaced
(`benchmarks/bench_eval.py`, `benchmarks/RESULTS.md`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

PW_BLOCK = 128  # numpy's pairwise-summation block size (PW_BLOCKSIZE)


@njit(cache=True, nogil=True, error_model="numpy")
def _leaf_sum(a, s, n):  # pragma: no cover - compiled
    """numpy's pairwise_sum on n ≤ 128 values: 8 accumulators, then the tail (loops_utils.h).

    Unsigned indices: numba then skips the negative-index wraparound and LLVM vectorises the lanes.
    """
    u1, u8 = np.uint64(1), np.uint64(8)
    if n < u8:
        res = 0.0
        for j in range(s, s + n):
            res += a[j]
        return res
    r0, r1, r2, r3 = a[s], a[s + u1], a[s + np.uint64(2)], a[s + np.uint64(3)]
    r4, r5, r6, r7 = a[s + np.uint64(4)], a[s + np.uint64(5)], a[s + np.uint64(6)], a[s + np.uint64(7)]
    j = s + u8
    end = s + n - n % u8
    while j < end:
        r0 += a[j]
        r1 += a[j + u1]
        r2 += a[j + np.uint64(2)]
        r3 += a[j + np.uint64(3)]
        r4 += a[j + np.uint64(4)]
        r5 += a[j + np.uint64(5)]
        r6 += a[j + np.uint64(6)]
        r7 += a[j + np.uint64(7)]
        j += u8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while j < s + n:
        res += a[j]
        j += u1
    return res


@njit(cache=True, nogil=True, error_model="numpy")
def pairwise_sum(a):  # pragma: no cover - compiled
    """numpy's pairwise float64 summation of a 1-d array: same tree, same rounding as `np.sum`.

    numpy recurses (halves rounded down to a multiple of 8, leaves of ≤ 128 values, PW_BLOCKSIZE);
    this walks the same tree with explicit stacks, left leaf first.
    """
    n = np.uint64(a.size)
    block = np.uint64(PW_BLOCK)
    if n <= block:
        return _leaf_sum(a, np.uint64(0), n)
    node_start = np.empty(128, np.uint64)
    node_n = np.empty(128, np.uint64)
    node_open = np.zeros(128, np.bool_)
    values = np.empty(128, np.float64)
    n_values = 0
    node_start[0], node_n[0] = 0, n
    top = 1
    while top > 0:
        top -= 1
        s, m, opened = node_start[top], node_n[top], node_open[top]
        if m <= block:
            values[n_values] = _leaf_sum(a, s, m)
            n_values += 1
        elif opened:  # both halves summed: left is below right on the value stack
            n_values -= 1
            values[n_values - 1] = values[n_values - 1] + values[n_values]
        else:
            half = m // np.uint64(2)
            half -= half % np.uint64(8)
            node_start[top], node_n[top], node_open[top] = s, m, True
            node_start[top + 1], node_n[top + 1], node_open[top + 1] = s + half, m - half, False
            node_start[top + 2], node_n[top + 2], node_open[top + 2] = s, half, False
            top += 3
    return values[0]


_EXACT_SUMS = {"reassoc", "nsz"}  # only on sums of values that are exact in any order


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_EXACT_SUMS)
def _map_pass(xi, gi, lo, rng, thr, mode, d):  # pragma: no cover - compiled
    """One pass over a map: Σ B·G, Σ G, Σ B·[G = 0], and d = (P − G)² in float64 into `d`.

    P = (x − lo)/rng in float32, as numpy computes the min-max map; B by `mode`: 0 = P ≥ thr,
    1 = LVS (P > thr or P = 1), 2 = raw map x ≥ thr. The three sums are multiples of 0.5 below 2^24, exact in float32 in any order, so the
    loop may vectorise (the fast-math flags allow only reassociation; no FMA, no approximate
    division, so d is the reference's value).
    """
    inter = np.float32(0.0)
    g_sum = np.float32(0.0)
    false_pos = np.float32(0.0)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for j in range(xi.size):
        p = (xi[j] - lo) / rng
        gv = gi[j]
        if mode == 0:
            b = one if p >= thr else zero
        elif mode == 1:
            b = one if (p > thr) | (p >= one) else zero
        else:
            b = one if xi[j] >= thr else zero
        inter += b * gv
        false_pos += b if gv == zero else zero
        g_sum += gv
        e = np.float64(p) - np.float64(gv)
        d[j] = e * e
    return inter, g_sum, false_pos


@njit(cache=True, nogil=True, error_model="numpy")
def map_sums(x, g, lo, rng, thr, mode, out, d):  # pragma: no cover - compiled
    """Per row of x/g (N, n): out[i] = (Σ B·G, Σ G, Σ B·[G = 0], Σ (P − G)²); `d` (n,) float64 work.

    The squared-error sum is float64 in numpy's pairwise order, i.e. `np.mean`'s sum on the map.
    """
    for i in range(x.shape[0]):
        inter, g_sum, false_pos = _map_pass(x[i], g[i], lo[i], rng[i], thr[i], mode, d)
        out[i, 0] = inter
        out[i, 1] = g_sum
        out[i, 2] = false_pos
        out[i, 3] = pairwise_sum(d)


# -- exact order statistics by histogram (radix) selection ------------------------------------------
ORDER_BUCKET_BITS = 12  # 4096 buckets: the counters stay in L1


@njit(cache=True, nogil=True)
def _quickselect(vals, m, r):  # pragma: no cover - compiled
    """The r-th smallest (0-based) of vals[:m], partially reordering vals in place (Hoare partition);
    afterwards vals[r:m] are the values ranked r and above."""
    left, right = 0, m - 1
    while left < right:
        pivot = vals[(left + right) >> 1]
        i, j = left, right
        while i <= j:
            while vals[i] < pivot:
                i += 1
            while vals[j] > pivot:
                j -= 1
            if i <= j:
                vals[i], vals[j] = vals[j], vals[i]
                i += 1
                j -= 1
        if r <= j:
            right = j
        elif r >= i:
            left = i
        else:
            break
    return vals[r]


@njit(cache=True, nogil=True)
def _row_order_stats(x, k_med, k_top, out, keys, counts, buf_med, buf_top):  # pragma: no cover - compiled
    """out[:] = (min, max, sorted(x)[k_med] (k_med < 0: skipped), t_k = sorted(x)[n − k_top], float64
    sum of the k_top largest values in no particular order). Returns False when x holds a NaN.

    Order-preserving uint32 keys of the float32 bits; one pass for the key range, one counting pass
    into ≤ 4096 buckets of (key − min key) >> shift (monotone, so ranks are kept), a prefix sum to
    the buckets holding both ranks, one pass gathering only those buckets' values, then an exact
    selection inside each (usually ~1% of the pixels).
    """
    n = x.size
    bits = x.view(np.uint32)
    sign = np.uint32(0x80000000)
    klo = np.uint32(0xFFFFFFFF)
    khi = np.uint32(0)
    for j in range(n):
        b = bits[j]
        k = ~b if b & sign else b | sign
        keys[j] = k
        klo = min(klo, k)
        khi = max(khi, k)
    if khi > np.uint32(0xFF800000):  # above +inf: a NaN
        return False
    span = khi - klo
    shift = np.uint32(0)
    while (span >> shift) >= np.uint32(1 << ORDER_BUCKET_BITS):
        shift += np.uint32(1)
    counts[:] = 0
    for j in range(n):
        counts[(keys[j] - klo) >> shift] += 1
    r_top = n - k_top
    b_med, b_top = -1, -1
    below_med, below_top = 0, 0
    acc = 0
    for b in range(counts.size):
        c = counts[b]
        if b_med < 0 and acc + c > k_med >= 0:
            b_med, below_med = b, acc
        if b_top < 0 and acc + c > r_top:
            b_top, below_top = b, acc
        if b_top >= 0 and (b_med >= 0 or k_med < 0):
            break
        acc += c
    m_med, m_top = 0, 0
    above = 0.0
    for j in range(n):
        b = np.int64((keys[j] - klo) >> shift)
        if b == b_med:
            buf_med[m_med] = x[j]
            m_med += 1
        if b == b_top:
            buf_top[m_top] = x[j]
            m_top += 1
        elif b > b_top:
            above += np.float64(x[j])
    r = r_top - below_top
    t_k = _quickselect(buf_top, m_top, r)
    for j in range(r, m_top):
        above += np.float64(buf_top[j])
    # min and max from the keys' extremes (exact: the key map is a bijection)
    lo_bits = ~klo if not klo & sign else klo & ~sign
    hi_bits = ~khi if not khi & sign else khi & ~sign
    out[0] = np.float64(np.array([lo_bits], np.uint32).view(np.float32)[0])
    out[1] = np.float64(np.array([hi_bits], np.uint32).view(np.float32)[0])
    out[2] = np.float64(_quickselect(buf_med, m_med, k_med - below_med)) if k_med >= 0 else 0.0
    out[3] = np.float64(t_k)
    out[4] = above
    return True


@njit(cache=True, nogil=True)
def order_stats(x, k_med, k_top, out, keys, counts, buf_med, buf_top):  # pragma: no cover - compiled
    """`_row_order_stats` for every row of x (N, n) into out (N, 5); False if any row holds a NaN."""
    for i in range(x.shape[0]):
        if not _row_order_stats(x[i], k_med, k_top, out[i], keys, counts, buf_med, buf_top):
            return False
    return True
