"""Extended test sets (SLAVC): one non-sounding pair per positive, recorded beside the test store.

Negatives: the user's real negatives (clips whose sound source is not visible; paired with their
own audio, `video == audio`), as many as given up to the number of positives; the rest are
automated mismatched pairs, `hard_fraction` of them with an audio of the same class (hard) and the
others with an audio of a different class (easy). Pairing is seeded; a clip is never paired with
itself, and each audio is drawn among the least-used candidates so audios are reused as little as
possible.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from avslkit import __version__
from avslkit.data.annotations import ExtendedPair, pair_name
from avslkit.errors import AvslError
from avslkit.evaluation.items import NEGATIVE_LABEL, negative_type, sidecar_paths
from avslkit.utils.console import log
from avslkit.utils.io import atomic_path, atomic_write_json


@dataclass
class ExtendedSet:
    """The negatives of an extended test set and their types (pair name → real|easy|hard)."""

    pairs: list[ExtendedPair]
    types: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(self.types[p.name] for p in self.pairs)
        return {t: int(c.get(t, 0)) for t in ("real", "easy", "hard", "unknown") if t != "unknown" or c.get(t)}


def build_extended_set(
    positives: Sequence[str],
    classes: Mapping[str, str | None],
    real_negatives: Sequence[str] = (),
    hard_fraction: float = 0.25,
    seed: int = 0,
) -> ExtendedSet:
    """Draw one negative per positive (see module docstring). Deterministic for a given seed."""
    if not 0 <= hard_fraction <= 1:
        raise AvslError(f"--hard-fraction must be in [0, 1], got {hard_fraction}")
    rng = np.random.default_rng(seed)
    n_pos = len(positives)
    warnings: list[str] = []
    real = list(dict.fromkeys(real_negatives))
    if len(real) > n_pos:
        warnings.append(f"{len(real)} real negatives given, {n_pos} positives: the first {n_pos} are used")
        real = real[:n_pos]
    pairs = [ExtendedPair(r, r, NEGATIVE_LABEL) for r in real]
    types = {pair_name(r, r): "real" for r in real}

    n_auto = n_pos - len(real)
    n_hard = int(hard_fraction * n_auto + 0.5)  # round half up
    pos = np.asarray(list(positives), dtype=object)
    cls = np.asarray([classes.get(p) or "" for p in pos], dtype=object)
    known = cls != ""
    if n_auto > 0 and len(set(cls[known])) < 2:
        raise AvslError("automated negatives need clip classes (at least two): pass annotations with a 'class' "
                        "field or a store whose label column is filled")
    same_class_count = Counter(cls[known])
    has_partner = known & np.array([same_class_count[c] > 1 for c in cls])

    order = rng.permutation(n_pos)
    hard_videos = [i for i in order if has_partner[i]][:n_hard]
    if len(hard_videos) < n_hard:
        warnings.append(f"only {len(hard_videos)} positives have a same-class partner; {n_hard} hard negatives requested")
    chosen = set(hard_videos)
    easy_videos = [i for i in order if i not in chosen and known[i]][: n_auto - len(hard_videos)]
    if len(hard_videos) + len(easy_videos) < n_auto:
        warnings.append(f"only {len(hard_videos) + len(easy_videos)} automated negatives could be drawn "
                        f"({n_auto} requested): too few clips with a known class")

    usage = np.zeros(n_pos, dtype=np.int64)
    index = np.arange(n_pos)

    def draw(video: int, same: bool) -> int:
        cand = known & ((cls == cls[video]) if same else (cls != cls[video])) & (index != video)
        cidx = index[cand]
        least = cidx[usage[cidx] == usage[cidx].min()]
        pick = int(least[rng.integers(len(least))])
        usage[pick] += 1
        return pick

    drawn = [(v, draw(v, True), "hard") for v in hard_videos] + [(v, draw(v, False), "easy") for v in easy_videos]
    for v, a, kind in sorted(drawn, key=lambda t: t[0]):
        p = ExtendedPair(str(pos[v]), str(pos[a]), NEGATIVE_LABEL)
        pairs.append(p)
        types[p.name] = kind
    for w in warnings:
        log.warning(w)
    return ExtendedSet(pairs, types, warnings)


def infer_types(pairs: Sequence[ExtendedPair], classes: Mapping[str, str | None]) -> ExtendedSet:
    """Types of a published `*_plus_silent.csv` (real / hard / easy, from `video == audio` and classes)."""
    return ExtendedSet(list(pairs), {p.name: negative_type(p.video, p.audio, classes) for p in pairs})


def extended_csv_text(pairs: Sequence[ExtendedPair]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["video", "audio", "label"])
    for p in pairs:
        w.writerow([p.video, p.audio, p.label])
    return buf.getvalue()


def size_counts(areas: Sequence[float]) -> dict[str, int]:
    from avslkit.metrics.localization import SIZE_BUCKETS, size_bucket

    b = Counter(size_bucket(np.asarray(areas, dtype=np.float64)))
    return {k: int(b.get(k, 0)) for k in SIZE_BUCKETS}


def record_extended_set(store: str | Path, ext: ExtendedSet, stats: dict[str, Any], provenance: dict[str, Any],
                        out: str | Path | None = None) -> tuple[Path, Path]:
    """Write STORE.extended.csv / STORE.extended.json atomically (and a copy of the CSV to `out`)."""
    csv_path, json_path = sidecar_paths(store)
    text = extended_csv_text(ext.pairs)
    with atomic_path(csv_path) as tmp:
        tmp.write_text(text)
    record = {
        "format": "avslkit-extended-testset",
        "version": 1,
        "avslkit_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "store": str(Path(store)),
        **provenance,
        "statistics": stats,
        "warnings": ext.warnings,
        "types": ext.types,
    }
    atomic_write_json(json_path, record)
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(text)
    return csv_path, json_path


def extend_store(store: str | Path, annotations: str | Path, real_negatives: str | Path | None = None,
                 hard_fraction: float = 0.25, seed: int = 0, out: str | Path | None = None,
                 ann_format: str = "auto", classes_csv: str | Path | None = None) -> dict[str, Any]:
    """`avslkit extend-testset`: build, record and describe the extended set of a test store."""
    from avslkit.data.annotations import gt_map, read_annotations, read_id_list
    from avslkit.data.store import Store

    ann = read_annotations(annotations, ann_format)
    with Store(store) as s:
        ids = list(s.ids)
        labels = dict(zip(ids, s.column("label")))
        created = str(s.h5.attrs.get("created", ""))
    real = read_id_list(real_negatives) if real_negatives else []
    not_stored = [r for r in real if r not in labels]
    if not_stored and len(not_stored) == len(real):
        raise AvslError(f"{real_negatives}: none of its {len(real)} real negative(s) is in {store} (e.g. '{not_stored[0]}'); "
                        "preprocess those clips into the test store first")
    if not_stored:  # e.g. a list covering several splits: use the clips this store holds
        log.warning("%s: %d of %d listed real negatives are not in %s (e.g. '%s'); using the %d that are",
                    real_negatives, len(not_stored), len(real), store, not_stored[0], len(real) - len(not_stored))
        real = [r for r in real if r in labels]
    real_set = set(real)
    positives = [i for i in ids if i in ann and i not in real_set]
    if not positives:
        raise AvslError(f"{store}: no clip has an annotation in {annotations}; check that the ids match")
    classes = {i: (l or None) for i, l in labels.items()}
    classes.update(ann.classes())
    if classes_csv:
        from avslkit.data.annotations import read_class_list

        classes.update(read_class_list(classes_csv))
    ext = build_extended_set(positives, classes, real, hard_fraction, seed)
    areas = [float(gt_map(ann[p]).sum()) for p in positives]
    counts = ext.counts()
    stats = {
        "positives_by_size": size_counts(areas),
        "n_positive": len(positives),
        "negatives_by_type": counts,
        "n_negative": len(ext.pairs),
        "n_total": len(positives) + len(ext.pairs),
        "audio_max_reuse": int(max(Counter(p.audio for p in ext.pairs if p.video != p.audio).values(), default=0)),
    }
    provenance = {"store_created": created, "annotations": str(annotations), "real_negatives": str(real_negatives or ""),
                  "classes": str(classes_csv or ""),
                  "hard_fraction": hard_fraction, "seed": seed}
    csv_path, json_path = record_extended_set(store, ext, stats, provenance, out)
    return {"statistics": stats, "csv": str(csv_path), "json": str(json_path), "warnings": ext.warnings}


def statistics_table(name: str, stats: dict[str, Any]):
    """A rich table shaped like Table 1 of the SLAVC paper."""
    from rich.table import Table

    from avslkit.utils.console import plain

    t = Table(title=plain(f"extended test set: {name}"))
    cols = ["Small", "Medium", "Large", "Huge", "Total Pos", "Real Neg", "Easy Neg", "Hard Neg", "Total Neg", "Total"]
    t.add_column("Dataset")
    for c in cols:
        t.add_column(c, justify="right")
    s, n = stats["positives_by_size"], stats["negatives_by_type"]
    t.add_row(plain(name), *(str(v) for v in (s["small"], s["medium"], s["large"], s["huge"], stats["n_positive"],
                                       n.get("real", 0), n.get("easy", 0), n.get("hard", 0), stats["n_negative"],
                                       stats["n_total"])))
    return t
