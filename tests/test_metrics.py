"""Metrics of the published protocol on hand-made cases whose values are derived in the comments."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from avslkit.metrics import (
    average_precision,
    binarize,
    ciou,
    confidence,
    locacc,
    max_f1,
    minmax_normalize,
    precision_recall,
    sample_stats,
    size_bucket,
    success_auc,
    upsample_maps,
)
from avslkit.metrics import reference as ref
from avslkit.metrics.detection import ap_thresholds, f1_thresholds
from avslkit.models.ogl import fuse


# -- cIoU --------------------------------------------------------------------------------------------
def test_ciou_union_ground_truth():
    # B = 2×2 block top-left of a 4×4 map, G = the whole top row.
    # B·G = 2 (row 0, cols 0-1); ΣG = 4; ΣB·[G=0] = 2 (row 1, cols 0-1) → 2 / (4 + 2) = 1/3.
    b = np.zeros((1, 4, 4), bool)
    b[0, :2, :2] = True
    g = np.zeros((1, 4, 4), np.float32)
    g[0, 0, :] = 1
    assert ciou(b, g)[0] == pytest.approx(1 / 3)


def test_ciou_consensus_half_pixels():
    # G = [[1, .5], [0, 0]], B = [[1, 1], [1, 0]]: B·G = 1.5; ΣG = 1.5; ΣB·[G=0] = 1 → 1.5 / 2.5 = 0.6.
    g = np.array([[[1, 0.5], [0, 0]]], np.float32)
    b = np.array([[[1, 1], [1, 0]]], bool)
    assert ciou(b, g)[0] == pytest.approx(0.6)


def test_ciou_empty_ground_truth():
    # Empty G, 2 predicted pixels: 0 / (0 + 2) = 0. Empty G and empty B: 0/0, defined as 0.
    g = np.zeros((2, 2, 2), np.float32)
    b = np.zeros((2, 2, 2), bool)
    b[0, 0] = True
    assert list(ciou(b, g)) == [0.0, 0.0]


# -- binarisation ------------------------------------------------------------------------------------
def test_binarize_rules_with_ties():
    # map [[0, 2], [2, 4]] → min-max P = [0, .5, .5, 1]; sorted(P)[int(0.5·4)] = sorted[2] = .5.
    m = np.array([[[0, 2], [2, 4]]], np.float32)
    p = minmax_normalize(m)
    np.testing.assert_array_equal(p[0], [[0, 0.5], [0.5, 1]])
    # relative: P ≥ .5 → the tied .5 pixels are both in.
    np.testing.assert_array_equal(binarize(p, "relative")[0], [[False, True], [True, True]])
    # lvs: P > .5 (only the 1) or P == 1 → one pixel.
    np.testing.assert_array_equal(binarize(p, "lvs")[0], [[False, False], [False, True]])
    np.testing.assert_array_equal(binarize(p, "fixed:0.6")[0], [[False, False], [False, True]])
    np.testing.assert_array_equal(binarize(p, "fixed:0.5")[0], [[False, True], [True, True]])


def test_absolute_rule_skips_minmax():
    # raw [.6, .7]: absolute:0.5 → both ≥ .5; fixed:0.5 on the min-max map [0, 1] → only the second.
    raw = np.array([[[0.6, 0.7]]], np.float32)
    np.testing.assert_array_equal(binarize(raw, "absolute:0.5")[0], [[True, True]])
    np.testing.assert_array_equal(binarize(minmax_normalize(raw), "fixed:0.5")[0], [[False, True]])
    # Through sample_stats with G = the first pixel: absolute → cIoU 1 / (1 + 1) = .5; fixed → 0 / (1 + 1) = 0.
    g = np.array([[[1.0, 0.0]]], np.float32)
    assert sample_stats(raw, g, "absolute:0.5").ciou[0] == 0.5
    assert sample_stats(raw, g, "fixed:0.5").ciou[0] == 0.0


def test_binarize_odd_pixel_count():
    # 1×3 map [5, 1, 3] → P = [1, 0, .5]; sorted = [0, .5, 1]; int(0.5·3) = 1 → thr .5 → [T, F, T].
    p = minmax_normalize(np.array([[[5, 1, 3]]], np.float32))
    np.testing.assert_array_equal(binarize(p, "relative")[0], [[True, False, True]])


def test_constant_map():
    # min-max of a constant is 0/0 → all-zero map. relative: thr = sorted(0…)[k] = 0 and 0 ≥ 0 → every
    # pixel predicted; lvs: nothing > 0 and nothing == 1 → none; fixed:0.5 → none.
    m = np.full((1, 2, 2), 3.0, np.float32)
    p = minmax_normalize(m)
    assert (p == 0).all()
    assert binarize(p, "relative").all()
    assert not binarize(p, "lvs").any()
    assert not binarize(p, "fixed:0.5").any()
    # Through sample_stats: G = one pixel → cIoU = 1 / (1 + 3) = 0.25; MSE = (0 − 1)² / 4 = 0.25.
    g = np.zeros((1, 2, 2), np.float32)
    g[0, 0, 0] = 1
    st = sample_stats(m, g)
    assert st.ciou[0] == pytest.approx(0.25) and st.mse[0] == pytest.approx(0.25)
    assert st.confidence[0] == 3.0  # top ceil(4/4) = 1 value of the absolute map


def test_never_normalised_across_batch():
    # Sample 2 is sample 1 ×100: per-sample min-max makes their binary maps identical.
    rng = np.random.default_rng(0)
    a = rng.random((1, 8, 8)).astype(np.float32)
    both = np.concatenate([a, a * 100])
    b = binarize(minmax_normalize(both), "relative")
    np.testing.assert_array_equal(b[0], b[1])


def test_bad_binarize_spec():
    from avslkit.errors import AvslError

    with pytest.raises(AvslError, match="unknown --binarize"):
        binarize(np.zeros((1, 2, 2)), "median")
    with pytest.raises(AvslError, match="not a number"):
        binarize(np.zeros((1, 2, 2)), "fixed:abc")


# -- confidence, MSE ---------------------------------------------------------------------------------
def test_confidence_top_quarter_of_absolute_map():
    # 2×4 map 1..8: n = 8, top ceil(8/4) = 2 values (7, 8) → 7.5; 2×3 map 1..6: ceil(1.5) = 2 → (5+6)/2.
    assert confidence(np.arange(1, 9, dtype=np.float32).reshape(1, 2, 4))[0] == 7.5
    assert confidence(np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3))[0] == 5.5
    # Absolute, not min-max: scaling the map scales the confidence.
    assert confidence(10 * np.arange(1, 9, dtype=np.float32).reshape(1, 2, 4))[0] == 75.0


def test_mse_uses_minmax_map():
    # map [[2, 4]] → P = [[0, 1]], G = [[0, 0]] → ((0−0)² + (1−0)²) / 2 = 0.5.
    st = sample_stats(np.array([[[2, 4]]], np.float32), np.zeros((1, 1, 2), np.float32))
    assert st.mse[0] == 0.5


# -- LocAcc / AUC / sizes ----------------------------------------------------------------------------
def test_locacc_and_auc():
    # cIoU [0, .5, 1]: LocAcc = 2/3. r(0) = 1; r(t) = 2/3 for t = .05….5 (10 points); 1/3 for .55…1.
    # Trapezoid: (1 + 2/3)/2·.05 + .45·2/3 + (2/3 + 1/3)/2·.05 + .45·1/3 = .041667 + .3 + .025 + .15.
    c = np.array([0.0, 0.5, 1.0])
    assert locacc(c) == pytest.approx(2 / 3)
    assert success_auc(c) == pytest.approx(0.0416666667 + 0.3 + 0.025 + 0.15)
    assert success_auc(c) == ref.calc_auc(c)


def test_size_buckets_edges():
    areas = [0, 1023, 1024, 9215, 9216, 20735, 20736, 50176]
    assert list(size_bucket(np.array(areas))) == ["small", "small", "medium", "medium", "large", "large", "huge", "huge"]


# -- extended protocol -------------------------------------------------------------------------------
# s1 pos conf .9 cIoU .8 | s2 neg conf .8 | s3 pos conf .7 cIoU .3 | s4 pos conf .6 cIoU .6 | s5 neg conf .5
POS = np.array([1, 0, 1, 1, 0], bool)
CIOU = np.array([0.8, 0.0, 0.3, 0.6, 0.0])
CONF = np.array([0.9, 0.8, 0.7, 0.6, 0.5])


def test_precision_recall_counts():
    # θ = .5: c = .8 → detected {s1, s2}: TP 1, FP 1 (neg), FN 2 (s3, s4) → P .5, R 1/3.
    # c = .7 → {s1, s2, s3}: TP 1, FP 2 (s3 mislocalised counts as FP), FN 1 → P 1/3, R 1/2.
    # c = 1 → nothing detected → precision 1, recall 0.
    p, r = precision_recall(POS, CIOU, CONF, np.array([0.8, 0.7, 1.0]), 0.5)
    np.testing.assert_allclose(p, [0.5, 1 / 3, 1.0])
    np.testing.assert_allclose(r, [1 / 3, 0.5, 0.0])
    # Only negatives: TP + FN = 0 → recall 1; precision 0 / 2 = 0.
    p, r = precision_recall(np.zeros(2, bool), np.zeros(2), np.array([0.6, 0.7]), np.array([0.5]))
    assert (p[0], r[0]) == (0.0, 1.0)


def test_average_precision_hand_case():
    # Thresholds: sorted conf without the largest, downwards: [.8, .7, .6, .5] (stride 1).
    # θ = .5: (P, R) = (.5, 1/3), (1/3, 1/2), (.5, 1), (.4, 1); envelope [.5, .5, .5, .4]
    #   AP = .5·(1/2 − 1/3) + .5·(1 − 1/2) + .5·0 = 1/12 + 1/4 = 1/3.
    # θ = .75 (only s1 hits): (.5, 1/3), (1/3, 1/2), (.25, 1), (.2, 1); envelope [.5, 1/3, .25, .2]
    #   AP = .5·1/6 + 1/3·1/2 + .25·0 = 1/12 + 1/6 = 1/4.
    np.testing.assert_array_equal(ap_thresholds(CONF), [0.8, 0.7, 0.6, 0.5])
    assert average_precision(POS, CIOU, CONF, 0.5) == pytest.approx(1 / 3)
    assert average_precision(POS, CIOU, CONF, 0.75) == pytest.approx(1 / 4)
    assert average_precision(POS, CIOU, CONF, 0.5) == ref.calc_ap(POS, list(CIOU), list(CONF), 0.5)


def test_max_f1_hand_case():
    # Thresholds sorted(conf)[::max(1, 5 // 10)] = all five. F1 at .9: P 1, R 1/3 → .5; .8: .4; .7: .4;
    # .6: P .5, R 1 → 2/3; .5: P .4, R 1 → 4/7. Max = 2/3.
    assert max_f1(POS, CIOU, CONF, 0.5) == pytest.approx(2 / 3)
    assert max_f1(POS, CIOU, CONF, 0.5, "full") == pytest.approx(2 / 3)


def test_ties_in_confidence():
    # a: pos hit conf .5, b: neg conf .5, c: pos hit conf .9. Thresholds [.5, .5] (largest dropped):
    # both detect all three (conf ≥ c): P 2/3, R 1 → AP = 2/3·(1 − 1) = 0 (the reference's quirk).
    pos, cious, conf = np.array([1, 0, 1], bool), np.array([0.9, 0, 0.9]), np.array([0.5, 0.5, 0.9])
    assert average_precision(pos, cious, conf) == 0.0 == ref.calc_ap(pos, list(cious), list(conf))
    # max-F1 thresholds [.5, .5, .9]: at .5 P 2/3 R 1 → .8; at .9 P 1 R 1/2 → 2/3 → .8.
    assert max_f1(pos, cious, conf) == pytest.approx(0.8)


def test_threshold_strides():
    conf = np.arange(450, dtype=float)
    # AP: stride 450 // 200 = 2 over the 449 values without the largest → ceil(449 / 2) = 225, from 448 down.
    t = ap_thresholds(conf)
    assert len(t) == 225 and t[0] == 448 and t[1] == 446
    # F1: stride 25 // 10 = 2 → 13 thresholds 0, 2, …, 24; full: all 25 distinct values.
    assert list(f1_thresholds(np.arange(25.0))) == list(range(0, 25, 2))
    assert len(f1_thresholds(np.r_[np.arange(25.0), 3.0], "full")) == 25


def test_full_max_f1_can_exceed_published():
    # 20 samples, stride 2: the published rule skips every other threshold. Positives (all hits) have the odd
    # confidences 1, 3, …, 19 and negatives the even ones 0, 2, …, 18. Published thresholds are the even
    # values; threshold 1 (full rule only) detects all 10 positives and 9 negatives: F1 = 2·(10/19)/(10/19+1).
    conf = np.arange(20.0)
    pos = conf % 2 == 1
    cious = np.where(pos, 1.0, 0.0)
    published = max_f1(pos, cious, conf)
    full = max_f1(pos, cious, conf, rule="full")
    assert full >= published
    assert full == pytest.approx(max(2 * (10 / 19) / (10 / 19 + 1), published))
    assert published == ref.calc_max_f1(pos, list(cious), list(conf))
    assert full == ref.calc_max_f1(pos, list(cious), list(conf), rule="full")


# -- parity with the per-sample reference on structured random maps ------------------------------------
@pytest.mark.parametrize("spec", ["relative", "lvs", "fixed:0.5", "absolute:1.0"])
def test_vectorised_equals_reference(spec):
    rng = np.random.default_rng(3)
    n = 24
    yy, xx = np.mgrid[0:224, 0:224]
    maps = np.empty((n, 224, 224), np.float32)
    gt = np.zeros((n, 224, 224), np.float32)
    for i in range(n):
        cx, cy, s = rng.uniform(40, 180), rng.uniform(40, 180), rng.uniform(8, 50)
        maps[i] = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s)) * rng.uniform(0.5, 3) + rng.normal(0, 0.05, (224, 224))
        gt[i, int(cy - s):int(cy + s), int(cx - s):int(cx + 1.5 * s)] = rng.choice([0.5, 1.0])
    maps[0] = 2.0  # a constant map
    st = sample_stats(maps, gt, spec)
    name, _, thr = spec.partition(":")
    r = [ref.sample_stats(maps[i], gt[i], name, float(thr or 0.5)) for i in range(n)]
    np.testing.assert_array_equal(st.ciou, [x["ciou"] for x in r])
    np.testing.assert_array_equal(st.confidence, [x["conf"] for x in r])
    np.testing.assert_array_equal(st.area, [x["area"] for x in r])
    np.testing.assert_allclose(st.mse, [x["mse"] for x in r], rtol=1e-12)  # summation order only
    pos = rng.random(n) < 0.6
    for iou in (0.5, 0.75):
        assert average_precision(pos, st.ciou, st.confidence, iou) == ref.calc_ap(pos, list(st.ciou), list(st.confidence), iou)
        assert max_f1(pos, st.ciou, st.confidence, iou) == ref.calc_max_f1(pos, list(st.ciou), list(st.confidence), iou)


def test_upsample_bicubic_align_corners():
    # align_corners=True keeps the corner values of a 2×2 map exactly.
    up = upsample_maps(np.array([[[0.0, 1.0], [2.0, 3.0]]], np.float32), 224)
    assert up.shape == (1, 224, 224)
    assert (up[0, 0, 0], up[0, 0, -1], up[0, -1, 0], up[0, -1, -1]) == (0.0, 1.0, 2.0, 3.0)


def test_fusion_rules():
    # SLAVC: S = cos/τ with τ = .03; cos = 1 → AV' = 1; OGL = 2.5 → OGL' = 1 → F = .9 + .1 = 1.
    # cos = −1, OGL = 0 → F = 0.
    s = np.array([[[1 / 0.03, -1 / 0.03]]], np.float32)
    o = np.array([[[2.5, 0.0]]], np.float32)
    np.testing.assert_allclose(fuse(s, o, "slavc")[0, 0], [1.0, 0.0], atol=1e-6)
    # EZ-VSL: min-max each → [1, 0] and [1, 0]; .4·1 + .6·1 = 1, 0 → min-max → [1, 0].
    np.testing.assert_allclose(fuse(s, o, "ezvsl")[0, 0], [1.0, 0.0])


def test_summary_equals_reference_loops():
    from avslkit.evaluation.protocol import summarize
    from avslkit.metrics.samples import SampleStats

    rng = np.random.default_rng(11)
    n = 450  # AP stride 2, F1 stride 45
    kinds = rng.choice(np.array(["positive", "positive", "real", "easy", "hard"], dtype=object), n)
    pos = kinds == "positive"
    st = SampleStats(ciou=np.where(pos, rng.random(n), 0.0), confidence=np.round(rng.random(n), 2),  # ties
                     area=rng.choice([0.0, 500.0, 5000.0, 15000.0, 30000.0], n), mse=rng.random(n))
    for rule in ("published", "full"):
        fast = summarize(st, kinds, max_f1_rule=rule, seed=4)
        slow = ref.summarize_reference(list(st.ciou), list(st.confidence), list(st.area), list(st.mse), list(kinds),
                                       max_f1_rule=rule, seed=4)
        assert fast.pop("mse") == pytest.approx(slow.pop("mse"), rel=1e-12)
        assert fast == slow


def test_sample_stats_every_path_equals_reference():
    # Map 0: top quarter in (0.6, 4): confidence from the unsorted exact sum. Map 1: top values from
    # ~2e-6 to 1e3 (range > 2^15) and map 2: top quarter reaching negative values: both take the sorted
    # fallback. Map 3: ties (rounded values). Map 4: constant. Any block size or thread count gives
    # the reference's numbers bit for bit, MSE included.
    from avslkit.metrics.samples import _sum_is_exact

    rng = np.random.default_rng(5)
    maps = rng.normal(0, 1, (6, 32, 32)).astype(np.float32)
    maps[1] = np.abs(maps[1]) * 1e-6
    maps[1, :4] = 1e3
    maps[2] = -np.abs(maps[2])
    maps[3] = np.round(maps[3])
    maps[4] = 7.0
    gt = np.zeros((6, 32, 32), np.float32)
    gt[:, 4:20, 6:30] = 1.0
    gt[::2, 10:14, :] = 0.5
    top = np.sort(maps.reshape(6, -1), axis=1)[:, -256:]
    assert list(_sum_is_exact(top[:, 0], top[:, -1], 256)[:3]) == [True, False, False]
    for spec in ("relative", "lvs"):
        r = [ref.sample_stats(maps[i], gt[i], spec) for i in range(6)]
        for block, workers in ((1, 1), (4, 2)):
            st = sample_stats(maps, gt, spec, block=block, workers=workers)
            for field, key in (("ciou", "ciou"), ("confidence", "conf"), ("area", "area"), ("mse", "mse")):
                np.testing.assert_array_equal(getattr(st, field), [x[key] for x in r], err_msg=f"{spec} {field}")


def test_pairwise_sum_is_numpys_summation_order():
    # The compiled MSE sum must round exactly as np.sum / np.mean do on a contiguous array: leaves of
    # ≤ 128 values with 8 accumulators and an unrolled tail, halves rounded to multiples of 8. Uniform
    # values in [0, 1) (like (P − G)²) round differently under other orders (checked below).
    from avslkit.metrics._kernels import pairwise_sum

    rng = np.random.default_rng(0)
    a = rng.random(1517)
    assert np.sum(a) != sum(a.tolist())  # sequential order rounds differently for this data
    for n in [*range(0, 20), 127, 128, 129, 135, 255, 256, 257, 1000, 1517, 4099, 224 * 224]:
        a = rng.random(n)
        assert pairwise_sum(a) == np.sum(a), n
        assert pairwise_sum(a) / max(n, 1) == (np.mean(a) if n else 0.0), n


@pytest.mark.parametrize("spec", ["relative", "lvs", "fixed:0.3", "absolute:0.5", "relative:0.7"])
def test_sample_stats_odd_sizes_and_every_rule_equal_reference(spec):
    # 37×41 maps: a pairwise tree with leaves of odd length and tails; 224×224 once (the real size).
    rng = np.random.default_rng(3)
    for shape, count in (((37, 41), 5), ((224, 224), 2)):
        maps = (rng.normal(0, 1, (count, *shape)) ** 2).astype(np.float32)
        maps[0] = np.round(maps[0], 1)  # ties at the thresholds
        gt = np.zeros((count, *shape), np.float32)
        gt[:, 3:20, 5:30] = 1.0
        gt[1:, 8:12] = 0.5  # Flickr consensus values
        gt[-1] = 0.0  # a negative
        rule, value = (spec.split(":") + [None])[:2]
        thr = 0.5 if value is None else float(value)
        r = [ref.sample_stats(maps[i], gt[i], rule, fixed_thr=thr) if rule in ("fixed", "absolute")
             else _ref_relative(maps[i], gt[i], rule, thr if value else 0.5) for i in range(count)]
        st = sample_stats(maps, gt, spec, workers=1)
        for field, key in (("ciou", "ciou"), ("confidence", "conf"), ("area", "area"), ("mse", "mse")):
            np.testing.assert_array_equal(getattr(st, field), [x[key] for x in r], err_msg=f"{spec} {shape} {field}")


def _ref_relative(score_map, gt, rule, fraction):
    """The reference with the median fraction as a parameter (it hard-codes 0.5)."""
    out = ref.sample_stats(score_map, gt, rule)
    if fraction == 0.5:
        return out
    pred = ref.normalize_img(score_map)
    thr = np.sort(pred.flatten())[int(pred.size * fraction)]
    infer = (pred >= thr) if rule == "relative" else ((pred > thr) | (pred >= 1))
    g = gt.astype(np.float64)
    den = np.sum(g) + np.sum(infer * (g == 0))
    out["ciou"] = float(np.sum(infer * g) / den) if den > 0 else 0.0
    return out


def test_a_registered_rule_is_applied_from_its_fields(monkeypatch):
    # sample_stats reads how to binarise from the Binarizer (median / strict / on_raw), not from its
    # name: a rule registered under a new name behaves like the built-in it copies.
    from avslkit.metrics import maps

    for new, like in (("median-copy", "relative"), ("lvs-copy", "lvs"), ("raw-copy", "absolute")):
        monkeypatch.setitem(maps.BINARIZERS, new, dataclasses.replace(maps.BINARIZERS[like], name=new))
    rng = np.random.default_rng(8)
    m = (rng.random((3, 24, 24)) * 2).astype(np.float32)
    m[0] = np.round(m[0], 1)
    g = np.zeros_like(m)
    g[:, 2:14, 5:20] = 1.0
    for new, like in (("median-copy", "relative"), ("lvs-copy", "lvs"), ("raw-copy:0.9", "absolute:0.9")):
        a, b = sample_stats(m, g, new, workers=1), sample_stats(m, g, like, workers=1)
        np.testing.assert_array_equal(a.ciou, b.ciou, err_msg=new)
    assert not np.array_equal(sample_stats(m, g, "lvs").ciou, sample_stats(m, g, "absolute:0.9").ciou)
