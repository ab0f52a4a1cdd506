"""``EvalConfig``: the settings of the evaluation protocol (a light module: no torch, no inference).

``TrainConfig`` holds one (``eval.*`` overrides), so it lives apart from ``engine/evaluate.py``,
which runs the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsrpose.evaluation.cocoeval import DEFAULT_BACKEND
from hsrpose.overrides import bounded

__all__ = ["EvalConfig"]


@dataclass
class EvalConfig:
    """Settings of the evaluation protocol; the defaults are the published ones.

    Attributes:
        flip_test: average with the heatmaps of the mirrored crop.
        shift_heatmap: shift the flipped-back heatmaps one pixel right (the reference does).
        det_score_thr: keep detector boxes with score >= this (0.0 as in the HRNet YAML;
            used where the dataset is built, e.g. ``hsrpose eval``).
        use_gt_boxes: crops from ground-truth boxes instead of a detection file (label only here;
            the dataset decides the boxes).
        in_vis_thr: keypoint scores above this count in the rescoring mean (0.2).
        oks_nms_thr: OKS-NMS threshold (0.9).
        soft_nms: soft-OKS-NMS instead of greedy OKS-NMS.
        batch_size, num_workers: of the loader built when a dataset is passed.
        amp: float16 autocast on CUDA (not the published setting; off by default).
        backend: COCO scoring backend, "hotcoco" (default) or "pycocotools" (the reference).
        category_id: COCO category of the results (1 = person).
        progress: show a tqdm bar.
        oks_sigmas: OKS sigmas of a custom keypoint set for ``hsrpose eval`` (None = the
            annotation category's ``sigmas``, else COCO's for COCO person, else the weights').
        flip_pairs: 0-based left/right pairs of a custom keypoint set for ``hsrpose eval``
            (None = the weights' / the category's ``flip_pairs``).
    """

    flip_test: bool = True
    shift_heatmap: bool = True
    det_score_thr: float = 0.0
    use_gt_boxes: bool = False
    in_vis_thr: float = bounded(0.2, ge=0, le=1)
    oks_nms_thr: float = bounded(0.9, ge=0, le=1)
    soft_nms: bool = False
    batch_size: int = bounded(64, ge=1)
    num_workers: int = bounded(2, ge=0)
    amp: bool = False
    backend: str = DEFAULT_BACKEND
    category_id: int = 1
    progress: bool = False
    oks_sigmas: list[float] | None = None
    flip_pairs: list[list[int]] | None = None
