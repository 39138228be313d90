"""Benchmark annotations and test lists: VGG-SS json, Flickr-SoundNet XML, id lists, extended CSVs.

Ground truth is rasterised on the 224×224 grid exactly as the reference code (SLAVC/EZ-VSL
`datasets.py`) does:

* VGG-SS ("union"): each normalised coordinate is clipped to [0, 1] and truncated, `int(224·c)`;
  rows y1:y2 and columns x1:x2 are filled; boxes are OR-ed into a binary map. Sentinel values
  (−2.88e16) clip to 0, so a sentinel box may be empty and two clips end with an all-zero map.
* Flickr-SoundNet ("consensus"): integer coordinates on a 256×256 grid, `floor(224·c/256)`; the
  box indicators of all annotators are summed, divided by 2 and clipped at 1 → values {0, .5, 1}.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from avslkit.errors import AvslError

GT_SIZE = 224
FLICKR_GRID = 256
FORMATS = ("vggss", "flickr")
GT_MODES = ("auto", "union", "consensus")

# Known typos in published lists: Senocak's Flickr test list names 3908875357, the file is 3908875350.
KNOWN_ID_FIXES: dict[str, str] = {"3908875357": "3908875350"}

_MEDIA_EXT = re.compile(r"\.(mp4|mkv|webm|avi|mov|m4v|jpg|jpeg|png|bmp|wav|flac|mp3|m4a|ogg|xml|npy|npz|h5)$", re.I)
# YouTube ids are exactly 11 characters of [A-Za-z0-9_-]; the rest is the start time.
_YT_CLIP = re.compile(r"^(?P<yt>[A-Za-z0-9_-]{11})_(?P<a>\d+)(?:_(?P<b>\d+))?$")


def normalize_clip_id(name: str) -> str:
    """Canonical clip id: `<ytid>_<start seconds, 6 digits>`; directories and media extensions dropped.

    Accepts `<ytid>_000032`, `<ytid>_32` and the millisecond-range form `<ytid>_32000_42000` (start
    seconds = floor(ms / 1000)). Names that are not YouTube clip names (e.g. numeric Flickr ids) are
    returned unchanged apart from the directory/extension stripping.
    """
    s = str(name).strip().replace("\\", "/").rsplit("/", 1)[-1]
    s = _MEDIA_EXT.sub("", s)
    m = _YT_CLIP.match(s)
    if m is None:
        return s
    start = int(m.group("a"))
    if m.group("b") is not None:
        end = int(m.group("b"))
        if end <= start:
            return s  # not a range; leave untouched rather than guess
        start //= 1000
    return f"{m.group('yt')}_{start:06d}"


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AvslError(f"list file not found: {path} (pass an existing test list)") from None
    return raw.decode("utf-8-sig")


def read_id_list(path: str | os.PathLike, normalize: bool = True, fix_known_typos: bool = True) -> list[str]:
    """Clip ids of a test/train list, in file order, duplicates removed.

    Handles single-column lists, `id,<anything>` CSVs (the first column is the id), CRLF endings,
    missing final newlines, `.png`/`.jpg` names, full paths, and an optional `video,...` header.
    """
    p = Path(path)
    ids: list[str] = []
    seen: set[str] = set()
    for line in _read_text(p).splitlines():
        line = line.strip()
        if not line:
            continue
        first = next(csv.reader([line]))[0].strip()
        if first.lower() in ("video", "id", "file", "name"):
            continue  # header
        cid = normalize_clip_id(first) if normalize else first
        if fix_known_typos:
            cid = KNOWN_ID_FIXES.get(cid, cid)
        if cid not in seen:
            seen.add(cid)
            ids.append(cid)
    if not ids:
        raise AvslError(f"{p}: no clip ids found (expected one id per line or an id,... CSV)")
    return ids


def read_class_list(path: str | os.PathLike) -> dict[str, str]:
    """`id,class` CSV (e.g. ACL-SSL's class-labelled test lists) → {normalised id: class}."""
    p = Path(path)
    out: dict[str, str] = {}
    for rec in csv.reader(io.StringIO(_read_text(p))):
        if len(rec) >= 2 and rec[0].strip() and rec[1].strip():
            out[KNOWN_ID_FIXES.get(normalize_clip_id(rec[0]), normalize_clip_id(rec[0]))] = rec[1].strip()
    if not out:
        raise AvslError(f"{p}: no id,class rows found")
    return out


@dataclass(frozen=True)
class ExtendedPair:
    """One row of a SLAVC `*_plus_silent.csv`: the frame of `video` with the audio of `audio`."""

    video: str
    audio: str
    label: str = "non-sounding"

    @property
    def name(self) -> str:
        """Name of this pair's map in a MAPS.npz."""
        return pair_name(self.video, self.audio)


def pair_name(video: str, audio: str) -> str:
    """Map name of a negative pair (`<video>__<audio>`)."""
    return f"{video}__{audio}"


def read_extended_csv(path: str | os.PathLike, normalize: bool = True) -> list[ExtendedPair]:
    """Rows of a SLAVC-format extended CSV (`video,audio,label`, header optional)."""
    p = Path(path)
    rows: list[ExtendedPair] = []
    for k, rec in enumerate(csv.reader(io.StringIO(_read_text(p)))):
        if not rec or all(not c.strip() for c in rec):
            continue
        if k == 0 and rec[0].strip().lower() == "video":
            continue
        if len(rec) < 2:
            raise AvslError(f"{p}: line {k + 1} has {len(rec)} column(s); expected video,audio,label")
        v, a = rec[0].strip(), rec[1].strip()
        if normalize:
            v, a = normalize_clip_id(v), normalize_clip_id(a)
        label = rec[2].strip() if len(rec) > 2 else "non-sounding"
        rows.append(ExtendedPair(v, a, label))
    if not rows:
        raise AvslError(f"{p}: no rows (expected a video,audio,label CSV as written by 'avslkit extend-testset')")
    return rows


# --------------------------------------------------------------------------------------------------
@dataclass
class AnnotationEntry:
    """Boxes of one clip. `boxes` is K×4 (x1, y1, x2, y2): normalised for VGG-SS, 256-grid ints for Flickr."""

    id: str
    cls: str | None
    boxes: np.ndarray
    format: str

    def normalized_boxes(self) -> np.ndarray:
        """K×4 boxes in [0, 1] frame coordinates (before clipping): VGG-SS as given, Flickr's 256-grid ints / 256."""
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        return boxes / FLICKR_GRID if self.format == "flickr" else boxes

    @property
    def default_gt_mode(self) -> str:
        return "union" if self.format == "vggss" else "consensus"


@dataclass
class Annotations(Mapping[str, AnnotationEntry]):
    """Clip id → AnnotationEntry, plus the file it came from and its format."""

    entries: dict[str, AnnotationEntry]
    format: str
    path: str = ""
    _extra: dict = field(default_factory=dict, repr=False)

    def __getitem__(self, key: str) -> AnnotationEntry:
        return self.entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def classes(self) -> dict[str, str]:
        """id → class name, for clips that have one."""
        return {k: e.cls for k, e in self.entries.items() if e.cls}


def detect_format(path: str | os.PathLike) -> str:
    """'vggss' for a json file, 'flickr' for a directory of XML files."""
    p = Path(path)
    if p.is_dir():
        if any(f.suffix.lower() == ".xml" for f in p.iterdir()):
            return "flickr"
        raise AvslError(f"{p}: directory holds no .xml files (expected Flickr-SoundNet annotations)")
    if p.is_file() and p.suffix.lower() == ".json":
        return "vggss"
    if not p.exists():
        raise AvslError(f"annotations not found: {p} (pass vggss.json or the Flickr annotation directory)")
    raise AvslError(f"{p}: cannot tell the annotation format; pass --ann-format vggss|flickr")


def read_vggss_json(path: str | os.PathLike) -> Annotations:
    """Read `vggss.json` (list of {file, class, bbox: [[x1, y1, x2, y2], ...]} normalised)."""
    p = Path(path)
    try:
        data = json.loads(_read_text(p))
    except json.JSONDecodeError as exc:
        raise AvslError(f"{p}: not valid JSON ({exc}); expected the VGG-SS vggss.json") from exc
    if not isinstance(data, list):
        raise AvslError(f"{p}: expected a JSON list of {{file, class, bbox}} entries")
    entries: dict[str, AnnotationEntry] = {}
    for k, item in enumerate(data):
        try:
            cid = normalize_clip_id(item["file"])
            boxes = np.asarray(item["bbox"], dtype=np.float64).reshape(-1, 4)
        except (KeyError, TypeError, ValueError) as exc:
            raise AvslError(f"{p}: entry {k} is malformed ({exc}); expected {{file, class, bbox: [[x1,y1,x2,y2]]}}") from exc
        if not np.isfinite(boxes).all():
            raise AvslError(f"{p}: entry {k} ('{cid}') has a non-finite box coordinate {boxes.tolist()}; "
                            "fix the box or remove the entry (NaN would be read as 0)")
        entries[cid] = AnnotationEntry(cid, item.get("class") or None, boxes, "vggss")
    return Annotations(entries, "vggss", str(p))


def _flickr_boxes(xml_path: Path) -> np.ndarray:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise AvslError(f"{xml_path}: not valid XML ({exc})") from exc
    boxes = []
    for child in root:
        for el in child:
            if el.tag != "bbox":
                continue
            vals = [c.text for c in list(el)[1:5]]
            try:
                boxes.append([int(str(v).strip()) for v in vals])
            except ValueError as exc:
                raise AvslError(f"{xml_path}: bbox values {vals} are not integers") from exc
            if len(vals) != 4:
                raise AvslError(f"{xml_path}: a bbox has {len(vals)} coordinates after its first element; expected 4")
    return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)


