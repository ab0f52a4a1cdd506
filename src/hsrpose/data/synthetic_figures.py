"""The scene model of the synthetic dataset: stick figures (COCO-17 joints), occluders, backgrounds, and their sampling.

A figure faces the viewer, so the person's left side is on the image's right when
upright (see :mod:`hsrpose.data.synthetic`). Every draw comes from the ``numpy``
generator passed in. Image pixels throughout. This module imports no torch.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

__all__ = ["Figure", "Occluder", "sample_figure"]

# COCO-17 indices, named for readability below.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHO, R_SHO, L_ELB, R_ELB, L_WRI, R_WRI = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNE, R_KNE, L_ANK, R_ANK = 11, 12, 13, 14, 15, 16



@dataclass
class Figure:
    """One stick figure, fully described (so tests can build exact scenes).

    Attributes:
        keypoints: (17, 2) float64 COCO-17 joint positions, image pixels (may lie outside the image).
        head_center: (2,) image pixels; head_radius in pixels.
        limb_width: thickness of arm/leg strokes in pixels (torso and head are filled shapes).
        colors: BGR tuples keyed by part: "left", "right" (limb hues), "torso", "skin", "features".
    """

    keypoints: np.ndarray
    head_center: np.ndarray
    head_radius: float
    limb_width: int
    colors: dict[str, tuple[int, int, int]] = field(default_factory=dict)


@dataclass
class Occluder:
    """A filled shape drawn on top of the figures: ``kind`` "rect" (points = 2 corners) or "poly" / "ellipse"."""

    kind: str
    points: np.ndarray  # rect: (2,2) corners; poly: (N,2); ellipse: (2,2) = center, axes
    color: tuple[int, int, int]
    angle_deg: float = 0.0


# --------------------------------------------------------------------------- sampling


def _hsv_bgr(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(b * 255), int(g * 255), int(r * 255)


def _unit(angle_rad: float) -> np.ndarray:
    return np.array([math.cos(angle_rad), math.sin(angle_rad)])


def _rotate(v: np.ndarray, angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def sample_figure(rng: np.random.Generator, pelvis_xy: Sequence[float], height_px: float) -> Figure:
    """Sample the joint angles of a front-facing kinematic tree rooted at the pelvis.

    Proportions are fractions of ``height_px`` (the standing height). Segment
    lengths are shortened at random to imitate limbs pointing towards the camera.
    """
    hb = float(height_px)
    pelvis = np.asarray(pelvis_xy, dtype=np.float64)
    # Torso direction (pelvis -> neck); image y points down, so upright is -90 deg.
    lean = rng.normal(0.0, 12.0) if rng.random() > 0.12 else rng.uniform(-90.0, 90.0)
    up = _unit(math.radians(-90.0 + lean))
    right_of_image = np.array([-up[1], up[0]])  # the person's LEFT side when facing the viewer
    yaw = rng.uniform(-0.9, 0.9)  # radians; narrows the shoulders and shifts the face
    width_scale = 0.55 + 0.45 * math.cos(yaw)

    neck = pelvis + up * 0.30 * hb * rng.uniform(0.85, 1.05)
    kp = np.zeros((17, 2), dtype=np.float64)
    kp[L_SHO] = neck + right_of_image * 0.11 * hb * width_scale
    kp[R_SHO] = neck - right_of_image * 0.11 * hb * width_scale
    kp[L_HIP] = pelvis + right_of_image * 0.085 * hb * width_scale
    kp[R_HIP] = pelvis - right_of_image * 0.085 * hb * width_scale

    down = -up
    for side, (sho, elb, wri) in ((1.0, (L_SHO, L_ELB, L_WRI)), (-1.0, (R_SHO, R_ELB, R_WRI))):
        # Angle from "hanging down", positive away from the body's midline.
        a = math.radians(rng.uniform(-35.0, 175.0))
        d1 = math.cos(a) * down + math.sin(a) * side * right_of_image
        kp[elb] = kp[sho] + d1 * 0.16 * hb * rng.uniform(0.55, 1.0)
        d2 = _rotate(d1, math.radians(rng.uniform(-150.0, 150.0)))
        kp[wri] = kp[elb] + d2 * 0.15 * hb * rng.uniform(0.55, 1.0)
    for side, (hip, kne, ank) in ((1.0, (L_HIP, L_KNE, L_ANK)), (-1.0, (R_HIP, R_KNE, R_ANK))):
        a = math.radians(rng.uniform(-20.0, 60.0) if rng.random() > 0.15 else rng.uniform(-30.0, 110.0))
        d1 = math.cos(a) * down + math.sin(a) * side * right_of_image
        kp[kne] = kp[hip] + d1 * 0.24 * hb * rng.uniform(0.6, 1.0)
        d2 = _rotate(d1, math.radians(rng.uniform(-45.0, 45.0) if rng.random() > 0.2 else rng.uniform(-120.0, 120.0)))
        kp[ank] = kp[kne] + d2 * 0.24 * hb * rng.uniform(0.6, 1.0)

    # Head: tilted relative to the torso, face features shifted by the yaw.
    head_up = _rotate(up, math.radians(rng.uniform(-25.0, 25.0)))
    head_right = np.array([-head_up[1], head_up[0]])  # the person's left
    hr = 0.07 * hb
    hc = neck + head_up * 0.11 * hb
    sy = math.sin(yaw)
    kp[NOSE] = hc + head_right * (0.55 * sy * hr) - head_up * (0.2 * hr)
    kp[L_EYE] = hc + head_right * ((0.38 + 0.45 * sy) * hr) + head_up * (0.2 * hr)
    kp[R_EYE] = hc + head_right * ((-0.38 + 0.45 * sy) * hr) + head_up * (0.2 * hr)
    kp[L_EAR] = hc + head_right * ((0.95 - 0.25 * max(sy, 0.0)) * hr)
    kp[R_EAR] = hc - head_right * ((0.95 + 0.25 * min(sy, 0.0)) * hr)

    # Per-figure palette: two distinct limb hues (left, right), a torso and a skin colour.
    h_left = rng.random()
    h_right = h_left + rng.uniform(0.25, 0.75)
    colors = {
        "left": _hsv_bgr(h_left, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)),
        "right": _hsv_bgr(h_right, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)),
        "torso": _hsv_bgr(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.9)),
        "skin": _hsv_bgr(rng.uniform(0.03, 0.1), rng.uniform(0.25, 0.6), rng.uniform(0.45, 0.95)),
        "features": _hsv_bgr(0.0, 0.0, rng.uniform(0.0, 0.2)),
    }
    return Figure(
        keypoints=kp,
        head_center=hc,
        head_radius=hr,
        limb_width=max(2, int(round(0.06 * hb * rng.uniform(0.8, 1.2)))),
        colors=colors,
    )


def _sample_background(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """Noise, a two-colour gradient, or a gradient with random clutter shapes: (H, W, 3) uint8 BGR."""
    h, w = hw
    kind = rng.integers(3)
    c0 = rng.uniform(0, 255, size=3)
    if kind == 0:
        img = c0 + rng.normal(0.0, rng.uniform(10, 50), size=(h, w, 3))
    else:
        c1 = rng.uniform(0, 255, size=3)
        t = np.linspace(0.0, 1.0, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0.0, 1.0, h)[:, None, None]
        img = (1 - t) * c0 + t * c1 + rng.normal(0.0, 6.0, size=(h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    if kind == 2:
        for _ in range(int(rng.integers(4, 12))):
            color = tuple(int(c) for c in rng.integers(0, 256, size=3))
            p = rng.uniform([0, 0], [w, h]).astype(np.int32)
            s = int(rng.uniform(0.03, 0.2) * min(h, w))
            shape = rng.integers(3)
            if shape == 0:
                cv2.rectangle(img, tuple(int(v) for v in p), (int(p[0] + s), int(p[1] + s * rng.uniform(0.3, 2))), color, -1)
            elif shape == 1:
                cv2.circle(img, tuple(int(v) for v in p), s // 2 + 1, color, -1)
            else:
                q = p + rng.normal(0, s, size=2).astype(np.int32)
                cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q), color, int(rng.integers(1, 4)))
    return img


def _sample_occluder(rng: np.random.Generator, target_xy: np.ndarray, scale: float) -> Occluder:
    """A filled rectangle, ellipse or polygon of size ~``scale`` px centred near ``target_xy``."""
    color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    c = target_xy + rng.normal(0, 0.15 * scale, size=2)
    kind = ("rect", "ellipse", "poly")[int(rng.integers(3))]
    if kind == "rect":
        half = rng.uniform(0.2, 0.6, size=2) * scale
        return Occluder("rect", np.stack([c - half, c + half]), color)
    if kind == "ellipse":
        axes = rng.uniform(0.2, 0.55, size=2) * scale
        return Occluder("ellipse", np.stack([c, axes]), color, float(rng.uniform(0, 180)))
    n = int(rng.integers(3, 7))
    ang = np.sort(rng.uniform(0, 2 * np.pi, size=n))
    rad = rng.uniform(0.2, 0.6, size=n) * scale
    return Occluder("poly", c + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], axis=1), color)
