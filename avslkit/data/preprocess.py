"""`avslkit preprocess`: videos (or frames/ + audio/ dumps) → one HDF5 clip store, in parallel and resumably.

Pipeline:

1. collect the clips (a directory scanned recursively, or a txt/csv list resolved against its own
   directory or `root`), attach per-clip times (`timestamps`) and classes (`labels`);
2. skip clips already in STORE.h5 or in shard files left by an interrupted run (`STORE.h5.parts/`);
3. decode the rest in a process pool, each job writing one shard of at most `chunk_size` clips
   atomically (a crash or Ctrl-C loses at most the clips in flight, never the store);
4. merge the existing store and all shards into STORE.h5 (atomic rename), remove the shards, and
   save the resolved config beside the store as STORE.h5.config.yaml.

Faulty clips never stop the run: they are written to the store's failures table with a short reason.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import datetime as _dt
import json
import math
import multiprocessing as mp
import os
import queue as _queue
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from avslkit import __version__
from avslkit.config import load_config, merge, save_config
from avslkit.config_spec import check_config
from avslkit.data.annotations import normalize_clip_id  # ids in --timestamps/--labels are matched normalised
from avslkit.data.store import ClipRecord, Failure, Store, StoreAttrs, merge_stores, write_store
from avslkit.data.video import (
    IMAGE_EXTENSIONS,
    ClipError,
    ClipOptions,
    iter_video_files,
    read_clip_with,
    read_frame_audio_pair,
)
from avslkit.errors import AvslError
from avslkit.utils.console import log, make_progress

#: Input layouts: a tree of video files, or the frames/<id>.jpg + audio/<id>.wav dumps of the public repos.
from avslkit.data.layouts import LAYOUTS  # noqa: E402  (defined where the CLI can read it cheaply)
_HEADER_WORDS = {"id", "file", "video", "path", "clip", "name", "filename", "ytid", "youtube_id"}
_TIME_HEADER_WORDS = {"time", "t", "timestamp", "seconds", "sec", "start", "time_s"}
#: Preprocess options that change what is stored for a clip: a resumed or extended store must be made
#: with the same values, or it would mix e.g. 256 px and 64 px frames under one set of metadata.
STORE_SHAPING_KEYS: tuple[str, ...] = (
    "sample_rate", "audio_seconds", "short_audio", "allow_silent", "silence_floor",
    "frame_time", "clamp_time", "frame_size", "resize_filter", "jpeg_quality",
)


# -- tasks and report -----------------------------------------------------------------------------


@dataclass
class ClipTask:
    """One clip to decode: a video file, or a frame image plus a wav (frames/ + audio/ layout)."""

    id: str
    source: str
    audio_source: str = ""
    time: float | None = None
    label: str = ""


@dataclass
class PreprocessReport:
    """What a run did. `failures` lists this run's failed clips (also in the store's failures table)."""

    out: Path
    n_stored: int
    n_skipped: int
    n_failed: int
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    n_total: int = 0  # clips in the store after the run

    @property
    def clips_per_second(self) -> float:
        return self.n_stored / self.seconds if self.seconds > 0 else 0.0


class NoClipsStoredError(AvslError):
    """Every clip failed: nothing usable was written. `report.failures` says why for each clip."""

    def __init__(self, message: str, report: PreprocessReport):
        super().__init__(message)
        self.report = report


# -- side files: timestamps and labels ------------------------------------------------------------


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            row = [c.strip() for c in row]
            if row and any(row) and not row[0].startswith("#"):
                yield lineno, row


def load_timestamps(path: str | Path) -> dict[str, float]:
    """`id,time` rows (seconds; header optional) → {normalised id: time}."""
    path = Path(path)
    if not path.is_file():
        raise AvslError(f"timestamps file not found: {path} (pass a CSV of 'id,time' rows to --timestamps)")
    out: dict[str, float] = {}
    first = True
    for lineno, row in _csv_rows(path):
        if len(row) < 2:
            raise AvslError(f"{path}:{lineno}: expected 'id,time', got {','.join(row)!r}")
        is_header = first and (row[0].lower() in _HEADER_WORDS or row[1].lower() in _TIME_HEADER_WORDS)
        first = False
        if is_header:
            continue
        try:
            value = float(row[1])
        except ValueError:
            raise AvslError(f"{path}:{lineno}: time {row[1]!r} is not a number of seconds "
                            "(fix the row; a header row, if any, must be the first, e.g. 'id,time')") from None
        if not math.isfinite(value) or value < 0:
            raise AvslError(f"{path}:{lineno}: time must be a non-negative number of seconds, got {row[1]!r}")
        out[normalize_clip_id(row[0])] = value
    if not out:
        raise AvslError(f"{path}: no 'id,time' rows found (one clip per line, e.g. 'abc_000030,5.0')")
    return out


def load_labels(path: str | Path) -> dict[str, str]:
    """Class per clip from a VGG-SS-style JSON list (`file`, `class`) or an `id,class` CSV."""
    path = Path(path)
    if not path.is_file():
        raise AvslError(f"labels file not found: {path} (pass vggss.json-style JSON or an 'id,class' CSV to --labels)")
    out: dict[str, str] = {}
    if path.suffix.lower() == ".json":
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AvslError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(items, Mapping):  # {id: class}
            items = [{"file": k, "class": v} for k, v in items.items()]
        if not isinstance(items, list):
            raise AvslError(f"{path}: expected a list of {{'file': ..., 'class': ...}} objects like vggss.json")
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or "file" not in item or "class" not in item:
                raise AvslError(f"{path}: entry {i} lacks 'file' or 'class' (expected vggss.json-style objects)")
            out[normalize_clip_id(str(item["file"]))] = str(item["class"])
    else:
        for lineno, row in _csv_rows(path):
            if len(row) < 2:
                raise AvslError(f"{path}:{lineno}: expected 'id,class', got {','.join(row)!r}")
            if lineno == 1 and row[0].lower() in _HEADER_WORDS:
                continue
            out[normalize_clip_id(row[0])] = ",".join(row[1:]) if len(row) > 2 else row[1]
    if not out:
        raise AvslError(f"{path}: no labels found")
    return out


# -- input discovery ------------------------------------------------------------------------------


def _has_frames_audio(directory: Path) -> bool:
    return (directory / "frames").is_dir() and (directory / "audio").is_dir()


def _frame_file(base: Path, clip_id: str) -> Path | None:
    for ext in IMAGE_EXTENSIONS:
        p = base / "frames" / f"{clip_id}{ext}"
        if p.is_file():
            return p
    return None


def _read_list(path: Path) -> list[str]:
    if path.suffix.lower() == ".csv":
        entries = [row[0] for _, row in _csv_rows(path)]
        if entries and entries[0].lower() in _HEADER_WORDS:
            entries = entries[1:]
        return entries
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


@dataclass
class FoundClips:
    """Clips found in the input, plus list entries whose files are missing (recorded as failures)."""

    tasks: list[ClipTask]
    missing: list[Failure]
    layout: str


def collect_tasks(
    inputs: str | Path | Sequence[str | Path],
    *,
    layout: str = "auto",
    root: str | Path | None = None,
    extensions: Sequence[str] = (".mp4", ".mkv", ".webm", ".avi", ".mov"),
) -> FoundClips:
    """Clips named by a directory, a list file, or a sequence of video paths (times/labels unset)."""
    if layout not in LAYOUTS:
        raise AvslError(f"unknown layout '{layout}' (choose one of {', '.join(LAYOUTS)})")
    exts = tuple(e if e.startswith(".") else f".{e}" for e in extensions)
    missing: list[Failure] = []
    if not isinstance(inputs, (str, os.PathLike)):
        paths = [Path(p) for p in inputs]
        if not paths:
            raise AvslError("no input videos given (pass a directory of videos or a list file)")
        return FoundClips([ClipTask(id=p.stem, source=str(p.absolute())) for p in paths], missing, "videos")
    src = Path(inputs)
    if not src.exists():
        raise AvslError(f"input not found: {src} (pass a directory of videos or a txt/csv list of files)")
    if src.is_dir():
        base = Path(root) if root is not None else src
        use_fa = layout == "frames-audio" or (layout == "auto" and _has_frames_audio(base))
        if use_fa:
            if not _has_frames_audio(base):
                raise AvslError(f"{base}: --layout frames-audio needs frames/ and audio/ subfolders")
            frames = sorted(p for p in (base / "frames").iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            tasks = [ClipTask(id=p.stem, source=str(p.absolute()),
                              audio_source=str((base / "audio" / f"{p.stem}.wav").absolute())) for p in frames]
            if not tasks:
                raise AvslError(f"no frame images found in {base / 'frames'} (expected <id>.jpg files)")
            return FoundClips(tasks, missing, "frames-audio")
        tasks = [ClipTask(id=p.stem, source=str(p.absolute())) for p in iter_video_files(src, exts)]
        if not tasks:
            raise AvslError(f"no videos found in {src} (looked recursively for {' '.join(exts)})")
        return FoundClips(tasks, missing, "videos")
    if src.suffix.lower() in exts:  # one video file
        return FoundClips([ClipTask(id=src.stem, source=str(src.absolute()))], missing, "videos")
    try:
        entries = _read_list(src)
    except UnicodeDecodeError:
        raise AvslError(f"{src}: not a text list of videos (pass a directory of videos, a video file with one of "
                        f"{', '.join(exts)}, or a txt/csv list of paths or ids)") from None
    if not entries:
        raise AvslError(f"{src}: the list is empty (one video path or clip id per line)")
    base = Path(root) if root is not None else src.parent
    use_fa = layout == "frames-audio" or (layout == "auto" and _has_frames_audio(base))
    tasks = []
    for entry in entries:
        clip_id = Path(entry).stem if Path(entry).suffix.lower() in exts + IMAGE_EXTENSIONS + (".wav",) else Path(entry).name
        if use_fa:
            frame = _frame_file(base, clip_id)
            wav = base / "audio" / f"{clip_id}.wav"
            if frame is None:
                missing.append(Failure(clip_id, str(base / "frames" / f"{clip_id}.jpg"), "file not found: no frame image"))
                continue
            tasks.append(ClipTask(id=clip_id, source=str(frame.absolute()), audio_source=str(wav.absolute())))
            continue
        direct = base / entry
        candidates = [direct] if direct.suffix.lower() in exts else [direct] + [base / f"{entry}{e}" for e in exts]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            missing.append(Failure(clip_id, str(direct), f"file not found (looked for {entry} with {'/'.join(exts)} under {base})"))
            continue
        tasks.append(ClipTask(id=clip_id, source=str(hit.absolute())))
    return FoundClips(tasks, missing, "frames-audio" if use_fa else "videos")


def _dedupe(tasks: list[ClipTask]) -> list[ClipTask]:
    seen: dict[str, ClipTask] = {}
    dropped = 0
    for t in tasks:
        if t.id in seen:
            dropped += 1
            continue
        seen[t.id] = t
    if dropped:
        log.warning("%d input file(s) share a clip id with an earlier file and were skipped (ids are file stems)", dropped)
    return list(seen.values())


# -- config ---------------------------------------------------------------------------------------


def resolve_config(cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Packaged defaults with `cfg` merged over them (unknown keys are rejected, values type/range-checked)."""
    defaults = load_config("preprocess")
    return dict(check_config(merge(defaults, cfg) if cfg else defaults, "preprocess"))


