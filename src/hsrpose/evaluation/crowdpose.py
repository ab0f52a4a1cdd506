"""CrowdPose AP: COCO keypoint AP with CrowdPose's conventions, easy/medium/hard by crowd index.

The reference is the CrowdPose toolkit (crowdposetools), as packaged in xtcocotools
``COCOeval(gt, dt, "keypoints_crowd", sigmas, use_area=False)`` (what mmpose runs). Its
differences from COCO's keypoint evaluation are small, so they are applied to
pycocotools' COCOeval (a core dependency) instead of adding xtcocotools, which publishes
wheels for Python 3.10/3.11 only (3.12+ would compile from source):

- the OKS scale and area ranges use ``bbox_w * bbox_h * 0.53`` instead of the ``area`` field
  (``use_area=False``): set as the ground truth's ``area`` here;
- a ground truth is ignored when ``num_keypoints == 0`` (pycocotools does the same);
- one ``maxDets = 20`` and the area range "all": AP, AP50, AP75, AR, AR50, AR75;
- AP(E), AP(M), AP(H): images split by ``images[].crowdIndex`` (< 0.2 easy, < 0.8 medium,
  else hard); for each split the mean of ``precision[:, :, :, 0, :]`` (every IoU threshold,
  recall threshold, category; area "all"), rounded to 4 digits as the reference does.

tests/test_crowdpose.py checks all nine numbers against xtcocotools where it is installed.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from hsrpose.errors import DataError
from hsrpose.evaluation.cocoeval import GroundTruth, Results, load_gt
from hsrpose.evaluation.results import keypoint_categories, load_results, validate_results

__all__ = ["CROWDPOSE_METRIC_NAMES", "CROWD_SPLITS", "score_crowdpose"]

CROWDPOSE_METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP(E)", "AP(M)", "AP(H)")
CROWD_SPLITS: tuple[float, float] = (0.2, 0.8)
"""crowdIndex thresholds of easy / medium / hard (the reference's ``get_type_result(0.2, 0.8)``)."""
_AREA_FACTOR = 0.53  # the reference's box-area stand-in for the segmentation area


def score_crowdpose(
    gt: GroundTruth,
    results: Results,
    sigmas: Sequence[float] | np.ndarray,
    validate: bool = True,
    shown: Collection[str] = (),
) -> dict[str, float]:
    """The nine CrowdPose numbers (:data:`CROWDPOSE_METRIC_NAMES`, in [0, 1]; -1 where undefined).

    Args:
        gt: CrowdPose ground truth (path, dict or COCO object) with ``images[].crowdIndex`` and
            ``annotations[].num_keypoints``.
        results: COCO keypoint results (path or list of entries, image px).
        sigmas: the 14 OKS sigmas (``CROWDPOSE_KEYPOINTS.sigmas``).
        shown: ground-truth warnings the user has already read (see :func:`~hsrpose.evaluation.cocoeval.load_gt`).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset = load_gt(gt, use_area=False, shown=shown)  # the area comes from the box, below
    where = str(gt) if isinstance(gt, (str, os.PathLike)) else "ground truth"
    for i, im in enumerate(dataset["images"]):
        if not isinstance(im.get("crowdIndex"), (int, float)):
            raise DataError(f"{where}: images[{i}] (id {im.get('id')}) has no numeric 'crowdIndex' (not a CrowdPose file)")
    annotations = []
    for i, a in enumerate(dataset["annotations"]):
        bbox = a.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or "num_keypoints" not in a:
            raise DataError(f"{where}: annotations[{i}] (id {a.get('id')}) needs 'bbox' (4 numbers) and 'num_keypoints'")
        annotations.append({**a, "area": float(bbox[2]) * float(bbox[3]) * _AREA_FACTOR})
    dataset = {**dataset, "annotations": annotations}
    entries = load_results(results) if isinstance(results, (str, os.PathLike)) else list(results)
    if validate:
        validate_results(entries, {int(im["id"]) for im in dataset["images"]}, keypoint_categories(dataset), str(where))
    entries = [dict(r) for r in entries]
    kpt_sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        if entries:
            coco_dt = coco_gt.loadRes(entries)
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": dataset["images"], "categories": dataset["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = kpt_sigmas
        ev.params.maxDets = [20]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()  # pycocotools' keypoint stats: 0-2 AP @all, 5-7 AR @all, all with maxDets 20
        stats = [float(ev.stats[i]) for i in (0, 1, 2, 5, 6, 7)]
        easy, medium, hard = _split(dataset["images"])
        for ids in (easy, medium, hard):
            ev.params.imgIds = ids
            ev.evaluate()
            ev.accumulate()
            stats.append(round(float(np.mean(ev.eval["precision"][:, :, :, 0, :])), 4))
    return dict(zip(CROWDPOSE_METRIC_NAMES, stats))


def _split(images: list[Mapping[str, Any]]) -> tuple[list[int], list[int], list[int]]:
    first, second = CROWD_SPLITS
    easy, medium, hard = [], [], []
    for im in images:
        ci = im["crowdIndex"]
        (easy if ci < first else medium if ci < second else hard).append(im["id"])
    return easy, medium, hard
