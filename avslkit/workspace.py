"""The workspace: a folder whose `avslkit.yaml` records what earlier commands produced.

It is what lets the short forms run as typed (`avslkit preprocess videos/`, `avslkit train dmt`,
`avslkit eval --extended`, `avslkit viz`): each command reads the paths it lacks from the file and
records what it wrote, like ultralytics' `runs/detect/train2` or Lightning's `version_N`.

Rules (docs/workspace.md):
- The workspace is the current folder, or the nearest parent holding `avslkit.yaml`.
- The file is plain YAML a person may edit; paths in it are relative to its folder. A damaged file is
  an error naming the line; it is never overwritten.
- Explicit flags always win; every default taken from the file is printed once
  (`using train store data/train.h5 (avslkit.yaml)`).
- Updates are read-modify-write under a lock, written atomically (temp file + rename).
- Commands given every path explicitly create no file; they update one that exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import yaml

from avslkit.errors import AvslError
from avslkit.utils.io import atomic_write_text

if TYPE_CHECKING:
    from avslkit.config_spec import WorkspaceConfig

__all__ = ["ENTRIES", "Workspace", "WorkspaceError", "settings"]


class WorkspaceError(AvslError):
    """The workspace file is damaged or names something that is gone."""


@lru_cache(maxsize=1)
@lru_cache(maxsize=1)
def settings() -> WorkspaceConfig:
    """The workspace conventions (avslkit/configs/workspace.yaml), typed."""
    from avslkit.config import packaged_config
    from avslkit.config_spec import resolve_config

    return resolve_config(packaged_config("workspace"), "workspace")


@dataclass(frozen=True)
class Entry:
    """One path the workspace can record: its key, what it is (for messages) and the command that writes it."""

    key: str
    what: str
    written_by: str


# Every entry of avslkit.yaml besides `runs` (a list of run directories, newest last).
ENTRIES: dict[str, Entry] = {e.key: e for e in (
    Entry("stores.train", "train store", "avslkit preprocess VIDEOS/"),
    Entry("stores.test", "test store", "avslkit preprocess VIDEOS/"),
    Entry("annotations", "annotations", "avslkit preprocess VIDEOS/ (annotations.json or vggss.json beside the videos)"),
    Entry("labels", "labels", "avslkit preprocess VIDEOS/"),
    Entry("timestamps", "timestamps", "avslkit preprocess VIDEOS/"),
    Entry("test_list", "test list", "avslkit preprocess VIDEOS/ (test.csv, vggss_test.csv or flickr_test.csv)"),
    Entry("real_negatives", "real negatives", "avslkit preprocess VIDEOS/ (offscreen.txt)"),
    Entry("extended", "extended test set", "avslkit extend-testset, or avslkit eval --extended"),
    Entry("last_eval", "last evaluation", "avslkit eval"),
    Entry("last_report", "last report", "avslkit viz"),
)}
_SECTIONS = {"stores"}
_KNOWN_TOP = {"version", "runs", *(k.split(".")[0] for k in ENTRIES)}
_HEADER = (
    "# avslkit workspace: what earlier commands produced; later commands take their defaults from here.\n"
    "# Plain YAML, paths relative to this folder; edit or delete lines freely (docs/workspace.md).\n"
)


def _line_of(text: str, dotted: str) -> int | None:
    """1-based line of key `dotted` (a.b) in YAML `text`, or None."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in dotted.split("."):
        if not isinstance(node, yaml.MappingNode):
            return line
        for key, value in node.value:
            if key.value == part:
                line, node = key.start_mark.line + 1, value
                break
        else:
            return line
    return line


