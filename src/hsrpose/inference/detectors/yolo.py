"""Ultralytics YOLO person detectors: the ``.pt`` model (ultralytics) and its ONNX export (onnxruntime only)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hsrpose.errors import HsrposeError
from hsrpose.inference.detectors.base import empty_detections
from hsrpose.inference.detectors.boxes import clip_boxes_xywh, nms_xywh

__all__ = ["UltralyticsDetector", "YoloOnnxDetector"]


class UltralyticsDetector:
    """An Ultralytics YOLO detection or pose model from a local ``.pt`` file; class 0 (person).

    Needs the optional ``ultralytics`` package (which needs a torchvision that
    matches the installed torch). ``conf`` and ``iou`` are Ultralytics' own
    confidence and NMS thresholds.
    """

    def __init__(self, weights: str | Path, conf: float = 0.25, iou: float = 0.7, imgsz: int = 640, device: str = "cpu") -> None:
        path = Path(weights)
        if not path.is_file():
            raise HsrposeError(f"yolo detector: weights file {path} not found")
        try:
            from ultralytics import YOLO
        except Exception as e:  # ImportError, or torchvision's operator errors on a mismatched torch
            raise HsrposeError(
                f"yolo detector: cannot import ultralytics ({type(e).__name__}: {e}). "
                "Install the optional extra: pip install 'hsrpose[yolo]' (needs a torchvision matching your torch)"
            ) from e
        self.model = YOLO(str(path))
        names = getattr(self.model, "names", {}) or {}
        if names and str(names.get(0, "person")).lower() != "person":
            raise HsrposeError(f"yolo detector: {path}: class 0 is {names.get(0)!r}, not 'person'")
        self.conf, self.iou, self.imgsz, self.device = float(conf), float(iou), int(imgsz), device

    def __call__(self, image_bgr: np.ndarray, image_key: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
        # Ultralytics takes numpy images as BGR (OpenCV order), like ours.
        res = self.model.predict(image_bgr, classes=[0], conf=self.conf, iou=self.iou, imgsz=self.imgsz, device=self.device, verbose=False)[0]
        if res.boxes is None or len(res.boxes) == 0:
            return empty_detections()
        xyxy = res.boxes.xyxy.cpu().numpy().astype(np.float64)
        scores = res.boxes.conf.cpu().numpy().astype(np.float64)
        boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        return clip_boxes_xywh(boxes, scores, image_bgr.shape[:2])


class YoloOnnxDetector:
    """An Ultralytics YOLO detection or pose model exported to ONNX, run with onnxruntime (no torch).

    The file comes from ``yolo export model=yolo11n-pose.pt format=onnx`` (needs
    ultralytics once, anywhere); running it needs only onnxruntime. Pre- and
    post-processing follow Ultralytics: letterbox to the exported size (grey 114
    border), RGB / 255; output ``(1, 4 + classes [+ keypoints], N)`` rows of
    ``(cx, cy, w, h, class scores...)`` in input px, person = class 0; then NMS at
    ``iou``. ``end2end`` exports (NMS inside, rows ``x1, y1, x2, y2, score, class``)
    work too.
    """

    def __init__(self, path: str | Path, conf: float = 0.25, iou: float = 0.7) -> None:
        import ast

        self.path = Path(path)
        if not self.path.is_file():
            raise HsrposeError(f"yolo detector: ONNX file {self.path} not found")
        from hsrpose.utils.extras import require_extra

        ort = require_extra("onnxruntime", "export", purpose=f"the yolo detector {self.path.name}")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime's own exception types
            raise HsrposeError(f"yolo detector: onnxruntime cannot load {self.path}: {e}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            names = ast.literal_eval(meta.get("names", "{0: 'person'}"))
        except (ValueError, SyntaxError):
            names = {}
        if str(names.get(0, "person")).lower() != "person":
            raise HsrposeError(f"yolo detector: {self.path}: class 0 is {names.get(0)!r}, not 'person'")
        self.end2end = meta.get("end2end", "False") == "True"
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        h, w = inp.shape[2], inp.shape[3]
        if not (isinstance(h, int) and isinstance(w, int)):
            imgsz = ast.literal_eval(meta.get("imgsz", "[640, 640]"))
            h, w = int(imgsz[0]), int(imgsz[1])
        self.input_hw = (int(h), int(w))
        self.conf, self.iou = float(conf), float(iou)

    def _letterbox(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """Ultralytics' LetterBox (centred, grey 114): blob (1,3,H,W) and (ratio, left, top)."""
        ih, iw = image_bgr.shape[:2]
        h, w = self.input_hw
        r = min(h / ih, w / iw)
        nw, nh = int(round(iw * r)), int(round(ih * r))
        dw, dh = (w - nw) / 2, (h - nh) / 2
        top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
        canvas = np.full((h, w, 3), 114, dtype=np.uint8)
        resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (iw, ih) else image_bgr
        canvas[top : top + nh, left : left + nw] = resized
        blob = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        return blob, r, left, top

    def __call__(self, image_bgr: np.ndarray, image_key: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
        blob, r, left, top = self._letterbox(image_bgr)
        out = np.asarray(self.session.run(None, {self.input_name: blob})[0])[0]
        if self.end2end:  # (N, 6+): x1, y1, x2, y2, score, class
            rows = out[(out[:, 5] == 0) & (out[:, 4] >= self.conf)]
            xyxy, scores = rows[:, :4].astype(np.float64), rows[:, 4].astype(np.float64)
            boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        else:  # (4 + classes [+ keypoints], N)
            rows = out.T
            scores = rows[:, 4].astype(np.float64)
            keep = scores >= self.conf
            rows, scores = rows[keep], scores[keep]
            cx, cy, bw, bh = (rows[:, i].astype(np.float64) for i in range(4))
            boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1)
        if len(boxes) == 0:
            return empty_detections()
        boxes[:, 0] -= left
        boxes[:, 1] -= top
        boxes /= r
        if not self.end2end:
            keep = nms_xywh(boxes, scores, self.iou)
            boxes, scores = boxes[keep], scores[keep]
        return clip_boxes_xywh(boxes, scores, image_bgr.shape[:2])
