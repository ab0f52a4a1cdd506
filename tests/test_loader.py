"""data/loader.py: the one sampler and loader builder (training order, resume skip, evaluation order)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from hsrpose.data.loader import EpochSampler, build_loader, set_loader_epoch


class _Keys(Dataset):
    """Returns the key it is given, so a batch shows exactly what the sampler yielded."""

    def __init__(self, n: int) -> None:
        self.n, self.seed, self.epoch = n, 0, 0

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        epoch, index = key if isinstance(key, tuple) else (-1, key)
        return {"epoch": epoch, "index": index}


def test_order_is_the_seed_plus_epoch_permutation_and_skip_resumes_inside_it() -> None:
    """Order = torch.randperm(N) with generator seed ``seed + epoch`` (DistributedSampler's rule);
    ``set_skip(k)`` yields the same epoch's order from position k, ``set_epoch`` clears it."""
    ds = _Keys(23)
    sampler = EpochSampler(ds, num_replicas=1, rank=0, seed=5)
    sampler.set_epoch(3)
    full = list(sampler)
    expected = torch.randperm(23, generator=torch.Generator().manual_seed(5 + 3)).tolist()
    assert full == [(3, i) for i in expected]
    sampler.set_skip(8)
    assert list(sampler) == full[8:] and len(sampler) == 23 - 8
    sampler.set_epoch(4)
    assert len(sampler) == 23 and [i for _, i in sampler] != expected


def test_ranks_share_one_epoch_order() -> None:
    ds = _Keys(10)
    shards = [EpochSampler(ds, num_replicas=3, rank=r, seed=1) for r in range(3)]
    seen = [i for s in shards for _, i in s]
    assert len(seen) == 12 and set(seen) == set(range(10))  # ceil(10 / 3) each, the first two repeat


def test_training_loader_batches_follow_seed_epoch_and_drop_last() -> None:
    def batches(seed: int, epoch: int) -> list[list[int]]:
        loader = build_loader(_Keys(10), batch_size=4, shuffle=True, seed=seed)
        set_loader_epoch(loader, epoch)
        out = [b["index"].tolist() for b in loader]
        assert all(b["epoch"].tolist() == [epoch] * 4 for b in loader)
        return out

    a = batches(2, 1)
    assert len(a) == 2 and a == batches(2, 1) and a != batches(2, 2) and a != batches(3, 1)


def test_evaluation_loader_is_in_order_with_plain_indices() -> None:
    loader = build_loader(_Keys(5), batch_size=2, shuffle=False, seed=None)
    assert [b["index"].tolist() for b in loader] == [[0, 1], [2, 3], [4]]
    assert all(b["epoch"].tolist() == [-1] * len(b["epoch"]) for b in loader)
    with pytest.raises(ValueError, match="in-order evaluation loader"):
        build_loader(_Keys(5), batch_size=2, shuffle=True, seed=None)
