"""DDP training with 2 CPU processes (gloo) launched by torchrun: the ranks end with identical weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import make_store  # noqa: E402

from avslkit.engine.logging import read_log  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("ddp") / "train.h5", n=8)


def test_two_process_gloo_ranks_end_identical(store, tmp_path):
    """SLAVC with features gathered over ranks (momentum copies outside DDP), EZ-VSL with per-rank negatives."""
    jobs = {("slavc", True): tmp_path / "slavc", ("ezvsl", False): tmp_path / "ezvsl"}
    res = torchrun(str(HERE / "_ddp_train_worker.py"), str(store),
                   *[f"{m},{out},epochs=2,distributed.gather_features={str(g).lower()}" for (m, g), out in jobs.items()])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for out in jobs.values():
        r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
        assert r0["world"] == 2 and r0["step"] == r1["step"] == 4  # global batch 4 = 2 per rank, 8 clips, 2 epochs
        for k, v in r0["model"].items():
            assert torch.equal(v, r1["model"][k]), (out.name, k)  # parameters, momentum copies, BN statistics
        # only rank 0 writes the run files; the log records the world size and the global batch
        records = read_log(out / "log.jsonl")
        start = next(r for r in records if r.get("event") == "start")
        assert start["world_size"] == 2 and start["global_batch"] == 4 and start["steps_per_epoch"] == 2
        assert len([r for r in records if r["type"] == "step"]) == 4
        assert not list(out.glob(".*.tmp"))  # no stray temporary files from a second writer
