"""Dataset scorers: the last step of evaluation for datasets not scored with COCO OKS AP.

:func:`hsrpose.engine.evaluate.finalize` hands its raw predictions to a scorer when the
ground truth is one (COCO ground truth stays a path/dict scored by COCOeval):

- :class:`MpiiScorer`: one prediction per annotated person (no rescoring, no NMS: MPII is
  single-person with given center/scale), PCKh table (:mod:`hsrpose.evaluation.pckh`);
- :class:`CrowdPoseScorer`: the COCO post-processing (rescoring + OKS-NMS) then CrowdPose
  AP (:mod:`hsrpose.evaluation.crowdpose`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from hsrpose.data.keypoints import KeypointInfo
from hsrpose.errors import HsrposeError
from hsrpose.evaluation.pckh import MpiiGroundTruth, pckh

if TYPE_CHECKING:
    from hsrpose.engine.eval_config import EvalConfig
    from hsrpose.engine.evaluate import Predictions

__all__ = ["DatasetScorer", "MpiiScorer", "CrowdPoseScorer"]


@runtime_checkable
class DatasetScorer(Protocol):
    """``finalize(predictions, keypoint_info, cfg) -> (results list, metrics dict)``."""

    def finalize(
        self, preds: "Predictions", keypoint_info: KeypointInfo, cfg: "EvalConfig"
    ) -> tuple[list[dict[str, Any]], dict[str, float]]: ...


@dataclass(frozen=True)
class MpiiScorer:
    """PCKh against ``gt``; prediction ``ann_id`` = the record's row in ``gt``."""

    gt: MpiiGroundTruth

    def finalize(
        self, preds: "Predictions", keypoint_info: KeypointInfo, cfg: "EvalConfig"
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        preds = preds.deduplicated()
        n = len(self.gt)
        if keypoint_info.num_keypoints != 16:
            raise HsrposeError(f"PCKh needs the 16 MPII joints, the model predicts {keypoint_info.num_keypoints}")
        rows = preds.ann_id
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise HsrposeError(f"MPII predictions name records up to {int(rows.max())}, the ground truth has {n}")
        joints = np.full((n, 16, 2), np.nan)  # a record without prediction (unreadable image) is a miss
        joints[rows] = preds.keypoints[:, :, :2]
        results = [
            {"image_id": int(i), "ann_id": int(a), "category_id": int(cfg.category_id),
             "keypoints": k.reshape(-1).tolist(), "score": float(s)}
            for i, a, k, s in zip(preds.image_id, preds.ann_id, preds.keypoints, preds.box_score)
        ]  # fmt: skip
        return results, pckh(joints, self.gt).table


@dataclass(frozen=True)
class CrowdPoseScorer:
    """COCO post-processing, then CrowdPose AP against the annotation file ``gt_file``
    (``shown``: its bad-record warnings the data loader already printed)."""

    gt_file: str | os.PathLike[str]
    shown: frozenset[str] = frozenset()

    def finalize(
        self, preds: "Predictions", keypoint_info: KeypointInfo, cfg: "EvalConfig"
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        from hsrpose.engine.evaluate import postprocess
        from hsrpose.evaluation.crowdpose import score_crowdpose

        results = postprocess(preds, keypoint_info, cfg)
        return results, score_crowdpose(self.gt_file, results, keypoint_info.sigmas, validate=False, shown=self.shown)
