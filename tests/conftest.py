"""Shared pytest fixtures.

``coco_mini``: the small real-data sample (80 COCO train2017 images and their
person keypoint annotations) that tests run on. It is looked up in
``$HSRPOSE_COCO_MINI`` first, then in ``<repo>/../shared/data/coco-mini``; tests
that need it are skipped, with the reason, when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
COCO_MINI_ANN = Path("annotations") / "person_keypoints_train2017.json"
COCO_MINI_IMAGES = Path("train2017")


def find_coco_mini() -> Path | None:
    """Path of the coco-mini folder, or None when it cannot be found."""
    env = os.environ.get("HSRPOSE_COCO_MINI")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data" / "coco-mini")
    for root in candidates:
        if (root / COCO_MINI_ANN).is_file() and (root / COCO_MINI_IMAGES).is_dir():
            return root
    return None


@pytest.fixture(scope="session")
def coco_mini() -> Path:
    """Root of coco-mini: holds ``annotations/person_keypoints_train2017.json`` and ``train2017/``."""
    root = find_coco_mini()
    if root is None:
        where = os.environ.get("HSRPOSE_COCO_MINI") or str(REPO_ROOT.parent / "shared" / "data" / "coco-mini")
        pytest.skip(
            f"coco-mini not found (looked in {where}); set HSRPOSE_COCO_MINI to a folder with "
            f"{COCO_MINI_ANN} and {COCO_MINI_IMAGES}/"
        )
    return root


def write_coco_subset(coco_mini: Path, out: Path, num_images: int, missing_images: int = 0) -> Path:
    """Write a COCO file with the first ``num_images`` coco-mini images that hold keypoint-labelled persons.

    The last ``missing_images`` of them point at files that do not exist (bad records).
    """
    import json

    d = json.loads((coco_mini / COCO_MINI_ANN).read_text())
    with_kpts = {a["image_id"] for a in d["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]}
    images = [im for im in d["images"] if im["id"] in with_kpts][:num_images]
    for im in images[len(images) - missing_images :] if missing_images else []:
        im["file_name"] = "does_not_exist_" + im["file_name"]
    ids = {im["id"] for im in images}
    d["images"] = images
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in ids]
    out.write_text(json.dumps(d))
    return out


@pytest.fixture(scope="session", autouse=True)
def hermetic_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Caches (annotation loads, ground-truth checks) go to a fresh folder of this run, never to
    ``~/.cache``: a test run neither reads what an earlier run left nor leaves anything behind.
    Set in the environment so the CLI subprocesses of the tests inherit it."""
    old = os.environ.get("HSRPOSE_CACHE_DIR")
    os.environ["HSRPOSE_CACHE_DIR"] = str(tmp_path_factory.mktemp("hsrpose-cache"))
    yield
    if old is None:
        os.environ.pop("HSRPOSE_CACHE_DIR", None)
    else:
        os.environ["HSRPOSE_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def one_torch_thread():  # type: ignore[no-untyped-def]
    """Tiny tensors: one thread is faster than paying OpenMP's synchronisation on a small, shared CPU."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