def clip_options(cfg: Mapping[str, Any]) -> ClipOptions:
    """The decoding options of a resolved preprocess config."""
    return ClipOptions(
        sample_rate=int(cfg["sample_rate"]), audio_seconds=float(cfg["audio_seconds"]),
        short_audio=str(cfg["short_audio"]), frame_size=int(cfg["frame_size"]),
        jpeg_quality=int(cfg["jpeg_quality"]), resize_filter=str(cfg["resize_filter"]),
        clamp_time=bool(cfg["clamp_time"]), allow_silent=bool(cfg["allow_silent"]),
        silence_floor=float(cfg["silence_floor"]), decoder_threads=int(cfg["decoder_threads"]),
        window_rule=str(cfg["window_rule"]),
    ).validate()


def _default_time(cfg: Mapping[str, Any]) -> float | None:
    value = cfg["frame_time"]
    if value in (None, "middle"):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AvslError(f"frame_time must be 'middle' or a number of seconds, got {value!r}") from None


def parts_dir(out: str | Path) -> Path:
    """Where shards of an unfinished run live (removed once merged into the store)."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def config_path(out: str | Path) -> Path:
    """The resolved config saved beside a store."""
    out = Path(out)
    return out.with_name(out.name + ".config.yaml")


# -- decoding in workers --------------------------------------------------------------------------


def decode_task(task: ClipTask, opts: ClipOptions) -> ClipRecord:
    """Decode one task according to its layout (raises ClipError)."""
    if task.audio_source:
        return read_frame_audio_pair(Path(task.source), Path(task.audio_source), task.time, opts,
                                     clip_id=task.id, label=task.label)
    return read_clip_with(Path(task.source), task.time, opts, clip_id=task.id, label=task.label)


@dataclass
class _ChunkJob:
    path: str
    tasks: list[ClipTask]


_WORKER: dict[str, Any] = {}


def _exit_when_orphaned(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:  # the parent was killed: nobody will collect our results
            os._exit(1)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Make this (worker) process end when `parent` dies, so a SIGKILLed run leaves nothing behind.

    On Linux the kernel sends SIGKILL at the parent's death (prctl PR_SET_PDEATHSIG), which works even
    while this process holds the GIL in a decoder; a watcher thread covers other systems. `parent` is
    the pid the parent passed, so a parent that died before this call is noticed too.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _init_worker(opts: ClipOptions, attrs: StoreAttrs, ticks: Any, parent: int) -> None:
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    _WORKER.update(opts=opts, attrs=attrs, ticks=ticks)


def _run_chunk(job: _ChunkJob, opts: ClipOptions | None = None, attrs: StoreAttrs | None = None,
               tick: Callable[[], None] | None = None) -> list[Failure]:
    """Decode a chunk of clips and write them (and their failures) as one shard, atomically."""
    opts = opts or _WORKER["opts"]
    attrs = attrs or _WORKER["attrs"]
    if tick is None and _WORKER.get("ticks") is not None:
        ticks = _WORKER["ticks"]
        tick = lambda: ticks.put(1)  # noqa: E731
    records: list[ClipRecord] = []
    failures: list[Failure] = []
    for task in job.tasks:
        try:
            records.append(decode_task(task, opts))
        except ClipError as exc:
            failures.append(Failure(task.id, task.source, exc.reason))
        except Exception as exc:  # a decoder bug on one clip must not stop the others
            failures.append(Failure(task.id, task.source, f"unexpected error: {type(exc).__name__}: {exc}"[:200]))
        if tick is not None:
            tick()
    write_store(job.path, records, attrs, failures)
    return failures


# -- resume ---------------------------------------------------------------------------------------


def _same_setting(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return a == b


def _check_same_shaping(path: Path, attrs: StoreAttrs, fix: str) -> None:
    """Refuse to add clips to `path` (a store or a shard) made with other store-shaping options."""
    with Store(path) as s:
        if s.sample_rate != attrs.sample_rate or s.audio_samples != attrs.audio_samples:
            raise AvslError(
                f"{path}: holds audio at {s.sample_rate} Hz × {s.audio_samples} samples but this run asks for "
                f"{attrs.sample_rate} Hz × {attrs.audio_samples}; "
                + fix.replace("{setting}", "the same --sample-rate and --audio-seconds")
            )
        recorded = s.store_attrs().options.get("config") or {}
    wanted = attrs.options.get("config") or {}
    for key in STORE_SHAPING_KEYS:
        if key in recorded and key in wanted and not _same_setting(recorded[key], wanted[key]):
            raise AvslError(
                f"{path}: was made with {key}={recorded[key]} but this run asks for {key}={wanted[key]}; "
                + fix.replace("{setting}", f"--set {key}={recorded[key]}")
            )


def _scan_parts(parts: Path, attrs: StoreAttrs) -> tuple[list[Path], set[str]]:
    """Usable shards left by earlier runs and the ids they hold; half-written temp files are removed."""
    if not parts.is_dir():
        return [], set()
    for tmp in parts.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    shards: list[Path] = []
    ids: set[str] = set()
    for p in sorted(parts.glob("chunk-*.h5")):
        try:
            with Store(p) as s:
                shard_ids = s.ids
        except (AvslError, OSError, KeyError) as exc:
            log.warning("removing unreadable shard %s (%s)", p, exc)
            p.unlink(missing_ok=True)
            continue
        _check_same_shaping(p, attrs, "re-run with {setting} (the interrupted run's setting) "
                        f"or delete {parts} to start over")
        shards.append(p)
        ids.update(shard_ids)
    return shards, ids


# -- the run --------------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar (hidden under --quiet or progress=False)."""

    def __init__(self, enabled: bool, total: int, description: str):
        self._progress = make_progress() if enabled else None
        self.total = total
        self.description = description
        self.completed = 0

    def __enter__(self) -> "_Progress":
        if self._progress is not None:
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def set(self, completed: int) -> None:
        self.completed = min(max(completed, self.completed), self.total)
        if self._progress is not None:
            self._progress.update(self._task, completed=self.completed)