def read_flickr_xml_dir(path: str | os.PathLike) -> Annotations:
    """Read a Flickr-SoundNet annotation directory (one XML per image; annotators' boxes pooled)."""
    p = Path(path)
    entries: dict[str, AnnotationEntry] = {}
    for f in sorted(p.iterdir()):
        if f.suffix.lower() != ".xml":
            continue
        cid = f.name.split(".")[0]
        entries[cid] = AnnotationEntry(cid, None, _flickr_boxes(f), "flickr")
    if not entries:
        raise AvslError(f"{p}: no .xml annotation files found")
    return Annotations(entries, "flickr", str(p))


_READERS = {"vggss": read_vggss_json, "flickr": read_flickr_xml_dir}


def read_annotations(path: str | os.PathLike, fmt: str = "auto") -> Annotations:
    """Read VGG-SS json or a Flickr XML directory; `fmt` = auto | vggss | flickr."""
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in _READERS:
        raise AvslError(f"unknown annotation format '{fmt}' (choose auto, vggss or flickr)")
    if not Path(path).exists():
        raise AvslError(f"annotations not found: {path} (pass vggss.json or the Flickr annotation directory)")
    return _READERS[fmt](path)


# --------------------------------------------------------------------------------------------------
#: A VGG-SS coordinate below this is one of the published file's sentinel values (-2.88e16): its box
#: is kept and clipped by the reference rule (it may come out empty), never reported as a problem.
SENTINEL_BELOW = -1e15
_RANGE_SLACK = 1e-6

