"""Loss functions of the methods, as pure functions on (already L2-normalised) feature tensors."""

from avslkit.losses.ezvsl import ezvsl_logits, ezvsl_loss, pair_similarity, similarity_maps
from avslkit.losses.slavc import slavc_logits, slavc_loss

__all__ = ["ezvsl_logits", "ezvsl_loss", "pair_similarity", "similarity_maps", "slavc_logits", "slavc_loss"]
