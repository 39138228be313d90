"""The HDF5 clip store: one decoded frame + one audio window per clip, method-agnostic.

Layout (format_version 1)::

    /                 attrs: format="avslkit-store", format_version, avslkit_version, created,
                             sample_rate, audio_samples, audio_seconds, frame_format, options (JSON)
    /clips/id         (N,)   str   clip id (file stem, normalised)
    /clips/source     (N,)   str   path of the source video (or frame file)
    /clips/label      (N,)   str   class name, "" when unknown
    /clips/time       (N,)   f8    frame / audio-centre time in seconds
    /clips/duration   (N,)   f8    source clip duration in seconds
    /clips/sample_rate(N,)   i4    audio sample rate (same for every clip; also a root attr)
    /clips/height     (N,)   i4    stored frame size
    /clips/width      (N,)   i4
    /clips/frame      (N,)   vlen uint8   JPEG bytes of the frame
    /clips/audio      (N, L) i2    mono waveform window, int16 (divide by 32768 for [-1, 1])
    /failures/{id,source,reason} (M,) str   clips that could not be stored, and why

Sidecar files beside the store: `STORE.h5.config.yaml` (resolved preprocessing options) and, after
`avslkit extend-testset`, `STORE.h5.extended.csv` / `STORE.h5.extended.json` (the extended test set).

Stores are written whole (to a temporary file renamed into place), never patched in place, so a
crash cannot corrupt a finished store. `Store` opens the file lazily, so it can be pickled into
DataLoader workers and each worker gets its own handle.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import h5py
import numpy as np

from avslkit import __version__
from avslkit.errors import AvslError
from avslkit.utils.io import atomic_path

FORMAT = "avslkit-store"
FORMAT_VERSION = 1
_STR = h5py.string_dtype("utf-8")
_BYTES = h5py.vlen_dtype(np.uint8)
_WRITE_BATCH = 256


@dataclass
class ClipRecord:
    """One preprocessed clip, ready to be written to a store."""

    id: str
    source: str
    time: float
    duration: float
    frame_jpeg: bytes
    height: int
    width: int
    audio: np.ndarray  # int16, (audio_samples,)
    sample_rate: int
    label: str = ""


@dataclass
class Failure:
    """A clip that could not be stored."""

    id: str
    source: str
    reason: str


@dataclass
class StoreAttrs:
    """Store-wide attributes (provenance and audio geometry)."""

    sample_rate: int
    audio_samples: int
    frame_format: str = "jpeg"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / self.sample_rate


def _str_array(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=object)


class _ClipWriter:
    """Appends clips to resizable datasets of an open h5py file (used only on fresh temp files)."""

    def __init__(self, h5: h5py.File, audio_samples: int):
        g = h5.create_group("clips")
        self.g = g
        self.n = 0
        self.audio_samples = audio_samples
        for name in ("id", "source", "label"):
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=_STR, chunks=(1024,))
        for name, dt in (("time", "f8"), ("duration", "f8"), ("sample_rate", "i4"), ("height", "i4"), ("width", "i4")):
            g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(1024,))
        g.create_dataset("frame", shape=(0,), maxshape=(None,), dtype=_BYTES, chunks=(64,))
        g.create_dataset(
            "audio", shape=(0, audio_samples), maxshape=(None, audio_samples), dtype="i2", chunks=(1, audio_samples)
        )

    def append(self, records: Sequence[ClipRecord]) -> None:
        if not records:
            return
        a, b = self.n, self.n + len(records)
        for ds in self.g.values():
            ds.resize(b, axis=0)
        g = self.g
        g["id"][a:b] = _str_array([r.id for r in records])
        g["source"][a:b] = _str_array([r.source for r in records])
        g["label"][a:b] = _str_array([r.label for r in records])
        g["time"][a:b] = np.array([r.time for r in records], dtype="f8")
        g["duration"][a:b] = np.array([r.duration for r in records], dtype="f8")
        g["sample_rate"][a:b] = np.array([r.sample_rate for r in records], dtype="i4")
        g["height"][a:b] = np.array([r.height for r in records], dtype="i4")
        g["width"][a:b] = np.array([r.width for r in records], dtype="i4")
        frame_ds = g["frame"]
        for i, r in enumerate(records):  # element-wise: h5py would broadcast equal-length arrays to 2-D
            frame_ds[a + i] = np.frombuffer(r.frame_jpeg, dtype=np.uint8)
        audio = np.stack([np.asarray(r.audio, dtype=np.int16) for r in records])
        if audio.shape[1] != self.audio_samples:
            raise ValueError(f"audio window has {audio.shape[1]} samples, store expects {self.audio_samples}")
        g["audio"][a:b] = audio
        self.n = b


def _write_failures(h5: h5py.File, failures: Sequence[Failure]) -> None:
    g = h5.create_group("failures")
    for name in ("id", "source", "reason"):
        g.create_dataset(name, data=_str_array([getattr(f, name) for f in failures]), dtype=_STR)


def _write_root_attrs(h5: h5py.File, attrs: StoreAttrs) -> None:
    h5.attrs["format"] = FORMAT
    h5.attrs["format_version"] = FORMAT_VERSION
    h5.attrs["avslkit_version"] = __version__
    h5.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    h5.attrs["sample_rate"] = int(attrs.sample_rate)
    h5.attrs["audio_samples"] = int(attrs.audio_samples)
    h5.attrs["audio_seconds"] = float(attrs.audio_seconds)
    h5.attrs["frame_format"] = attrs.frame_format
    h5.attrs["options"] = json.dumps(attrs.options, sort_keys=True, default=str)


def write_store(
    path: str | os.PathLike,
    records: Iterable[ClipRecord],
    attrs: StoreAttrs,
    failures: Sequence[Failure] = (),
) -> int:
    """Write a complete store atomically (temp file + rename). Returns the number of clips written.

    Duplicate ids are written once (first occurrence wins).
    """
    seen: set[str] = set()
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as h5:
            _write_root_attrs(h5, attrs)
            writer = _ClipWriter(h5, attrs.audio_samples)
            batch: list[ClipRecord] = []
            for rec in records:
                if rec.id in seen:
                    continue
                seen.add(rec.id)
                batch.append(rec)
                if len(batch) >= _WRITE_BATCH:
                    writer.append(batch)
                    batch = []
            writer.append(batch)
            stored = seen
            _write_failures(h5, [f for f in _dedup_failures(failures) if f.id not in stored])
        return len(seen)


def _dedup_failures(failures: Iterable[Failure]) -> list[Failure]:
    out: dict[str, Failure] = {}
    for f in failures:
        out[f.id] = f  # the latest reason wins
    return list(out.values())


def merge_stores(
    out_path: str | os.PathLike,
    inputs: Sequence[str | os.PathLike],
    attrs: StoreAttrs | None = None,
    extra_failures: Sequence[Failure] = (),
) -> int:
    """Merge stores (e.g. an existing store plus per-worker shards) into one new store, atomically.

    Clips are deduplicated by id (first input wins). A failure is dropped when the clip was stored
    by any input (a retry succeeded). `attrs` defaults to those of the first input.
    """
    readers = [Store(p) for p in inputs]
    if attrs is None:
        if not readers:
            raise ValueError("merge_stores needs inputs or attrs")
        attrs = readers[0].store_attrs()
    failures: list[Failure] = []
    for r in readers:
        failures.extend(r.failures())
        r.close()  # keep one input open at a time: each open file holds its own HDF5 chunk caches
    failures.extend(extra_failures)

    def records() -> Iterator[ClipRecord]:
        for r in readers:
            if r.store_attrs().audio_samples != attrs.audio_samples or r.sample_rate != attrs.sample_rate:
                raise AvslError(
                    f"{r.path}: audio geometry ({r.sample_rate} Hz, {r.audio_samples} samples) differs from "
                    f"the store being written ({attrs.sample_rate} Hz, {attrs.audio_samples} samples); "
                    "re-run preprocess with the same --sample-rate/--audio-seconds or a new --out"
                )
            yield from r.iter_records()
            r.close()

    try:
        return write_store(out_path, records(), attrs, failures)
    finally:
        for r in readers:
            r.close()


class Store:
    """Read access to a clip store. Opens the file lazily (safe to pickle into DataLoader workers)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise AvslError(f"store not found: {self.path} (create it with 'avslkit preprocess VIDEOS --out {self.path}')")
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        self._ids: list[str] | None = None
        self._index: dict[str, int] | None = None
        h5 = self.h5  # validate eagerly so errors name the file
        if h5.attrs.get("format") != FORMAT:
            self.close()
            raise AvslError(f"{self.path}: not an avslkit store (create one with 'avslkit preprocess')")

    # -- file handle -------------------------------------------------------------------------
    @property
    def h5(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as exc:
                raise AvslError(f"{self.path}: cannot open as HDF5 ({exc}); re-create it with 'avslkit preprocess'") from exc
            self._pid = os.getpid()
        return self._h5

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        return state

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- store-wide ----------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.h5.attrs.items()}

    def store_attrs(self) -> StoreAttrs:
        a = self.h5.attrs
        return StoreAttrs(
            sample_rate=int(a["sample_rate"]),
            audio_samples=int(a["audio_samples"]),
            frame_format=str(a.get("frame_format", "jpeg")),
            options=json.loads(a.get("options", "{}")),
        )

    @property
    def sample_rate(self) -> int:
        return int(self.h5.attrs["sample_rate"])

    @property
    def audio_samples(self) -> int:
        return int(self.h5.attrs["audio_samples"])

    def __len__(self) -> int:
        return int(self.h5["clips/id"].shape[0])

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = [s for s in self.h5["clips/id"].asstr()[:]]
        return self._ids

    def index_of(self, clip_id: str) -> int:
        if self._index is None:
            self._index = {cid: i for i, cid in enumerate(self.ids)}
        try:
            return self._index[clip_id]
        except KeyError:
            raise KeyError(f"clip '{clip_id}' is not in {self.path}") from None

    def __contains__(self, clip_id: object) -> bool:
        if self._index is None:
            self._index = {cid: i for i, cid in enumerate(self.ids)}
        return clip_id in self._index

    def column(self, name: str) -> np.ndarray:
        """A whole metadata column, e.g. 'label', 'time', 'duration'."""
        ds = self.h5[f"clips/{name}"]
        if ds.dtype.kind == "O":
            return np.array(ds.asstr()[:], dtype=object)
        return ds[:]

    # -- per clip ------------------------------------------------------------------------------
    def frame_bytes(self, i: int) -> bytes:
        return self.h5["clips/frame"][i].tobytes()

    def frame(self, i: int) -> np.ndarray:
        """Decoded frame as an H×W×3 uint8 RGB array."""
        from PIL import Image

        with Image.open(io.BytesIO(self.frame_bytes(i))) as im:
            return np.asarray(im.convert("RGB"))

    def audio_int16(self, i: int) -> np.ndarray:
        return self.h5["clips/audio"][i]

    def audio(self, i: int) -> np.ndarray:
        """Audio window as float32 in [-1, 1]."""
        return self.audio_int16(i).astype(np.float32) / 32768.0

    def meta(self, i: int) -> dict[str, Any]:
        g = self.h5["clips"]
        return {
            "id": g["id"].asstr()[i],
            "source": g["source"].asstr()[i],
            "label": g["label"].asstr()[i],
            "time": float(g["time"][i]),
            "duration": float(g["duration"][i]),
            "sample_rate": int(g["sample_rate"][i]),
            "height": int(g["height"][i]),
            "width": int(g["width"][i]),
        }

    def iter_records(self, batch: int = _WRITE_BATCH) -> Iterator[ClipRecord]:
        """Every clip as a ClipRecord, read in batches (used for merging)."""
        g = self.h5["clips"]
        n = len(self)
        for a in range(0, n, batch):
            b = min(n, a + batch)
            ids = g["id"].asstr()[a:b]
            src = g["source"].asstr()[a:b]
            lab = g["label"].asstr()[a:b]
            t, d, sr = g["time"][a:b], g["duration"][a:b], g["sample_rate"][a:b]
            hh, ww = g["height"][a:b], g["width"][a:b]
            fr = g["frame"][a:b]
            au = g["audio"][a:b]
            for k in range(b - a):
                yield ClipRecord(
                    id=ids[k], source=src[k], label=lab[k], time=float(t[k]), duration=float(d[k]),
                    sample_rate=int(sr[k]), height=int(hh[k]), width=int(ww[k]),
                    frame_jpeg=fr[k].tobytes(), audio=au[k],
                )

    def failures(self) -> list[Failure]:
        if "failures" not in self.h5:
            return []
        g = self.h5["failures"]
        return [
            Failure(id=i, source=s, reason=r)
            for i, s, r in zip(g["id"].asstr()[:], g["source"].asstr()[:], g["reason"].asstr()[:])
        ]

    def summary(self) -> dict[str, Any]:
        """Counts, failures and size, for `avslkit store info`."""
        labels = self.column("label") if len(self) else np.array([], dtype=object)
        classes = sorted({l for l in labels if l})
        size = self.path.stat().st_size
        return {
            "path": str(self.path),
            "clips": len(self),
            "failures": len(self.failures()),
            "classes": len(classes),
            "sample_rate": self.sample_rate,
            "audio_seconds": float(self.h5.attrs["audio_seconds"]),
            "frame_format": str(self.h5.attrs.get("frame_format", "jpeg")),
            "bytes": size,
            "bytes_per_clip": (size / len(self)) if len(self) else None,
            "avslkit_version": str(self.h5.attrs.get("avslkit_version", "?")),
            "created": str(self.h5.attrs.get("created", "?")),
            "options": json.loads(self.h5.attrs.get("options", "{}")),
            "has_extended": Path(f"{self.path}.extended.csv").is_file(),
        }


def read_store_ids(path: str | os.PathLike) -> tuple[set[str], set[str]]:
    """Ids stored and ids failed in an existing store (for resuming); empty sets if no file."""
    p = Path(path)
    if not p.is_file():
        return set(), set()
    with Store(p) as s:
        return set(s.ids), {f.id for f in s.failures()}