#: Box problems found by `box_problems` (name → what it means). Evaluated clips that have them are
#: reported (warning, or an error with --strict): they would be scored with an empty or wrong ground truth.
BOX_PROBLEMS: dict[str, str] = {
    "empty": "no boxes",
    "inverted": "x2 < x1 or y2 < y1",
    "out_of_range": "normalised coordinates outside [0, 1] (pixel coordinates in a VGG-SS-style file?)",
}


def box_problems(entries: Sequence[AnnotationEntry]) -> dict[str, list[str]]:
    """Clip ids per problem in `BOX_PROBLEMS` (sentinel boxes of the published VGG-SS file excepted)."""
    found: dict[str, list[str]] = {name: [] for name in BOX_PROBLEMS}
    for entry in entries:
        boxes = np.asarray(entry.boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            found["empty"].append(entry.id)
            continue
        if entry.format == "vggss":
            boxes = boxes[~(boxes < SENTINEL_BELOW).any(axis=1)]
        if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            found["inverted"].append(entry.id)
        if entry.format == "vggss" and ((boxes < -_RANGE_SLACK) | (boxes > 1 + _RANGE_SLACK)).any():
            found["out_of_range"].append(entry.id)
    return {name: ids for name, ids in found.items() if ids}


def describe_box_problems(problems: Mapping[str, Sequence[str]], shown: int = 5) -> str:
    """'2 inverted (x2 < x1 or y2 < y1): a, b; 1 empty (no boxes): c' (at most `shown` ids each)."""
    parts = []
    for name, ids in problems.items():
        more = f", … {len(ids) - shown} more" if len(ids) > shown else ""
        parts.append(f"{len(ids)} {name} ({BOX_PROBLEMS[name]}): {', '.join(ids[:shown])}{more}")
    return "; ".join(parts)


def _fill_boxes(boxes_px: np.ndarray, size: int) -> np.ndarray:
    """(K, size, size) indicators of integer boxes; slices [y1:y2, x1:x2] as in the reference code."""
    b = np.asarray(boxes_px, dtype=np.int64).reshape(-1, 4)
    ar = np.arange(size)
    rows = (ar[None, :] >= b[:, 1:2]) & (ar[None, :] < b[:, 3:4])
    cols = (ar[None, :] >= b[:, 0:1]) & (ar[None, :] < b[:, 2:3])
    return rows[:, :, None] & cols[:, None, :]


def vggss_boxes_to_pixels(boxes_norm: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """Normalised boxes → integer pixel boxes: clip to [0, 1], then `int(size·c)` (truncation)."""
    return (np.clip(np.asarray(boxes_norm, dtype=np.float64), 0, 1) * size).astype(np.int64)


def flickr_boxes_to_pixels(boxes_256: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """256-grid integer boxes → `floor(size·c/256)`; negative coordinates are clipped to 0 first."""
    b = np.clip(np.asarray(boxes_256, dtype=np.int64), 0, None)
    return (b * size) // FLICKR_GRID


def boxes_to_gt_map(boxes_norm: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """Union ground truth (binary float32 size×size) of normalised boxes, VGG-SS rule."""
    return _fill_boxes(vggss_boxes_to_pixels(boxes_norm, size), size).any(axis=0).astype(np.float32)


def consensus_gt_map(boxes_px: np.ndarray, size: int = GT_SIZE) -> np.ndarray:
    """Consensus map of pixel boxes: Σ indicators / 2 clipped at 1 (values 0, .5, 1)."""
    count = _fill_boxes(boxes_px, size).sum(axis=0, dtype=np.float32)
    return np.minimum(count / 2, 1).astype(np.float32)


def _entry_pixels(entry: AnnotationEntry, size: int) -> np.ndarray:
    if entry.format == "vggss":
        return vggss_boxes_to_pixels(entry.boxes, size)
    return flickr_boxes_to_pixels(entry.boxes, size)


def gt_map(entry: AnnotationEntry, size: int = GT_SIZE, mode: str = "auto") -> np.ndarray:
    """Ground-truth map of one clip; mode auto = union for VGG-SS, consensus for Flickr."""
    if mode not in GT_MODES:
        raise AvslError(f"unknown ground-truth mode '{mode}' (choose {', '.join(GT_MODES)})")
    mode = entry.default_gt_mode if mode == "auto" else mode
    px = _entry_pixels(entry, size)
    if mode == "union":
        return _fill_boxes(px, size).any(axis=0).astype(np.float32)
    return consensus_gt_map(px, size)


def gt_maps(entries: Sequence[AnnotationEntry], size: int = GT_SIZE, mode: str = "auto") -> np.ndarray:
    """Stacked ground-truth maps (N, size, size) float32."""
    out = np.zeros((len(entries), size, size), dtype=np.float32)
    for i, e in enumerate(entries):
        out[i] = gt_map(e, size, mode)
    return out
