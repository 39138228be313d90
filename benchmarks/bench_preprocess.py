"""Benchmark `avslkit preprocess` against the field's usual two-ffmpeg-calls-per-clip pipeline.

Measured side by side in one run, on the same clips, with the same number of parallel workers:

(a) avslkit: `preprocess(..., workers=N)`: PyAV in-process decode + resample, JPEG frame, HDF5 store;
(b) baseline: per clip `ffmpeg -ss t -i clip -frames:v 1 frame.jpg` and
    `ffmpeg -ss t-1.5 -t 3 -i clip -vn -ac 1 -ar 16000 audio.wav`, then both read back
    (PIL + scipy.io.wavfile); N clips in flight at once (a thread pool driving the subprocesses).

Also reported: store bytes per clip; peak RSS of preprocessing at 50 / 200 / 400 clips (main process
and largest worker; must not grow with the clip count); JPEG vs raw uint8 frame storage (bytes and
read+decode time per frame).

Whole-process mode (`--whole-process`), what a user times: `avslkit preprocess LIST --out STORE -j N`
as a child process against the naive baseline as a child process -- `xargs -P N` running, per clip,
`ffmpeg -ss t -i clip -frames:v 1 f.jpg` then `ffmpeg -ss t-1.5 -t 3 -i clip -vn -ac 1 -ar 16000 a.wav`
(no read-back) --, in interleaved rounds, wall and CPU (`wait4`, children included), median of
`--repeats`. `--steps K` adds the CPU ms per clip of each step of avslkit's decoding (open, seek +
video decode, frame convert/resize, JPEG, audio seek + decode + resample, HDF5 write), profiled in
one process on K clips.

Usage: python benchmarks/bench_preprocess.py --clips 200 --workers 2
       python benchmarks/bench_preprocess.py --whole-process --clips 150 --width 256 --height 256 --seconds 6 --repeats 3 --steps 40
Clips are cached under --cache (default /tmp/avslkit_bench_preprocess); generated with avslkit.synth
(480x360, 25 fps, 10 s, AAC 44.1 kHz like VGGSound downloads), or with ffmpeg lavfi sources if
avslkit.synth is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SR = 16000


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# -- data -------------------------------------------------------------------------------------------


def make_clips(cache: Path, n: int, width: int, height: int, seconds: float) -> Path:
    """A directory with `videos/*.mp4` and `timestamps.csv` (cached)."""
    out = cache / f"synth_{n}_{width}x{height}"
    videos = out / "videos"
    if videos.is_dir() and len(list(videos.glob("*.mp4"))) >= n and (out / "timestamps.csv").is_file():
        return out
    try:
        import avslkit.synth as synth

        synth.generate(out, n_clips=n, width=width, height=height, duration=seconds, fps=25, sample_rate=44100,
                       seed=0, time_jitter=2.0, workers=2)
        return out
    except ImportError:
        pass
    videos.mkdir(parents=True, exist_ok=True)
    rows = ["id,time"]
    rng = np.random.default_rng(0)
    for i in range(n):
        path = videos / f"clip_{i:05d}.mp4"
        if not path.exists():
            subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i",
                            f"testsrc2=size={width}x{height}:rate=25", "-f", "lavfi", "-i",
                            f"sine=frequency={200 + 20 * (i % 40)}:sample_rate=44100", "-f", "lavfi", "-i",
                            "anoisesrc=color=pink:sample_rate=44100:amplitude=0.1", "-filter_complex", "[1][2]amix=2",
                            "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "50",
                            "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True)
        rows.append(f"{path.stem},{seconds / 2 + rng.uniform(-2, 2):.3f}")
    (out / "timestamps.csv").write_text("\n".join(rows) + "\n")
    return out


def subset(data: Path, n: int, work: Path) -> tuple[Path, Path]:
    """A list file of n clips and a timestamps file for them.

    Beyond the generated clips, symlinked aliases (`<id>_copyK.mp4`) stand in as further distinct clips,
    so the memory comparison can go past the cached count without generating more video.
    """
    videos = sorted((data / "videos").glob("*.mp4"))
    rows = (data / "timestamps.csv").read_text().splitlines()[1:]
    times = dict(r.split(",") for r in rows)
    chosen, extra_rows = [], []
    aliases = work / "aliases"
    for k in range(n):
        src = videos[k % len(videos)]
        if k < len(videos):
            chosen.append(src)
            continue
        aliases.mkdir(exist_ok=True)
        alias = aliases / f"{src.stem}_copy{k // len(videos)}.mp4"
        if not alias.exists():
            alias.symlink_to(src)
        chosen.append(alias)
        extra_rows.append(f"{alias.stem},{times[src.stem]}")
    lst = work / f"list_{n}.txt"
    lst.write_text("\n".join(str(v) for v in chosen) + "\n")
    ts = work / f"timestamps_{n}.csv"
    ts.write_text("id,time\n" + "\n".join(rows + extra_rows) + "\n")
    return lst, ts


def clip_times(timestamps: Path) -> dict[str, float]:
    from avslkit.data.preprocess import load_timestamps

    return load_timestamps(timestamps)


# -- (a) avslkit ---------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss is not used for the main process: on Linux it
    carries over the RSS of the parent at fork+exec time (here, the benchmark's own memory)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours_child(lst: str, timestamps: str, out: str, workers: int) -> None:
    """Runs in a fresh process so its peak RSS (and its workers') can be read."""
    from avslkit.data.preprocess import preprocess

    t0 = time.perf_counter()
    report = preprocess(lst, out, workers=workers, timestamps=timestamps, progress=False)
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "seconds": seconds, "stored": report.n_stored, "failed": report.n_failed,
        "rss_main_mb": peak_rss_mb(),
        "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "bytes": Path(out).stat().st_size,
    }))


