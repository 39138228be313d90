"""Labelled / validation / unlabelled split of a training store for semi-supervised methods.

DMT (Sec. 5, App. B.1) trains with 256, 2k or 4k labelled clips drawn from the box-annotated ones,
holds 500 annotated clips out for validation and keeps the 250-clip test set apart; everything
else in the training store is unlabelled. Rules here:

- Candidates for labels/validation are the annotated clips that are in the store (store order is
  irrelevant: they are sorted, then permuted with ``numpy.random.default_rng(seed)``).
- ``val_labeled`` clips are taken first (the head of the permutation), then the labelled ones (the
  next ones). Because every count spec takes a prefix of the same permutation, with one seed the
  256-label set ⊂ 2k set ⊂ 4k set, and the validation set does not depend on the label count.
- Validation clips are removed from training entirely (neither labelled nor unlabelled).
- Unlabelled = every other store clip, *including the annotated clips that were not chosen* (their
  boxes are simply not used), as in the paper where the 4,250 annotated training clips sit inside
  the 10k/144k unlabelled pools.
- ``exclude_ids`` (the test set) are removed from all three parts. The test set is never used for
  validation.

``val_labeled: auto`` (the default) holds out min(500, 10% of the store's annotated candidates) clips,
at least 1: the paper's 500 where the store allows it, and a size any small store can give
(``resolve_val_labeled``; pass ``--val-labeled 500`` to force the paper's count).

Label specs (``parse_labeled_spec``): ``"4k"``/``"2k"`` (×1000, literal: "4k" = 4000 clips; the
paper's "4k" row uses all 4,250 annotated training clips — ask for that with ``"all"``), ``"256"``
(a count), ``"0.03"`` (a fraction in (0, 1] of the candidates left after validation, rounded to the
nearest clip, at least 1), or a path to a text file of clip ids (one per line; read with
``avslkit.data.annotations.read_id_list``), which must all be annotated clips of the store.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from avslkit.config_spec import TrainConfig, train_config
from avslkit.errors import AvslError
from avslkit.utils.io import atomic_write_text

__all__ = [
    "LabeledSpec",
    "LabeledSplit",
    "LABELED_FILE",
    "VAL_FILE",
    "parse_labeled_spec",
    "read_split",
    "resolve_val_labeled",
    "save_split",
    "split_labeled",
]

LABELED_FILE = "labeled.txt"
VAL_FILE = "val.txt"
_COUNT = re.compile(r"^(?P<n>\d+)(?P<k>[kK]?)$")
_FRACTION = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][+-]?\d+)?$")


AUTO_VAL_MAX = 500        # val_labeled: auto holds out at most this many clips (DMT's 500)...
AUTO_VAL_FRACTION = 0.1   # ...and at most this fraction of the annotated candidates (at least 1)


def resolve_val_labeled(value: int | str | None, n_candidates: int) -> int:
    """The number of held-out validation clips: an int as given; "auto"/None = min(500, 10% of the candidates)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        if n_candidates <= 0:
            return 0
        return int(min(AUTO_VAL_MAX, max(1, round(AUTO_VAL_FRACTION * n_candidates))))
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AvslError(f"val_labeled must be a count of clips or 'auto', got {value!r}") from None


@dataclass(frozen=True)
class LabeledSpec:
    """How many labels: ``kind`` is "count" (``count``), "fraction" (``fraction``), "all" or "file" (``path``)."""

    kind: str
    count: int | None = None
    fraction: float | None = None
    path: Path | None = None

    def describe(self) -> str:
        return {"count": f"{self.count} clips", "fraction": f"a fraction {self.fraction}", "all": "all annotated clips",
                "file": f"the ids in {self.path}"}[self.kind]


@dataclass(frozen=True)
class LabeledSplit:
    """Disjoint id lists: ``labeled`` (boxes used), ``val`` (held out), ``unlabeled`` (store order)."""

    labeled: list[str]
    val: list[str]
    unlabeled: list[str]

    def summary(self) -> dict[str, int]:
        return {"labeled": len(self.labeled), "val": len(self.val), "unlabeled": len(self.unlabeled)}


