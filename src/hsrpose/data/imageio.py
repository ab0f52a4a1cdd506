"""Reading images as 8-bit BGR (OpenCV), with clear errors for files that cannot be used.

No torch here: torch-free deployments read images with this too.

``cv2.IMREAD_COLOR`` already turns grayscale, RGBA (alpha dropped) and 16-bit
PNGs into 8-bit 3-channel BGR.

EXIF orientation is one setting, ``exif_orientation`` of :func:`read_image_bgr`:

* ``False`` (the default; every dataset read -- training, evaluation, ``browse``, the GPU
  data path): the pixels as stored, orientation tag ignored, exactly as the reference reads
  COCO (HRNet ``lib/dataset/JointsDataset.py`` ``__getitem__``:
  ``cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)``); COCO's
  annotations are in those pixels. An image whose stored size differs from the annotation
  file's is an error that names the file.
* ``True`` (``hsrpose predict`` and ``PoseEstimator`` on file paths: user photos): the
  image as a viewer displays it, the orientation tag applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from hsrpose.errors import DataError

__all__ = ["ImageReadError", "read_image_bytes", "read_image_bgr", "imdecode_flags"]

_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"


class ImageReadError(DataError):
    """An image file that is missing, empty, truncated, undecodable or of the wrong size."""


def read_image_bytes(path: str | Path) -> bytes:
    """The encoded bytes of an image file, after the checks that need no decoding.

    Raises:
        ImageReadError: the file is missing, unreadable, empty, or a truncated JPEG.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{p}: image file not found") from None
    except OSError as e:
        raise ImageReadError(f"{p}: cannot read image file ({e.strerror or e})") from None
    if not data:
        raise ImageReadError(f"{p}: image file is empty")
    # libjpeg decodes a truncated JPEG into a partly grey image with only a warning on
    # stderr; training on it would teach wrong appearance, so a JPEG must end with EOI
    # (trailing padding bytes allowed).
    if data[:2] == _JPEG_SOI and not data.rstrip(b"\x00\r\n\t ").endswith(_JPEG_EOI):
        raise ImageReadError(f"{p}: truncated JPEG (no end-of-image marker)")
    return data


def imdecode_flags(exif_orientation: bool = False) -> int:
    """OpenCV decode flags of the orientation setting (see the module docstring)."""
    return cv2.IMREAD_COLOR if exif_orientation else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def read_image_bgr(path: str | Path, expected_hw: Sequence[int] | None = None, exif_orientation: bool = False) -> np.ndarray:
    """Read ``path`` into a ``(H, W, 3)`` uint8 BGR array.

    Args:
        path: image file.
        expected_hw: ``(height, width)`` from the annotation file, if known; an image of
            another size is rejected.
        exif_orientation: apply the EXIF orientation tag (user photos); False = the stored
            pixels, as the reference reads dataset images.
    Raises:
        ImageReadError: naming the file and the reason (missing, empty, truncated JPEG,
            not decodable, size differs from the annotation file).
    """
    p = Path(path)
    data = read_image_bytes(p)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), imdecode_flags(exif_orientation))
    if image is None:
        raise ImageReadError(f"{p}: not a decodable image (corrupt file or unsupported format)")
    if expected_hw is None:
        return image
    want = (int(expected_hw[0]), int(expected_hw[1]))
    if image.shape[:2] == want:
        return image
    grid = "as displayed (EXIF applied)" if exif_orientation else "as stored (EXIF orientation ignored, as the reference)"
    raise ImageReadError(
        f"{p}: image is {image.shape[1]}x{image.shape[0]} (w x h) {grid} but the annotation file says {want[1]}x{want[0]}"
    )
