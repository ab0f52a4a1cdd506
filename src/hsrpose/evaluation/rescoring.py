"""Instance rescoring of the SimpleBaseline / HRNet evaluation protocol.

instance score = box score x mean of the keypoint scores above ``thr``
(``in_vis_thre = 0.2``; strictly above, as in HRNet's ``lib/dataset/coco.py``).
When no keypoint score is above the threshold the mean is taken as 0, so the
instance score is 0 (the reference starts ``kpt_score = 0`` and only divides when
``valid_num != 0``). The instance stays in the results, ranked last.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rescore"]


def rescore(box_scores: np.ndarray, keypoint_scores: np.ndarray, thr: float = 0.2) -> np.ndarray:
    """Instance scores (N,) float64 from box scores (N,) and keypoint scores (N, K).

    Keypoint scores are the heatmap maxima (any non-negative scale); only those ``> thr`` count.
    """
    box = np.asarray(box_scores, dtype=np.float64).reshape(-1)
    kpt = np.asarray(keypoint_scores, dtype=np.float64)
    if kpt.ndim != 2 or kpt.shape[0] != box.shape[0]:
        raise ValueError(f"rescore: keypoint_scores {kpt.shape} must be (N, K) with N = {box.shape[0]}")
    above = kpt > thr
    count = above.sum(axis=1)
    total = np.where(above, kpt, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return box * mean
