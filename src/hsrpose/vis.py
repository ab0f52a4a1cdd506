"""Drawing poses on images: skeleton with left/right colours, keypoints, boxes and scores.

Sides come from the keypoint set: the first index of each flip pair is the
person's left, the second the right, the rest (nose, ...) the middle. Line
widths, radii and text sizes scale with the image so that drawings are readable
on a 200 px thumbnail and on a 4000 px photo alike. No torch import.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from hsrpose.data.keypoints import KeypointInfo

__all__ = ["draw_poses", "LEFT_COLOR", "RIGHT_COLOR", "MIDDLE_COLOR", "BOX_COLOR", "side_of_keypoints"]

# BGR. Orange = the person's left, blue = the person's right (mmpose / OpenPose habit), green = middle.
LEFT_COLOR: tuple[int, int, int] = (0, 140, 255)
RIGHT_COLOR: tuple[int, int, int] = (255, 128, 0)
MIDDLE_COLOR: tuple[int, int, int] = (0, 200, 0)
BOX_COLOR: tuple[int, int, int] = (60, 220, 255)


def side_of_keypoints(keypoint_info: KeypointInfo) -> list[str]:
    """'left', 'right' or 'middle' for each keypoint, from the flip pairs."""
    sides = ["middle"] * keypoint_info.num_keypoints
    for a, b in keypoint_info.flip_pairs:
        sides[a], sides[b] = "left", "right"
    return sides


def _color(side: str) -> tuple[int, int, int]:
    return {"left": LEFT_COLOR, "right": RIGHT_COLOR}.get(side, MIDDLE_COLOR)


def _field(inst: Any, name: str) -> Any:
    return inst[name] if isinstance(inst, dict) else getattr(inst, name)


def draw_poses(
    image: np.ndarray,
    instances: Sequence[Any],
    keypoint_info: KeypointInfo,
    kpt_thr: float = 0.3,
    box_thr: float = 0.0,
    draw_boxes: bool = True,
    draw_scores: bool = True,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of ``image`` (BGR uint8; grayscale or BGRA are converted) with the poses drawn.

    Args:
        instances: :class:`~hsrpose.inference.pipeline.PoseInstance` objects (or dicts with
            ``keypoints`` (K,2) image px, ``keypoint_scores`` (K,), ``box_xywh``, ``score``).
        kpt_thr: keypoints with a score below this are not drawn, nor limbs touching them.
        box_thr: instances with an instance score below this are not drawn at all.
        thickness: limb width in px; default scales with the image size.
    """
    canvas = np.asarray(image)
    if canvas.ndim == 2:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    elif canvas.ndim == 3 and canvas.shape[2] == 4:
        canvas = cv2.cvtColor(canvas, cv2.COLOR_BGRA2BGR)
    else:
        canvas = canvas.copy()
    h, w = canvas.shape[:2]
    # ~2 px lines on a 640 px image, 1 px minimum; radius a bit larger than the line.
    scale = max(h, w) / 640.0
    line = int(thickness) if thickness is not None else max(1, round(2 * scale))
    radius = max(2, round(line * 1.6))
    font_scale = max(0.3, 0.45 * scale)
    font_thick = max(1, round(scale))
    sides = side_of_keypoints(keypoint_info)
    edge_sides = [sides[a] if sides[a] == sides[b] else "middle" for a, b in keypoint_info.skeleton]

    for inst in sorted(instances, key=lambda i: float(_field(i, "score"))):
        score = float(_field(inst, "score"))
        if score < box_thr:
            continue
        kpts = np.asarray(_field(inst, "keypoints"), dtype=np.float64).reshape(-1, 2)
        kscores = np.asarray(_field(inst, "keypoint_scores"), dtype=np.float64).reshape(-1)
        ok = (kscores >= kpt_thr) & np.isfinite(kpts).all(axis=1)
        if draw_boxes:
            x, y, bw, bh = (float(v) for v in np.asarray(_field(inst, "box_xywh")).reshape(4))
            p0, p1 = (round(x), round(y)), (round(x + bw), round(y + bh))
            cv2.rectangle(canvas, p0, p1, BOX_COLOR, max(1, line // 2), cv2.LINE_AA)
            if draw_scores:
                text = f"{score:.2f}"
                (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thick)
                ty = p0[1] - base if p0[1] - th - base >= 0 else p0[1] + th + base
                tx = min(max(0, p0[0]), max(0, w - tw))
                cv2.rectangle(canvas, (tx, ty - th - base // 2), (tx + tw, ty + base // 2), BOX_COLOR, -1)
                cv2.putText(canvas, text, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), font_thick, cv2.LINE_AA)
        for (a, b), side in zip(keypoint_info.skeleton, edge_sides):
            if ok[a] and ok[b]:
                pa = (round(kpts[a, 0]), round(kpts[a, 1]))
                pb = (round(kpts[b, 0]), round(kpts[b, 1]))
                cv2.line(canvas, pa, pb, _color(side), line, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            p = (round(kpts[j, 0]), round(kpts[j, 1]))
            cv2.circle(canvas, p, radius, _color(sides[j]), -1, cv2.LINE_AA)
            cv2.circle(canvas, p, radius, (255, 255, 255), max(1, line // 3), cv2.LINE_AA)
    return canvas
