"""A synthetic multi-person keypoint dataset in COCO format, drawn with OpenCV.

Each image holds a few articulated stick figures with the COCO-17 skeleton
(torso, head with eyes, ears and nose, two-segment arms and legs) in sampled
poses and sizes, overlapping one another and partly hidden by occluders or cut
by the image border, on a noise, gradient or clutter background.

Left/right, the property that flip pairs must learn, is carried by geometry as
in photographs: every figure faces the viewer (its face is drawn), so the
person's left side is on the image's right when upright. This stays true under
the horizontal-flip augmentation of training (which swaps the labels), whereas a
fixed colour-per-side code would be contradicted by every flipped sample. Each
figure still paints its left and right limbs in two distinct hues (chosen per
figure) so a viewer - and the network - can follow a limb through a crossing.

Visibility flags are computed from what is drawn: a per-pixel owner map records
which figure (or occluder) painted each pixel last. A keypoint is ``v=2`` when
its pixel belongs to its own figure, ``v=1`` when a later figure or an occluder
covers it, and ``v=0`` with ``x = y = 0`` when it lies outside the image (COCO's
convention). A figure's own parts count as its own (as COCO annotators mostly
label self-overlap visible); the drawing order keeps that honest: joint discs go
over the limbs, and hands, shoes and face over everything else of the figure. Boxes are the figure's full drawn extent (before occlusion by
others) clipped to the image; ``area`` is the pixel count of that mask, the
quantity COCO's OKS uses as the squared object scale.

Everything is deterministic per seed: image ``i`` of seed ``s`` is drawn from
``numpy.random.default_rng([s, i])`` alone, so it does not depend on how many
images are generated. This module imports no torch.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from hsrpose.data.keypoints import COCO_KEYPOINTS, KeypointInfo
from hsrpose.utils.io import atomic_write_bytes, atomic_write_json

__all__ = [
    "SynthConfig",
    "Figure",
    "Occluder",
    "sample_figure",
    "render_scene",
    "generate_image",
    "generate_dataset",
    "ANNOTATION_FILE",
    "IMAGE_DIR",
]

ANNOTATION_FILE = "annotations/person_keypoints.json"
IMAGE_DIR = "images"

# Owner-map values: 0 background, 1..254 figure index + 1, 255 an occluder.
_BACKGROUND = 0
_OCCLUDER = 255
_MAX_FIGURES = 254

# COCO-17 indices, named for readability below.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHO, R_SHO, L_ELB, R_ELB, L_WRI, R_WRI = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNE, R_KNE, L_ANK, R_ANK = 11, 12, 13, 14, 15, 16


@dataclass(frozen=True)
class SynthConfig:
    """What the generator samples from.

    Attributes:
        image_hw: (height, width) of every image in pixels.
        people: inclusive (min, max) number of figures per image.
        height_frac: range of a figure's standing height as a fraction of the image height.
        occluder_prob: probability that an image gets occluders (1-2, each placed over a figure).
        jpeg_quality: quality of the written JPEG files.
    """

    image_hw: tuple[int, int] = (240, 320)
    people: tuple[int, int] = (1, 4)
    height_frac: tuple[float, float] = (0.4, 0.95)
    occluder_prob: float = 0.35
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        h, w = self.image_hw
        if h < 32 or w < 32:
            raise ValueError(f"SynthConfig.image_hw {self.image_hw}: both sides must be >= 32 pixels")
        lo, hi = self.people
        if not 1 <= lo <= hi <= _MAX_FIGURES:
            raise ValueError(f"SynthConfig.people {self.people}: need 1 <= min <= max <= {_MAX_FIGURES}")
        a, b = self.height_frac
        if not 0 < a <= b:
            raise ValueError(f"SynthConfig.height_frac {self.height_frac}: need 0 < min <= max")


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


# --------------------------------------------------------------------------- drawing


def _pt(p: np.ndarray) -> tuple[int, int]:
    # cv2 drawing takes integer pixels; 4 bits of sub-pixel precision would need
    # shift= everywhere, and one pixel is far below the keypoint sigmas used here.
    return int(round(float(p[0]))), int(round(float(p[1])))


def _shade(color: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * f))) for c in color)  # type: ignore[return-value]


def _draw_figure_on(canvases: Iterable[tuple[np.ndarray, Any]], fig: Figure) -> None:
    """Draw ``fig`` on each ``(array, paint)`` pair; ``paint(part_color)`` gives that array's value.

    The same primitives paint the colour image, the owner map and the figure's own
    mask, so the three agree (up to the anti-aliased fringe of limbs in the colour image).
    """
    kp = fig.keypoints
    lw = fig.limb_width
    jr = max(2, lw // 2 + 1)  # joint disc radius: the keypoint's own pixel is always painted
    torso = np.array([_pt(kp[i]) for i in (L_SHO, R_SHO, R_HIP, L_HIP)], dtype=np.int32)
    chains = ((L_HIP, L_KNE, L_ANK, "left"), (R_HIP, R_KNE, R_ANK, "right"),
              (L_SHO, L_ELB, L_WRI, "left"), (R_SHO, R_ELB, R_WRI, "right"))  # fmt: skip
    hr = max(2, int(round(fig.head_radius)))
    fr = max(1, int(round(0.2 * fig.head_radius)))
    for img, paint in canvases:
        line_type = cv2.LINE_AA if img.ndim == 3 else cv2.LINE_8
        cv2.fillConvexPoly(img, torso, paint(fig.colors["torso"]))
        cv2.polylines(img, [torso], True, paint(_shade(fig.colors["torso"], 0.6)), max(1, lw // 2))
        # Limbs (legs, then arms in front), upper segments lighter than lower ones; then the
        # joint discs on top, so that shoulders, elbows, hips and knees stay visible.
        for a, b, e, side in chains:
            c = fig.colors[side]
            cv2.line(img, _pt(kp[a]), _pt(kp[b]), paint(c), lw, line_type)
            cv2.line(img, _pt(kp[b]), _pt(kp[e]), paint(_shade(c, 0.7)), lw, line_type)
        for a, b, _, side in chains:
            for j in (a, b):
                cv2.circle(img, _pt(kp[j]), jr, paint(_shade(fig.colors[side], 0.45)), -1)
        # Head with ears, eyes and nose.
        cv2.line(img, _pt((kp[L_SHO] + kp[R_SHO]) / 2), _pt(fig.head_center), paint(fig.colors["skin"]), max(2, lw))
        cv2.circle(img, _pt(fig.head_center), hr, paint(fig.colors["skin"]), -1)
        for j in (L_EAR, R_EAR):
            cv2.circle(img, _pt(kp[j]), max(2, int(round(0.25 * fig.head_radius))), paint(_shade(fig.colors["skin"], 0.7)), -1)
        for j in (L_EYE, R_EYE):  # white eye, dark pupil: visible at small crop sizes
            cv2.circle(img, _pt(kp[j]), fr + 1, paint((255, 255, 255)), -1)
            cv2.circle(img, _pt(kp[j]), max(1, fr // 2), paint(fig.colors["features"]), -1)
        cv2.circle(img, _pt(kp[NOSE]), fr, paint((40, 40, 200)), -1)
        # Hands (skin) and shoes (dark) last: the ends of the limbs, in front, as a hand
        # raised before the face is in a photograph.
        for _, _, e, _ in chains:
            end_color = fig.colors["skin"] if e in (L_WRI, R_WRI) else fig.colors["features"]
            cv2.circle(img, _pt(kp[e]), jr + 1, paint(end_color), -1)
            cv2.circle(img, _pt(kp[e]), jr + 1, paint(_shade(end_color, 0.6)), 1)


def _draw_occluder_on(img: np.ndarray, occ: Occluder, color: Any) -> None:
    if occ.kind == "rect":
        cv2.rectangle(img, _pt(occ.points[0]), _pt(occ.points[1]), color, -1)
    elif occ.kind == "ellipse":
        axes = (max(1, int(round(occ.points[1][0]))), max(1, int(round(occ.points[1][1]))))
        cv2.ellipse(img, _pt(occ.points[0]), axes, occ.angle_deg, 0, 360, color, -1)
    elif occ.kind == "poly":
        cv2.fillPoly(img, [np.round(occ.points).astype(np.int32)], color)
    else:
        raise ValueError(f"Occluder.kind {occ.kind!r}: expected 'rect', 'ellipse' or 'poly'")


def render_scene(
    background: np.ndarray, figures: Sequence[Figure], occluders: Sequence[Occluder] = ()
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Draw ``figures`` in order (later ones in front), then ``occluders`` on top.

    Args:
        background: (H, W, 3) uint8 BGR; not modified.
    Returns:
        image (H, W, 3) uint8 BGR, and per figure a dict with ``keypoints`` (17, 3)
        float64 image px + COCO visibility, ``num_keypoints``, ``bbox`` xywh,
        ``area`` (pixels of the figure's own mask inside the image).
    """
    if len(figures) > _MAX_FIGURES:
        raise ValueError(f"render_scene: at most {_MAX_FIGURES} figures per image, got {len(figures)}")
    img = background.copy()
    h, w = img.shape[:2]
    owner = np.zeros((h, w), dtype=np.uint8)
    masks = []
    for i, fig in enumerate(figures):
        mask = np.zeros((h, w), dtype=np.uint8)
        _draw_figure_on(
            [(img, lambda c: c), (owner, lambda c, v=i + 1: v), (mask, lambda c: 1)], fig
        )
        masks.append(mask)
    for occ in occluders:
        _draw_occluder_on(img, occ, occ.color)
        _draw_occluder_on(owner, occ, _OCCLUDER)

    records = []
    for i, (fig, mask) in enumerate(zip(figures, masks)):
        kps = np.zeros((len(fig.keypoints), 3), dtype=np.float64)
        for j, (x, y) in enumerate(fig.keypoints):
            xi, yi = int(round(x)), int(round(y))
            if not (0 <= xi < w and 0 <= yi < h):
                continue  # outside the image: v=0, x=y=0 (COCO)
            kps[j] = (x, y, 2.0 if owner[yi, xi] == i + 1 else 1.0)
        ys, xs = np.nonzero(mask)
        if len(xs):
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            bbox = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
        else:
            bbox = [0.0, 0.0, 0.0, 0.0]
        records.append({
            "keypoints": kps,
            "num_keypoints": int((kps[:, 2] > 0).sum()),
            "bbox": bbox,
            "area": float(len(xs)),
        })  # fmt: skip
    return img, records