class Workspace:
    """The workspace around a folder: its root, its `avslkit.yaml` (which may not exist yet) and entries."""

    def __init__(self, root: str | os.PathLike, exists: bool | None = None):
        self.root = Path(root).absolute()
        self.file = self.root / settings().file
        self.exists = self.file.is_file() if exists is None else exists
        self._announced: set[str] = set()

    @classmethod
    def find(cls, start: str | os.PathLike | None = None) -> "Workspace":
        """The nearest folder from `start` (default: the current one) upwards holding avslkit.yaml, else `start`."""
        here = Path(start or Path.cwd()).absolute()
        name = settings().file
        for folder in (here, *here.parents):
            if (folder / name).is_file():
                return cls(folder, exists=True)
        return cls(here, exists=False)

    # -- reading -----------------------------------------------------------------------------
    def _label(self) -> str:
        return self.display(self.file)

    def _read(self) -> tuple[dict[str, Any], str]:
        if not self.file.is_file():
            return {}, ""
        text = self.file.read_text(encoding="utf-8")
        where = self._label()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark, opened = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            if opened is not None and mark is not None and opened.line != mark.line:
                problem += f"; {getattr(exc, 'context', None) or 'while parsing'} from line {opened.line + 1}"
            raise WorkspaceError(f"{where}{line}: not valid YAML ({problem}); fix that line, or delete the file to start "
                                 "a new workspace (the stores and runs stay on disk)") from None
        if data is None:
            return {}, text
        if not isinstance(data, Mapping):
            raise WorkspaceError(f"{where}:1: the workspace file must be a mapping of entries (stores:, annotations:, runs:, ...)")

        def bad(key: str, expected: str) -> WorkspaceError:
            return WorkspaceError(f"{where}:{_line_of(text, key) or 1}: '{key}' must be {expected}; fix or delete that line")

        for key, value in data.items():
            if key not in _KNOWN_TOP:
                known = ", ".join(sorted(_KNOWN_TOP))
                raise WorkspaceError(f"{where}:{_line_of(text, str(key)) or 1}: unknown entry '{key}' (known: {known}); fix or delete that line")
            if value is None or key == "version":
                continue
            if key in _SECTIONS:
                if not isinstance(value, Mapping):
                    raise bad(key, "a mapping such as 'train: data/train.h5'")
                for sub, path in value.items():
                    if f"{key}.{sub}" not in ENTRIES:
                        raise bad(f"{key}.{sub}", f"one of {', '.join(e.split('.')[1] for e in ENTRIES if e.startswith(key + '.'))}")
                    if path is not None and not isinstance(path, str):
                        raise bad(f"{key}.{sub}", "a path")
            elif key == "runs":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise bad(key, "a list of run directories ('- runs/dmt')")
            elif not isinstance(value, str):
                raise bad(key, "a path")
        return dict(data), text

    def data(self) -> dict[str, Any]:
        """The parsed, checked file ({} when there is none)."""
        return self._read()[0]

    def raw(self, key: str) -> str | None:
        """The path recorded for entry `key` (dotted) as written, not checked to exist; None when absent."""
        node: Any = self.data()
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node if isinstance(node, str) and node.strip() else None

    def resolve(self, recorded: str) -> Path:
        """A recorded path as a path on disk (relative ones are relative to the workspace folder)."""
        path = Path(recorded).expanduser()
        return path if path.is_absolute() else self.root / path

    def display(self, path: str | os.PathLike) -> str:
        """`path` as the user would type it here: relative to the current folder when possible."""
        p = Path(path).absolute()
        try:
            return os.path.relpath(p)
        except ValueError:  # another drive (Windows)
            return str(p)

    def get(self, key: str) -> Path | None:
        """The recorded path of `key`, checked to exist (an error names the line and the fix); None if unrecorded."""
        recorded = self.raw(key)
        if recorded is None:
            return None
        path = self.resolve(recorded)
        if not path.exists():
            text = self.file.read_text(encoding="utf-8") if self.file.is_file() else ""
            line = _line_of(text, key) or 1
            entry = ENTRIES.get(key)
            redo = f"re-run '{entry.written_by}'" if entry else "re-run the command that wrote it"
            raise WorkspaceError(f"{self._label()}:{line}: {key} names {recorded}, which no longer exists; "
                                 f"{redo}, pass the path explicitly, or delete that line")
        return path

    def default(self, key: str, explicit: Any = None) -> Any:
        """`explicit` when given (flags win); else the recorded path of `key`, announced once; else None."""
        if explicit is not None:
            return explicit
        path = self.get(key)
        if path is not None:
            self.announce(ENTRIES[key].what if key in ENTRIES else key, path)
        return path

    def announce(self, what: str, path: str | os.PathLike, why: str = "") -> None:
        """Print `using <what> <path> (avslkit.yaml)` once per entry (stderr; hidden under --quiet)."""
        if what in self._announced:
            return
        self._announced.add(what)
        from avslkit.utils.console import is_quiet, stderr_console

        if not is_quiet():
            source = f"{self._label()}{': ' + why if why else ''}"
            stderr_console.print(f"using {what} {self.display(path)} ({source})", highlight=False, soft_wrap=True)

    # -- runs --------------------------------------------------------------------------------
    def runs(self) -> list[str]:
        return list(self.data().get("runs") or [])

    def latest_run(self) -> Path | None:
        """The newest recorded run directory (checked to exist), or None."""
        runs = self.runs()
        if not runs:
            return None
        path = self.resolve(runs[-1])
        if not path.is_dir():
            text = self.file.read_text(encoding="utf-8")
            line = max((k + 1 for k, ln in enumerate(text.splitlines()) if runs[-1] in ln), default=_line_of(text, "runs") or 1)
            raise WorkspaceError(f"{self._label()}:{line}: the latest run {runs[-1]} no longer exists; pass a run directory "
                                 "explicitly, train a new one, or delete that line")
        return path

    def new_run_dir(self, method: str) -> Path:
        """Create and return the first free runs/METHOD, runs/METHOD2, runs/METHOD3, ... (safe under races)."""
        base = self.root / settings().runs_dir
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1, 100_000):
            path = base / (method if n == 1 else f"{method}{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
        raise WorkspaceError(f"{base}: no free run directory name for '{method}'; pass --out")

    # -- writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self.root / f".{self.file.name}.lock"
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _relative(self, path: str | os.PathLike) -> str:
        p = Path(path).absolute()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    def record(self, entries: Mapping[str, str | os.PathLike | None] | None = None, run: str | os.PathLike | None = None) -> None:
        """Set dotted `entries` (None deletes one) and/or append `run` (newest last), atomically.

        The file is re-read under a lock first, so concurrent commands do not lose each other's entries;
        a damaged file raises before anything is written.
        """
        with self._locked():
            data, _ = self._read()
            for key, value in (entries or {}).items():
                parts = key.split(".")
                node = data
                for part in parts[:-1]:
                    child = node.get(part)
                    if not isinstance(child, dict):
                        child = node[part] = {}
                    node = child
                if value is None:
                    node.pop(parts[-1], None)
                else:
                    node[parts[-1]] = self._relative(value)
            if run is not None:
                rel = self._relative(run)
                runs = [r for r in (data.get("runs") or []) if r != rel]
                data["runs"] = [*runs, rel]
            ordered = {"version": 1, **{k: data[k] for k in ("stores", "annotations", "labels", "timestamps", "test_list",
                                                              "real_negatives", "extended") if k in data}}
            ordered.update({k: v for k, v in data.items() if k not in ordered})
            atomic_write_text(self.file, _HEADER + yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False))
        self.exists = True

    def record_result(self, entries: Mapping[str, str | os.PathLike | None] | None = None,
                      run: str | os.PathLike | None = None) -> bool:
        """`record` for work that is already done: a damaged file becomes a warning, not an error (the
        outputs stay on disk and the command succeeds); returns whether it was recorded."""
        try:
            self.record(entries, run)
        except WorkspaceError as exc:
            from avslkit.utils.console import log

            log.warning("not recorded in the workspace: %s", exc)
            return False
        return True

    # -- summary -----------------------------------------------------------------------------
    def rows(self) -> list[tuple[str, str, bool]]:
        """(entry, recorded path, exists) for every recorded entry, runs last (for `avslkit status`)."""
        out = []
        for key in ENTRIES:
            recorded = self.raw(key)
            if recorded is not None:
                out.append((key, recorded, self.resolve(recorded).exists()))
        for k, run in enumerate(self.runs()):
            out.append(("runs" + (" (latest)" if k == len(self.runs()) - 1 else ""), run, self.resolve(run).exists()))
        return out
