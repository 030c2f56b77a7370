"""Loaders: the epoch follows from (seed, epoch) whatever the workers; shards; real video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _media import write_video

from harness.data import ClipSampler, create_dataset, create_loader, default_workers
from harness.data.video import load_video_frames
from harness.spec.schema import ClipSpec

DATA = {"type": "synthetic", "preset": "tiny", "train_clips": 24, "val_clips": 8}
CLIP = ClipSpec(frames=4, stride=2, size=16)


def _batches(loader: torch.utils.data.DataLoader, epoch: int) -> list[torch.Tensor]:
    loader.sampler.set_epoch(epoch)
    return [clip for clip, _, _ in loader]


def test_sampler_order_follows_seed_and_epoch() -> None:
    sampler = ClipSampler(np.arange(10), shuffle=True, seed=3)
    first = list(sampler)
    assert list(sampler) == first and sorted(i for i, _ in first) == list(range(10))
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_shards_are_equal_in_training_and_disjoint_in_evaluation() -> None:
    items = np.arange(10)
    train = [list(ClipSampler(items, shuffle=True, seed=0, rank=r, world=3)) for r in range(3)]
    assert [len(s) for s in train] == [4, 4, 4]
    test = [
        [i for i, _ in ClipSampler(items, shuffle=False, seed=0, rank=r, world=3)] for r in range(3)
    ]
    assert sorted(i for shard in test for i in shard) == list(range(10))


def test_batches_do_not_depend_on_the_number_of_workers() -> None:
    dataset = create_dataset(DATA, "train", clip=CLIP)
    inline, workers = (
        create_loader(dataset, batch_size=8, train=True, seed=1, num_workers=n) for n in (0, 2)
    )
    for epoch in (0, 1):
        a, b = _batches(inline, epoch), _batches(workers, epoch)
        assert len(a) == len(b) == 3 and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert 1 <= default_workers() <= 8


def test_video_loader_workers_match_the_main_process(tmp_path: Path) -> None:
    """Worker processes forked after the main process decoded give the same clips."""
    for i in range(4):
        write_video(tmp_path / "train" / f"c{i % 2}" / f"v{i}.avi", frames=20, size=(64, 48))
    load_video_frames(next(tmp_path.rglob("*.avi")), np.array([0]), short_side=18)
    dataset = create_dataset(f"folder:{tmp_path}", "train", clip=ClipSpec(frames=4, size=16))
    inline, workers = (
        create_loader(dataset, batch_size=2, train=True, num_workers=n) for n in (0, 2)
    )
    a, b = _batches(inline, 0), _batches(workers, 0)
    assert a[0].shape == (2, 3, 4, 16, 16) and a[0].dtype == torch.float32
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