def generate_image(seed: int, index: int, cfg: SynthConfig = SynthConfig()) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Image ``index`` of dataset ``seed``: (H, W, 3) uint8 BGR and its per-figure records (see :func:`render_scene`).

    Figures with no keypoint inside the image are dropped.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    h, w = cfg.image_hw
    bg = _sample_background(rng, (h, w))
    n = int(rng.integers(cfg.people[0], cfg.people[1] + 1))
    figures = []
    for _ in range(n):
        hb = rng.uniform(*cfg.height_frac) * h
        # Pelvis roughly in the middle band; some figures get cut by the border.
        pelvis = (rng.uniform(0.05, 0.95) * w, rng.uniform(0.35, 0.75) * h + rng.normal(0, 0.08) * h)
        figures.append(sample_figure(rng, pelvis, hb))
    occluders = []
    if figures and rng.random() < cfg.occluder_prob:
        for _ in range(int(rng.integers(1, 3))):
            fig = figures[int(rng.integers(len(figures)))]
            joint = fig.keypoints[int(rng.integers(len(fig.keypoints)))]
            occluders.append(_sample_occluder(rng, joint, 0.35 * np.ptp(fig.keypoints[:, 1]) + 8))
    img, records = render_scene(bg, figures, occluders)
    return img, [r for r in records if r["num_keypoints"] > 0]


