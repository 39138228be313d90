"""Evaluation protocol: vectorised avslkit metrics vs a straightforward per-sample numpy implementation.

Generates N structured 224×224 score maps (a Gaussian blob near a random box, plus noise; some
constant maps), half positives with box ground truth and half negatives of the three types in the
proportions of Extended VGG-SS (379 real / 3594 easy / 1185 hard). Both implementations see the same
maps chunk by chunk (generation time excluded). Reports the per-sample stage (min-max, binarise,
cIoU, confidence, MSE), the aggregate stage (LocAcc, AUC, AP/max-F1 at θ = .5/.75, size buckets,
negative types) and the total, as wall-clock and as CPU time of this process (the CPU figures are
the steadier ones on a shared machine: both implementations are single-threaded numpy), and checks
that every per-sample number and every summary metric is identical.

    python benchmarks/bench_eval.py --n 10000

Whole-process mode (`--whole-process`): what a user times. `avslkit eval --maps` runs as a child
process against the reference evaluator as a child process (`--reference-run`: np.load of the maps
file, torch bicubic upsampling when the maps are not 224×224 -- torch imported only then --, the
per-sample numpy loop of `metrics.reference`, its aggregates), on the same files, in interleaved
rounds, wall and CPU (`wait4`) per run, median of `--rounds`; both metrics.json are compared.

    python benchmarks/bench_eval.py --whole-process --n 10000 --native 7 --rounds 3
    python benchmarks/bench_eval.py --whole-process --n 10000 --native 0 --rounds 3   # 224 float32 maps
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from avslkit.metrics import reference as ref

SIZE = 224


def make_chunk(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Structured maps, ground truth and kinds for n samples."""
    kinds = rng.choice(np.array(["positive", "real", "easy", "hard"], dtype=object), n,
                       p=[0.5, 0.5 * 379 / 5158, 0.5 * 3594 / 5158, 0.5 * 1185 / 5158])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    x1, y1 = rng.uniform(0, 180, n), rng.uniform(0, 180, n)
    w, h = rng.uniform(8, 200, n), rng.uniform(8, 200, n)
    x2, y2 = np.minimum(x1 + w, SIZE), np.minimum(y1 + h, SIZE)
    cx = (x1 + x2) / 2 + rng.normal(0, 25, n)
    cy = (y1 + y2) / 2 + rng.normal(0, 25, n)
    s = rng.uniform(10, 60, n)
    amp = rng.uniform(0.2, 3.0, n)
    maps = np.empty((n, SIZE, SIZE), np.float32)
    gt = np.zeros((n, SIZE, SIZE), np.float32)
    for i in range(n):  # data generation only (not timed)
        maps[i] = amp[i] * np.exp(-((xx - cx[i]) ** 2 + (yy - cy[i]) ** 2) / (2 * s[i] ** 2))
        if kinds[i] == "positive":
            gt[i, int(y1[i]):int(y2[i]), int(x1[i]):int(x2[i])] = 1
    maps += rng.normal(0, 0.05, maps.shape).astype(np.float32)
    maps[rng.random(n) < 0.002] = 1.0  # a few constant maps
    return maps, gt, kinds


def whole_process_data(n: int, native: int, seed: int = 0) -> Path:
    """Cached inputs of the whole-process runs: half positives (vggss.json + test list), half
    negatives (SLAVC-style extended CSV, easy and hard), and an uncompressed maps .npz (np.savez)
    at `native`×`native` (0: 224×224) float32."""
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"avslkit_bench_eval_{n}_{native or SIZE}_{seed}"
    if (root / "maps.npz").is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_pos = n // 2
    ids = [f"clip{k:06d}_000001" for k in range(n_pos)]
    x1, y1 = rng.uniform(0, 0.8, n_pos), rng.uniform(0, 0.8, n_pos)
    x2, y2 = np.minimum(x1 + rng.uniform(0.04, 0.9, n_pos), 1), np.minimum(y1 + rng.uniform(0.04, 0.9, n_pos), 1)
    ann = [{"file": i, "class": f"class{k % 20}", "bbox": [[float(a), float(b), float(c), float(d)]]}
           for k, (i, a, b, c, d) in enumerate(zip(ids, x1, y1, x2, y2))]
    (root / "vggss.json").write_text(json.dumps(ann))
    (root / "test.csv").write_text("\n".join(ids) + "\n")
    partners = rng.integers(0, n_pos, n - n_pos)
    negs = [(ids[k % n_pos], ids[int(p)] if int(p) != k % n_pos else ids[(k + 1) % n_pos]) for k, p in enumerate(partners)]
    (root / "ext.csv").write_text("video,audio,label\n" + "".join(f"{v},{a},non-sounding\n" for v, a in negs))
    names = ids + [f"{v}__{a}" for v, a in negs]
    res = native or SIZE
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32)
    cx = ((np.r_[x1, rng.uniform(0, 1, n - n_pos)] + np.r_[x2, rng.uniform(0, 1, n - n_pos)]) / 2 * res
          + rng.normal(0, res / 9, n))
    cy = ((np.r_[y1, rng.uniform(0, 1, n - n_pos)] + np.r_[y2, rng.uniform(0, 1, n - n_pos)]) / 2 * res
          + rng.normal(0, res / 9, n))
    s = rng.uniform(res / 20, res / 4, n)
    amp = rng.uniform(0.2, 3.0, n)
    maps = np.empty((n, res, res), np.float32)
    for i in range(n):
        maps[i] = amp[i] * np.exp(-((xx - cx[i]) ** 2 + (yy - cy[i]) ** 2) / (2 * s[i] ** 2))
        maps[i] += rng.normal(0, 0.05, (res, res)).astype(np.float32)
    np.savez(root / "maps.npz", names=np.array(names), maps=maps)
    return root


