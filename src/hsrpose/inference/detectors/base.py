"""The person-detector protocol and the CLI spec line (see the package docstring)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["PersonDetector", "DETECTOR_SPECS", "empty_detections"]

DETECTOR_SPECS = "auto | hog | yolo:MODEL.pt | yolo:MODEL.onnx | coco:DETECTIONS.json | darknet:CFG,WEIGHTS"


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that returns person boxes for a BGR image."""

    def __call__(
        self, image_bgr: np.ndarray, image_key: str | int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - protocol
        ...


def empty_detections() -> tuple[np.ndarray, np.ndarray]:
    """No boxes: ((0,4) float32, (0,) float32)."""
    return np.zeros((0, 4), dtype=np.float32), np.zeros((0,), dtype=np.float32)