def _chunks(tasks: list[ClipTask], size: int) -> Iterator[list[ClipTask]]:
    for a in range(0, len(tasks), size):
        yield tasks[a : a + size]


def _stop_pool(executor: ProcessPoolExecutor) -> None:
    """Cancel queued jobs and terminate running workers (their clips are simply redone next run)."""
    procs = list((getattr(executor, "_processes", None) or {}).values())  # no public API before 3.14
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.join(timeout=5)


def _run_jobs(jobs: list[_ChunkJob], workers: int, opts: ClipOptions, attrs: StoreAttrs,
              bar: _Progress) -> list[Failure]:
    """Run every chunk job, in-process (workers=0) or in a spawn-based process pool."""
    failures: list[Failure] = []
    if workers <= 0:
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            bar.set(done)

        for job in jobs:
            failures.extend(_run_chunk(job, opts, attrs, tick))
        return failures

    ctx = mp.get_context("spawn")
    ticks = ctx.Queue()
    pending = list(reversed(jobs))
    finished_clips = 0
    ticked = 0

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(opts, attrs, ticks, os.getpid()))

    executor = new_pool()
    in_flight: dict[Future, _ChunkJob] = {}
    previous_term = _raise_interrupt_on_sigterm()
    try:
        while pending or in_flight:
            while pending and len(in_flight) < 2 * workers:
                job = pending.pop()
                in_flight[executor.submit(_run_chunk, job)] = job
            done_set, _ = wait(list(in_flight), timeout=0.2, return_when=FIRST_COMPLETED)
            with contextlib.suppress(_queue.Empty):
                while True:
                    ticked += ticks.get_nowait()
            broken = False
            for fut in done_set:
                job = in_flight.pop(fut)
                finished_clips += len(job.tasks)
                try:
                    failures.extend(fut.result())
                except BrokenProcessPool:
                    broken = True
                    reason = "worker process crashed while decoding this clip's chunk (try it alone with read_clip)"
                    if not Path(job.path).is_file():
                        failures.extend(Failure(t.id, t.source, reason) for t in job.tasks)
            if broken:  # the pool is unusable: account for the rest of in-flight jobs and start a new one
                for fut, job in list(in_flight.items()):
                    pending.append(job)
                in_flight.clear()
                _stop_pool(executor)
                executor = new_pool()
            bar.set(max(ticked, finished_clips))
    except BaseException:
        _stop_pool(executor)
        raise
    finally:
        if previous_term is not _NOT_INSTALLED:
            signal.signal(signal.SIGTERM, previous_term if previous_term is not None else signal.SIG_DFL)
    executor.shutdown(wait=True)
    ticks.close()
    return failures


