"""COCO keypoint results: load and validate before scoring.

A results file is a JSON list of entries
``{"image_id": int, "category_id": int, "keypoints": [x1, y1, v1, ...] (3K numbers), "score": float}``
with keypoints in image pixels. pycocotools fails on a malformed entry with an
``AssertionError`` or a NumPy broadcast error far from the cause (or silently
scores NaN as a miss); here the first bad entry is reported with its index and
the reason, as a :class:`~hsrpose.errors.ResultsError`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hsrpose.errors import ResultsError
from hsrpose.utils.io import read_json

__all__ = ["load_results", "validate_results", "keypoint_categories"]


def load_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a results JSON file (a list of entries); no validation beyond 'is a JSON list'."""
    p = Path(path)
    data = read_json(p, error=ResultsError)
    if not isinstance(data, list):
        raise ResultsError(f"{p}: a COCO results file is a JSON list of entries, got {type(data).__name__}")
    return data


def keypoint_categories(gt_dataset: Mapping[str, Any]) -> dict[int, int]:
    """category id -> number of keypoints K, for the ground-truth categories that have keypoints."""
    out: dict[int, int] = {}
    for cat in gt_dataset.get("categories", []):
        if "keypoints" in cat:
            out[int(cat["id"])] = len(cat["keypoints"])
    return out


def _is_number(v: Any) -> bool:
    # bool is an int subclass but never a valid coordinate or score.
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_results(
    results: Sequence[Any],
    image_ids: Collection[int],
    categories: Mapping[int, int],
    source: str = "results",
) -> None:
    """Check every entry; raise ResultsError naming ``source``, the entry index and the reason.

    Args:
        results: list of COCO keypoint result entries.
        image_ids: the ground truth's image ids (an entry on another image is an error:
            pycocotools would refuse the whole file with a bare assertion).
        categories: category id -> K (keypoints per instance) of the ground truth.
        source: file name or description used in messages.
    """
    if not isinstance(results, (list, tuple)):
        raise ResultsError(f"{source}: expected a list of result entries, got {type(results).__name__}")
    ids = image_ids if isinstance(image_ids, (set, frozenset)) else set(image_ids)
    cats = dict(categories)
    for i, r in enumerate(results):
        where = f"{source}: entry {i}"
        if not isinstance(r, Mapping):
            raise ResultsError(f"{where}: expected an object, got {type(r).__name__}")
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in r:
                raise ResultsError(f"{where}: missing '{key}'")
        img = r["image_id"]
        if not _is_number(img) or int(img) != img:
            raise ResultsError(f"{where}: image_id {img!r} is not an integer")
        if img not in ids:
            raise ResultsError(f"{where}: unknown image_id {img} (not in the ground truth)")
        cat = r["category_id"]
        if not _is_number(cat) or cat not in cats:
            raise ResultsError(f"{where}: category_id {cat!r} is not a keypoint category of the ground truth {sorted(cats)}")
        score = r["score"]
        if not _is_number(score) or not math.isfinite(score):
            raise ResultsError(f"{where}: score {score!r} is not a finite number")
        kpts = r["keypoints"]
        k = cats[cat]
        if not isinstance(kpts, (list, tuple)):
            raise ResultsError(f"{where}: keypoints must be a list of {3 * k} numbers, got {type(kpts).__name__}")
        if len(kpts) != 3 * k:
            raise ResultsError(
                f"{where}: keypoints has {len(kpts)} numbers, expected {3 * k} (x, y, score for {k} keypoints)"
            )
    if not results:
        return
    # Numbers and finiteness of all keypoints at once (fast for 100k entries); find the culprit on failure.
    try:
        arr = np.asarray([r["keypoints"] for r in results], dtype=np.float64)
        ok = bool(np.isfinite(arr).all()) if arr.ndim == 2 else False
    except (TypeError, ValueError):
        ok = False
    if ok:
        return
    for i, r in enumerate(results):
        for j, v in enumerate(r["keypoints"]):
            if not _is_number(v):
                raise ResultsError(f"{source}: entry {i}: keypoints[{j}] = {v!r} is not a number")
            if not math.isfinite(v):
                raise ResultsError(f"{source}: entry {i}: keypoints[{j}] is {v} (coordinates must be finite)")
    # Only reached when categories of different K made the stacked array ragged: all values are fine.
