"""Split discovery for `avslkit preprocess DIR` without --out: which stores to write from which clips.

A folder of videos often comes with its benchmark's split files (published: `vggss.json`,
`vggss_test.csv`, `flickr_test.csv`; `avslkit synth`: `train.txt`, `test_videos.txt`, `test.csv`,
`annotations.json`, `timestamps.csv`, `offscreen.txt`). `plan_stores` looks for them (names in
avslkit/configs/workspace.yaml, `split_files`) and turns the folder into a train store and a test
store; without split files every video goes into one store named after the folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from avslkit.errors import AvslError

__all__ = ["StoreJob", "StorePlan", "find_split_files", "plan_stores"]


@dataclass
class StoreJob:
    """One store to write: `role` (train/test), `out`, and its clips (video paths, or a list file)."""

    role: str
    out: Path
    inputs: list[Path]
    source: str                      # where the clip list came from, for the message
    missing: list[str] = field(default_factory=list)  # listed ids with no video in the folder


@dataclass
class StorePlan:
    """What `plan_stores` found (role → file) and the stores to write."""

    found: dict[str, Path]
    jobs: list[StoreJob]
    n_videos: int = 0
    n_unused: int = 0               # videos in the folder that no split names


def find_split_files(folders: Sequence[Path], names: Mapping[str, Sequence[str]]) -> dict[str, Path]:
    """role → the first existing file among `names[role]`, looked for in each folder in turn."""
    found: dict[str, Path] = {}
    for role, candidates in names.items():
        for folder in folders:
            hit = next((folder / n for n in candidates if (folder / n).exists()), None)
            if hit is not None:
                found[role] = hit
                break
    return found


def _ids(path: Path) -> list[str]:
    from avslkit.data.annotations import read_id_list

    return read_id_list(path, fix_known_typos=False)


def plan_stores(inputs: Path, store_dir: Path, names: Mapping[str, Sequence[str]], extra_folders: Sequence[Path] = (),
                extensions: Sequence[str] = (".mp4", ".mkv", ".webm", ".avi", ".mov")) -> StorePlan:
    """The stores `avslkit preprocess INPUTS` writes under `store_dir` (rules in the module docstring).

    A list file as INPUTS gives one store of its clips (videos found under the list's folder) named after
    it, or `test.h5` when its name is a test-split name. A folder: its videos (recursively) split by the train/test lists found in it or in
    `extra_folders`; with a test list but no train list, train = every other video.
    """
    from avslkit.data.annotations import normalize_clip_id
    from avslkit.data.video import iter_video_files

    inputs = Path(inputs)
    if not inputs.exists():
        raise AvslError(f"videos folder not found: {inputs} (pass the folder holding your videos, or a txt/csv list of them)")
    exts = tuple(e if e.startswith(".") else f".{e}" for e in extensions)
    folder = inputs.parent if inputs.is_file() else inputs
    videos: dict[str, Path] = {}
    for path in iter_video_files(folder, exts):
        videos.setdefault(normalize_clip_id(path.name), path)
    if not videos:
        raise AvslError(f"no videos found in {folder} (looked recursively for {' '.join(exts)}); pass the folder that holds them")
    if inputs.is_file():  # one list: its clips, found anywhere under the list's folder
        role = "test" if inputs.name in names.get("test", ()) else "train"
        found = find_split_files([folder, *extra_folders], {k: v for k, v in names.items() if k not in ("train", "test")})
        ids = _ids(inputs)
        clips = [videos[i] for i in ids if i in videos]
        if not clips:
            raise AvslError(f"{inputs}: none of its {len(ids)} clip(s) has a video under {folder} (e.g. '{ids[0]}'); "
                            "pass --out STORE.h5 with --root VIDEO_DIR")
        out = store_dir / f"{'test' if role == 'test' else inputs.stem}.h5"
        return StorePlan(found, [StoreJob(role, out, clips, inputs.name, [i for i in ids if i not in videos])], n_videos=len(videos))
    found = find_split_files([inputs, *[f for f in extra_folders if f.absolute() != inputs.absolute()]], names)
    if "train" not in found and "test" not in found:
        name = inputs.absolute().name or "videos"
        return StorePlan(found, [StoreJob("train", store_dir / f"{name}.h5", sorted(videos.values()), f"every video in {inputs}")],
                         n_videos=len(videos))

    def pick(ids: list[str]) -> tuple[list[Path], list[str]]:
        return [videos[i] for i in ids if i in videos], [i for i in ids if i not in videos]

    jobs: list[StoreJob] = []
    test_ids = _ids(found["test"]) if "test" in found else []
    if "train" in found:
        train_ids, train_source = _ids(found["train"]), found["train"].name
    else:
        held = set(test_ids)
        train_ids, train_source = [i for i in videos if i not in held], f"every video not in {found['test'].name}"
    overlap = set(train_ids) & set(test_ids)
    if overlap:
        raise AvslError(f"{found['train']} and {found['test']} share {len(overlap)} clip(s) (e.g. '{sorted(overlap)[0]}'); "
                        "a clip must be in one split only: fix the lists or pass --out to preprocess one list")
    for role, ids, source in (("train", train_ids, train_source), ("test", test_ids, found.get("test"))):
        if not ids:
            continue
        clips, missing = pick(ids)
        if not clips:
            raise AvslError(f"{source}: none of its {len(ids)} clip(s) has a video in {inputs} (e.g. '{ids[0]}'); "
                            "check that the list and the folder belong together")
        jobs.append(StoreJob(role, store_dir / f"{role}.h5", clips, source if isinstance(source, str) else source.name, missing))
    used = set(train_ids) | set(test_ids)
    return StorePlan(found, jobs, n_videos=len(videos), n_unused=sum(1 for i in videos if i not in used))
