"""The one sampler and the one DataLoader builder: training (CPU and GPU data paths) and evaluation.

Training order is a function of ``(seed, epoch)``: a :class:`~torch.utils.data.DistributedSampler`
(also with one process, as one "replica") shuffles by ``seed + epoch``, and :class:`EpochSampler`
yields ``(epoch, index)`` so the epoch reaches the dataset's augmentation draws even in a
persistent worker holding an old copy of the dataset. ``set_skip`` lets a resumed run re-enter
an epoch where its checkpoint stopped. Worker base seeds come from a generator seeded with
``seed``, not from the global torch RNG, so creating an iterator leaves the global state alone.

Evaluation (``seed=None``) is the plain in-order loader: indices ``0..N-1`` as ints (works with
any dataset, e.g. a ``Subset`` shard), no seeding, nothing dropped.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["EpochSampler", "build_loader", "set_loader_epoch", "seed_worker"]


class EpochSampler(DistributedSampler):
    """DistributedSampler (shuffle by ``seed + epoch``) yielding ``(epoch, index)``, able to start ``skip`` samples in.

    With ``num_replicas=1, rank=0`` it is a seeded shuffle of the whole dataset; with the
    process group's values (``None``) each rank gets its ``ceil(N / world)`` share (the last
    samples repeat to even out). ``set_skip`` applies to the epoch a resumed run re-enters;
    ``set_epoch`` clears it.
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int | None, rank: int | None, seed: int, shuffle: bool = True
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(int(epoch))
        self.skip = 0

    def set_skip(self, skip: int) -> None:
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        return iter([(epoch, int(i)) for i in list(super().__iter__())[self.skip :]])

    def __len__(self) -> int:
        return self.num_samples - self.skip


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed Python's and numpy's global RNGs from the worker's torch seed.

    The dataset's own draws do not use global RNGs; this keeps any library code that does
    (OpenCV does not) reproducible as well.
    """
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    num_workers: int = 0,
    seed: int | None = 0,
    distributed: bool = False,
    drop_last: bool | None = None,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """A DataLoader whose batches depend only on ``seed`` and the epoch (``seed=None``: evaluation, in order).

    Args:
        dataset: a dataset taking ``(epoch, index)`` keys (TopDownDataset, GpuSampleDataset);
            its ``seed`` is set to ``seed``. With ``seed=None`` any dataset (plain int indices).
        batch_size: per-process batch size.
        shuffle: shuffle the order (per epoch, seeded). Must be False with ``seed=None``.
        num_workers: worker processes (results are identical for any number).
        seed: seeds the order, the augmentation and the worker seeds; None = the evaluation
            loader (sequential, DataLoader's default worker seeding, no sampler).
        distributed: shard with the :class:`EpochSampler` over the initialised process group.
        drop_last: drop the last incomplete batch; default ``shuffle`` (training).
        pin_memory: pin batches (with CUDA).
        persistent_workers: keep workers alive between epochs (the epoch reaches them with
            each index, see :class:`EpochSampler`).
        collate_fn: batch collation (None = the default collate).

    Call :func:`set_loader_epoch` before each training epoch; ``loader.sampler.set_skip`` to resume.
    """
    persistent = persistent_workers and num_workers > 0
    if seed is None:
        if shuffle or distributed:
            raise ValueError("build_loader(seed=None) is the in-order evaluation loader: no shuffle, no sharding")
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_fn,
            pin_memory=pin_memory, persistent_workers=persistent, drop_last=bool(drop_last),
        )  # fmt: skip
    dataset.seed = int(seed)  # type: ignore[attr-defined]
    if distributed:
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("build_loader(distributed=True) needs an initialised torch.distributed process group")
        sampler = EpochSampler(dataset, num_replicas=None, rank=None, seed=seed, shuffle=shuffle)
    else:
        sampler = EpochSampler(dataset, num_replicas=1, rank=0, seed=seed, shuffle=shuffle)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(int(seed)),
        drop_last=shuffle if drop_last is None else drop_last,
        pin_memory=pin_memory,
        persistent_workers=persistent,
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Advance the loader's sampler and dataset to ``epoch`` (new order and new augmentation draws)."""
    sampler = loader.sampler
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    ds = loader.dataset
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
