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