def _coco_categories(info: KeypointInfo) -> list[dict[str, Any]]:
    return [{
        "id": 1, "name": "person", "supercategory": "person",
        "keypoints": list(info.names),
        "skeleton": [[a + 1, b + 1] for a, b in info.skeleton],  # COCO files are 1-based
    }]  # fmt: skip


def generate_dataset(
    out_dir: str | Path,
    num_images: int,
    seed: int = 0,
    cfg: SynthConfig = SynthConfig(),
    progress: bool = False,
) -> Path:
    """Write ``out_dir/images/*.jpg`` and ``out_dir/annotations/person_keypoints.json``.

    Returns the annotation file's path. Image ids are 1..N, annotation ids 1..M.
    """
    if num_images < 1:
        raise ValueError(f"generate_dataset: num_images must be >= 1, got {num_images}")
    out = Path(out_dir)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    h, w = cfg.image_hw
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    indices: Iterable[int] = range(num_images)
    if progress:
        from hsrpose.utils.progress import progress  # a bar on a terminal, lines in logs

        indices = progress(indices, desc=f"synth {out.name}", unit="img")
    for i in indices:
        img, records = generate_image(seed, i, cfg)
        file_name = f"{i:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(cfg.jpeg_quality)])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {file_name}")
        atomic_write_bytes(out / IMAGE_DIR / file_name, buf.tobytes())
        image_id = i + 1
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for r in records:
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 1,
                "keypoints": [round(float(v), 2) for v in r["keypoints"].reshape(-1)],
                "num_keypoints": r["num_keypoints"],
                "bbox": r["bbox"],
                "area": r["area"],
                "iscrowd": 0,
            })  # fmt: skip
    ann = {
        "info": {"description": "hsrpose synthetic multi-person keypoints", "seed": int(seed), "image_hw": [h, w]},
        "images": images,
        "annotations": annotations,
        "categories": _coco_categories(COCO_KEYPOINTS),
    }
    ann_file = out / ANNOTATION_FILE
    atomic_write_json(ann_file, ann)
    return ann_file
