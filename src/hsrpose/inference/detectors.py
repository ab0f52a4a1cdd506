"""Person detectors behind one small protocol.

``detector(image_bgr, image_key=None) -> (boxes_xywh float32 (N,4), scores float32 (N,))``

Boxes are COCO ``xywh`` in image pixels of ``image_bgr`` (BGR uint8, (H,W,3)).
The detectors that run a model clip their boxes to the image and keep positive sizes;
:class:`CocoResultsDetector` returns a file's boxes as they are (the reference protocol). ``image_key`` (a file
name or a COCO image id) is only used by detectors that read precomputed boxes
from a file; the others ignore it.

Implementations:
- :class:`CocoResultsDetector`  boxes from a COCO detection results file (the
  published evaluation path), category 1;
- :class:`HogPersonDetector`    OpenCV's HOG + linear SVM people detector, no
  downloaded weights, always available;
- :class:`UltralyticsDetector`  an Ultralytics YOLO model from a local ``.pt``
  file (optional extra ``hsrpose[yolo]``);
- :class:`YoloOnnxDetector`     the same model exported to ONNX, run with
  onnxruntime (no torch, no torchvision, no ultralytics);
- :class:`DarknetDetector`      a darknet YOLO (the paper's YOLOv3) from its
  ``.cfg`` + ``.weights`` through OpenCV's DNN module.

:func:`build_detector` turns a CLI spec (``auto``, ``hog``, ``yolo:PATH.pt``, ``yolo:PATH.onnx``,
``coco:FILE``, ``darknet:CFG,WEIGHTS``) into one of them. No torch import at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

import cv2
import numpy as np

from hsrpose.errors import HsrposeError

__all__ = [
    "PersonDetector",
    "CocoResultsDetector",
    "HogPersonDetector",
    "UltralyticsDetector",
    "YoloOnnxDetector",
    "DarknetDetector",
    "build_detector",
    "clip_boxes_xywh",
    "nms_xywh",
    "box_iou_xywh",
    "DETECTOR_SPECS",
]

DETECTOR_SPECS = "auto | hog | yolo:MODEL.pt | yolo:MODEL.onnx | coco:DETECTIONS.json | darknet:CFG,WEIGHTS"


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that returns person boxes for a BGR image."""

    def __call__(
        self, image_bgr: np.ndarray, image_key: str | int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - protocol
        ...


# ----------------------------------------------------------------------------- helpers


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


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), dtype=np.float32), np.zeros((0,), dtype=np.float32)


# ----------------------------------------------------------------------------- (a) COCO results file


class CocoResultsDetector:
    """Person boxes from a COCO detection results file (list of ``{image_id, category_id, bbox, score}``).

    The image is found by ``image_key``: a COCO image id (int), or a file name
    looked up in ``file_names`` (a mapping file name -> image id, e.g. from the
    annotation file's ``images``), or else a file name whose stem is the id
    (``000000391895.jpg`` -> 391895, COCO's naming). Only ``category_id == 1``
    (person) entries with ``score >= score_thr`` are used; the protocol keeps
    every box (``score_thr=0.0``). The file is read by :func:`hsrpose.data.detections.read_detections`,
    the reader of ``hsrpose eval --boxes``: boxes come back exactly as in the file (float64, not
    clipped, ``w``/``h`` <= 0 kept), so ``eval`` and ``predict`` crop the same pixels.
    """

    def __init__(
        self,
        results: str | Path | Iterable[Mapping[str, Any]],
        file_names: Mapping[str, int] | None = None,
        score_thr: float = 0.0,
        category_id: int = 1,
    ) -> None:
        from hsrpose.data.detections import parse_detections, read_detections

        # The reader ``hsrpose eval --boxes`` uses: same entries, boxes as they are (float64).
        if isinstance(results, (str, Path)):
            det = read_detections(results, category_id=category_id, score_thr=score_thr)
        else:
            det = parse_detections(list(results), category_id=category_id, score_thr=score_thr)
        self.score_thr = float(score_thr)
        self.source = det.source
        self.num_skipped = det.report.num_skipped
        self._by_image = det.by_image()
        self._file_names = dict(file_names or {})

    @property
    def image_ids(self) -> list[int]:
        return sorted(self._by_image)

    def resolve(self, image_key: str | int | None) -> int:
        """Image id of ``image_key`` (id, file name or path)."""
        if image_key is None:
            raise HsrposeError("coco detector: needs the image id or file name (image_key) of each image")
        if isinstance(image_key, (int, np.integer)):
            return int(image_key)
        name = Path(str(image_key)).name
        if name in self._file_names:
            return int(self._file_names[name])
        stem = Path(name).stem
        if stem.isdigit():
            return int(stem)
        raise HsrposeError(f"coco detector: cannot map image {image_key!r} to an image id (give the annotation file's names)")

    def __call__(self, image_bgr: np.ndarray, image_key: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
        entry = self._by_image.get(self.resolve(image_key))
        if entry is None:
            return _empty()
        # Not clipped: the reference crops a file's boxes as they are (see hsrpose.data.detections).
        return entry[0].copy(), entry[1].copy()


# ----------------------------------------------------------------------------- (b) HOG


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
            return _empty()
        rects, weights = self._hog.detectMultiScale(work, hitThreshold=self.hit_threshold, winStride=(8, 8), padding=(8, 8), scale=self.scale)
        if len(rects) == 0:
            return _empty()
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


# ----------------------------------------------------------------------------- (c) Ultralytics


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
            return _empty()
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
            return _empty()
        boxes[:, 0] -= left
        boxes[:, 1] -= top
        boxes /= r
        if not self.end2end:
            keep = nms_xywh(boxes, scores, self.iou)
            boxes, scores = boxes[keep], scores[keep]
        return clip_boxes_xywh(boxes, scores, image_bgr.shape[:2])


# ----------------------------------------------------------------------------- (d) darknet YOLO


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
            return _empty()
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


# ----------------------------------------------------------------------------- spec parsing


def build_detector(spec: str | PersonDetector, device: str = "cpu", file_names: Mapping[str, int] | None = None) -> PersonDetector:
    """A detector from a spec string (``auto``, ``hog``, ``yolo:PATH``, ``coco:FILE``, ``darknet:CFG,WEIGHTS``) or an object."""
    if not isinstance(spec, str):
        if not callable(spec):
            raise HsrposeError(f"detector: {spec!r} is neither a spec string ({DETECTOR_SPECS}) nor callable")
        return spec
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "auto" and not arg:  # YOLO when available, else HOG with a warning
        from hsrpose.inference.auto_detector import build_auto_detector

        return build_auto_detector(device)
    if kind == "hog" and not arg:
        return HogPersonDetector()
    if kind == "yolo" and arg:
        if arg.lower().endswith(".onnx"):
            return YoloOnnxDetector(arg)
        return UltralyticsDetector(arg, device=device)
    if kind == "coco" and arg:
        return CocoResultsDetector(arg, file_names=file_names)
    if kind == "darknet" and arg:
        parts = [p for p in arg.split(",") if p]
        if len(parts) != 2:
            raise HsrposeError(f"detector: darknet needs 'darknet:CFG,WEIGHTS', got {spec!r}")
        return DarknetDetector(parts[0], parts[1])
    raise HsrposeError(f"detector: unknown spec {spec!r}; use one of: {DETECTOR_SPECS}")
