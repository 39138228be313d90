"""EZ-VSL multiple-instance contrastive loss (Mo & Morgado 2022; SLAVC paper Eq. 1-2).

With v: B×C×h×w visual maps and a: B×C audio vectors, both L2-normalised over C:
S[i, j, p] = ⟨v_i(p), a_j⟩ / τ, s[i, j] = max_p S[i, j, p] and
loss = CE over rows of s (image i → its audio i) + CE over columns (audio j → its image j), each the
batch mean, exactly as the official ``max_xmil_loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def similarity_maps(v: torch.Tensor, a: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """All image×audio pairs: S[i, j] = ⟨v_i(p), a_j⟩/τ, shape B_v×B_a×h×w."""
    return torch.einsum("nchw,mc->nmhw", v, a) / tau


def pair_similarity(v: torch.Tensor, a: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Matched pairs only: map_i = ⟨v_i(p), a_i⟩/τ, shape B×h×w (the inference map)."""
    return torch.einsum("nchw,nc->nhw", v, a) / tau


def ezvsl_logits(v: torch.Tensor, a: torch.Tensor, tau: float) -> torch.Tensor:
    """s[i, j] = max over cells of S[i, j, p]: B_v×B_a (MIL max pooling)."""
    return similarity_maps(v, a, tau).flatten(-2).amax(-1)


def ezvsl_loss_terms(v: torch.Tensor, a: torch.Tensor, tau: float = 0.03, *, v_all: torch.Tensor | None = None,
                     a_all: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(CE over rows: image i → its audio, CE over columns: audio j → its image) of EZ-VSL.

    Without `v_all`/`a_all` the negatives are this batch's; with them (features all-gathered across DDP
    ranks) local images are classified against all audios and local audios against all images, and
    `labels` gives each local sample's row in the gathered batch.
    """
    if v_all is None and a_all is None:
        rows = ezvsl_logits(v, a, tau)
        cols = rows.t()
    else:
        rows = ezvsl_logits(v, a if a_all is None else a_all, tau)
        cols = ezvsl_logits(v if v_all is None else v_all, a, tau).t()
    return _two_way_ce(rows, cols, labels)


def _two_way_ce(rows: torch.Tensor, cols: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if labels is None:
        labels = torch.arange(rows.shape[0], device=rows.device)
    return F.cross_entropy(rows, labels), F.cross_entropy(cols, labels)


def ezvsl_loss(v: torch.Tensor, a: torch.Tensor, tau: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits s) of EZ-VSL; v B×C×h×w and a B×C must already be L2-normalised over C."""
    logits = ezvsl_logits(v, a, tau)
    loss_rows, loss_cols = _two_way_ce(logits, logits.t(), None)
    return loss_rows + loss_cols, logits
