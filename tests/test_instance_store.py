"""InstanceStore (flat columns shared by DataLoader workers) and the annotation cache, on coco-mini."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hsrpose.data.coco import load_coco
from hsrpose.data.instance_store import InstanceStore

ANN = Path("annotations") / "person_keypoints_train2017.json"


def _same(a, b) -> bool:  # type: ignore[no-untyped-def]
    return (
        (a.image_id, a.ann_id, a.file_name, a.score, a.area, a.image_hw) == (b.image_id, b.ann_id, b.file_name, b.score, b.area, b.image_hw)
        and np.array_equal(a.box_xywh, b.box_xywh)
        and np.array_equal(a.keypoints, b.keypoints)
    )


@pytest.fixture
def no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSRPOSE_CACHE_DIR", "off")


def test_store_gives_back_every_instance_field(coco_mini: Path, no_cache: None) -> None:
    res = load_coco(coco_mini / ANN)
    store = res.instances
    assert isinstance(store, InstanceStore) and len(store) == 86  # protocol filters on coco-mini
    as_list = list(store)
    again = InstanceStore.from_instances(as_list)
    assert len(again) == len(store) and all(_same(x, y) for x, y in zip(again, as_list))
    assert len({i.file_name for i in as_list}) < len(as_list)  # images with several persons share one name entry
    sub = store[10:20]
    assert isinstance(sub, InstanceStore) and [i.ann_id for i in sub] == [i.ann_id for i in as_list[10:20]]
    assert _same(store[-1], as_list[-1])
    with pytest.raises(IndexError, match="out of range for 86"):
        store[86]
    # items are copies: changing one never changes the store
    inst = store[0]
    inst.keypoints[:] = -1
    assert store[0].keypoints.max() > 0
    det = load_coco(coco_mini / ANN, mode="gt")
    assert all(i.score == 1.0 for i in det.instances)


def test_cache_returns_the_same_load_and_follows_file_changes(coco_mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HSRPOSE_CACHE_DIR", str(cache))
    monkeypatch.setenv("HSRPOSE_CACHE_MIN_BYTES", "0")
    ann = tmp_path / "ann.json"
    d = json.loads((coco_mini / ANN).read_text())
    ann.write_text(json.dumps(d))
    first = load_coco(ann)
    assert len(list(cache.glob("*.npz"))) == 1
    second = load_coco(ann)  # from the cache
    assert second.report.summary() == first.report.summary()
    assert second.keypoint_info == first.keypoint_info and second.category_id == first.category_id
    assert all(_same(x, y) for x, y in zip(first.instances, second.instances)) and len(second.instances) == 86
    # the file changes: the cache key changes with it
    d["annotations"] = d["annotations"][:50]
    ann.write_text(json.dumps(d))
    third = load_coco(ann)
    assert len(third.instances) < 86 and len(list(cache.glob("*.npz"))) == 2
    # another mode is another entry
    load_coco(ann, mode="gt")
    assert len(list(cache.glob("*.npz"))) == 3


def _touch(item):  # type: ignore[no-untyped-def]
    return item


class _Ids(torch.utils.data.Dataset):
    def __init__(self, store: InstanceStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> int:
        return self.store[i].ann_id


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_read_the_store(coco_mini: Path, no_cache: None, context: str) -> None:
    """Forked workers share the arrays; spawned ones get them pickled: both read the same items."""
    store = load_coco(coco_mini / ANN).instances
    loader = DataLoader(_Ids(store), batch_size=16, num_workers=2, multiprocessing_context=context)
    ids = [int(i) for batch in loader for i in batch]
    assert ids == [i.ann_id for i in store]