def reference_run(root: Path, out: Path) -> None:
    """The reference evaluator as one process: the researcher's script (see module docstring)."""
    from avslkit.data.annotations import gt_maps, read_annotations, read_extended_csv, read_id_list
    from avslkit.evaluation.items import negative_items, positive_items

    # the inputs parsed as `avslkit eval` parses them (only numpy is imported: no numba, no torch)
    ann = read_annotations(root / "vggss.json", "auto")
    items = positive_items(read_id_list(root / "test.csv")) + negative_items(read_extended_csv(root / "ext.csv"), ann.classes())
    z = np.load(root / "maps.npz")
    names, maps = list(z["names"]), z["maps"]
    index = {n: k for k, n in enumerate(names)}
    rows = [index[it.name] for it in items]
    per = []
    for a in range(0, len(items), 256):  # upsample batch by batch, as the test scripts do per loader batch
        batch = maps[rows[a:a + 256]]
        if batch.shape[-2:] != (SIZE, SIZE):
            import torch
            import torch.nn.functional as F

            batch = F.interpolate(torch.from_numpy(batch)[:, None], size=(SIZE, SIZE), mode="bicubic",
                                  align_corners=True)[:, 0].numpy()
        for k, m in enumerate(batch):
            it = items[a + k]
            g = gt_maps([ann[it.video]], SIZE)[0] if it.is_positive else np.zeros((SIZE, SIZE), np.float32)
            per.append(ref.sample_stats(m, g, "relative"))
    metrics = ref.summarize_reference([r["ciou"] for r in per], [r["conf"] for r in per], [r["area"] for r in per],
                                      [r["mse"] for r in per], [it.kind for it in items])
    out.write_text(json.dumps(metrics))


