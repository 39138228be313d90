"""PL-EMA bank storage (float32 / float16 / uint8) accuracy and memory, and per-batch costs of the
DMT/XPL pseudo-label steps on CPU.

Accuracy: a float64 reference bank vs each storage dtype on the same stream of 20 updates per
sample (α = 0.7, sharpened maps of random 7×7 logits drifting slowly, as a model being trained);
reports the max and mean |error| after the last update, and the "stall" case: a target constant
close to the stored value, which uint8 cannot approach closer than ≈ 0.5/(255·(1 − α)).

Run: .venv/bin/python benchmarks/bench_semisup.py
"""

from __future__ import annotations

import time

import torch

from avslkit.semisup import PseudoLabelBank, dmt_pseudo_labels, pearson_correlation, select_by_correlation, sharpen, to_unit_maps

ALPHA = 0.7


def accuracy(n: int = 2000, steps: int = 20) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(n, 7, 7, generator=gen) * 2
    ref = None
    banks = {d: PseudoLabelBank(n, 7, ALPHA, dtype=d) for d in ("float32", "float16", "uint8")}
    idx = torch.arange(n)
    for _ in range(steps):
        logits = logits + 0.3 * torch.randn(n, 7, 7, generator=gen)
        y = sharpen(to_unit_maps(logits, "sigmoid"), 0.1).double()
        ref = y if ref is None else ALPHA * ref + (1 - ALPHA) * y
        outs = {d: b.update(idx, y.float()) for d, b in banks.items()}
    print(f"PL-EMA bank vs float64 reference after {steps} updates of {n} 7×7 maps (alpha={ALPHA}):")
    for d, out in outs.items():
        err = (out.double() - ref).abs()
        print(f"  {d:8s} max |err| {err.max():.2e}  mean |err| {err.mean():.2e}  bytes/sample {banks[d].nbytes / n:.0f}")
    # stall: stored 0.5, target 0.505 repeatedly
    for d in ("float16", "uint8"):
        b = PseudoLabelBank(1, 1, ALPHA, dtype=d)
        b.update(torch.tensor([0]), torch.full((1, 1, 1), 0.5))
        for _ in range(50):
            out = b.update(torch.tensor([0]), torch.full((1, 1, 1), 0.505))
        print(f"  stall test {d:8s}: stored 0.5, target 0.505 x50 → {out.item():.5f} (|gap| {abs(out.item() - 0.505):.1e})")
    for n_total in (10_000, 144_000):
        for d in ("float16", "uint8"):
            mb = PseudoLabelBank(n_total, 7, dtype=d).nbytes / 2**20
            print(f"  bank size {n_total:>7d} × 7×7 {d:8s}: {mb:.1f} MiB")


def timing(batch: int = 128, reps: int = 50) -> None:
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(batch, 7, 7, generator=gen), torch.randn(batch, 7, 7, generator=gen)
    bank = PseudoLabelBank(144_000, 7, ALPHA)
    idx = torch.randperm(144_000, generator=gen)[:batch]

    def clock(fn) -> float:
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps * 1e3

    print(f"per-batch CPU cost (batch {batch}, 7×7 maps, mean of {reps}):")
    print(f"  dmt_pseudo_labels (sigmoid, 7×7):        {clock(lambda: dmt_pseudo_labels(a, b)):.3f} ms")
    print(f"  dmt_pseudo_labels (minmax, at 224×224):  {clock(lambda: dmt_pseudo_labels(a, b, map_norm='minmax', size=224)):.3f} ms")
    print(f"  pearson + select:                        {clock(lambda: select_by_correlation(pearson_correlation(a, b), 0.5, 0.0)):.3f} ms")
    y = sharpen(to_unit_maps(a, "sigmoid"))
    print(f"  bank.update (float16, 144k bank):        {clock(lambda: bank.update(idx, y)):.3f} ms")


if __name__ == "__main__":
    torch.set_num_threads(1)
    accuracy()
    timing()
