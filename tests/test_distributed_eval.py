"""DDP evaluation: 2 gloo processes, a dataset size not divisible by 2 → gathered results are exact."""

from __future__ import annotations

import os
import pickle
import socket

import numpy as np
import torch
import torch.multiprocessing as mp

from avslkit.evaluation.protocol import summarize
from avslkit.metrics.samples import SampleStats, sample_stats

N = 7  # DistributedSampler pads to 8: rank 0 gets 0, 2, 4, 6; rank 1 gets 1, 3, 5, 0 (padding)


def _data():
    rng = np.random.default_rng(5)
    maps = rng.random((N, 32, 32)).astype(np.float32)
    gt = np.zeros((N, 32, 32), np.float32)
    for i in range(N):
        gt[i, 4 + i:20 + i, 2:10 + 2 * i] = 1
    kinds = np.array(["positive", "easy", "positive", "positive", "real", "positive", "hard"], dtype=object)
    gt[kinds != "positive"] = 0
    return maps, gt, kinds


def _worker(rank: int, world: int, port: int, out_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    from torch.utils.data import DistributedSampler

    from avslkit.utils import distributed as D

    assert D.init_from_env("gloo")
    try:
        assert D.world_size() == 2 and D.rank() == rank and D.is_main() == (rank == 0)
        maps, gt, _ = _data()
        idx = list(DistributedSampler(range(N), shuffle=False))
        st = sample_stats(maps[idx], gt[idx])
        values = torch.from_numpy(np.stack([st.ciou, st.confidence, st.area, st.mse], axis=1))
        gathered = D.gather_per_sample(values, N)
        names = D.gather_per_sample([f"s{i}" for i in idx], N)
        if D.is_main():
            with open(out_path, "wb") as f:
                pickle.dump((gathered.numpy(), names), f)
        D.barrier()
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gather_removes_sampler_padding(tmp_path):
    out = tmp_path / "gathered.pkl"
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    gathered, names = pickle.loads(out.read_bytes())
    assert names == [f"s{i}" for i in range(N)]
    maps, gt, kinds = _data()
    single = sample_stats(maps, gt)
    expected = np.stack([single.ciou, single.confidence, single.area, single.mse], axis=1)
    np.testing.assert_array_equal(gathered, expected)
    dist_stats = SampleStats(*(gathered[:, k] for k in range(4)))
    assert summarize(dist_stats, kinds) == summarize(single, kinds)


def test_single_process_passthrough():
    from avslkit.utils import distributed as D

    assert not D.is_distributed() and D.world_size() == 1 and D.is_main()
    t = torch.arange(5)
    assert torch.equal(D.gather_per_sample(t, 5), t)
    assert D.gather_per_sample(["a", "b"], 2) == ["a", "b"]