def whole_process(args: argparse.Namespace) -> None:
    from whole_process import interleaved, load_note, ratio_lines

    t0 = time.perf_counter()
    root = whole_process_data(args.n, args.native, args.seed)
    print(f"data: {root} ({(root / 'maps.npz').stat().st_size / 1e6:.0f} MB maps.npz, uncompressed; "
          f"prepared in {time.perf_counter() - t0:.1f} s, not timed)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    ours_out, ref_out = root / "ours" / "metrics.json", root / "reference.json"
    candidates = {
        "avslkit eval": [sys.executable, "-m", "avslkit", "-q", "eval", "--maps", str(root / "maps.npz"),
                         "--annotations", str(root / "vggss.json"), "--test-list", str(root / "test.csv"),
                         "--extended-csv", str(root / "ext.csv"), "--out", str(ours_out)],
        "reference evaluator": [sys.executable, __file__, "--reference-run", str(root), "--reference-out", str(ref_out)],
    }
    if args.warm:  # fill the page cache and the numba cache once, untimed, for both
        interleaved(candidates, 1, env={k: env for k in candidates})
    print(f"{load_note()} (before)")
    series = interleaved(candidates, args.rounds, env={k: env for k in candidates})
    print(f"{load_note()} (after)")
    res = args.native or SIZE
    print(f"whole process, N = {args.n} maps at {res}x{res} float32, {args.rounds} interleaved rounds:")
    print("\n".join(ratio_lines(series, "avslkit eval", "reference evaluator")))
    ours, theirs = json.loads(ours_out.read_text()), json.loads(ref_out.read_text())
    same = {k: ours[k] == theirs[k] for k in ("locacc", "auc", "ap", "max_f1", "mse", "mean_ciou")}
    print(f"metrics identical to the reference: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--whole-process", action="store_true", help="time avslkit eval and the reference as processes")
    ap.add_argument("--native", type=int, default=7, help="whole-process: map side in the file (0 = 224)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warm", action="store_true", help="whole-process: one untimed round first")
    ap.add_argument("--reference-run", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--reference-out", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--chunk", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None,
                    help="threads of the vectorised per-sample stage (default: every usable core)")
    args = ap.parse_args()
    if args.reference_run is not None:
        return reference_run(args.reference_run, args.reference_out)
    if args.whole_process:
        return whole_process(args)
    from avslkit.evaluation.protocol import summarize
    from avslkit.metrics.samples import SampleStats, default_workers, sample_stats

    rng = np.random.default_rng(args.seed)
    fast_parts, slow_rows, all_kinds = [], [], []
    wall = {"fast": 0.0, "slow": 0.0}
    cpu = {"fast": 0.0, "slow": 0.0}

    def timed(key: str, fn):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall[key] += time.perf_counter() - w0
        cpu[key] += time.process_time() - c0
        return out

    # One-time cost of the compiled kernel (numba: compile, or load from its on-disk cache), reported
    # separately and excluded from the per-map figures.
    w0 = time.perf_counter()
    sample_stats(*make_chunk(np.random.default_rng(args.seed + 1), 2)[:2], "relative", workers=args.workers)
    warmup_s = time.perf_counter() - w0

    load_before = os.getloadavg()[0]
    for start in range(0, args.n, args.chunk):
        maps, gt, kinds = make_chunk(rng, min(args.chunk, args.n - start))
        all_kinds.extend(kinds)
        fast_parts.append(timed("fast", lambda: sample_stats(maps, gt, "relative", workers=args.workers)))
        slow_rows.extend(timed("slow", lambda: [ref.sample_stats(m, g, "relative") for m, g in zip(maps, gt)]))
    fast = SampleStats.concat(fast_parts)
    slow = {k: np.array([r[k] for r in slow_rows]) for k in ("ciou", "conf", "area", "mse")}
    kinds = np.array(all_kinds, dtype=object)
    stage_wall, stage_cpu = dict(wall), dict(cpu)

    wall = {"fast": 0.0, "slow": 0.0}
    cpu = {"fast": 0.0, "slow": 0.0}
    m_fast = timed("fast", lambda: summarize(fast, kinds))
    m_slow = timed("slow", lambda: ref.summarize_reference(list(slow["ciou"]), list(slow["conf"]), list(slow["area"]),
                                                           list(slow["mse"]), list(kinds)))
    load_after = os.getloadavg()[0]

    identical_samples = {f: bool(np.array_equal(getattr(fast, f), slow[k]))
                         for f, k in (("ciou", "ciou"), ("confidence", "conf"), ("area", "area"), ("mse", "mse"))}
    identical_metrics = m_fast == m_slow

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, numpy {np.__version__}; "
          f"load average {load_before:.1f} before, {load_after:.1f} after")
    workers = args.workers or default_workers()
    print(f"vectorised stage: {workers} thread(s); one-time kernel compile/cache load {warmup_s:.2f} s (not in the figures)")
    print(f"N = {args.n} maps at {SIZE}x{SIZE} ({int((kinds == 'positive').sum())} positives), chunk {args.chunk}")
    print(f"{'stage':<28}{'vectorised s':>14}{'per-sample s':>14}{'speed-up':>10}   (wall | CPU)")
    rows = (("per-sample stats", stage_wall, stage_cpu), ("aggregates (AP/F1/AUC/...)", wall, cpu),
            ("total", {k: stage_wall[k] + wall[k] for k in wall}, {k: stage_cpu[k] + cpu[k] for k in cpu}))
    for name, w, c in rows:
        print(f"{name:<28}{w['fast']:>7.2f} |{c['fast']:>6.2f}{w['slow']:>7.2f} |{c['slow']:>6.2f}"
              f"{w['slow'] / w['fast']:>6.1f}x |{c['slow'] / max(c['fast'], 1e-9):>5.1f}x")
    print(f"per-sample numbers bit-identical: {identical_samples}")
    print(f"summary metrics identical (every key, MSE included): {identical_metrics}")
    print(json.dumps({k: m_fast[k] for k in ("locacc", "auc", "ap", "max_f1", "mse")}))


if __name__ == "__main__":
    main()