def cpu_seconds() -> tuple[float, float]:
    """(this process, its reaped children) user+system CPU seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def run_ours(lst: Path, timestamps: Path, out: Path, workers: int) -> dict:
    for p in (out, out.with_name(out.name + ".parts"), out.with_name(out.name + ".config.yaml")):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    _, kids0 = cpu_seconds()
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, __file__, "--child-ours", str(lst), str(timestamps), str(out), str(workers)],
                         capture_output=True, text=True, check=True)
    result = json.loads(res.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - t0  # includes interpreter start-up, like a CLI run
    result["cpu"] = cpu_seconds()[1] - kids0  # the run's process and its pool workers
    return result


# -- (b) baseline: two ffmpeg calls per clip, then read the files back ----------------------------------


def baseline_clip(video: Path, t: float, work: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from scipy.io import wavfile

    ff = ffmpeg_exe()
    jpg = work / f"{video.stem}.jpg"
    wav = work / f"{video.stem}.wav"
    subprocess.run([ff, "-y", "-v", "error", "-ss", f"{t:.3f}", "-i", str(video), "-frames:v", "1", "-q:v", "2",
                    str(jpg)], check=True)
    subprocess.run([ff, "-y", "-v", "error", "-ss", f"{max(t - 1.5, 0):.3f}", "-t", "3", "-i", str(video), "-vn",
                    "-ac", "1", "-ar", str(SR), str(wav)], check=True)
    with Image.open(jpg) as im:
        frame = np.asarray(im.convert("RGB"))
    _, audio = wavfile.read(str(wav))
    if len(audio) < 3 * SR:  # same tiling convention as avslkit
        audio = np.tile(audio, -(-3 * SR // max(1, len(audio))))[: 3 * SR]
    return frame, audio


def run_baseline(lst: Path, times: dict[str, float], workers: int, work: Path) -> dict:
    videos = [Path(s) for s in lst.read_text().split()]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    me0, kids0 = cpu_seconds()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outs = list(pool.map(lambda v: baseline_clip(v, times[v.stem], work), videos))
    seconds = time.perf_counter() - t0
    me1, kids1 = cpu_seconds()
    return {"seconds": seconds, "cpu": (me1 - me0) + (kids1 - kids0),  # ffmpeg processes + reading back
            "outputs": dict(zip([v.stem for v in videos], outs))}


def agreement(store_path: Path, baseline_outputs: dict) -> dict:
    """How close the two pipelines' outputs are (same frame? same audio window?)."""
    from PIL import Image

    from avslkit.data.store import Store

    frame_err, audio_corr = [], []
    with Store(store_path) as s:
        for i, cid in enumerate(s.ids):
            frame, audio = baseline_outputs[cid]
            ours = s.frame(i).astype(np.float64)
            ref = np.asarray(Image.fromarray(frame).resize((ours.shape[1], ours.shape[0]), Image.Resampling.BICUBIC),
                             dtype=np.float64)
            frame_err.append(np.abs(ours - ref).mean())
            a = s.audio_int16(i).astype(np.float64)
            n = min(len(a), len(audio))
            audio_corr.append(np.corrcoef(a[:n], audio[:n].astype(np.float64))[0, 1])
    return {"frame_mean_abs_diff": float(np.mean(frame_err)), "frame_max_of_mean_abs_diff": float(np.max(frame_err)),
            "audio_corr_median": float(np.median(audio_corr)), "audio_corr_min": float(np.min(audio_corr))}


