"""xywh box utilities of the detectors: clipping to the image, greedy box NMS, IoU (image px)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["clip_boxes_xywh", "nms_xywh", "box_iou_xywh"]


def clip_boxes_xywh(boxes_xywh: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Clip (N,4) xywh boxes to the image and drop those left with no area."""
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    h, w = image_hw
    x, y, bw, bh = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    # Boxes that leave the image by less than 0.01 px are kept exactly as they are: the
    # float32 round trip of x + w can overshoot the border by that much, and clipping
    # such a box again would change its width (clipping must be idempotent).
    tol = 0.01
    clip_x = (x < -tol) | (x + bw > w + tol)
    clip_y = (y < -tol) | (y + bh > h + tol)
    x0, x1 = np.clip(x, 0, w), np.clip(x + bw, 0, w)
    y0, y1 = np.clip(y, 0, h), np.clip(y + bh, 0, h)
    out = np.stack(
        [np.where(clip_x, x0, x), np.where(clip_y, y0, y), np.where(clip_x, x1 - x0, bw), np.where(clip_y, y1 - y0, bh)], axis=1
    )
    keep = (out[:, 2] > 0) & (out[:, 3] > 0) & np.isfinite(out).all(axis=1) & np.isfinite(scores)
    return out[keep].astype(np.float32), scores[keep].astype(np.float32)


def nms_xywh(boxes_xywh: np.ndarray, scores: np.ndarray, iou_thr: float, score_thr: float = 0.0) -> np.ndarray:
    """Indices kept by greedy box NMS (OpenCV's ``cv2.dnn.NMSBoxes``), highest score first."""
    if len(boxes_xywh) == 0:
        return np.zeros((0,), dtype=np.int64)
    idx = cv2.dnn.NMSBoxes(
        [list(map(float, b)) for b in np.asarray(boxes_xywh)], [float(s) for s in np.asarray(scores)],
        float(score_thr), float(iou_thr),
    )  # fmt: skip
    return np.asarray(idx, dtype=np.int64).reshape(-1)


def box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (N,M) of xywh boxes a (N,4) and b (M,4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
