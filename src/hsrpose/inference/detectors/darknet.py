"""A darknet YOLO (the paper's YOLOv3) from ``.cfg`` + ``.weights`` through OpenCV's DNN module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hsrpose.errors import HsrposeError
from hsrpose.inference.detectors.base import empty_detections
from hsrpose.inference.detectors.boxes import clip_boxes_xywh, nms_xywh

__all__ = ["DarknetDetector"]


class DarknetDetector:
    """A darknet YOLO (v3 in the paper) from ``.cfg`` + ``.weights`` via ``cv2.dnn.readNetFromDarknet``.

    The image is letterboxed (aspect kept, grey 0.5 border, as pjreddie's darknet
    does in ``test_detector``) or plainly resized (``letterbox=False``, as
    AlexeyAB's darknet) to the network size of the cfg, RGB, scaled to [0, 1].
    OpenCV's YOLO layers give rows ``(cx, cy, w, h, objectness, class scores...)``
    normalised to the network input, with class scores already multiplied by the
    objectness; the score of a box is that of class ``person_class`` (0 in COCO
    order). Boxes are mapped back through the letterbox, then NMS'ed.
    """

    def __init__(
        self,
        cfg: str | Path,
        weights: str | Path,
        conf_thr: float = 0.1,
        nms_thr: float = 0.45,
        letterbox: bool = True,
        person_class: int = 0,
    ) -> None:
        cfg, weights = Path(cfg), Path(weights)
        for p in (cfg, weights):
            if not p.is_file():
                raise HsrposeError(f"darknet detector: file {p} not found")
        if not hasattr(cv2.dnn, "readNetFromDarknet"):
            raise HsrposeError(
                f"darknet detector: OpenCV {cv2.__version__} has no darknet importer (removed in OpenCV 5); "
                "install opencv-python-headless>=4.8,<5"
            )
        try:
            self.net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
        except cv2.error as e:
            raise HsrposeError(f"darknet detector: OpenCV cannot load {cfg} + {weights}: {str(e).strip()}") from e
        _check_darknet_weights_size(self.net, weights)
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.input_wh = _darknet_net_size(cfg)
        self.out_names = list(self.net.getUnconnectedOutLayersNames())
        self.conf_thr, self.nms_thr = float(conf_thr), float(nms_thr)
        self.letterbox, self.person_class = bool(letterbox), int(person_class)

    def _prepare(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
        """Blob (1,3,H,W) and the mapping net px -> image px: x_img = (x_net - pad_x) / sx."""
        h, w = image_bgr.shape[:2]
        nw, nh = self.input_wh
        if self.letterbox:
            s = min(nw / w, nh / h)
            rw, rh = max(1, int(w * s)), max(1, int(h * s))
            px, py = (nw - rw) // 2, (nh - rh) // 2
            canvas = np.full((nh, nw, 3), 127, dtype=np.uint8)
            canvas[py : py + rh, px : px + rw] = cv2.resize(image_bgr, (rw, rh), interpolation=cv2.INTER_LINEAR)
            # the scale is the one actually applied (int rounding of the resized size)
            sx, sy = rw / w, rh / h
        else:
            canvas = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
            px = py = 0
            sx, sy = nw / w, nh / h
        blob = cv2.dnn.blobFromImage(canvas, scalefactor=1.0 / 255.0, size=(nw, nh), swapRB=True, crop=False)
        return blob, float(px), float(py), sx, sy

    def __call__(self, image_bgr: np.ndarray, image_key: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
        blob, px, py, sx, sy = self._prepare(image_bgr)
        self.net.setInput(blob)
        outs = self.net.forward(self.out_names)
        rows = np.concatenate([np.asarray(o).reshape(-1, np.asarray(o).shape[-1]) for o in outs], axis=0)
        if rows.shape[1] <= 5 + self.person_class:
            raise HsrposeError(f"darknet detector: the network has {rows.shape[1] - 5} classes, no class {self.person_class}")
        scores = rows[:, 5 + self.person_class].astype(np.float64)
        keep = scores >= self.conf_thr
        rows, scores = rows[keep], scores[keep]
        if len(rows) == 0:
            return empty_detections()
        nw, nh = self.input_wh
        cx, cy = rows[:, 0] * nw, rows[:, 1] * nh
        bw, bh = rows[:, 2] * nw, rows[:, 3] * nh
        boxes = np.stack([(cx - bw / 2 - px) / sx, (cy - bh / 2 - py) / sy, bw / sx, bh / sy], axis=1)
        boxes, scores = clip_boxes_xywh(boxes, scores, image_bgr.shape[:2])
        keep = nms_xywh(boxes, scores, self.nms_thr)
        return boxes[keep], scores[keep]


def _check_darknet_weights_size(net: Any, weights: Path) -> None:
    """OpenCV reads a truncated weights file without complaint: compare its size with the cfg's parameters.

    The file is a header (int32 major, minor, revision; then ``seen`` as uint64 when
    ``major * 10 + minor >= 2``, else int32) followed by float32 conv biases, batch-norm
    parameters and conv weights, in layer order.
    """
    with open(weights, "rb") as f:
        head = f.read(12)
    if len(head) < 12:
        raise HsrposeError(f"darknet detector: {weights}: too short for a darknet weights file")
    major, minor, _ = np.frombuffer(head, dtype="<i4")
    header = 12 + (8 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 4)
    have = (weights.stat().st_size - header) // 4
    need = 0
    for name in net.getLayerNames():
        layer = net.getLayer(name)
        if layer.type in ("Convolution", "BatchNorm", "Scale"):
            need += sum(int(b.size) for b in layer.blobs)
    if have < need:
        raise HsrposeError(f"darknet detector: {weights}: holds {have} parameters but the cfg needs {need} (truncated or another cfg)")


def _darknet_net_size(cfg: Path) -> tuple[int, int]:
    """(width, height) of the ``[net]`` section of a darknet cfg."""
    width = height = None
    in_net = False
    for raw in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if in_net:
                break
            in_net = line.lower() in ("[net]", "[network]")
            continue
        if in_net and "=" in line:
            k, v = (s.strip() for s in line.split("=", 1))
            if k == "width":
                width = int(v)
            elif k == "height":
                height = int(v)
    if not width or not height:
        raise HsrposeError(f"darknet detector: {cfg}: no width/height in its [net] section")
    return width, height