def parse_labeled_spec(spec: str | int | float | os.PathLike) -> LabeledSpec:
    """Parse "4k" | "2k" | "256" | "0.03" | "all" | path/to/ids.txt (see the module docstring)."""
    if isinstance(spec, bool):
        raise AvslError(f"labelled spec must be a count, a fraction or an id file, got {spec!r}")
    if isinstance(spec, int):
        spec = str(spec)
    elif isinstance(spec, float):
        spec = repr(spec)
    elif isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    text = str(spec).strip()
    if text.lower() == "all":
        return LabeledSpec("all")
    m = _COUNT.match(text)
    if m:
        count = int(m["n"]) * (1000 if m["k"] else 1)
        if count < 1:
            raise AvslError(f"labelled count must be at least 1, got {text!r} (use e.g. 256, 2k, 0.03 or an id file)")
        return LabeledSpec("count", count=count)
    if _FRACTION.match(text):
        fraction = float(text)
        if not 0.0 < fraction <= 1.0:
            raise AvslError(f"labelled fraction must be in (0, 1], got {text!r}")
        return LabeledSpec("fraction", fraction=fraction)
    path = Path(text).expanduser()
    if path.is_file():
        return LabeledSpec("file", path=path)
    if any(sep in text for sep in ("/", os.sep)) or path.suffix:
        raise AvslError(
            f"labelled id file {path} does not exist; give an existing file of clip ids, a count (256, 2k) or a fraction (0.03)"
        )
    raise AvslError(
        f"cannot read labelled spec {text!r}: use a count (256, 2k, 4k), a fraction in (0, 1] (0.03), 'all' or a file of clip ids"
    )


def _read_ids(path: Path) -> list[str]:
    from avslkit.data.annotations import read_id_list  # lazy: keeps this module light

    return read_id_list(path)


def split_labeled(
    all_ids: Sequence[str],
    annotated_ids: Iterable[str],
    spec: str | int | float | os.PathLike | LabeledSpec,
    val_labeled: int | str = "auto",
    seed: int = 0,
    exclude_ids: Iterable[str] = (),
) -> LabeledSplit:
    """Seeded labelled/validation/unlabelled split of the store ids `all_ids` (rules in the module doc)."""
    spec = spec if isinstance(spec, LabeledSpec) else parse_labeled_spec(spec)
    excluded = set(exclude_ids)
    store_ids = [cid for cid in dict.fromkeys(all_ids) if cid not in excluded]
    in_store = set(store_ids)
    candidates = sorted(set(annotated_ids) & in_store)
    val_labeled = resolve_val_labeled(val_labeled, len(candidates))
    if val_labeled < 0:
        raise AvslError(f"val_labeled must be >= 0, got {val_labeled}")
    order = [candidates[k] for k in np.random.default_rng(seed).permutation(len(candidates))]

    if spec.kind == "file":
        assert spec.path is not None
        labeled = _read_ids(spec.path)
        cand_set = set(candidates)
        missing = [cid for cid in labeled if cid not in cand_set]
        if missing:
            raise AvslError(
                f"{spec.path}: {len(missing)} of {len(labeled)} labelled ids are not annotated clips of the training store "
                f"(first: {missing[0]}); list only annotated, non-test clips that the store holds"
            )
        chosen = set(labeled)
        rest = [cid for cid in order if cid not in chosen]
        if val_labeled > len(rest):
            raise AvslError(
                f"{spec.path}: cannot hold out {val_labeled} validation clips: only {len(rest)} annotated clips remain besides "
                f"the {len(labeled)} labelled ones; lower val_labeled"
            )
        val = rest[:val_labeled]
    else:
        if val_labeled > len(candidates):
            raise AvslError(
                f"cannot hold out {val_labeled} validation clips: the training store has only {len(candidates)} annotated clips; "
                "lower val_labeled or give annotations that cover the store"
            )
        val, rest = order[:val_labeled], order[val_labeled:]
        available = len(rest)
        if spec.kind == "count":
            n = int(spec.count or 0)
        elif spec.kind == "fraction":
            n = max(1, int(round(float(spec.fraction or 0.0) * available)))
        else:  # "all"
            n = available
        if n > available or available == 0:
            raise AvslError(
                f"asked for {spec.describe()} ({n} labelled) but only {available} annotated clips are left after holding out "
                f"{len(val)} for validation ({len(candidates)} annotated clips in the store); "
                "lower the labelled count or val_labeled"
            )
        labeled = rest[:n]
    taken = set(labeled) | set(val)
    unlabeled = [cid for cid in store_ids if cid not in taken]
    return LabeledSplit(labeled=list(labeled), val=list(val), unlabeled=unlabeled)