# -- JPEG vs raw frames ------------------------------------------------------------------------------


def jpeg_vs_raw(store_path: Path, work: Path, reads: int = 200) -> dict:
    import h5py

    from avslkit.data.store import Store

    with Store(store_path) as s:
        n = len(s)
        frames = [s.frame(i) for i in range(n)]
        jpeg_bytes = [len(s.frame_bytes(i)) for i in range(n)]
    h, w, _ = frames[0].shape
    same = [f for f in frames if f.shape == (h, w, 3)]
    raw_path = work / "raw_frames.h5"
    lzf_path = work / "raw_frames_lzf.h5"
    for path, comp in ((raw_path, None), (lzf_path, "lzf")):
        with h5py.File(path, "w") as f:
            f.create_dataset("frame", data=np.stack(same), chunks=(1, h, w, 3), compression=comp)
    rng = np.random.default_rng(0)
    order = rng.integers(0, len(same), reads)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        for i in order:
            fn(int(i))
        return (time.perf_counter() - t0) / reads * 1000

    with Store(store_path) as s:
        jpeg_ms = timed(lambda i: s.frame(i))
    with h5py.File(raw_path, "r") as f:
        ds = f["frame"]
        raw_ms = timed(lambda i: ds[i])
    with h5py.File(lzf_path, "r") as f:
        ds = f["frame"]
        lzf_ms = timed(lambda i: ds[i])
    return {
        "frame_shape": [h, w, 3],
        "jpeg_bytes_per_frame": float(np.mean(jpeg_bytes)),
        "raw_bytes_per_frame": float(h * w * 3),
        "raw_lzf_bytes_per_frame": float(lzf_path.stat().st_size / len(same)),
        "jpeg_read_decode_ms": jpeg_ms,
        "raw_read_ms": raw_ms,
        "raw_lzf_read_ms": lzf_ms,
    }


# -- whole-process mode -------------------------------------------------------------------------------


def baseline_script(lst: Path, times: dict[str, float], work: Path) -> Path:
    """A shell script: two ffmpeg CLI calls per clip, `workers` clips in flight (xargs -P)."""
    ff = ffmpeg_exe()
    lines = []
    for v in (Path(s) for s in lst.read_text().split()):
        t = times[v.stem]
        lines.append(f"{v} {t:.3f} {max(t - 1.5, 0):.3f} {work / v.stem}")
    jobs = work.parent / f"{work.name}_jobs.txt"
    jobs.write_text("\n".join(lines) + "\n")
    script = work.parent / f"{work.name}.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'mkdir -p "{work}"\n'
        f'xargs -P "$1" -L 1 sh -c \'"{ff}" -y -v error -ss "$1" -i "$0" -frames:v 1 -q:v 2 "$3.jpg" && '
        f'"{ff}" -y -v error -ss "$2" -t 3 -i "$0" -vn -ac 1 -ar {SR} "$3.wav"\' < "{jobs}"\n')
    script.chmod(0o755)
    return script


