"""Demo latency: one upload (AV + OGL maps, overlays) vs one slider move (re-fusion only).

Full-size SLAVC (ResNet-18 visual + audio, random weights: timing does not depend on the values),
random OGL ResNet-18, a 320×240 PNG + 3 s wav, through the real HTTP server on 127.0.0.1.
Run: .venv/bin/python benchmarks/bench_demo.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_demo import get_json, png_bytes, post_multipart, wav_bytes  # noqa: E402

from avslkit.config import load_config  # noqa: E402
from avslkit.demo import DemoLocalizer, DemoServer  # noqa: E402
from avslkit.engine.checkpoint import save_checkpoint  # noqa: E402
from avslkit.engine.distributed import DistContext  # noqa: E402
from avslkit.methods import build_task  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(["train", "methods/slavc"], overrides=["model.visual_weights=none", "device=cpu", "audio.sample_rate=16000"])
        cfg["method"] = "slavc"
        torch.manual_seed(0)
        task = build_task(cfg, DistContext())
        run = Path(tmp) / "run"
        run.mkdir()
        save_checkpoint(run / "last.pt", {"method": "slavc", "config": cfg, "task": task.state_dict(), "trainer": {"epoch": 0}})
        localizer = DemoLocalizer.from_checkpoint(run, device="cpu")
        fields = {"image": ("frame.png", png_bytes(320, 240)), "audio": ("sound.wav", wav_bytes(3.0))}
        with DemoServer(localizer, port=0) as server:
            server.start()
            post_multipart(server.url + "api/analyze", fields)  # warm-up
            analyze, fuse = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                status, out = post_multipart(server.url + "api/analyze", fields)
                analyze.append(time.perf_counter() - t0)
                assert status == 200, out
                for k in range(4):
                    t0 = time.perf_counter()
                    status, _ = get_json(server.url + f"api/fuse?id={out['id']}&alpha={0.2 * k + 0.1:.1f}")
                    fuse.append(time.perf_counter() - t0)
                    assert status == 200
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"upload (analyze) median: {statistics.median(analyze) * 1000:.0f} ms over {len(analyze)}")
    print(f"slider (fuse)    median: {statistics.median(fuse) * 1000:.1f} ms over {len(fuse)}")
    print(f"ratio analyze/fuse: {statistics.median(analyze) / statistics.median(fuse):.0f}x")


if __name__ == "__main__":
    main()
