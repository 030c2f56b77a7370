"""Data loaders: seeded, shardable order over a clip data set, loaded by worker processes.

:class:`ClipSampler` decides the order of items in an epoch and hands each item a seed,
``(index, seed)``; the data set draws all of the item's random choices (temporal start,
crop, flip) from that seed. The whole epoch therefore follows from ``(seed, epoch)``:
the same with any number of workers, and again after a resume.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from harness.data.dataset import ClipDataset
from harness.errors import HarnessError, SpecError

__all__ = ["ClipSampler", "create_loader", "default_workers", "loader_errors", "subset_indices"]


def default_workers() -> int:
    """Loader worker processes by default: one per CPU core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def subset_indices(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A class-stratified, seeded ``fraction`` of the items (at least one per class)."""
    if fraction >= 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 0x5B5E7])
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        keep = max(1, math.ceil(fraction * len(members)))
        chosen.append(rng.permutation(members)[:keep])
    return np.sort(np.concatenate(chosen))


class ClipSampler(Sampler[tuple[int, int]]):
    """Epoch order of ``items`` (shuffled by ``(seed, epoch)``), one shard per rank.

    In training every rank gets the same number of items (the order is padded by
    repeating its start), as DistributedDataParallel needs; in evaluation shards are
    disjoint and together hold every item once.

    Args:
        items: the item indices to draw from.
        shuffle: shuffle every epoch (training).
        seed: the run's seed.
        rank: this process's rank; ``world``: the number of processes.
    """

    def __init__(
        self,
        items: np.ndarray,
        *,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.items = np.asarray(items, dtype=np.int64)
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world = world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of epoch ``epoch`` (call before iterating)."""
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return self.items[self.rank :: self.world]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.items)
        total = math.ceil(len(order) / self.world) * self.world
        order = np.resize(order, total)  # NOTE: pads by repeating from the start
        return order[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self._order()
        if self.shuffle:
            seeds = np.random.default_rng([self.seed, self.epoch, 1]).integers(
                0, 2**62, len(self.items)
            )
            by_item = dict(zip(self.items.tolist(), seeds.tolist(), strict=True))
            return iter([(i, by_item[i] + self.rank) for i in order.tolist()])
        return iter([(i, 0) for i in order.tolist()])

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, len(self.items), self.world))
        return math.ceil(len(self.items) / self.world)


def _worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)  # NOTE: workers must not compete with the model for cores


def create_loader(
    dataset: ClipDataset,
    *,
    batch_size: int,
    train: bool,
    seed: int = 0,
    num_workers: int | None = None,
    rank: int = 0,
    world: int = 1,
    items: np.ndarray | None = None,
    pin_memory: bool = False,
) -> DataLoader[tuple[object, int, int]]:
    """A loader over ``dataset`` (all items, or ``items``) with a :class:`ClipSampler`.

    Training drops the last incomplete batch when there are at least two full ones.
    ``num_workers=None`` means :func:`default_workers`; workers persist across epochs.
    """
    chosen = np.arange(len(dataset)) if items is None else items
    sampler = ClipSampler(chosen, shuffle=train, seed=seed, rank=rank, world=world)
    workers = default_workers() if num_workers is None else num_workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=train and len(sampler) >= 2 * batch_size,
        persistent_workers=workers > 0,
        worker_init_fn=_worker_init if workers > 0 else None,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
    )


@contextmanager
def loader_errors() -> Iterator[None]:
    """Around a loop over a loader: an error of ours raised in a worker process comes out
    as the one line it was raised with.

    NOTE: torch re-raises a worker's exception in the parent as ``type(exc)(text)``, where
    ``text`` is "Caught X in DataLoader worker process N." and the worker's whole traceback,
    whose last line is ``module.X: message``.
    """
    try:
        yield
    except HarnessError as exc:
        lines = str(exc).strip().splitlines()
        if len(lines) < 2 or not lines[0].startswith("Caught "):
            raise
        message = lines[-1].split(f"{type(exc).__name__}: ", 1)[-1]
        # NOTE: a SpecError's line is already rendered (FILE: key.path: message)
        kind = HarnessError if isinstance(exc, SpecError) else type(exc)
        raise kind(message) from None
