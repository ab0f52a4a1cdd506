"""A detector from a CLI spec string (``auto``, ``hog``, ``yolo:PATH``, ``coco:FILE``, ``darknet:CFG,WEIGHTS``)."""

from __future__ import annotations

from typing import Mapping

from hsrpose.errors import HsrposeError
from hsrpose.inference.detectors.base import DETECTOR_SPECS, PersonDetector
from hsrpose.inference.detectors.coco_results import CocoResultsDetector
from hsrpose.inference.detectors.darknet import DarknetDetector
from hsrpose.inference.detectors.hog import HogPersonDetector
from hsrpose.inference.detectors.yolo import UltralyticsDetector, YoloOnnxDetector

__all__ = ["build_detector"]


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
