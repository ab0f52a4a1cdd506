"""Post-processing of top-down predictions: rescoring, then per-image OKS-NMS (the published protocol).

The one path that evaluation (:func:`hsrpose.engine.evaluate.postprocess`) and image
inference (:class:`hsrpose.inference.pipeline.PoseEstimator`) share. The earlier steps
(decode in crop px, the inverse affine to image px) are also shared:
:func:`hsrpose.inference.topdown.heatmaps_to_image`.
"""

from __future__ import annotations

import numpy as np

from hsrpose.evaluation.nms import batched_oks_nms, soft_oks_nms
from hsrpose.evaluation.rescoring import rescore

__all__ = ["select_instances"]


def select_instances(
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    box_scores: np.ndarray,
    areas: np.ndarray,
    *,
    rescore_thr: float = 0.2,
    nms_thr: float | None = 0.9,
    soft: bool = False,
    sigmas: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rescore N instances and keep those OKS-NMS keeps, image by image.

    Args:
        image_ids: (N,) int image of each instance.
        keypoints: (N,K,3) image px x, y and keypoint score (heatmap maximum).
        box_scores: (N,) detector scores. areas: (N,) OKS-NMS areas in px^2 (crop region).
        rescore_thr: keypoint scores above this count in the rescoring mean (0.2).
        nms_thr: OKS-NMS threshold (0.9); None keeps every instance.
        soft: soft-OKS-NMS (at most 20 per image, in selection order) instead of greedy.
        sigmas: (K,) OKS sigmas (None = COCO's).
    Returns:
        ``(kept, scores)``: kept (n,) int64 indices into the N instances, by ascending image id,
        then highest score first (soft: selection order); scores (N,) float64 rescored.
    """
    ids = np.asarray(image_ids).reshape(-1)
    kp = np.asarray(keypoints)
    scores = rescore(box_scores, kp[:, :, 2], thr=rescore_thr)
    if nms_thr is None:
        order = np.argsort(-scores, kind="stable")
        return order[np.argsort(ids[order], kind="stable")].astype(np.int64), scores
    if not soft:
        # All images at once; the same indices as oks_nms image by image (benchmarks/postprocess_speed.py).
        return batched_oks_nms(ids, kp, scores, areas, thr=nms_thr, sigmas=sigmas), scores
    area = np.asarray(areas)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    kept = [np.zeros(0, np.int64)]
    for s, e in zip(starts, ends):
        idx = order[s:e]
        kept.append(idx[soft_oks_nms(kp[idx], scores[idx], area[idx], thr=nms_thr, sigmas=sigmas)])
    return np.concatenate(kept), scores
