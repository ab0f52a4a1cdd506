"""Drawing poses: left/right colours from the flip pairs, thresholds, odd images, size scaling."""

from __future__ import annotations

import numpy as np

from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.inference.pipeline import PoseInstance
from hsrpose.vis import LEFT_COLOR, MIDDLE_COLOR, RIGHT_COLOR, draw_poses, side_of_keypoints

LS, RS, LE, RE, NOSE = 5, 6, 7, 8, 0  # COCO: left/right shoulder, left/right elbow, nose


def _instance(points: dict[int, tuple[float, float]], score: float = 0.9, box=(0, 0, 10, 10)) -> PoseInstance:  # type: ignore[no-untyped-def]
    kpts = np.zeros((17, 2), np.float32)
    scores = np.zeros(17, np.float32)
    for j, p in points.items():
        kpts[j] = p
        scores[j] = 0.9
    return PoseInstance(np.array(box, np.float32), 1.0, kpts, scores, score)


def _has_color(image: np.ndarray, xy: tuple[int, int], color: tuple[int, int, int]) -> bool:
    return bool(np.abs(image[xy[1], xy[0]].astype(int) - np.array(color)).max() <= 10)


def test_sides_from_flip_pairs() -> None:
    sides = side_of_keypoints(COCO_KEYPOINTS)
    assert sides[NOSE] == "middle" and sides[LS] == "left" and sides[RS] == "right" and sides[16] == "right"


def test_left_right_colours_and_thresholds() -> None:
    image = np.full((200, 300, 3), 30, np.uint8)
    inst = _instance({LS: (100, 50), LE: (100, 150), RS: (200, 50), RE: (200, 150), NOSE: (150, 20)})
    inst.keypoint_scores[NOSE] = 0.1  # below kpt_thr: not drawn
    out = draw_poses(image, [inst], COCO_KEYPOINTS, kpt_thr=0.3, draw_boxes=False, thickness=3)
    assert out.shape == image.shape and out is not image
    assert np.all(image == 30)  # the input is not modified
    assert _has_color(out, (100, 100), LEFT_COLOR)  # middle of the left upper arm
    assert _has_color(out, (200, 100), RIGHT_COLOR)
    assert _has_color(out, (150, 50), MIDDLE_COLOR)  # shoulder line: left to right
    assert np.all(out[15:26, 145:156] == 30)  # the low-score nose
    assert np.all(draw_poses(image, [inst], COCO_KEYPOINTS, box_thr=0.95) == 30)  # instance below box_thr
    boxed = draw_poses(image, [_instance({}, box=(20, 30, 100, 120))], COCO_KEYPOINTS)
    assert np.any(boxed[30, 40:100] != 30)  # the box's top edge


def test_gray_bgra_and_size_scaling() -> None:
    inst = _instance({LS: (0.1, 0.2), LE: (0.1, 0.8)}, box=(0.05, 0.1, 0.2, 0.8))
    assert draw_poses(np.zeros((60, 80), np.uint8), [inst], COCO_KEYPOINTS).shape == (60, 80, 3)
    assert draw_poses(np.zeros((60, 80, 4), np.uint8), [inst], COCO_KEYPOINTS).shape == (60, 80, 3)

    def limb_width(size: int) -> int:
        """Width in px of the drawn left upper arm at mid-height on a size x size image."""
        s = float(size)
        scaled = _instance({LS: (0.3 * s, 0.2 * s), LE: (0.3 * s, 0.8 * s)}, box=(0, 0, 1, 1))
        out = draw_poses(np.zeros((size, size, 3), np.uint8), [scaled], COCO_KEYPOINTS, draw_boxes=False)
        return int((out[size // 2].max(axis=1) > 0).sum())

    small, large = limb_width(200), limb_width(4000)
    assert small >= 1 and large >= 4 * small  # readable on both: lines grow with the image (12 px vs 1 px + anti-aliasing)
