"""Contrastive terms of the semi-supervised students.

**DMT attention contrastive loss** (Guo et al. 2023, Eq. 1, 2, 12). With v: B×C×h×w visual maps and
a: B×C audio vectors, both L2-normalised over C (what ``EZVSL.encode_image/encode_audio`` return):

- predicted map of image i with audio j: P_ij(p) = ⟨v_i(p), a_j⟩ (cosine, Eq. 2);
- attention pooling (Eq. 12): f_att(v_i | a_j) = Σ_p softmax_p(P_ij(p)/T_att) · v_i(p);
- s[i, j] = cos(f_att(v_i | a_j), a_j) / τ_t (the pooled vector is re-normalised: Eq. 1's s is a
  consistency score and DMT's maps are cosines);
- loss = CE over rows of s (image i → its audio) + CE over columns (audio j → its image), the two
  terms of Eq. 1, each a batch mean.

Options: ``attention_audio`` — "pair" (default): the attention of pair (i, j) uses that pair's own
map P_ij, so every s[i, j] is a function of (v_i, a_j) alone, like every other s(·) of DMT App. D;
"own": every row i pools once with its own audio's map P_ii (Eq. 12's notation f_att(v_i) read
literally; cheaper, but negatives are then scored on a region chosen by the positive's audio).
``attention_temperature`` T_att = 1 by default (Eq. 12 literally: exp of the cosine, a gentle
softmax over 7×7 cells); ``tau`` τ_t = 0.03 (DMT does not state τ_t; EZ-VSL/SLAVC's value).

**XPL contrastive loss** (XPL Eq. 8): global max pooling of the similarity maps + InfoNCE in both
directions, i.e. exactly EZ-VSL's loss; ``gmp_contrastive_loss`` reuses ``avslkit.losses.ezvsl``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from avslkit.errors import AvslError
from avslkit.losses.ezvsl import ezvsl_loss, similarity_maps

__all__ = [
    "ATTENTION_AUDIO",
    "CONTRASTIVE_LOSSES",
    "attention_logits",
    "attention_pool",
    "dmt_attention_loss",
    "gmp_contrastive_loss",
    "symmetric_infonce",
]

ATTENTION_AUDIO = ("pair", "own")


def attention_pool(v: torch.Tensor, attention_map: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """f_att = Σ_p softmax_p(map(p)/T) · v(p) (DMT Eq. 12).

    `v` is N×C×h×w and `attention_map` N×h×w, or N×M×h×w to pool v_i once per map (→ N×M×C).
    """
    weights = F.softmax(attention_map.flatten(-2) / temperature, dim=-1)  # N×hw or N×M×hw
    feats = v.flatten(2)  # N×C×hw
    if weights.ndim == 2:
        return torch.einsum("np,ncp->nc", weights, feats)
    return torch.einsum("nmp,ncp->nmc", weights, feats)


def attention_logits(
    v: torch.Tensor, a: torch.Tensor, tau: float = 0.03, attention_audio: str = "pair", attention_temperature: float = 1.0
) -> torch.Tensor:
    """s[i, j] = cos(f_att(v_i | a_j or a_i), a_j)/τ_t: B_v×B_a (inputs L2-normalised over C)."""
    if attention_audio == "pair":
        pooled = attention_pool(v, similarity_maps(v, a), attention_temperature)  # B×B×C, pair (i, j)
        return torch.einsum("nmc,mc->nm", F.normalize(pooled, dim=-1), a) / tau
    if attention_audio == "own":
        own_map = torch.einsum("nchw,nc->nhw", v, a)
        pooled = F.normalize(attention_pool(v, own_map, attention_temperature), dim=-1)  # B×C
        return pooled @ a.t() / tau
    raise AvslError(f"unknown attention_audio {attention_audio!r}; use one of {', '.join(ATTENTION_AUDIO)}")


def symmetric_infonce(logits: torch.Tensor) -> torch.Tensor:
    """CE over rows (image → audio) + CE over columns (audio → image) of a square logit matrix (Eq. 1)."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)


def dmt_attention_loss(
    v: torch.Tensor, a: torch.Tensor, tau: float = 0.03, attention_audio: str = "pair", attention_temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of DMT's attention-pooled InfoNCE (Eq. 1 with the pooling of Eq. 12)."""
    logits = attention_logits(v, a, tau, attention_audio, attention_temperature)
    return symmetric_infonce(logits), logits


def gmp_contrastive_loss(v: torch.Tensor, a: torch.Tensor, tau: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits) of XPL's contrastive term (Eq. 8) = EZ-VSL's max-pooled InfoNCE."""
    return ezvsl_loss(v, a, tau)


CONTRASTIVE_LOSSES: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "attention": dmt_attention_loss,
    "gmp": gmp_contrastive_loss,
}
