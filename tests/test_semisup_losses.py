"""Supervised localisation losses H(G, P) and the DMT/XPL contrastive terms vs brute-force loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avslkit.errors import AvslError
from avslkit.losses.attention import CONTRASTIVE_LOSSES, attention_pool, dmt_attention_loss, gmp_contrastive_loss
from avslkit.losses.ezvsl import ezvsl_loss
from avslkit.losses.supervised import SUPERVISED_LOSSES, match_target, supervised_loss


def _bce_loop(z, g):
    total = 0.0
    for b in range(z.shape[0]):
        s, n = 0.0, 0
        for y in range(z.shape[1]):
            for x in range(z.shape[2]):
                p = 1.0 / (1.0 + math.exp(-float(z[b, y, x])))
                t = float(g[b, y, x])
                s += -(t * math.log(p) + (1 - t) * math.log(1 - p))
                n += 1
        total += s / n
    return total / z.shape[0]


def _spatial_ce_loop(z, g):
    losses = []
    for b in range(z.shape[0]):
        zs = [float(v) for v in z[b].flatten()]
        gs = [float(v) for v in g[b].flatten()]
        if sum(gs) == 0:
            continue
        lse = math.log(sum(math.exp(v) for v in zs))
        losses.append(-sum((t / sum(gs)) * (v - lse) for v, t in zip(zs, gs)))
    return sum(losses) / len(losses)


def test_pixel_bce_soft_targets_vs_loop():
    torch.manual_seed(0)
    z, g = torch.randn(3, 4, 4) * 3, torch.rand(3, 4, 4)
    assert supervised_loss(z, g, "pixel_bce").item() == pytest.approx(_bce_loop(z, g), rel=1e-5)


def test_spatial_ce_vs_loop_and_empty_target():
    torch.manual_seed(1)
    z, g = torch.randn(3, 4, 4) * 2, (torch.rand(3, 4, 4) > 0.6).float()
    g[1] = 0.0  # empty: left out of the mean
    g[2, 0, 0] = 0.5  # soft
    assert supervised_loss(z, g, "spatial_ce").item() == pytest.approx(_spatial_ce_loop(z, g), rel=1e-5)
    per_sample = supervised_loss(z, g, "spatial_ce", reduction="none")
    assert per_sample[1] == 0
    assert per_sample[0].item() == pytest.approx(_spatial_ce_loop(z[:1], g[:1]), rel=1e-5)
    # shift invariance (why spatial_ce pairs with min-max maps)
    assert supervised_loss(z + 7.0, g, "spatial_ce").item() == pytest.approx(supervised_loss(z, g, "spatial_ce").item(), rel=1e-5)


def test_area_resize_of_224_ground_truth():
    gt = torch.zeros(1, 224, 224)
    gt[0, 0:64, 0:48] = 1.0  # 2 cells tall, 1.5 cells wide on the 7×7 grid (32 px cells)
    _, target = match_target(torch.zeros(1, 7, 7), gt, "area")
    expected = torch.zeros(7, 7)
    expected[0:2, 0] = 1.0
    expected[0:2, 1] = 0.5
    assert torch.equal(target[0], expected)
    torch.manual_seed(2)
    z = torch.randn(1, 7, 7)
    assert supervised_loss(z, gt, "pixel_bce").item() == pytest.approx(_bce_loop(z, expected[None]), rel=1e-5)
    assert supervised_loss(z, gt, "spatial_ce").item() == pytest.approx(_spatial_ce_loop(z, expected[None]), rel=1e-5)


def test_upsample_resize_compares_at_gt_resolution():
    torch.manual_seed(3)
    z, gt = torch.randn(2, 2, 2), (torch.rand(2, 6, 6) > 0.5).float()
    up = F.interpolate(z[:, None], size=(6, 6), mode="bicubic", align_corners=True)[:, 0]
    assert up[0, 0, 0] == z[0, 0, 0] and up[0, 5, 5] == z[0, 1, 1]  # align_corners keeps the corners
    assert supervised_loss(z, gt, "pixel_bce", resize="upsample").item() == pytest.approx(_bce_loop(up, gt), rel=1e-5)
    with pytest.raises(AvslError, match="resize"):
        supervised_loss(z, gt, resize="nearest")


def test_mask_and_errors():
    torch.manual_seed(4)
    z = torch.randn(2, 3, 3, requires_grad=True)
    g = torch.rand(2, 3, 3)
    masked = supervised_loss(z, g, mask=torch.tensor([True, False]))
    assert masked.item() == pytest.approx(_bce_loop(z[:1].detach(), g[:1]), rel=1e-5)
    none = supervised_loss(z, g, mask=torch.tensor([False, False]))
    assert none.item() == 0.0
    none.backward()  # still part of the graph
    assert z.grad is not None and torch.count_nonzero(z.grad) == 0
    with pytest.raises(AvslError, match="unknown supervised loss"):
        supervised_loss(z, g, "dice")
    with pytest.raises(AvslError, match="B×h×w"):
        supervised_loss(z, g[0])
    assert {k: v.map_norm for k, v in SUPERVISED_LOSSES.items()} == {"pixel_bce": "sigmoid", "spatial_ce": "minmax"}


def _unit(x, dim):
    return F.normalize(x, dim=dim)


def _attention_loss_loop(v, a, tau, mode, temp):
    B, C, h, w = v.shape
    cells = [(y, x) for y in range(h) for x in range(w)]
    s = [[0.0] * B for _ in range(B)]
    for i in range(B):
        for j in range(B):
            att_audio = a[j] if mode == "pair" else a[i]
            scores = [float(v[i, :, y, x] @ att_audio) / temp for y, x in cells]
            m = max(scores)
            ws = [math.exp(sc - m) for sc in scores]
            ws = [wi / sum(ws) for wi in ws]
            f = sum(wi * v[i, :, y, x].double() for wi, (y, x) in zip(ws, cells))
            f = f / f.norm()
            s[i][j] = float(f @ a[j].double()) / tau

    def ce(rows):
        return sum(-(r[k] - math.log(sum(math.exp(x) for x in r))) for k, r in enumerate(rows)) / len(rows)

    cols = [[s[i][j] for i in range(B)] for j in range(B)]
    return ce(s) + ce(cols)


@pytest.mark.parametrize("mode", ["pair", "own"])
@pytest.mark.parametrize("temp", [1.0, 0.1])
def test_dmt_attention_loss_vs_loop(mode, temp):
    torch.manual_seed(5)
    v = _unit(torch.randn(3, 4, 2, 3), 1)
    a = _unit(torch.randn(3, 4), 1)
    loss, logits = dmt_attention_loss(v, a, tau=0.5, attention_audio=mode, attention_temperature=temp)
    assert logits.shape == (3, 3)
    assert loss.item() == pytest.approx(_attention_loss_loop(v, a, 0.5, mode, temp), rel=1e-5)


def test_attention_pool_and_gradients():
    torch.manual_seed(6)
    v = torch.randn(2, 4, 3, 3)
    assert torch.allclose(attention_pool(v, torch.zeros(2, 3, 3)), v.mean(dim=(2, 3)), atol=1e-6)
    peaked = torch.full((2, 3, 3), -1e4)
    peaked[:, 1, 2] = 0.0
    assert torch.allclose(attention_pool(v, peaked), v[:, :, 1, 2])
    vv = _unit(torch.randn(3, 4, 2, 2), 1).requires_grad_()
    aa = _unit(torch.randn(3, 4), 1).requires_grad_()
    dmt_attention_loss(vv, aa)[0].backward()
    assert vv.grad.abs().sum() > 0 and aa.grad.abs().sum() > 0
    with pytest.raises(AvslError, match="attention_audio"):
        dmt_attention_loss(vv, aa, attention_audio="other")


def test_gmp_contrastive_is_ezvsl():
    torch.manual_seed(7)
    v, a = _unit(torch.randn(4, 8, 3, 3), 1), _unit(torch.randn(4, 8), 1)
    assert torch.equal(gmp_contrastive_loss(v, a)[0], ezvsl_loss(v, a)[0])
    assert set(CONTRASTIVE_LOSSES) == {"attention", "gmp"}
