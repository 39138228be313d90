"""Does SLAVC learn on the synthetic benchmark in a few CPU minutes? Compared with trivial baselines.

Generates a toy benchmark (small images), preprocesses it, trains SLAVC (and EZ-VSL with --methods)
from scratch (no ImageNet weights offline), and evaluates each run and the center/full baselines on
the held-out extended test set with the exact protocol. Prints a table of LocAcc / AUC / AP / max-F1.

Usage: python benchmarks/bench_learning.py [--clips 480] [--size 112] [--epochs 8] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

AVSLKIT = [sys.executable, "-m", "avslkit", "--quiet"]


def run(args: list[str]) -> None:
    subprocess.run(AVSLKIT + args, check=True)


def evaluate(label: str, source: list[str], work: Path, toy: Path) -> dict:
    out = work / "eval" / label / "metrics.json"
    run(["eval", *source, "--test", str(work / "test.h5"), "--annotations", str(toy / "annotations.json"),
         "--test-list", str(toy / "test.csv"), "--extended", "--out", str(out)])
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=480)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--methods", default="slavc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/avslkit_bench_learning"))
    args = parser.parse_args()
    work, toy = args.work, args.work / "toy"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    run(["synth", str(toy), "--clips", str(args.clips), "--classes", "8", "--size", str(args.size), "--duration", "4",
         "--fps", "10", "--size-range", "0.25", "0.6", "--seed", str(args.seed), "--workers", "2"])
    common = ["--root", str(toy / "videos"), "--timestamps", str(toy / "timestamps.csv"),
              "--labels", str(toy / "annotations.json"), "--workers", "2", "--frame-size", str(args.size + 16)]
    run(["preprocess", str(toy / "train.txt"), "--out", str(work / "train.h5"), *common])
    run(["preprocess", str(toy / "test_videos.txt"), "--out", str(work / "test.h5"), *common])
    run(["extend-testset", str(work / "test.h5"), "--annotations", str(toy / "annotations.json"),
         "--real-negatives", str(toy / "offscreen.txt")])
    t_data = time.time() - t0

    rows = {}
    for baseline in ("center", "full"):
        rows[f"baseline {baseline}"] = (evaluate(baseline, ["--baseline", baseline], work, toy), 0.0)
    for method in args.methods.split(","):
        run_dir = work / "runs" / method
        t1 = time.time()
        run(["train", method, "--data", str(work / "train.h5"), "--out", str(run_dir), "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--image-size", str(args.size), "--workers", "2", "--device", "cpu",
             "--seed", str(args.seed), "--set", "model.visual_weights=none"] + (["--resume"] if (run_dir / "last.pt").exists() else []))
        rows[method] = (evaluate(method, [str(run_dir)], work, toy), time.time() - t1)

    print(f"\nsynthetic benchmark: {args.clips} clips at {args.size}px, seed {args.seed}; data prep {t_data:.0f} s")
    print(f"{'model':<18} {'LocAcc':>7} {'AUC':>7} {'AP':>7} {'maxF1':>7} {'n+':>4} {'n-':>4} {'train s':>8}")
    for name, (m, secs) in rows.items():
        print(f"{name:<18} {100 * m['locacc']:7.1f} {100 * m['auc']:7.1f} {100 * m['ap']:7.1f} {100 * m['max_f1']:7.1f} "
              f"{m['n_positive']:4d} {m['n_negative']:4d} {secs:8.0f}")


if __name__ == "__main__":
    main()