def step_breakdown(lst: Path, timestamps: Path, k: int, work: Path) -> dict[str, float]:
    """CPU ms per clip of each decoding step: `preprocess(workers=0)` on k clips under cProfile with a
    CPU-time clock (process_time); the steps are the functions of `data.video` / `data.store`."""
    import cProfile
    import pstats

    from avslkit.data import store as store_mod
    from avslkit.data import video as video_mod
    from avslkit.data.preprocess import preprocess

    sub_list = work / f"steps_{k}.txt"
    sub_list.write_text("\n".join(lst.read_text().split()[:k]) + "\n")
    out = work / "steps.h5"
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    c0 = time.process_time()
    preprocess(sub_list, out, workers=0, timestamps=timestamps, progress=False)
    total = time.process_time() - c0
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)

    def cum(module: object, name: str) -> float:
        path = module.__file__  # type: ignore[attr-defined]
        return sum(v[3] for (f, _, n), v in stats.items() if f == path and n == name)

    def cum_builtin(fragment: str) -> float:
        return sum(v[3] for (f, _, n), v in stats.items() if fragment in n)

    steps = {
        "open (av.open, stream setup)": cum_builtin("av.container.core.open") or cum_builtin("open' of 'av"),
        "seek + video decode (_frame_at)": cum(video_mod, "_frame_at"),
        "frame convert + resize (to_image)": cum_builtin("to_image"),
        "JPEG encode": cum(video_mod, "encode_jpeg"),
        "audio seek + decode + resample (_audio_window)": cum(video_mod, "_audio_window"),
        "HDF5 shard write (write_store)": cum(store_mod, "write_store"),
    }
    clip_total = cum(video_mod, "read_clip_with")
    steps["other per-clip work (checks, silence test)"] = clip_total - sum(
        v for key, v in steps.items() if not key.startswith("HDF5"))
    steps["merge + config + bookkeeping"] = total - clip_total - steps["HDF5 shard write (write_store)"]
    steps["total"] = total
    return {key: 1000 * v / k for key, v in steps.items()}