def save_split(split: LabeledSplit, run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``labeled.txt`` and ``val.txt`` (one id per line) atomically into `run_dir`."""
    run_dir = Path(run_dir)
    paths = run_dir / LABELED_FILE, run_dir / VAL_FILE
    for path, ids in zip(paths, (split.labeled, split.val)):
        atomic_write_text(path, "".join(f"{cid}\n" for cid in ids))
    return paths


def read_split(run_dir: str | os.PathLike, all_ids: Sequence[str], exclude_ids: Iterable[str] = ()) -> LabeledSplit:
    """Rebuild the split a run saved (resume): labelled/val from its files, the rest of `all_ids` unlabelled."""
    run_dir = Path(run_dir)
    parts = []
    for name in (LABELED_FILE, VAL_FILE):
        path = run_dir / name
        if not path.is_file():
            raise AvslError(f"{path} is missing; resume from a run directory written by a semi-supervised run")
        parts.append([line.strip() for line in path.read_text().splitlines() if line.strip()])
    labeled, val = parts
    excluded = set(exclude_ids)
    store_ids = [cid for cid in dict.fromkeys(all_ids) if cid not in excluded]
    in_store = set(store_ids)
    missing = [cid for cid in labeled + val if cid not in in_store]
    if missing:
        raise AvslError(
            f"{run_dir}: {len(missing)} saved labelled/validation ids are not in the training store "
            f"(first: {missing[0]}); use the run's store"
        )
    taken = set(labeled) | set(val)
    return LabeledSplit(labeled=labeled, val=val, unlabeled=[cid for cid in store_ids if cid not in taken])


def normalised_boxes(entry: Any) -> np.ndarray:
    """K×4 boxes of an annotation in [0, 1] (Flickr boxes live on a 256-pixel grid, annotators pooled)."""
    return entry.normalized_boxes()


def split_for_run(cfg: Mapping[str, Any] | TrainConfig, method: str, needs_unlabeled: bool, announce: bool = True) -> tuple[LabeledSplit, dict[str, Any]]:
    """(the run's labelled / validation / unlabelled split, the annotations it read) from the config's
    ``data`` section: ``labeled``, ``val_labeled``, ``split_seed`` (default the run seed), ``exclude``."""
    from avslkit.data.annotations import read_annotations, read_id_list
    from avslkit.data.store import Store

    config = train_config(cfg)
    data = config.data
    train, ann_path = data.train, data.annotations
    if not ann_path:
        raise AvslError(f"method '{method}' needs the boxes of the training clips: pass --annotations vggss.json (config data.annotations)")
    if not Path(ann_path).exists():
        raise AvslError(f"annotations not found: {ann_path} (pass vggss.json or a Flickr XML directory with --annotations)")
    spec = parse_labeled_spec(data.labeled)
    annotations = read_annotations(ann_path, str(data.annotation_format or "auto"))
    exclude = read_id_list(data.exclude) if data.exclude else []
    seed = data.split_seed
    with Store(train) as store:
        store_ids = list(store.ids)
    split = split_labeled(
        store_ids, list(annotations), spec, data.val_labeled,
        seed=int(config.seed if seed is None else seed), exclude_ids=exclude,
    )
    if str(data.val_labeled).lower() == "auto" and announce:
        from avslkit.utils.console import log

        log.info("val_labeled auto: holding out %d annotated clips for validation (min(500, 10%% of the store's "
                 "annotated clips); --val-labeled N to choose)", len(split.val))
    if needs_unlabeled and not split.unlabeled:
        raise AvslError(f"{train}: no unlabelled clips are left after the split {split.summary()}; use a bigger store or fewer labels")
    return split, annotations


def save_split_checked(split: LabeledSplit, run_dir: str | os.PathLike) -> None:
    """Write ``labeled.txt``/``val.txt`` once; a resumed run must draw the same ids (else a one-line error)."""
    run_dir = Path(run_dir)
    paths = run_dir / LABELED_FILE, run_dir / VAL_FILE
    if all(p.is_file() for p in paths):
        saved = [[l.strip() for l in p.read_text().splitlines() if l.strip()] for p in paths]
        if saved != [split.labeled, split.val]:
            raise AvslError(f"{run_dir}: labeled.txt/val.txt differ from the split this config draws; resume with the run's own config")
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    save_split(split, run_dir)
