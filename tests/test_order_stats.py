"""The histogram (radix) selection behind `metrics.samples` gives numpy's exact order statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avslkit.metrics import reference as ref
from avslkit.metrics._kernels import ORDER_BUCKET_BITS, order_stats
from avslkit.metrics.samples import sample_stats


def _maps(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.normal(0, 1, (10, n)).astype(np.float32)
    m[1] = np.round(m[1], 1)  # many ties, some straddling bucket edges
    m[2] = np.abs(m[2]) * 1e-30  # tiny values, denormals near 0
    m[2, :5] = 1e30  # a huge range: coarse buckets
    m[3] = 0.0
    m[3, ::2] = -0.0  # signed zeros
    m[4] = -np.abs(m[4])  # all negative
    m[5] = 3.0  # constant
    m[6, :7] = np.inf  # infinities sort last, like numpy
    m[6, 7:9] = -np.inf
    m[7] = np.float32(1) + np.arange(n, dtype=np.float32) * np.float32(2**-23)  # adjacent floats: one bucket
    m[8] = rng.choice(np.array([0.25, 0.5, 0.75], np.float32), n)  # three values only
    return m


@pytest.mark.parametrize("n", [1, 2, 7, 37 * 41, 224 * 224])
def test_order_stats_equal_sorting(n):
    rng = np.random.default_rng(n)
    maps = _maps(rng, n)
    k_top = max(1, math.ceil(n * 0.25))
    for k_med in {0, n // 2, min(int(0.7 * n), n - 1), n - 1}:
        out = np.empty((len(maps), 5))
        bufs = (np.empty(n, np.uint32), np.empty(1 << ORDER_BUCKET_BITS, np.int64), np.empty(n, np.float32),
                np.empty(n, np.float32))
        assert order_stats(maps, k_med, k_top, out, *bufs)
        s = np.sort(maps, axis=1)
        np.testing.assert_array_equal(out[:, 0], s[:, 0])
        np.testing.assert_array_equal(out[:, 1], s[:, -1])
        np.testing.assert_array_equal(out[:, 2], s[:, k_med])
        np.testing.assert_array_equal(out[:, 3], s[:, n - k_top])
        finite = np.isfinite(s).all(axis=1)
        np.testing.assert_allclose(out[finite, 4], s[finite, n - k_top:].astype(np.float64).sum(axis=1), rtol=1e-12)


def test_nan_block_falls_back_to_numpy_and_still_matches_reference():
    rng = np.random.default_rng(1)
    maps = rng.normal(0, 1, (3, 24, 24)).astype(np.float32)
    gt = np.zeros_like(maps)
    gt[:, 2:12, 3:20] = 1
    out = np.empty((3, 5))
    bufs = (np.empty(576, np.uint32), np.empty(1 << ORDER_BUCKET_BITS, np.int64), np.empty(576, np.float32),
            np.empty(576, np.float32))
    nan_maps = maps.copy()
    nan_maps[1, 3, 3] = np.nan
    assert not order_stats(nan_maps.reshape(3, -1), 288, 144, out, *bufs)  # the caller uses numpy then
    st = sample_stats(maps, gt, "relative", workers=1)
    r = [ref.sample_stats(maps[i], gt[i], "relative") for i in range(3)]
    np.testing.assert_array_equal(st.ciou, [x["ciou"] for x in r])
    np.testing.assert_array_equal(st.confidence, [x["conf"] for x in r])
