"""Training throughput of EZ-VSL, SLAVC, DMT and XPL on this machine (ResNet-18 backbones, random init).

For each method, in its own subprocess (clean memory figures): builds one store of synthetic clips
(256×256 JPEG frames, 3 s of 16 kHz audio) shared by every method, runs the real training loop
(`Trainer`, the engine's `OptimizationStep` around the task's `compute_loss`, device-side audio features) for a few steps and reports
- samples/s (median step, first step excluded) and the data-wait time per step (from log.jsonl),
- FLOPs of one step (torch.utils.flop_counter.FlopCounterMode: forward + backward) and the achieved
  FLOP/s against the machine's dense fp32 matmul FLOP/s (timed torch.matmul) → utilisation ratio,
- activation memory per sample: (peak RSS during a fresh task's first step − RSS before it − the
  gradient and Adam state, 3 × parameter bytes) / batch; the peak is reset through
  /proc/self/clear_refs (Linux).
The machine is shared: the 1-minute load average before/after each loop is printed with the figures.

Semi-supervised methods (dmt, xpl; also supervised, naive-ssl, hard-pl) need boxes: the script writes
an annotations file (one random box per clip, VGG-SS JSON) covering the store (2 × steps × batch
clips), labels half of it (``data.labeled=<steps × batch>``), holds out none for validation
(``data.val_labeled=0``, so no per-epoch quality pass) and leaves the other half unlabelled: neither
stream starts a second pass inside the timed steps. (The engine's loaders are not persistent: each
new pass of a stream forks fresh DataLoader workers from the training process, and the parent then
pays copy-on-write page faults on its ~1.5 GB of weights and optimiser state; with a labelled set of
one batch that happens at every step: DMT steps of 2.4–3.7 s instead of 1.0 s at batch 4, 64 px here.) "Same batch"
as SLAVC: the same --batch-size, --image-size and store; one DMT/XPL step then consumes --batch-size
unlabelled clips (the epoch's primary stream) *and* --batch-size labelled clips (the engine gives
every stream the global batch). Both figures are printed: steps/s relative to SLAVC and clips/s.
DMT/XPL are measured in their unbiased / cross-pseudo-labelling stage: ``ssl.warmup_epochs=0``, so
every step (the timed ones included) is a stage-2 step (DMT teachers start as copies of the
initial students; the cost of a step does not depend on the weights).

For every method one step is also broken down (`--breakdown`, on by default): wall time of the audio
features, teacher forward, pseudo-label ops, student forward, losses, the remaining forward ops,
backward + optimiser and the EMA update, plus every encode_image/encode_audio call with its model,
batch rows, whether autograd was on and whether its output requires grad. The script checks that
teachers (DMT teachers, SLAVC momentum encoders) run without autograd, that no teacher parameter
gets a .grad or is handed to the optimiser, and flags any call repeated on the same input in one
step ("computed twice").

Usage: python benchmarks/bench_train.py [--steps 3] [--batch-size 32] [--image-size 224] [--workers 1]
       [--methods ezvsl slavc dmt xpl] [--no-breakdown]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SEMI_SUPERVISED = {"supervised", "naive-ssl", "hard-pl", "dmt", "xpl"}


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


def make_annotations(path: Path, n: int) -> None:
    """One random box per clip (VGG-SS JSON, normalised xyxy): the semi-supervised methods need boxes."""
    rng = np.random.default_rng(1)
    entries = []
    for i in range(n):
        x0, y0 = rng.uniform(0.0, 0.5, 2)
        w, h = rng.uniform(0.2, 0.5, 2)
        entries.append({"file": f"clip{i:04d}", "class": "synthetic", "bbox": [[x0, y0, min(1.0, x0 + w), min(1.0, y0 + h)]]})
    path.write_text(json.dumps(entries))


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


def method_overrides(method: str, labeled: int, annotations: Path | None) -> list[str]:
    """Config overrides that put a semi-supervised method in its stage 2 on the benchmark store."""
    if method not in SEMI_SUPERVISED:
        return []
    if annotations is None:
        raise SystemExit(f"{method} needs an annotations file")
    warmup = ["ssl.warmup_epochs=0"] if method in ("hard-pl", "dmt", "xpl") else []
    return [f"data.annotations={annotations}", f"data.labeled={labeled}", "data.val_labeled=0",
            "ssl.log_val_quality=false", *warmup]


# -- per-component breakdown ----------------------------------------------------------------------
class StepProbe:
    """Wraps a task's parts with timers and call recorders for one training step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: list[dict[str, Any]] = []
        self._restore: list[Callable[[], None]] = []
        self.active = False

    def timed(self, owner: Any, attr: str, label: str) -> None:
        """Replace owner.attr by a version that adds its wall time to `label` (if the attribute exists)."""
        if not hasattr(owner, attr):
            return
        original = getattr(owner, attr)
        had_instance_attr = attr in getattr(owner, "__dict__", {})

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return original(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0

        setattr(owner, attr, wrapper)
        # a module function or instance attribute is put back; a class method is unshadowed
        self._restore.append((lambda: setattr(owner, attr, original)) if had_instance_attr else (lambda: delattr(owner, attr)))

    def recorded(self, model: Any, model_name: str, fn_name: str) -> None:
        """Record every call of model.fn_name: rows, input identity, grad mode, output requires_grad."""
        original = getattr(model, fn_name)

        def wrapper(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            out = original(x, *args, **kwargs)
            if self.active:
                branch = kwargs.get("branch", args[0] if args else None)
                if branch == "momentum":  # SLAVC's targets: the momentum (teacher) encoders
                    self.seconds["momentum-encoder forward (no_grad)"] += time.perf_counter() - t0
                outs = out if isinstance(out, (tuple, list)) else (out,)
                self.calls.append({
                    "call": f"{model_name}.{fn_name}" + (f"[{branch}]" if branch else ""),
                    "rows": int(x.shape[0]),
                    "input": (x.data_ptr(), tuple(x.shape), x.stride()),
                    "grad_enabled": torch.is_grad_enabled(),
                    "out_requires_grad": any(isinstance(o, torch.Tensor) and o.requires_grad for o in outs),
                })
            return out

        setattr(model, fn_name, wrapper)
        self._restore.append(lambda: delattr(model, fn_name))

    def restore(self) -> None:
        for undo in reversed(self._restore):
            undo()
        self._restore = []


def teacher_names(task: Any) -> set[str]:
    """Names (in task.models()) of the networks that must never be trained by gradient."""
    return set(task.frozen_models()) if hasattr(task, "frozen_models") else set()


def breakdown(task: Any, batch: dict, step: Any, repeats: int = 2) -> dict[str, Any]:
    """The fastest of `repeats` timed, instrumented training steps (the task has already run two steps on this batch)."""
    import avslkit.methods.dmt as dmt_mod
    import avslkit.methods.xpl as xpl_mod

    probe = StepProbe()
    probe.timed(step, "to_device", "to device")
    probe.timed(task, "compute_loss", "forward + loss (compute_loss)")
    probe.timed(task, "after_optimizer_step", "EMA / momentum update after the step")
    features = getattr(task, "features", None)
    if features is not None:  # semi-supervised tasks: FeatureBank
        probe.timed(features, "compute", "audio features")
    elif hasattr(task, "audio_features"):
        probe.timed(task, "audio_features", "audio features")
    if hasattr(task, "teachers"):
        probe.timed(task, "teacher_maps", "teacher forward (no_grad)")
        probe.timed(task, "pseudo_labels", "pseudo-labels (binarise, IoU filter, IPL)")
        probe.timed(task, "contrastive", "loss: contrastive")
        probe.timed(dmt_mod, "supervised_loss", "loss: supervised H")
    if task.method == "hard-pl":
        probe.timed(task, "self_labels", "self-label forward (eval mode, no_grad) + threshold")
    if task.method == "xpl":
        probe.timed(xpl_mod, "xpl_cross_targets", "pseudo-labels (correlation, selection, sharpen, PL-EMA banks)")
        probe.timed(xpl_mod, "supervised_loss", "loss: supervised H + cross")
        probe.timed(xpl_mod, "gmp_contrastive_loss", "loss: contrastive")
    for name, fw in task.trainable_modules().items():  # what the task calls through self.ddp(name)
        probe.timed(fw, "forward", "student / online forward (encoders)")
    if task.method == "slavc":  # SLAVC updates its momentum encoders inside compute_loss
        probe.timed(task.model, "momentum_update", "EMA / momentum update")
    for name, model in task.models().items():
        for fn in ("encode_image", "encode_audio"):
            if hasattr(model, fn):
                probe.recorded(model, name, fn)

    best: tuple[float, dict[str, float], list[dict[str, Any]]] | None = None
    for _ in range(repeats):  # the machine is shared: keep the fastest instrumented step
        probe.seconds, probe.calls = defaultdict(float), []
        probe.active = True
        t0 = time.perf_counter()
        step(batch)
        total = time.perf_counter() - t0
        probe.active = False
        if best is None or total < best[0]:
            best = (total, dict(probe.seconds), list(probe.calls))
    probe.restore()
    assert best is not None
    total, s, probe.calls = best
    fwd = s.pop("forward + loss (compute_loss)", 0.0)
    parts = {k: v for k, v in s.items() if k not in ("to device", "EMA / momentum update after the step")}
    # everything else was timed inside compute_loss (SLAVC's momentum update included)
    inside = sum(v for k, v in parts.items())
    # the student forward is timed inside compute_loss, teacher/pseudo-label/loss/feature parts too
    rows = {k: v for k, v in parts.items()}
    rows["other forward ops (pair maps, concatenation, indexing)"] = max(0.0, fwd - inside)
    rows["to device"] = s.get("to device", 0.0)
    rows["EMA / momentum update after the step"] = s.get("EMA / momentum update after the step", 0.0)
    rows["backward + optimiser step + schedule"] = max(0.0, total - fwd - rows["to device"] - rows["EMA / momentum update after the step"])

    # checks: teachers without autograd, nothing computed twice on the same input
    teachers = teacher_names(task)
    teacher_params = [p for n in teachers for p in task.models()[n].parameters()]
    opt_ids = {id(p) for p in step.params}
    checks: dict[str, Any] = {}
    if teachers:
        checks["teacher_params_requires_grad"] = sum(p.requires_grad for p in teacher_params)
        checks["teacher_params_with_grad"] = sum(p.grad is not None for p in teacher_params)
        checks["teacher_params_in_optimizer"] = sum(id(p) in opt_ids for p in teacher_params)
    if task.method == "slavc":
        mom = [p for n, p in task.model.named_parameters() if n.startswith("momentum_")]
        checks["momentum_params_requires_grad"] = sum(p.requires_grad for p in mom)
        checks["momentum_params_with_grad"] = sum(p.grad is not None for p in mom)
        checks["momentum_params_in_optimizer"] = sum(id(p) in opt_ids for p in mom)
    bad = [c["call"] for c in probe.calls
           if (c["call"].split(".")[0] in teachers or "[momentum]" in c["call"]) and (c["grad_enabled"] or c["out_requires_grad"])]
    checks["teacher_calls_with_autograd"] = bad
    seen: dict[tuple, int] = defaultdict(int)
    for c in probe.calls:
        seen[(c["call"], c["input"])] += 1
    checks["repeated_calls_same_input"] = [f"{k[0]} x{v}" for k, v in seen.items() if v > 1]
    calls = [{k: v for k, v in c.items() if k != "input"} for c in probe.calls]
    return {"step_s": total, "components_s": rows, "calls": calls, "checks": checks}


def measure(method: str, store: Path, steps: int, batch: int, workers: int, image_size: int,
            annotations: Path | None, with_breakdown: bool) -> dict:
    """Runs in a subprocess: one method's figures as a dict."""
    import gc

    from torch.utils.flop_counter import FlopCounterMode

    from avslkit.config import load_config
    from avslkit.data.dataset import collate_av
    from avslkit.engine.distributed import DistContext
    from avslkit.engine.logging import read_log
    from avslkit.engine.run import resolve_data_config
    from avslkit.engine.step import OptimizationStep
    from avslkit.training import run_training
    from avslkit.methods import build_task

    out = Path(tempfile.mkdtemp(prefix=f"bench_{method}_"))
    cfg = load_config(["train", f"methods/{method}"], overrides=[
        "model.visual_weights=none", f"batch_size={batch}", f"workers={workers}", "device=cpu", "epochs=1",
        f"max_steps={steps}", f"data.train={store}", f"image_size={image_size}",
        *method_overrides(method, batch * steps, annotations),
    ])
    cfg["method"] = method

    # 1. memory of the first step of a fresh task: peak RSS − RSS before − (grads + Adam moments)
    task = build_task(resolve_data_config(cfg), DistContext())
    step = OptimizationStep(task, task.cfg)
    datasets = task.train_datasets()
    if "train" in datasets:
        batch_data: Any = collate_av([datasets["train"][i] for i in range(batch)])
    else:  # one batch of every stream (unlabelled + labelled), as the Trainer joins them
        batch_data = {name: collate_av([ds[i] for i in range(batch)]) for name, ds in datasets.items()}
    clips_per_step = sum(len(b["audio"]) for b in batch_data.values()) if "train" not in datasets else batch
    state_bytes = 3 * sum(p.numel() * p.element_size() for p in step.params)
    rss_before = _status("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM)
        hwm_reset = True
    except OSError:
        hwm_reset = False
    step(batch_data)
    peak = _status("VmHWM")
    # 2. FLOPs of one step (forward + backward, as counted by PyTorch)
    with FlopCounterMode(display=False) as counter:
        step(batch_data)
    flops = counter.get_total_flops()
    # 3. one instrumented step: components, calls, no-grad checks
    detail = breakdown(task, batch_data, step=step) if with_breakdown else None
    stage = getattr(task, "stage", None)
    del task, datasets, batch_data
    gc.collect()

    # 4. the real loop: throughput and data wait from log.jsonl
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    run_training(cfg, out / "run", quiet=True)
    wall = time.perf_counter() - t0
    step_records = [r for r in read_log(out / "run" / "log.jsonl") if r["type"] == "step"][1:]  # drop warm-up
    shutil.rmtree(out, ignore_errors=True)  # its last.pt is ~1.6 GB for DMT/XPL
    step_s = statistics.median(r["step_s"] for r in step_records)
    wait_s = statistics.median(r["data_wait_s"] for r in step_records)
    return {
        "method": method,
        "batch": batch,
        "image_size": image_size,
        "clips_per_step": clips_per_step,
        "stage_measured": stage,
        "workers": workers,
        "steps_timed": len(step_records),
        "step_s_median": step_s,
        "samples_per_s": batch / step_s,
        "clips_per_s": clips_per_step / step_s,
        "data_wait_s_median": wait_s,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / 1e9 / step_s,
        "peak_mem_per_sample_mb": (peak - rss_before - state_bytes) / batch / 2**20 if hwm_reset else None,
        "step_peak_rss_delta_gb": (peak - rss_before) / 2**30 if hwm_reset else None,
        "grad_adam_state_gb": state_bytes / 2**30,
        "loop_wall_s": wall,
        "load_avg_1min": [load_before, os.getloadavg()[0]],
        "breakdown": detail,
    }


def print_breakdown(r: dict) -> None:
    d = r["breakdown"]
    if not d:
        return
    print(f"  one {r['method']} step ({r['clips_per_step']} clips, stage {r['stage_measured']}): {d['step_s']:.2f} s")
    for name, secs in sorted(d["components_s"].items(), key=lambda kv: -kv[1]):
        print(f"    {name:<66s} {secs:7.3f} s  {100 * secs / d['step_s']:5.1f}%")
    counts: dict[tuple, int] = defaultdict(int)
    for c in d["calls"]:
        counts[(c["call"], c["rows"], c["grad_enabled"], c["out_requires_grad"])] += 1
    print("    encoder calls (model.fn, rows, autograd on, output requires grad) × count:")
    for (call, rows, grad, req), n in counts.items():
        print(f"      {call:<34s} rows {rows:4d}  autograd {str(grad):5s}  out.requires_grad {str(req):5s}  ×{n}")
    print(f"    checks: {json.dumps(d['checks'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="training steps per method (the first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224, help="training crop (frames are 256×256)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["ezvsl", "slavc"])
    parser.add_argument("--no-breakdown", action="store_true", help="skip the instrumented per-component step")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "STORE", "ANNOTATIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, store, ann = args.child
        print(json.dumps(measure(method, Path(store), args.steps, args.batch_size, args.workers, args.image_size,
                                 Path(ann), not args.no_breakdown)))
        return

    peak = matmul_flops()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; dense fp32 matmul: {peak / 1e9:.1f} GFLOP/s")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store, ann = Path(tmp) / "bench.h5", Path(tmp) / "boxes.json"
        # SSL: steps × batch labelled + steps × batch unlabelled, so that neither stream starts a second pass
        # (a new pass forks new DataLoader workers, see the module doc) inside the timed steps
        n = 2 * args.batch_size * args.steps
        make_store(store, n=n)
        make_annotations(ann, n)
        print(f"store: {n} clips (256×256 frames, 3 s audio), batch {args.batch_size}, crop {args.image_size}, "
              f"{args.steps} steps per method (first untimed)")
        for method in args.methods:
            cmd = [sys.executable, __file__, "--child", method, str(store), str(ann), "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--workers", str(args.workers), "--image-size", str(args.image_size)]
            if args.no_breakdown:
                cmd.append("--no-breakdown")
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if res.returncode != 0:
                print(res.stderr[-3000:])
                raise SystemExit(f"{method} benchmark failed")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            results[method] = r
            mem = f"{r['peak_mem_per_sample_mb']:.1f} MB" if r["peak_mem_per_sample_mb"] is not None else "n/a"
            print(
                f"{method:6s} batch {r['batch']} ({r['clips_per_step']} clips/step): {r['samples_per_s']:.2f} samples/s = "
                f"{r['clips_per_s']:.2f} clips/s (median step {r['step_s_median']:.2f} s over "
                f"{r['steps_timed']} steps), data wait {r['data_wait_s_median'] * 1000:.0f} ms/step, "
                f"{r['gflop_per_step']:.0f} GFLOP/step → {r['achieved_gflops']:.1f} GFLOP/s = "
                f"{r['achieved_gflops'] * 1e9 / peak:.2f} of matmul peak, activation memory {mem}/sample"
            )
            print_breakdown(r)
            print("  " + json.dumps({k: v for k, v in r.items() if k != "breakdown"}))
    if "slavc" in results:
        ref = results["slavc"]
        print(f"\nrelative to SLAVC (same batch {args.batch_size}, crop {args.image_size}, same store):")
        print(f"{'method':<10} {'step s':>7} {'steps/s ÷ SLAVC':>16} {'clips/step':>11} {'clips/s ÷ SLAVC':>16} {'GFLOP/step ÷ SLAVC':>19}")
        for m, r in results.items():
            print(f"{m:<10} {r['step_s_median']:7.2f} {ref['step_s_median'] / r['step_s_median']:16.2f} {r['clips_per_step']:11d} "
                  f"{r['clips_per_s'] / ref['clips_per_s']:16.2f} {r['gflop_per_step'] / ref['gflop_per_step']:19.2f}")


if __name__ == "__main__":
    main()
