"""torchrun worker of tests/test_ddp_train.py: trains a tiny method, saves this rank's final state.

Usage: torchrun --nproc-per-node 2 tests/_ddp_train_worker.py STORE JOB [JOB ...]
with JOB = "METHOD,OUT[,key=value,...]"; the jobs run one after another in the same process group
(one launch: torch start-up dominates the cost of these tiny runs).
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_helpers import tiny_config  # noqa: E402

from avslkit.engine.distributed import init_distributed, shutdown_distributed  # noqa: E402
from avslkit.training import prepare_training  # noqa: E402


def main() -> None:
    store, *jobs = sys.argv[1:]
    ctx = init_distributed("cpu", "gloo")
    for job in jobs:
        method, out, *overrides = job.split(",")
        trainer, resume_from = prepare_training(tiny_config(method, Path(store), *overrides), out, quiet=True, ctx=ctx)
        trainer.fit(resume=resume_from)
        state = {k: v.detach().clone() for k, v in trainer.task.model.state_dict().items()}
        torch.save({"model": state, "rank": ctx.rank, "world": ctx.world_size, "step": trainer.global_step},
                   Path(out) / f"rank{ctx.rank}.pt")
        trainer.close()  # as run_training does: nothing distributed may outlive the process group
        del trainer
        gc.collect()
    shutdown_distributed()


if __name__ == "__main__":
    main()
