"""Crop geometry in pixels: box -> (center, size) -> explicit 2x3 affine and its inverse.

Conventions (see docs/architecture.md): points are (x, y) image pixels with pixel
centres at integer coordinates (OpenCV); sizes of outputs are (height, width);
box extents are (w, h). This module imports no torch so that torch-free
deployments can use it.

The affine reproduces SimpleBaseline's ``get_affine_transform`` exactly (the box
center goes to (W/2, H/2) of the crop, the box width spans the crop width, the
rotation turns the image content by ``rotation_deg`` counter-clockwise in the
crop), but with sizes in pixels instead of ``pixel_std=200`` units.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

__all__ = ["box_to_center_size", "crop_affine", "invert_affine", "apply_affine", "warp_crop"]


def box_to_center_size(
    box_xywh: Sequence[float] | np.ndarray, aspect_wh: float = 0.75, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """COCO box -> crop center (2,) and size_wh (2,), both image pixels.

    The box is extended in width or height to the aspect ratio ``w/h = aspect_wh``
    (3:4 by default), keeping its center, then enlarged by ``padding``.
    """
    x, y, w, h = (float(v) for v in np.asarray(box_xywh, dtype=np.float64).reshape(4))
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float64)
    if w > aspect_wh * h:
        h = w / aspect_wh
    elif w < aspect_wh * h:
        w = h * aspect_wh
    return center, np.array([w * padding, h * padding], dtype=np.float64)


def crop_affine(
    center: Sequence[float] | np.ndarray,
    size_wh: Sequence[float] | np.ndarray,
    rotation_deg: float,
    output_hw: tuple[int, int],
) -> np.ndarray:
    """2x3 float64 affine ``M`` mapping image pixels to crop pixels.

    ``size_wh[0]`` (the region width in image pixels) spans ``output_hw[1]`` crop
    pixels; the region height follows from the same uniform scale, as in
    SimpleBaseline (the aspect ratio was fixed by :func:`box_to_center_size`).
    """
    c = np.asarray(center, dtype=np.float64).reshape(2)
    src_w = float(np.asarray(size_wh, dtype=np.float64).reshape(2)[0])
    if not np.isfinite(src_w) or src_w <= 0 or not np.all(np.isfinite(c)):
        raise ValueError(f"crop_affine: invalid center {c.tolist()} or width {src_w}")
    out_h, out_w = output_hw
    s = out_w / src_w
    t = np.deg2rad(rotation_deg)
    cs, sn = np.cos(t), np.sin(t)
    a = s * np.array([[cs, sn], [-sn, cs]], dtype=np.float64)
    dst_c = np.array([out_w * 0.5, out_h * 0.5], dtype=np.float64)
    return np.concatenate([a, (dst_c - a @ c)[:, None]], axis=1)


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine (crop px -> image px for a crop matrix)."""
    m = np.asarray(m, dtype=np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([a_inv, (-a_inv @ m[:, 2])[:, None]], axis=1)


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine (or a batch (B,2,3) to points (B,...,2)) to (..., 2) points."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 2:
        return p @ m[:, :2].T + m[:, 2]
    # batched: m (B,2,3), p (B,...,2)
    b = m.shape[0]
    flat = p.reshape(b, -1, 2)
    out = np.einsum("bij,bnj->bni", m[:, :, :2], flat) + m[:, None, :, 2]
    return out.reshape(p.shape)


def warp_crop(image: np.ndarray, m: np.ndarray, output_hw: tuple[int, int]) -> np.ndarray:
    """Warp ``image`` (H,W[,C]) with ``m`` into an ``output_hw`` crop (bilinear, zero border)."""
    out_h, out_w = output_hw
    return cv2.warpAffine(
        image, np.asarray(m, dtype=np.float64), (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )  # fmt: skip
