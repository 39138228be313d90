"""Engine-independent building blocks of the semi-supervised methods (DMT, XPL).

- ``labeled``: labelled / validation / unlabelled split of a training store.
- ``maps``: model score maps → [0, 1] maps P (``map_norm``).
- ``dmt``: Dual Mean-Teacher Noise Filtering + IPL pseudo-labels.
- ``ema``: mean-teacher EMA update and frozen teacher copies.
- ``xpl``: Cross Pseudo-Labeling: Pearson curriculum selection, sharpening, PL-EMA bank.
Losses live in ``avslkit.losses.supervised`` (H(G, P)) and ``avslkit.losses.attention``.
"""

from avslkit.semisup.dmt import DMTPseudoLabels, PSEUDO_LABEL_RULES, binarize, binary_iou, dmt_pseudo_labels, fuse_teacher_maps
from avslkit.semisup.ema import ema_update_, make_teacher, unwrap
from avslkit.semisup.labeled import LabeledSpec, LabeledSplit, parse_labeled_spec, read_split, save_split, split_labeled
from avslkit.semisup.maps import MAP_NORMS, minmax_per_sample, resize_maps, to_unit_maps
from avslkit.semisup.xpl import (
    BANK_DTYPES,
    RAMP_SCHEDULES,
    PseudoLabelBank,
    XPLTargets,
    pearson_correlation,
    ramp_fraction,
    select_by_correlation,
    sharpen,
    xpl_cross_targets,
)

__all__ = [
    "BANK_DTYPES",
    "DMTPseudoLabels",
    "LabeledSpec",
    "LabeledSplit",
    "MAP_NORMS",
    "PSEUDO_LABEL_RULES",
    "PseudoLabelBank",
    "RAMP_SCHEDULES",
    "binarize",
    "binary_iou",
    "dmt_pseudo_labels",
    "ema_update_",
    "fuse_teacher_maps",
    "make_teacher",
    "minmax_per_sample",
    "parse_labeled_spec",
    "pearson_correlation",
    "ramp_fraction",
    "read_split",
    "resize_maps",
    "save_split",
    "select_by_correlation",
    "sharpen",
    "split_labeled",
    "to_unit_maps",
    "unwrap",
    "XPLTargets",
    "xpl_cross_targets",
]
