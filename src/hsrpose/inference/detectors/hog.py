"""OpenCV's HOG + linear SVM people detector: no weights file, always available."""

from __future__ import annotations

import cv2
import numpy as np

from hsrpose.errors import HsrposeError
from hsrpose.inference.detectors.base import empty_detections
from hsrpose.inference.detectors.boxes import clip_boxes_xywh, nms_xywh

__all__ = ["HogPersonDetector"]


class HogPersonDetector:
    """OpenCV's HOG people detector (Dalal-Triggs, 64x128 window) + NMS; needs no weights file.

    HOG finds upright people taller than ~100 px in its working image, so the
    image is resized so that its longer side is ``work_size`` (upscaling small
    images finds smaller people, downscaling keeps large images fast). Its
    window holds the person with a margin; ``shrink_wh`` tightens the window to
    the person's box. The SVM margin becomes a score with a logistic map so that
    scores lie in (0, 1).
    """

    def __init__(
        self,
        work_size: int = 960,
        hit_threshold: float = -0.5,
        scale: float = 1.05,
        iou_thr: float = 0.45,
        shrink_wh: tuple[float, float] = (0.7, 0.85),
    ) -> None:
        if not hasattr(cv2, "HOGDescriptor"):
            raise HsrposeError(
                f"hog detector: OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it out of the main "
                "package); install opencv-python-headless>=4.8,<5"
            )
        self.work_size = int(work_size)
        self.hit_threshold = float(hit_threshold)
        self.scale = float(scale)
        self.iou_thr = float(iou_thr)
        self.shrink_wh = (float(shrink_wh[0]), float(shrink_wh[1]))
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, image_bgr: np.ndarray, image_key: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
        h, w = image_bgr.shape[:2]
        f = self.work_size / max(h, w)
        work = cv2.resize(image_bgr, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        if min(work.shape[:2]) < 128:
            return empty_detections()
        rects, weights = self._hog.detectMultiScale(work, hitThreshold=self.hit_threshold, winStride=(8, 8), padding=(8, 8), scale=self.scale)
        if len(rects) == 0:
            return empty_detections()
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / f
        margin = np.asarray(weights, dtype=np.float64).reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-margin))
        keep = nms_xywh(boxes, scores, self.iou_thr)
        boxes, scores = boxes[keep], scores[keep]
        sw, sh = self.shrink_wh
        cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
        bw, bh = boxes[:, 2] * sw, boxes[:, 3] * sh
        boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1)
        return clip_boxes_xywh(boxes, scores, (h, w))
