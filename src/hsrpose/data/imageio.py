"""Reading images as 8-bit BGR (OpenCV), with clear errors for files that cannot be used.

No torch here: torch-free deployments read images with this too.

``cv2.IMREAD_COLOR`` already turns grayscale, RGBA (alpha dropped) and 16-bit
PNGs into 8-bit 3-channel BGR, and applies the EXIF orientation of JPEGs. Which
orientation the *annotations* refer to is not standard: COCO-style tools often
annotated the stored pixel grid (and SimpleBaseline/HRNet read with
``IMREAD_IGNORE_ORIENTATION``), photo tools the displayed one. When the annotation
file gives the image size, the orientation whose size matches it is used; when
both match (180-degree turns, mirrors) EXIF is honoured.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from hsrpose.errors import DataError

__all__ = ["ImageReadError", "read_image_bytes", "read_image_bgr"]

log = logging.getLogger(__name__)

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


def read_image_bgr(path: str | Path, expected_hw: Sequence[int] | None = None) -> np.ndarray:
    """Read ``path`` into a ``(H, W, 3)`` uint8 BGR array.

    Args:
        path: image file.
        expected_hw: ``(height, width)`` from the annotation file, if known; picks the EXIF
            orientation that matches it and rejects images of another size.
    Raises:
        ImageReadError: naming the file and the reason (missing, empty, truncated JPEG,
            not decodable, size differs from the annotation file).
    """
    p = Path(path)
    data = read_image_bytes(p)
    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageReadError(f"{p}: not a decodable image (corrupt file or unsupported format)")
    if expected_hw is None:
        return image
    want = (int(expected_hw[0]), int(expected_hw[1]))
    if image.shape[:2] == want:
        return image
    raw = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if raw is not None and raw.shape[:2] == want:
        # The annotation file describes the stored pixel grid (COCO style): ignore EXIF.
        log.debug("%s: EXIF orientation ignored, annotations refer to the stored %dx%d grid", p, want[1], want[0])
        return raw
    raise ImageReadError(
        f"{p}: image is {image.shape[1]}x{image.shape[0]} (w x h) but the annotation file says {want[1]}x{want[0]}"
    )
