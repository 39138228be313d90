"""SLAVC loss (Mo & Morgado 2022, "A Closer Look at Weakly-Supervised Audio-Visual Source
Localization"), as in the official code (``SLAVC.forward``).

For visual maps V1, V2 (the two heads; B×C×h×w) and audio vectors A1, A2 (B×C), all L2-normalised:
π1[i, j, p] = softmax over j (the batch's audios) of ⟨V1_i(p), A1_j⟩/τ      (correspondence),
π2[i, j, p] = softmax over p (the h·w cells) of ⟨V2_i(p), A2_j⟩/τ          (localisation),
ℓ(V, A)[i, j] = log Σ_p π1[i, j, p]·π2[i, j, p].
Loss = CE_rows(ℓ(v, â)) + CE_rows(ℓ(v̂, a)) with v, a online and v̂, â momentum features; CE_rows
classifies, for each image i, its own audio j = i among the batch's audios. (The paper's Eq. 6 writes
a max over cells and a column CE for the second term; the released code, followed here, uses the
sum over cells and rows for both.) ℓ is computed in log space (logsumexp of log-softmaxes), which
equals the code's log of the sum of products without its underflow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from avslkit.losses.ezvsl import similarity_maps


def slavc_logits(v1: torch.Tensor, v2: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor, tau: float) -> torch.Tensor:
    """ℓ(V, A)[i, j] = log Σ_p softmax_j(⟨V1_i(p), A1_j⟩/τ) · softmax_p(⟨V2_i(p), A2_j⟩/τ): B×B."""
    log_pi1 = F.log_softmax(similarity_maps(v1, a1, tau).flatten(-2), dim=1)  # over audios j
    log_pi2 = F.log_softmax(similarity_maps(v2, a2, tau).flatten(-2), dim=2)  # over cells p
    return torch.logsumexp(log_pi1 + log_pi2, dim=2)


def slavc_loss(
    v1: torch.Tensor,
    v2: torch.Tensor,
    a1: torch.Tensor,
    a2: torch.Tensor,
    v1_m: torch.Tensor,
    v2_m: torch.Tensor,
    a1_m: torch.Tensor,
    a2_m: torch.Tensor,
    tau: float = 0.03,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, ℓ(v, â)) of SLAVC; `*_m` are the momentum (target) features, no gradient needed."""
    img_to_aud = slavc_logits(v1, v2, a1_m, a2_m, tau)  # online images vs momentum audios
    aud_to_img = slavc_logits(v1_m, v2_m, a1, a2, tau)  # momentum images vs online audios
    labels = torch.arange(img_to_aud.shape[0], device=img_to_aud.device)
    loss = F.cross_entropy(img_to_aud, labels) + F.cross_entropy(aud_to_img, labels)
    return loss, img_to_aud
