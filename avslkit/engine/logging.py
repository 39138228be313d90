"""Run log as JSON lines (`runs/NAME/log.jsonl`): one object per step, epoch, validation and event.

Every record has `type` ("step" | "epoch" | "val" | "checkpoint" | "event"), `time` (unix seconds)
and the fields of that type, so `pandas.read_json(path, lines=True)` or `jq` can read it directly.
Only the main process writes; other ranks get a logger whose `write` does nothing.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from avslkit.utils.io import atomic_write_text


def _plain(value: Any) -> Any:
    """JSON-safe version of a value (tensors → numbers, non-finite floats → None)."""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return _plain(value.item())
        except (TypeError, ValueError):
            pass
    return value


class JsonlLogger:
    """Append-only JSON-lines log; each record is flushed so a crash loses at most one line."""

    def __init__(self, path: str | Path | None, enabled: bool = True):
        self.path = Path(path) if path is not None else None
        self.enabled = enabled and self.path is not None
        self._fh = None
        if self.enabled:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, type_: str, **fields: Any) -> dict[str, Any]:
        record = {"type": type_, "time": round(time.time(), 3), **{k: _plain(v) for k, v in fields.items()}}
        if self._fh is not None:
            self._fh.write(json.dumps(record, allow_nan=False) + "\n")
            self._fh.flush()
        return record

    def rewind(self, global_step: int) -> int:
        """Drop the records of steps after `global_step` (the work of an attempt killed after its last
        checkpoint, which a resumed run redoes and logs again); events are kept. Returns how many
        records were dropped. The file is rewritten atomically."""
        if not self.enabled or self.path is None or not self.path.is_file():
            return 0
        records = read_log(self.path)
        kept = [r for r in records if r.get("type") == "event" or _record_step(r) <= global_step]
        dropped = len(records) - len(kept)
        if dropped:
            self.close()
            atomic_write_text(self.path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept))
            self._fh = open(self.path, "a", encoding="utf-8")
        return dropped

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "JsonlLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _record_step(record: dict[str, Any]) -> int:
    step = record.get("step", record.get("global_step", 0))
    return int(step) if isinstance(step, (int, float)) else 0


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a run log (a truncated last line from a crash is skipped)."""
    out: list[dict[str, Any]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def iter_records(path: str | Path, type_: str) -> Iterator[dict[str, Any]]:
    return (r for r in read_log(path) if r.get("type") == type_)
