"""Loss functions of the methods, as pure functions on (already L2-normalised) feature tensors."""

from avslkit.losses.attention import CONTRASTIVE_LOSSES, dmt_attention_loss, gmp_contrastive_loss
from avslkit.losses.ezvsl import ezvsl_logits, ezvsl_loss, pair_similarity, similarity_maps
from avslkit.losses.slavc import slavc_logits, slavc_loss
from avslkit.losses.supervised import SUPERVISED_LOSSES, supervised_loss

__all__ = [
    "CONTRASTIVE_LOSSES", "SUPERVISED_LOSSES", "dmt_attention_loss", "ezvsl_logits", "ezvsl_loss",
    "gmp_contrastive_loss", "pair_similarity", "similarity_maps", "slavc_logits", "slavc_loss", "supervised_loss",
]