_NOT_INSTALLED = object()


def _raise_interrupt_on_sigterm() -> Any:
    """Treat SIGTERM like Ctrl-C while the pool runs, so workers are stopped, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        return _NOT_INSTALLED

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _provenance(cfg: Mapping[str, Any], **run: Any) -> dict[str, Any]:
    return {"tool": "avslkit preprocess", "avslkit_version": __version__, "config": dict(cfg),
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in run.items()}}


def preprocess(
    inputs: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    cfg: Mapping[str, Any] | None = None,
    workers: int = 1,
    timestamps: str | Path | None = None,
    labels: str | Path | None = None,
    root: str | Path | None = None,
    layout: str = "auto",
    progress: bool = True,
) -> PreprocessReport:
    """Decode every clip of `inputs` into the store `out` (resuming an earlier run; see module docstring).

    `cfg` overrides keys of `avslkit/configs/preprocess.yaml`. `workers=0` decodes in-process.
    Raises AvslError for bad inputs and NoClipsStoredError when every clip failed; Ctrl-C propagates
    as KeyboardInterrupt after the pool is stopped, leaving completed shards for the next run.
    """
    started = time.perf_counter()
    cfg = resolve_config(cfg)
    opts = clip_options(cfg)
    out = Path(out)
    if out.is_dir():
        raise AvslError(f"--out {out} is a directory; pass a file name such as {out / 'train.h5'}")
    chunk_size = int(cfg["chunk_size"])
    if chunk_size < 1:
        raise AvslError(f"chunk_size must be >= 1, got {chunk_size}")
    workers = max(0, int(workers))

    stamps = load_timestamps(timestamps) if timestamps else {}
    classes = load_labels(labels) if labels else {}
    found = collect_tasks(inputs, layout=layout, root=root, extensions=tuple(cfg["extensions"]))
    tasks = _dedupe(found.tasks)
    default_time = _default_time(cfg)
    for task in tasks:
        key = normalize_clip_id(task.id)
        task.time = stamps.get(key, default_time)
        task.label = classes.get(key, "")
    if stamps:
        n_without = sum(1 for t in tasks if normalize_clip_id(t.id) not in stamps)
        if n_without:
            log.warning("%d clip(s) have no row in %s; using frame_time=%s for them", n_without, timestamps,
                        cfg["frame_time"])

    attrs = StoreAttrs(
        sample_rate=opts.sample_rate, audio_samples=opts.audio_samples, frame_format="jpeg",
        options=_provenance(cfg, layout=found.layout, timestamps=timestamps, labels=labels, root=root,
                            workers=workers),
    )
    stored: set[str] = set()
    if out.exists():
        _check_same_shaping(out, attrs, "re-run with {setting} (the store's setting) or choose a new --out")
        with Store(out) as s:
            stored = set(s.ids)
    parts = parts_dir(out)
    shards, shard_ids = _scan_parts(parts, attrs)
    done = stored | shard_ids
    todo = [t for t in tasks if t.id not in done]
    missing = [f for f in found.missing if f.id not in done]
    n_skipped = len(tasks) - len(todo)

    failures: list[Failure] = list(missing)
    if todo:
        try:
            parts.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AvslError(f"--out {out}: cannot write beside it ({exc.strerror or exc}: {exc.filename or parts}); "
                            "choose a writable location for --out") from None
        size = max(1, min(chunk_size, math.ceil(len(todo) / max(1, workers) / 4)))
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        jobs = [_ChunkJob(str(parts / f"chunk-{stamp}-{i:05d}.h5"), chunk) for i, chunk in enumerate(_chunks(todo, size))]
        try:
            with _Progress(progress, len(todo), "preprocess") as bar:
                failures.extend(_run_jobs(jobs, workers, opts, attrs, bar))
        except KeyboardInterrupt:
            kept = len(list(parts.glob("chunk-*.h5")))
            log.warning("interrupted: %d finished shard(s) kept in %s; re-run the same command to resume", kept, parts)
            raise

    n_failed = len(failures)
    todo_ids = {t.id for t in todo}
    n_stored = len(todo) - sum(1 for f in failures if f.id in todo_ids)
    shard_files = sorted(parts.glob("chunk-*.h5")) if parts.is_dir() else []
    n_total = len(stored)
    report = PreprocessReport(out=out, n_stored=n_stored, n_skipped=n_skipped, n_failed=n_failed,
                              failures=failures)
    would_hold = len(stored) + sum(_count(p) for p in shard_files)
    if would_hold == 0:
        shutil.rmtree(parts, ignore_errors=True)
        report.seconds = time.perf_counter() - started
        first = failures[0] if failures else None
        detail = f" (first: {first.id}: {first.reason})" if first else ""
        raise NoClipsStoredError(
            f"no clip could be preprocessed: all {n_failed} failed{detail}; nothing was written to {out}", report)
    if shard_files or missing:
        inputs_to_merge = ([out] if out.exists() else []) + shard_files
        n_total = merge_stores(out, inputs_to_merge, attrs=attrs, extra_failures=missing)
        shutil.rmtree(parts, ignore_errors=True)
        save_config(cfg, config_path(out))
    elif parts.is_dir() and not any(parts.iterdir()):
        parts.rmdir()
    report.n_total = n_total
    report.seconds = time.perf_counter() - started
    return report


def _count(shard: Path) -> int:
    with Store(shard) as s:
        return len(s)

