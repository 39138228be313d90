"""Training throughput of EZ-VSL and SLAVC on this machine (batch 32, 224 px, ResNet-18 backbones).

For each method, in its own subprocess (clean memory figures): builds a store of synthetic clips
(256×256 JPEG frames, 3 s of 16 kHz audio), runs the real training loop (`Trainer`, the task's
`training_step`, device-side spectrograms) for a few steps and reports
- samples/s (median step, warm-up step excluded) and the data-wait time per step (from log.jsonl),
- FLOPs of one step (torch.utils.flop_counter.FlopCounterMode: forward + backward) and the achieved
  FLOP/s against the machine's dense fp32 matmul FLOP/s (timed torch.matmul) → utilisation ratio,
- activation memory per sample: (peak RSS during a fresh task's first step − RSS before it − the
  gradient and Adam state, 3 × parameter bytes) / batch; the peak is reset through
  /proc/self/clear_refs (Linux).
The machine is shared: the 1-minute load average before/after each loop is printed with the figures.

Usage: python benchmarks/bench_train.py [--steps 3] [--batch-size 32] [--workers 1] [--methods ezvsl slavc]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_store(path: Path, n: int, size: int = 256, seconds: float = 3.0, sr: int = 16000) -> None:
    import PIL.Image

    from avslkit.data.store import ClipRecord, StoreAttrs, write_store

    rng = np.random.default_rng(0)
    samples = int(sr * seconds)
    records = []
    for i in range(n):
        img = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        buf = io.BytesIO()
        PIL.Image.fromarray(img).save(buf, format="JPEG", quality=90)
        audio = (rng.standard_normal(samples) * 3000).clip(-32768, 32767).astype(np.int16)
        records.append(ClipRecord(f"clip{i:04d}", "synthetic", 1.5, 3.0, buf.getvalue(), size, size, audio, sr, "noise"))
    write_store(path, records, StoreAttrs(sample_rate=sr, audio_samples=samples))


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """Dense fp32 matmul FLOP/s (best of `repeats`)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def measure(method: str, store: Path, steps: int, batch: int, workers: int) -> dict:
    """Runs in a subprocess: one method's figures as a dict."""
    import gc

    from torch.utils.flop_counter import FlopCounterMode

    from avslkit.config import load_config
    from avslkit.data.dataset import collate_av
    from avslkit.engine.distributed import DistContext
    from avslkit.engine.logging import read_log
    from avslkit.engine.run import resolve_data_config, run_training
    from avslkit.methods import build_task

    out = Path(tempfile.mkdtemp(prefix=f"bench_{method}_"))
    cfg = load_config(["train", f"methods/{method}"], overrides=[
        "model.visual_weights=none", f"batch_size={batch}", f"workers={workers}", "device=cpu", "epochs=1",
        f"max_steps={steps}", f"data.train={store}",
    ])
    cfg["method"] = method

    # 1. memory of the first step of a fresh task: peak RSS − RSS before − (grads + Adam moments)
    task = build_task(resolve_data_config(cfg), DistContext())
    ds = task.train_datasets()["train"]
    batch_data = collate_av([ds[i] for i in range(batch)])
    state_bytes = 3 * sum(p.numel() * p.element_size() for p in task.parameters_to_optimize())
    rss_before = _status("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM)
        hwm_reset = True
    except OSError:
        hwm_reset = False
    task.training_step(batch_data)
    peak = _status("VmHWM")
    # 2. FLOPs of one step (forward + backward, as counted by PyTorch)
    with FlopCounterMode(display=False) as counter:
        task.training_step(batch_data)
    flops = counter.get_total_flops()
    del task, ds, batch_data
    gc.collect()

    # 3. the real loop: throughput and data wait from log.jsonl
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    run_training(cfg, out / "run", quiet=True)
    wall = time.perf_counter() - t0
    step_records = [r for r in read_log(out / "run" / "log.jsonl") if r["type"] == "step"][1:]  # drop warm-up
    step_s = statistics.median(r["step_s"] for r in step_records)
    wait_s = statistics.median(r["data_wait_s"] for r in step_records)
    return {
        "method": method,
        "batch": batch,
        "workers": workers,
        "steps_timed": len(step_records),
        "step_s_median": step_s,
        "samples_per_s": batch / step_s,
        "data_wait_s_median": wait_s,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / 1e9 / step_s,
        "peak_mem_per_sample_mb": (peak - rss_before - state_bytes) / batch / 2**20 if hwm_reset else None,
        "step_peak_rss_delta_gb": (peak - rss_before) / 2**30 if hwm_reset else None,
        "grad_adam_state_gb": state_bytes / 2**30,
        "loop_wall_s": wall,
        "load_avg_1min": [load_before, os.getloadavg()[0]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="training steps per method (the first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["ezvsl", "slavc"])
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]), args.steps, args.batch_size, args.workers)))
        return

    peak = matmul_flops()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; dense fp32 matmul: {peak / 1e9:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.h5"
        make_store(store, n=args.batch_size * args.steps)
        for method in args.methods:
            cmd = [sys.executable, __file__, "--child", method, str(store), "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--workers", str(args.workers)]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if res.returncode != 0:
                print(res.stderr[-2000:])
                raise SystemExit(f"{method} benchmark failed")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            mem = f"{r['peak_mem_per_sample_mb']:.1f} MB" if r["peak_mem_per_sample_mb"] is not None else "n/a"
            print(
                f"{method:6s} batch {r['batch']}: {r['samples_per_s']:.2f} samples/s (median step {r['step_s_median']:.2f} s over "
                f"{r['steps_timed']} steps), data wait {r['data_wait_s_median'] * 1000:.0f} ms/step, "
                f"{r['gflop_per_step']:.0f} GFLOP/step → {r['achieved_gflops']:.1f} GFLOP/s = "
                f"{r['achieved_gflops'] * 1e9 / peak:.2f} of matmul peak, activation memory {mem}/sample"
            )
            print("  " + json.dumps(r))


if __name__ == "__main__":
    main()
