"""What is evaluated: positives (test-list clips with boxes) and negative pairs, and their types."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from avslkit.data.annotations import ExtendedPair, pair_name, read_extended_csv

NEGATIVE_LABEL = "non-sounding"


@dataclass(frozen=True)
class EvalItem:
    """One evaluated sample: the frame of `video` with the audio of `audio`."""

    name: str
    video: str
    audio: str
    kind: str  # "positive" | "real" | "easy" | "hard" | "unknown"

    @property
    def is_positive(self) -> bool:
        return self.kind == "positive"


def negative_type(video: str, audio: str, classes: Mapping[str, str | None]) -> str:
    """SLAVC's implicit typing: video == audio → real; same class → hard; different → easy."""
    if video == audio:
        return "real"
    a, b = classes.get(video), classes.get(audio)
    if not a or not b:
        return "unknown"
    return "hard" if a == b else "easy"


def positive_items(ids: Sequence[str]) -> list[EvalItem]:
    return [EvalItem(cid, cid, cid, "positive") for cid in ids]


def negative_items(pairs: Sequence[ExtendedPair], classes: Mapping[str, str | None],
                   types: Mapping[str, str] | None = None) -> list[EvalItem]:
    """Negative items; `types` (pair name → type, e.g. from extend-testset's sidecar) wins over inference."""
    out = []
    for p in pairs:
        name = pair_name(p.video, p.audio)
        kind = (types or {}).get(name) or negative_type(p.video, p.audio, classes)
        out.append(EvalItem(name, p.video, p.audio, kind))
    return out


def sidecar_paths(store: str | Path) -> tuple[Path, Path]:
    """Where extend-testset records a store's extended set: STORE.extended.csv / STORE.extended.json."""
    s = Path(store)
    return s.with_name(s.name + ".extended.csv"), s.with_name(s.name + ".extended.json")


def read_recorded_extended(store: str | Path) -> tuple[list[ExtendedPair], dict[str, str]]:
    """The extended set recorded next to `store` and its types."""
    import json

    from avslkit.errors import AvslError

    csv_path, json_path = sidecar_paths(store)
    if not csv_path.is_file():
        raise AvslError(
            f"{csv_path}: no extended test set recorded for {store} "
            f"(run 'avslkit extend-testset {store} --annotations ANN' or pass --extended-csv CSV)"
        )
    pairs = read_extended_csv(csv_path)
    types: dict[str, str] = {}
    if json_path.is_file():
        types = json.loads(json_path.read_text()).get("types", {})
    return pairs, types
