"""Resumable, deterministic data order for training.

Why not a plain `DataLoader(shuffle=True)`: exact resume needs the data order and the augmentation
randomness to be *functions of (seed, epoch, position)*, not of how many random numbers happened to
be drawn before. So:

- `ResumableLoader` draws each epoch's permutation from its own generator seeded by (seed, epoch),
  cuts it into *global* batches and gives rank r the r-th slice of each (DDP), and can start an
  epoch at any batch position (resume mid-epoch). Its state is just (epoch, position).
- `SeededDataset` runs every `__getitem__` of the wrapped dataset under a private RNG state seeded
  by (seed, epoch, index), so random crops/flips are identical whatever the number of DataLoader
  workers and whether the run was interrupted — and the caller's global RNG (dropout) is untouched.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate


PURPOSE_SAMPLE, PURPOSE_ORDER, PURPOSE_LOADER = 0, 1, 2


def sample_seed(seed: int, epoch: int, index: int, purpose: int = PURPOSE_SAMPLE) -> int:
    """A 63-bit seed that depends only on (run seed, epoch, dataset index, purpose)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(purpose), int(epoch), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


class SeededDataset(Dataset):
    """Wrap a map-style dataset: keys are (index, seed); the item is built under that seed.

    torch, numpy and python `random` are all seeded for the call and restored afterwards.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        py_state = random.getstate()
        np_state = np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % (2**32))
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class _BatchKeys:
    """A batch sampler over precomputed batches of (index, seed) keys (what DataLoader iterates)."""

    def __init__(self, batches: Sequence[list[tuple[int, int]]]):
        self.batches = batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class ResumableLoader:
    """Per-rank batches of a dataset in a (seed, epoch)-determined order, resumable at any batch.

    `batch_size` is the per-rank batch; one global batch is `batch_size * world_size` consecutive
    entries of the epoch's permutation. With `drop_last` (training default, as the references) the
    incomplete global batch at the end is dropped; otherwise it is split evenly over the ranks
    (entries wrapped around from the start of the permutation so every rank gets the same count).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        name: str = "train",
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.dataset = SeededDataset(dataset)
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.workers = int(workers)
        self.collate_fn = collate_fn or default_collate
        self.pin_memory = pin_memory
        self.name = name
        self.epoch = 0
        self.position = 0  # batches of the current epoch already handed out
        self._keys = _BatchKeys([])  # the batches of the current pass (replaced at each pass)
        self._loader: DataLoader | None = None

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        g = self.global_batch_size
        return self.num_samples // g if self.drop_last else -(-self.num_samples // g)

    def order(self, epoch: int) -> list[int]:
        """The epoch's permutation of dataset indices (identical on every rank)."""
        if not self.shuffle:
            return list(range(self.num_samples))
        gen = torch.Generator().manual_seed(sample_seed(self.seed, epoch, 0, PURPOSE_ORDER))
        return torch.randperm(self.num_samples, generator=gen).tolist()

    def rank_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        """This rank's batches of (index, sample seed) keys for `epoch`."""
        order = self.order(epoch)
        g, b = self.global_batch_size, self.batch_size
        batches: list[list[tuple[int, int]]] = []
        for start in range(0, len(self) * g, g):
            chunk = order[start : start + g]
            if len(chunk) < g:  # only without drop_last: split the remainder evenly, wrapping around
                per_rank = -(-len(chunk) // self.world_size)
                need = per_rank * self.world_size
                chunk = chunk + [order[k % len(order)] for k in range(need - len(chunk))]
                b = per_rank
            mine = chunk[self.rank * b : (self.rank + 1) * b]
            batches.append([(i, sample_seed(self.seed, epoch, i)) for i in mine])
        return batches

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        self.epoch = int(epoch)
        self.position = int(position)

    def __iter__(self) -> Iterator[Any]:
        """Yield the remaining batches of the current epoch, advancing `position` as they are taken."""
        remaining = self.rank_batches(self.epoch)[self.position :]
        if not remaining:
            return
        self._keys.batches = remaining
        for batch in self._data_loader():
            self.position += 1
            yield batch

    def _data_loader(self) -> DataLoader:
        """One DataLoader for the whole run. With workers they persist across passes: a new pass
        must not fork fresh workers from a training process holding gigabytes (copy-on-write page
        faults made the step after each restart several times slower). Batch contents depend only
        on the (index, sample seed) keys, so persistence changes no number."""
        if self._loader is None:
            close = getattr(self.dataset.dataset, "close", None)
            if self.workers > 0 and callable(close):
                close()  # workers open their own HDF5 handles; never fork an open one
            self._loader = DataLoader(
                self.dataset,
                batch_sampler=self._keys,
                num_workers=self.workers,
                collate_fn=self.collate_fn,
                pin_memory=self.pin_memory,
                # A private generator: creating the iterator must not consume the global torch RNG.
                generator=torch.Generator().manual_seed(sample_seed(self.seed, 0, 0, PURPOSE_LOADER)),
                persistent_workers=self.workers > 0,
            )
        return self._loader

    def close(self) -> None:
        """Stop the persistent worker processes now rather than whenever the loader is collected.
        The next pass starts fresh workers; batch contents do not change."""
        self._loader = None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "batches_per_epoch": len(self)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.set_epoch(int(state["epoch"]), int(state["position"]))
