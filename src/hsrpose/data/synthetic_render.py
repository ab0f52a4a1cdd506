"""Drawing of the synthetic scenes and their COCO records (keypoints with visibility, box, area).

Visibility flags are computed from what is drawn: a per-pixel owner map records
which figure (or occluder) painted each pixel last. A keypoint is ``v=2`` when
its pixel belongs to its own figure, ``v=1`` when a later figure or an occluder
covers it, and ``v=0`` with ``x = y = 0`` when it lies outside the image (COCO's
convention). A figure's own parts count as its own (as COCO annotators mostly
label self-overlap visible); the drawing order keeps that honest: joint discs go
over the limbs, and hands, shoes and face over everything else of the figure. Boxes are the figure's full drawn extent (before occlusion by
others) clipped to the image; ``area`` is the pixel count of that mask, the
quantity COCO's OKS uses as the squared object scale.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from hsrpose.data.synthetic_figures import (
    L_ANK, L_EAR, L_ELB, L_EYE, L_HIP, L_KNE, L_SHO, L_WRI, NOSE,
    R_ANK, R_EAR, R_ELB, R_EYE, R_HIP, R_KNE, R_SHO, R_WRI,
    Figure, Occluder,
)  # fmt: skip

__all__ = ["render_scene"]

# Owner-map values: 0 background, 1..254 figure index + 1, 255 an occluder.
_BACKGROUND = 0
_OCCLUDER = 255
_MAX_FIGURES = 254

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