def whole_process(args: argparse.Namespace) -> None:
    from whole_process import interleaved, load_note, ratio_lines

    args.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = make_clips(args.cache, args.clips, args.width, args.height, args.seconds)
    print(f"clips: {data} ({args.clips} x {args.width}x{args.height}, {args.seconds:g} s; ready in "
          f"{time.perf_counter() - t0:.0f} s, not timed)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_pp_whole_", dir=args.cache))
    lst, timestamps = subset(data, args.clips, work)
    times = clip_times(timestamps)
    out = work / "ours.h5"
    script = baseline_script(lst, times, work / "baseline")
    candidates = {
        "avslkit preprocess": [sys.executable, "-m", "avslkit", "preprocess", str(lst), "--out", str(out),
                               "-j", str(args.workers), "-q", "--timestamps", str(timestamps)],
        "2 ffmpeg CLI calls/clip": ["sh", str(script), str(args.workers)],
    }

    def clean(name: str) -> None:
        for p in (out, out.with_name(out.name + ".parts"), out.with_name(out.name + ".config.yaml"), work / "baseline"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    print(f"{load_note()} (before)", flush=True)
    series = interleaved(candidates, args.repeats, env={k: env for k in candidates}, before_each=clean,
                         cwd={k: str(Path(__file__).resolve().parents[1]) for k in candidates})
    print(f"{load_note()} (after)")
    print(f"whole process, {args.clips} clips, -j {args.workers}, {args.repeats} interleaved rounds:")
    print("\n".join(ratio_lines(series, "avslkit preprocess", "2 ffmpeg CLI calls/clip")))
    for name, s in series.items():
        print(f"  {name}: {args.clips / s.wall:.1f} clips/s, {1000 * s.cpu / args.clips:.0f} ms CPU per clip")
    if args.steps:
        steps = step_breakdown(lst, timestamps, min(args.steps, args.clips), work)
        print(f"avslkit CPU ms per clip by step (one process, {min(args.steps, args.clips)} clips, cProfile):")
        for key, v in steps.items():
            print(f"  {key:<50}{v:8.1f}")
    shutil.rmtree(work, ignore_errors=True)


# -- main ---------------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-ours":
        run_ours_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--rss-sizes", default="50,200,400", help="clip counts of the peak-memory runs (comma-separated)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="alternating repetitions of (a) and (b)")
    ap.add_argument("--width", type=int, default=480)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/avslkit_bench_preprocess"))
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    ap.add_argument("--whole-process", action="store_true", help="time both pipelines as whole processes")
    ap.add_argument("--steps", type=int, default=0, help="whole-process: also profile K clips step by step")
    args = ap.parse_args()
    if args.whole_process:
        return whole_process(args)

    args.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = make_clips(args.cache, args.clips, args.width, args.height, args.seconds)
    print(f"clips: {data} (ready in {time.perf_counter() - t0:.0f} s)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_pp_", dir=args.cache))
    lst, timestamps = subset(data, args.clips, work)
    times = clip_times(timestamps)

    ours_runs, base_runs, base_cpu = [], [], []
    baseline_outputs = None
    for rep in range(args.repeats):
        ours = run_ours(lst, timestamps, work / "ours.h5", args.workers)
        ours_runs.append(ours)
        base = run_baseline(lst, times, args.workers, work / "baseline")
        base_runs.append(base["seconds"])
        base_cpu.append(base["cpu"])
        baseline_outputs = base["outputs"]
        print(f"repeat {rep}: avslkit {args.clips / ours['seconds']:.1f} clips/s "
              f"(wall incl. start-up {args.clips / ours['wall']:.1f}), "
              f"baseline {args.clips / base['seconds']:.1f} clips/s; CPU per clip: avslkit "
              f"{ours['cpu'] / args.clips * 1000:.0f} ms, baseline {base['cpu'] / args.clips * 1000:.0f} ms", flush=True)
    memory = {}
    for n in (int(x) for x in args.rss_sizes.split(",") if x):
        lst_n, ts_n = subset(data, n, work)
        r = run_ours(lst_n, ts_n, work / f"ours_{n}.h5", args.workers)
        memory[f"{n} clips"] = {"main_mb": r["rss_main_mb"], "largest_worker_mb": r["rss_worker_mb"],
                                "clips_per_s": n / r["seconds"]}
        print(f"peak RSS at {n} clips: main {r['rss_main_mb']:.0f} MB, worker {r['rss_worker_mb']:.0f} MB", flush=True)
    big = ours_runs[-1]
    agree = agreement(work / "ours.h5", baseline_outputs)
    storage = jpeg_vs_raw(work / "ours.h5", work)

    ours_s = statistics.median(r["seconds"] for r in ours_runs)
    ours_wall = statistics.median(r["wall"] for r in ours_runs)
    base_s = statistics.median(base_runs)
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "clips": args.clips, "workers": args.workers, "clip": f"{args.width}x{args.height} 25 fps {args.seconds:g} s AAC 44.1 kHz",
        "avslkit_clips_per_s": args.clips / ours_s,
        "avslkit_clips_per_s_wall": args.clips / ours_wall,
        "baseline_clips_per_s": args.clips / base_s,
        "speedup": base_s / ours_s,
        "speedup_wall": base_s / ours_wall,
        "speedup_per_pair": [b / r["seconds"] for b, r in zip(base_runs, ours_runs)],
        "avslkit_cpu_ms_per_clip": statistics.median(r["cpu"] for r in ours_runs) / args.clips * 1000,
        "baseline_cpu_ms_per_clip": statistics.median(base_cpu) / args.clips * 1000,
        "cpu_ratio": statistics.median(base_cpu) / statistics.median(r["cpu"] for r in ours_runs),
        "store_bytes_per_clip": big["bytes"] / big["stored"],
        "peak_rss": memory,
        "agreement": agree,
        "frames_jpeg_vs_raw": storage,
        "runs": {"avslkit_s": [r["seconds"] for r in ours_runs], "baseline_s": base_runs,
                 "avslkit_cpu_s": [r["cpu"] for r in ours_runs], "baseline_cpu_s": base_cpu},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
