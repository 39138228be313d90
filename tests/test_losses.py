"""EZ-VSL and SLAVC losses against brute-force loops (math.exp/log over i, j, p), not the vectorised code."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avslkit.losses import ezvsl_logits, ezvsl_loss, pair_similarity, similarity_maps, slavc_logits, slavc_loss

B, C, H, W = 3, 4, 2, 3


def _features(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    v = F.normalize(torch.randn(B, C, H, W, generator=g, dtype=torch.float64), dim=1)
    a = F.normalize(torch.randn(B, C, generator=g, dtype=torch.float64), dim=1)
    return v, a


def _dot(v: torch.Tensor, a: torch.Tensor, i: int, j: int, y: int, x: int) -> float:
    return sum(float(v[i, c, y, x]) * float(a[j, c]) for c in range(C))


def _cells() -> list[tuple[int, int]]:
    return [(y, x) for y in range(H) for x in range(W)]


def _ce_rows(logits: list[list[float]]) -> float:
    """Mean over rows i of −log softmax(row i)[i]."""
    total = 0.0
    for i, row in enumerate(logits):
        total += -(row[i] - math.log(sum(math.exp(z) for z in row)))
    return total / len(logits)


def brute_ezvsl(v: torch.Tensor, a: torch.Tensor, tau: float) -> tuple[float, list[list[float]]]:
    s = [[max(_dot(v, a, i, j, y, x) / tau for (y, x) in _cells()) for j in range(B)] for i in range(B)]
    cols = [[s[i][j] for i in range(B)] for j in range(B)]
    return _ce_rows(s) + _ce_rows(cols), s


def brute_slavc_logits(v1, v2, a1, a2, tau: float) -> list[list[float]]:
    out = []
    for i in range(B):
        row = []
        for j in range(B):
            total = 0.0
            for y, x in _cells():
                # π1: softmax over audios j' at this cell
                num1 = math.exp(_dot(v1, a1, i, j, y, x) / tau)
                den1 = sum(math.exp(_dot(v1, a1, i, jj, y, x) / tau) for jj in range(B))
                # π2: softmax over cells p' for this (i, j)
                num2 = math.exp(_dot(v2, a2, i, j, y, x) / tau)
                den2 = sum(math.exp(_dot(v2, a2, i, j, yy, xx) / tau) for yy, xx in _cells())
                total += (num1 / den1) * (num2 / den2)
            row.append(math.log(total))
        out.append(row)
    return out


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_ezvsl_loss_matches_brute_force(tau: float) -> None:
    v, a = _features(0)
    loss, logits = ezvsl_loss(v, a, tau)
    ref_loss, ref_logits = brute_ezvsl(v, a, tau)
    assert logits.shape == (B, B)
    for i in range(B):
        for j in range(B):
            assert logits[i, j].item() == pytest.approx(ref_logits[i][j], rel=1e-9)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-9)
    assert torch.equal(ezvsl_logits(v, a, tau), logits)


def test_similarity_and_pair_maps() -> None:
    v, a = _features(1)
    tau = 0.03
    S = similarity_maps(v, a, tau)
    M = pair_similarity(v, a, tau)
    assert S.shape == (B, B, H, W) and M.shape == (B, H, W)
    for i in range(B):
        for y, x in _cells():
            assert M[i, y, x].item() == pytest.approx(_dot(v, a, i, i, y, x) / tau, rel=1e-9)
            for j in range(B):
                assert S[i, j, y, x].item() == pytest.approx(_dot(v, a, i, j, y, x) / tau, rel=1e-9)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_slavc_logits_match_brute_force(tau: float) -> None:
    v1, a1 = _features(2)
    v2, a2 = _features(3)
    got = slavc_logits(v1, v2, a1, a2, tau)
    ref = brute_slavc_logits(v1, v2, a1, a2, tau)
    for i in range(B):
        for j in range(B):
            assert got[i, j].item() == pytest.approx(ref[i][j], rel=1e-9, abs=1e-12)


def test_slavc_loss_matches_brute_force() -> None:
    tau = 0.2
    v1, a1 = _features(4)
    v2, a2 = _features(5)
    v1m, a1m = _features(6)
    v2m, a2m = _features(7)
    loss, logits = slavc_loss(v1, v2, a1, a2, v1m, v2m, a1m, a2m, tau)
    # online images vs momentum audios + momentum images vs online audios, both CE over rows
    ref = _ce_rows(brute_slavc_logits(v1, v2, a1m, a2m, tau)) + _ce_rows(brute_slavc_logits(v1m, v2m, a1, a2, tau))
    assert loss.item() == pytest.approx(ref, rel=1e-9)
    assert logits.shape == (B, B)


def test_slavc_logits_stable_at_small_tau() -> None:
    """τ = 0.03 with opposed features makes π underflow in float32; the log-space form stays finite."""
    v1, a1 = _features(8)
    v2, a2 = _features(9)
    out = slavc_logits(v1.float(), v2.float(), a1.float(), a2.float(), 0.001)
    assert torch.isfinite(out).all()


def test_ezvsl_loss_gradients_flow() -> None:
    v, a = _features(10)
    v.requires_grad_(True)
    a.requires_grad_(True)
    loss, _ = ezvsl_loss(v, a, 0.03)
    loss.backward()
    assert v.grad is not None and a.grad is not None and a.grad.abs().sum() > 0


def test_ezvsl_loss_terms_is_the_one_ezvsl_loss():
    """The task's two CE terms (local and gathered negatives) and the model's loss are one function."""
    from avslkit.losses.ezvsl import ezvsl_loss, ezvsl_loss_terms

    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(4, 8, 3, 3, generator=g), dim=1)
    a = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    rows, cols = ezvsl_loss_terms(v, a, 0.03)
    loss, _ = ezvsl_loss(v, a, 0.03)
    assert torch.equal(rows + cols, loss)
    # a "gathered" batch that is this batch gives the same terms; a larger one adds negatives
    g_rows, g_cols = ezvsl_loss_terms(v, a, 0.03, v_all=v, a_all=a, labels=torch.arange(4))
    assert torch.allclose(g_rows, rows) and torch.allclose(g_cols, cols)
    more_rows, _ = ezvsl_loss_terms(v, a, 0.03, v_all=torch.cat([v, v.flip(0)]), a_all=torch.cat([a, -a]), labels=torch.arange(4))
    assert not torch.allclose(more_rows, rows)
