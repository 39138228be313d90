"""Semi-supervised building blocks: labelled splits, DMT filter/IPL, EMA, XPL selection/sharpening/PL-EMA."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from avslkit.errors import AvslError
from avslkit.semisup import (
    PseudoLabelBank,
    binary_iou,
    dmt_pseudo_labels,
    ema_update_,
    make_teacher,
    minmax_per_sample,
    parse_labeled_spec,
    pearson_correlation,
    ramp_fraction,
    read_split,
    save_split,
    select_by_correlation,
    sharpen,
    split_labeled,
    to_unit_maps,
)

# ----------------------------------------------------------------------------- labelled splits


@pytest.mark.parametrize(
    "spec, kind, value",
    [
        ("4k", "count", 4000),
        ("2K", "count", 2000),
        ("256", "count", 256),
        (256, "count", 256),
        (" 1 ", "count", 1),
        ("0.03", "fraction", 0.03),
        (0.03, "fraction", 0.03),
        (".5", "fraction", 0.5),
        ("1.0", "fraction", 1.0),
        ("all", "all", None),
    ],
)
def test_parse_labeled_spec_forms(spec, kind, value):
    parsed = parse_labeled_spec(spec)
    assert parsed.kind == kind
    assert {"count": parsed.count, "fraction": parsed.fraction, "all": None}[kind] == value


def test_parse_labeled_spec_file(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("a\nb\n")
    parsed = parse_labeled_spec(str(ids))
    assert parsed.kind == "file" and parsed.path == ids
    assert parse_labeled_spec(ids).kind == "file"


@pytest.mark.parametrize(
    "spec, needle",
    [("0", "at least 1"), ("0k", "at least 1"), ("0.0", "(0, 1]"), ("1.5", "(0, 1]"), ("abc", "cannot read"),
     ("-3", "cannot read"), ("missing/ids.txt", "does not exist"), (True, "count")],
)
def test_parse_labeled_spec_errors(spec, needle):
    with pytest.raises(AvslError, match=None) as err:
        parse_labeled_spec(spec)
    assert needle in str(err.value)


ALL_IDS = [f"c{i:03d}" for i in range(100)]
ANNOTATED = [f"c{i:03d}" for i in range(0, 100, 2)] + ["not_in_store"]  # 50 annotated clips in the store
TEST_IDS = ["c000", "c002"]  # 48 annotated candidates remain


def test_split_counts_disjoint_and_unlabeled_includes_unchosen_annotated():
    split = split_labeled(ALL_IDS, ANNOTATED, "10", val_labeled=8, seed=0, exclude_ids=TEST_IDS)
    lab, val, unl = set(split.labeled), set(split.val), set(split.unlabeled)
    assert (len(lab), len(val), len(unl)) == (10, 8, 100 - 2 - 18)
    assert not (lab & val) and not (lab & unl) and not (val & unl)
    assert lab | val <= set(ANNOTATED) - set(TEST_IDS)
    assert not (set(TEST_IDS) & (lab | val | unl))
    unchosen_annotated = set(ANNOTATED) - set(TEST_IDS) - lab - val - {"not_in_store"}
    assert len(unchosen_annotated) == 30 and unchosen_annotated <= unl
    assert split.unlabeled == [c for c in ALL_IDS if c in unl]  # store order
    assert split.summary() == {"labeled": 10, "val": 8, "unlabeled": 80}


def test_split_is_seeded_nested_and_val_independent_of_count():
    a = split_labeled(ALL_IDS, ANNOTATED, 5, val_labeled=8, seed=3, exclude_ids=TEST_IDS)
    b = split_labeled(ALL_IDS, ANNOTATED, 20, val_labeled=8, seed=3, exclude_ids=TEST_IDS)
    again = split_labeled(list(reversed(ALL_IDS)), list(reversed(ANNOTATED)), 5, val_labeled=8, seed=3, exclude_ids=TEST_IDS)
    other = split_labeled(ALL_IDS, ANNOTATED, 5, val_labeled=8, seed=4, exclude_ids=TEST_IDS)
    assert set(a.labeled) < set(b.labeled) and a.labeled == b.labeled[:5]
    assert a.val == b.val
    assert again.labeled == a.labeled and again.val == a.val  # independent of input order
    assert (other.labeled, other.val) != (a.labeled, a.val)


def test_split_fraction_and_all():
    frac = split_labeled(ALL_IDS, ANNOTATED, "0.25", val_labeled=8, exclude_ids=TEST_IDS)
    assert len(frac.labeled) == round(0.25 * 40)
    tiny = split_labeled(ALL_IDS, ANNOTATED, "0.001", val_labeled=8, exclude_ids=TEST_IDS)
    assert len(tiny.labeled) == 1
    everything = split_labeled(ALL_IDS, ANNOTATED, "all", val_labeled=8, exclude_ids=TEST_IDS)
    assert len(everything.labeled) == 40


def test_split_too_many_labels_names_the_counts():
    with pytest.raises(AvslError) as err:
        split_labeled(ALL_IDS, ANNOTATED, "41", val_labeled=8, exclude_ids=TEST_IDS)
    msg = str(err.value)
    assert "41" in msg and "40" in msg and "8" in msg and "48" in msg
    with pytest.raises(AvslError, match="validation"):
        split_labeled(ALL_IDS, ANNOTATED, "1", val_labeled=49, exclude_ids=TEST_IDS)
    assert len(split_labeled(ALL_IDS, ANNOTATED, "40", val_labeled=8, exclude_ids=TEST_IDS).labeled) == 40


def test_split_from_id_file(tmp_path):
    ids = tmp_path / "labels.txt"
    ids.write_text("c004\nc010\nc012\n")
    split = split_labeled(ALL_IDS, ANNOTATED, ids, val_labeled=8, exclude_ids=TEST_IDS)
    assert split.labeled == ["c004", "c010", "c012"]
    assert len(split.val) == 8 and not set(split.val) & set(split.labeled)
    bad = tmp_path / "bad.txt"
    bad.write_text("c004\nc005\n")  # c005 has no boxes
    with pytest.raises(AvslError, match="1 of 2") as err:
        split_labeled(ALL_IDS, ANNOTATED, bad, val_labeled=8, exclude_ids=TEST_IDS)
    assert str(bad) in str(err.value)


def test_save_and_read_split(tmp_path):
    split = split_labeled(ALL_IDS, ANNOTATED, "6", val_labeled=4, exclude_ids=TEST_IDS)
    lab_path, val_path = save_split(split, tmp_path / "run")
    assert lab_path.read_text() == "".join(c + "\n" for c in split.labeled)
    assert val_path.read_text() == "".join(c + "\n" for c in split.val)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["labeled.txt", "val.txt"]  # no temp files left
    assert read_split(tmp_path / "run", ALL_IDS, exclude_ids=TEST_IDS) == split
    with pytest.raises(AvslError, match="missing"):
        read_split(tmp_path, ALL_IDS)


# ----------------------------------------------------------------------------- DMT filter + IPL

Z = 0.0


def _maps(*rows_lists):
    return torch.tensor(rows_lists, dtype=torch.float32)


# Teacher A: foreground (P >= 0.6) is the top-left 2×2 block (0.6 itself counts: P ≥ δ).
PA = [[0.9, 0.8, 0.1, Z], [0.7, 0.6, 0.2, Z], [0.1, 0.5, Z, Z], [Z, Z, Z, Z]]
# Teacher B agrees and adds one pixel: IoU = 4/5.
PB_AGREE = [[0.95, 0.7, Z, Z], [0.65, 0.61, Z, Z], [0.6, Z, Z, Z], [Z, Z, Z, Z]]
# Teacher B sees the top-right block: IoU = 0.
PB_DISAGREE = [[Z, Z, 0.9, 0.9], [Z, Z, 0.9, 0.9], [Z, Z, Z, Z], [Z, Z, Z, Z]]
EMPTY = [[0.1] * 4] * 4
# 10 foreground pixels vs 7 of them: IoU exactly 0.7 = τ (kept, ≥).
TEN = [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, Z, Z], [Z, Z, Z, Z]]
SEVEN = [[1, 1, 1, 1], [1, 1, 1, Z], [Z, Z, Z, Z], [Z, Z, Z, Z]]


def test_dmt_filter_and_ipl_on_hand_made_maps():
    a = _maps(PA, PA, EMPTY, TEN)
    b = _maps(PB_AGREE, PB_DISAGREE, EMPTY, SEVEN)
    out = dmt_pseudo_labels(a, b, delta=0.6, tau=0.7, map_norm="none")
    assert out.iou.tolist() == pytest.approx([0.8, 0.0, 0.0, 0.7])
    assert out.keep.tolist() == [True, False, False, True]
    expected_ma0 = [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    expected_mb0 = [[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert out.masks_a[0].int().tolist() == expected_ma0
    assert out.masks_b[0].int().tolist() == expected_mb0
    assert out.labels[0].tolist() == expected_ma0  # IPL = M^A·M^B
    assert out.labels[1].tolist() == [[0] * 4] * 4  # disjoint → empty intersection
    assert out.labels[3].tolist() == SEVEN
    assert out.kept_fraction == 0.5
    assert out.mean_iou == pytest.approx((0.8 + 0.7) / 4)
    assert out.log_dict() == {"pl_kept": 0.5, "pl_iou": pytest.approx(0.375)}


def test_dmt_ablation_switches():
    a, b = _maps(PA, PA), _maps(PB_AGREE, PB_DISAGREE)
    no_filter = dmt_pseudo_labels(a, b, map_norm="none", use_filter=False)
    assert no_filter.keep.tolist() == [True, True]
    union = dmt_pseudo_labels(a, b, map_norm="none", label="union")
    assert union.labels[0].int().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert union.labels[1].int().tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    only_b = dmt_pseudo_labels(a, b, map_norm="none", label="teacher_b")
    assert only_b.labels[1].int().tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    only_a = dmt_pseudo_labels(a, b, map_norm="none", label="teacher_a")
    assert torch.equal(only_a.labels[1], only_a.masks_a[1].float())
    single = dmt_pseudo_labels(_maps(PA, EMPTY), None, map_norm="none")
    assert single.keep.tolist() == [True, False] and math.isnan(single.mean_iou)
    assert single.labels[0].int().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert dmt_pseudo_labels(_maps(PA, EMPTY), None, map_norm="none", use_filter=False).keep.tolist() == [True, True]
    with pytest.raises(AvslError, match="intersection"):
        dmt_pseudo_labels(a, b, map_norm="none", label="bogus")
    with pytest.raises(AvslError, match="shape"):
        dmt_pseudo_labels(a, b[:, :3], map_norm="none")


def test_binary_iou_edge_cases():
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)
    one = empty.clone()
    one[0, 1, 1] = True
    assert binary_iou(empty, empty).item() == 0.0  # documented default: two empty maps are rejected
    assert binary_iou(empty, empty, empty_iou=1.0).item() == 1.0
    assert binary_iou(empty, one).item() == 0.0
    assert binary_iou(one, one).item() == 1.0
    both_empty = dmt_pseudo_labels(_maps(EMPTY), _maps(EMPTY), map_norm="none", empty_iou=1.0)
    assert both_empty.keep.tolist() == [True] and both_empty.labels.sum() == 0


def test_map_norms():
    logits = torch.tensor([[[2.0, 0.5], [0.3, -1.0]]])
    # sigmoid(z) >= 0.6  <=>  z >= log(1.5) = 0.405
    out = dmt_pseudo_labels(logits, logits, map_norm="sigmoid")
    assert out.masks_a.int().tolist() == [[[1, 1], [0, 0]]]
    mm = minmax_per_sample(torch.tensor([[[2.0, 0.0], [1.0, 4.0]], [[3.0, 3.0], [3.0, 3.0]]]))
    assert mm.tolist() == [[[0.5, 0.0], [0.25, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]
    assert dmt_pseudo_labels(logits, logits, map_norm="minmax").masks_a.int().tolist() == [[[1, 0], [0, 0]]]
    up = to_unit_maps(torch.randn(2, 7, 7), "minmax", size=224)
    assert up.shape == (2, 224, 224) and up.amin() == 0 and up.amax() == 1
    with pytest.raises(AvslError, match="map_norm"):
        to_unit_maps(logits, "softmax")


# ----------------------------------------------------------------------------- EMA


def _net(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(dtype)


def test_ema_update_is_exact_and_copies_buffers():
    student = _net()
    teacher = make_teacher(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    student.train()
    student(torch.randn(5, 3, dtype=torch.float64))  # moves BN running stats
    before = {k: v.clone() for k, v in teacher.named_parameters()}
    beta = 0.9
    ema_update_(teacher, student, beta)
    for name, s in student.named_parameters():
        expected = beta * before[name] + (1 - beta) * s.detach()
        torch.testing.assert_close(dict(teacher.named_parameters())[name], expected, rtol=1e-15, atol=0)
    for name, buf in student.named_buffers():
        assert torch.equal(dict(teacher.named_buffers())[name], buf)
    ema_update_(teacher, student, 0.0)
    for t, s in zip(teacher.parameters(), student.parameters()):
        assert torch.equal(t, s)
    frozen = {k: v.clone() for k, v in teacher.named_parameters()}
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    ema_update_(teacher, student, 1.0)
    assert all(torch.equal(frozen[k], v) for k, v in teacher.named_parameters())


def test_teacher_gets_no_grad():
    student = _net(torch.float32)
    teacher = make_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    x = torch.randn(4, 3)
    loss = (student(x) - teacher(x)).pow(2).sum() + student(x).sum()
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    ema_update_(teacher, student, 0.5)  # under grad mode: must not build a graph
    assert all(p.grad_fn is None and not p.requires_grad for p in teacher.parameters())
    with pytest.raises(AvslError, match="beta"):
        ema_update_(teacher, student, 1.5)
    with pytest.raises(AvslError, match="differ"):
        ema_update_(nn.Linear(3, 4), student, 0.5)


# ----------------------------------------------------------------------------- XPL


def test_pearson_hand_values_and_numpy():
    x = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    y = torch.tensor([[1.0, 3.0, 2.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    # x − x̄ = (−1, 0, 1), y − ȳ = (−1, 1, 0): cov 1, var 2, 2 → r = 0.5
    assert pearson_correlation(x, y).tolist() == pytest.approx([0.5, 1.0, -1.0, 0.0])
    assert math.isnan(pearson_correlation(x, y, constant_value=math.nan)[3].item())
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 7, 7)), rng.normal(size=(6, 7, 7))
    b[2] = 3 * a[2] + 1  # perfectly correlated
    ours = pearson_correlation(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    ref = [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(6)]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    assert ours[2] == pytest.approx(1.0)


def test_ramp_fraction_schedules():
    lin = [ramp_fraction(e, 0.2, 1.0, 4) for e in (0, 1, 2, 3, 4, 10)]
    assert lin == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert ramp_fraction(1.5, 0.2, 1.0, 4) == pytest.approx(0.5)  # fractional epochs
    assert ramp_fraction(2, 0.2, 1.0, 4, "cosine") == pytest.approx(0.6)
    assert ramp_fraction(1, 0.2, 1.0, 4, "cosine") == pytest.approx(0.2 + 0.8 * (1 - math.cos(math.pi / 4)) / 2)
    assert ramp_fraction(0, 0.2, 1.0, 4, "exp") == pytest.approx(0.2)
    assert ramp_fraction(4, 0.2, 1.0, 4, "exp") == pytest.approx(1.0)
    assert ramp_fraction(3, 0.2, 1.0, 0) == 1.0
    with pytest.raises(AvslError, match="schedule"):
        ramp_fraction(0, 0.2, 1.0, 4, "step")
    with pytest.raises(AvslError, match="start_fraction"):
        ramp_fraction(0, 1.2, 1.0, 4)


def test_select_by_correlation_with_ramp():
    r = torch.tensor([0.9, -0.2, 0.5, 0.7, 0.1])
    expected = {  # epoch → kept mask for fractions 0.2, 0.4, 0.6, 0.8, 1.0 (1..5 samples) and floor 0
        0: [True, False, False, False, False],
        1: [True, False, False, True, False],
        2: [True, False, True, True, False],
        3: [True, False, True, True, True],
        4: [True, False, True, True, True],  # 5 allowed, −0.2 below the floor
    }
    for epoch, mask in expected.items():
        fraction = ramp_fraction(epoch, 0.2, 1.0, 4)
        assert select_by_correlation(r, fraction, floor=0.0).tolist() == mask, epoch
    assert select_by_correlation(r, 0.5).tolist() == [True, False, True, True, False]  # ceil(2.5) = 3
    assert select_by_correlation(r, 0.5, floor=0.6).tolist() == [True, False, False, True, False]
    assert select_by_correlation(r, 0.0).sum() == 0
    with_nan = torch.tensor([float("nan"), 0.3, 0.3])
    assert select_by_correlation(with_nan, 1.0).tolist() == [False, True, True]
    assert select_by_correlation(with_nan, 0.3).tolist() == [False, True, False]  # tie: first position wins


def test_sharpen_values():
    p = torch.tensor([0.0, 0.5, 0.6, 1.0])
    assert sharpen(p, 0.1).tolist() == pytest.approx([1 / (1 + math.exp(5)), 0.5, 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(-5))])
    assert sharpen(p, 1.0).tolist() == pytest.approx([1 / (1 + math.exp(0.5)), 0.5, 1 / (1 + math.exp(-0.1)), 1 / (1 + math.exp(-0.5))])
    with pytest.raises(AvslError):
        sharpen(p, 0.0)


def _full(value, n=1):
    return torch.full((n, 2, 2), value)


def test_pl_ema_bank_three_updates_by_hand():
    bank = PseudoLabelBank(4, 2, alpha=0.7, dtype=torch.float32)
    idx = torch.tensor([0, 2])
    first = bank.update(idx, torch.cat([_full(1.0), _full(0.0)]))  # first visit: Y = Ŷ
    assert first[:, 0, 0].tolist() == [1.0, 0.0]
    second = bank.update(idx, torch.cat([_full(0.0), _full(0.5)]))  # 0.7·1 + 0.3·0 ; 0.7·0 + 0.3·0.5
    assert second[:, 0, 0].tolist() == pytest.approx([0.7, 0.15])
    third = bank.update(torch.tensor([0, 2, 1]), torch.cat([_full(1.0), _full(0.5), _full(0.4)]))
    # 0.7·0.7 + 0.3·1 = 0.79 ; 0.7·0.15 + 0.3·0.5 = 0.255 ; sample 1 first visit → 0.4
    assert third[:, 1, 1].tolist() == pytest.approx([0.79, 0.255, 0.4])
    assert bank.seen.tolist() == [True, True, True, False]
    assert bank.get(torch.tensor([3])).sum() == 0
    for dtype, tol in ((torch.float16, 1e-3), ("uint8", 1.0 / 255)):
        q = PseudoLabelBank(4, 2, alpha=0.7, dtype=dtype)
        q.update(idx, torch.cat([_full(1.0), _full(0.0)]))
        q.update(idx, torch.cat([_full(0.0), _full(0.5)]))
        out = q.update(idx, torch.cat([_full(1.0), _full(0.5)]))
        assert out[:, 0, 0].tolist() == pytest.approx([0.79, 0.255], abs=tol)
    assert PseudoLabelBank(10, (7, 7)).nbytes == 10 * 49 * 2 + 10
    with pytest.raises(AvslError, match="expected"):
        bank.update(idx, torch.zeros(2, 3, 3))
    with pytest.raises(AvslError, match="range"):
        bank.update(torch.tensor([4]), _full(0.1))


@pytest.mark.parametrize("dtype", ["float16", "uint8"])
def test_pl_ema_bank_state_round_trip(dtype):
    gen = torch.Generator().manual_seed(0)
    bank = PseudoLabelBank(6, (3, 3), alpha=0.7, dtype=dtype)
    for _ in range(3):
        bank.update(torch.randperm(6, generator=gen)[:4], torch.rand(4, 3, 3, generator=gen))
    buf = io.BytesIO()
    torch.save(bank.state_dict(), buf)
    buf.seek(0)
    resumed = PseudoLabelBank(6, (3, 3), alpha=0.7, dtype=dtype)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(resumed.labels, bank.labels) and torch.equal(resumed.seen, bank.seen)
    idx, new = torch.tensor([5, 0, 3]), torch.rand(3, 3, 3, generator=gen)
    assert torch.equal(resumed.update(idx, new), bank.update(idx, new))
    assert torch.equal(resumed.labels, bank.labels)
    with pytest.raises(AvslError, match="resume"):
        PseudoLabelBank(7, (3, 3), dtype=dtype).load_state_dict(bank.state_dict())


def test_xpl_cross_targets_cross_and_blend():
    from avslkit.semisup import xpl_cross_targets

    a = torch.tensor([[[2.0, -2.0], [0.0, 1.0]], [[1.0, 1.0], [-1.0, -1.0]]])
    b = torch.tensor([[[1.0, -1.0], [0.0, 0.5]], [[-1.0, -1.0], [1.0, 1.0]]])  # sample 0 agrees, 1 anti-correlated
    bank_a, bank_b = PseudoLabelBank(5, 2, dtype="float32"), PseudoLabelBank(5, 2, dtype="float32")
    idx = torch.tensor([3, 1])
    out = xpl_cross_targets(a, b, idx, bank_a, bank_b, fraction=1.0, floor=0.0, temperature=0.1)
    assert out.keep.tolist() == [True, False]
    assert out.r[1].item() == pytest.approx(-1.0)
    torch.testing.assert_close(out.target_for_a, sharpen(torch.sigmoid(b), 0.1))  # A learns from B
    torch.testing.assert_close(out.target_for_b, sharpen(torch.sigmoid(a), 0.1))
    again = xpl_cross_targets(a, -b, idx, bank_a, bank_b, fraction=0.5)
    expected = 0.7 * sharpen(torch.sigmoid(b), 0.1) + 0.3 * sharpen(torch.sigmoid(-b), 0.1)
    torch.testing.assert_close(again.target_for_a, expected)
    assert again.log_dict()["xpl_kept"] == 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_blocks_on_cuda_with_cpu_bank():
    from avslkit.losses.attention import dmt_attention_loss
    from avslkit.losses.supervised import supervised_loss

    dev = torch.device("cuda")
    a, b = _maps(PA, PA).to(dev), _maps(PB_AGREE, PB_DISAGREE).to(dev)
    out = dmt_pseudo_labels(a, b, map_norm="none")
    assert out.keep.device.type == "cuda" and out.keep.tolist() == [True, False]
    bank = PseudoLabelBank(4, 4)  # lives on the CPU
    stored = bank.update(torch.tensor([1, 2], device=dev), out.labels)
    assert stored.device.type == "cuda" and torch.equal(stored.cpu(), out.labels.cpu())
    logits = torch.randn(2, 4, 4, device=dev, requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = supervised_loss(logits, stored, mask=out.keep)
        v = torch.nn.functional.normalize(torch.randn(2, 8, 4, 4, device=dev), dim=1)
        c = dmt_attention_loss(v, torch.nn.functional.normalize(torch.randn(2, 8, device=dev), dim=1))[0]
    (loss + c).backward()
    assert torch.isfinite(loss) and torch.isfinite(c) and logits.grad is not None


def test_pl_ema_bank_duplicate_indices_use_first_occurrence():
    bank = PseudoLabelBank(3, 2, alpha=0.5, dtype="float32")
    out = bank.update(torch.tensor([2, 0, 2]), torch.cat([_full(0.2), _full(0.4), _full(0.9)]))
    assert out[:, 0, 0].tolist() == pytest.approx([0.2, 0.4, 0.2])
    out = bank.update(torch.tensor([2, 2]), torch.cat([_full(0.6), _full(1.0)]))
    assert out[:, 0, 0].tolist() == pytest.approx([0.4, 0.4])  # 0.5·0.2 + 0.5·0.6, applied once
