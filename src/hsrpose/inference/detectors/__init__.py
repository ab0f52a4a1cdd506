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

One module per family: ``base`` (protocol, spec line), ``boxes`` (xywh utilities),
``coco_results``, ``hog``, ``yolo`` (Ultralytics ``.pt`` and ONNX), ``darknet``, ``factory``.
"""

from __future__ import annotations

from hsrpose.inference.detectors.base import DETECTOR_SPECS, PersonDetector
from hsrpose.inference.detectors.boxes import box_iou_xywh, clip_boxes_xywh, nms_xywh
from hsrpose.inference.detectors.coco_results import CocoResultsDetector
from hsrpose.inference.detectors.darknet import DarknetDetector
from hsrpose.inference.detectors.factory import build_detector
from hsrpose.inference.detectors.hog import HogPersonDetector
from hsrpose.inference.detectors.yolo import UltralyticsDetector, YoloOnnxDetector

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
