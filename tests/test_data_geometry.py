"""Crop geometry (data/geometry.py) and the augmentation's crop draws (data/transforms.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from hsrpose.data.coco import load_coco
from hsrpose.data.config import AugmentConfig
from hsrpose.data.geometry import apply_affine, box_to_center_size, crop_affine, invert_affine, warp_crop
from hsrpose.data.transforms import CropParams, crop_matrix, keypoints_to_crop, sample_crop_params

OUT_HW = (256, 192)


def _reference_affine(center: np.ndarray, size_wh: np.ndarray, rot: float, output_hw: tuple[int, int]) -> np.ndarray:
    """SimpleBaseline's get_affine_transform (pixel_std=200 units), in float64."""
    scale = np.asarray(size_wh, dtype=np.float64) / 200.0
    scale_tmp = scale * 200.0
    src_w = scale_tmp[0]
    dst_w, dst_h = output_hw[1], output_hw[0]
    rot_rad = np.pi * rot / 180
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    p = (0.0, src_w * -0.5)
    src_dir = np.array([p[0] * cs - p[1] * sn, p[0] * sn + p[1] * cs])
    dst_dir = np.array([0.0, dst_w * -0.5])

    def third(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = a - b
        return b + np.array([-d[1], d[0]])

    src = np.zeros((3, 2))
    dst = np.zeros((3, 2))
    src[0], src[1] = center, center + src_dir
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + dst_dir
    src[2], dst[2] = third(src[0], src[1]), third(dst[0], dst[1])
    return cv2.getAffineTransform(src.astype(np.float32), dst.astype(np.float32))


def test_crop_affine_matches_simplebaseline() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        c = rng.uniform(0, 600, 2)
        s = rng.uniform(20, 500) * np.array([0.75, 1.0])
        r = rng.uniform(-80, 80)
        ours = crop_affine(c, s, r, OUT_HW)
        ref = _reference_affine(c, s, r, OUT_HW)
        pts = rng.uniform(0, 600, (10, 2))
        # the reference works in float32: agreement to its precision
        np.testing.assert_allclose(apply_affine(pts, ours), apply_affine(pts, ref), rtol=2e-5, atol=5e-3)
        assert apply_affine(c, ours) == pytest.approx([96.0, 128.0])


def test_box_to_center_size_reference() -> None:
    c, s = box_to_center_size([10, 20, 30, 100])  # tall: width grows to 75, then x1.25
    np.testing.assert_allclose(c, [25, 70])
    np.testing.assert_allclose(s, [93.75, 125.0])
    c, s = box_to_center_size([0, 0, 300, 100])  # wide: height grows to 400
    np.testing.assert_allclose(s, [375.0, 500.0])


def test_affine_then_inverse_is_identity() -> None:
    rng = np.random.default_rng(1)
    for flip in (False, True):
        for _ in range(20):
            params = CropParams(rng.uniform(0, 640, 2), rng.uniform(10, 400) * np.array([0.75, 1]), rng.uniform(-90, 90), flip)
            m = crop_matrix(params, 640, OUT_HW)
            m_inv = invert_affine(m)
            pts = rng.uniform(-100, 700, (50, 2))
            np.testing.assert_allclose(apply_affine(apply_affine(pts, m), m_inv), pts, atol=1e-9)
            crop_pts = rng.uniform(0, 256, (50, 2))
            np.testing.assert_allclose(apply_affine(apply_affine(crop_pts, m_inv), m), crop_pts, atol=1e-9)
            # batched form agrees with the single form
            both = apply_affine(np.stack([pts, pts]), np.stack([m, m]))
            np.testing.assert_allclose(both[1], apply_affine(pts, m), atol=1e-9)


def test_flip_folded_into_affine_equals_flipping_the_image(coco_mini: Path) -> None:
    image = cv2.imread(str(coco_mini / "train2017" / "000000535506.jpg"))
    h, w = image.shape[:2]
    c, s = np.array([225.0, 380.0]), np.array([300.0, 400.0])
    for rot in (0.0, 30.0):
        folded = warp_crop(image, crop_matrix(CropParams(c, s, rot, True), w, OUT_HW), OUT_HW)
        # the reference: flip the image, mirror the center, crop
        c_ref = np.array([w - 1 - c[0], c[1]])
        ref = warp_crop(image[:, ::-1].copy(), crop_affine(c_ref, s, rot, OUT_HW), OUT_HW)
        diff = np.abs(folded.astype(int) - ref.astype(int))
        # OpenCV's fixed-point bilinear weights (1/32 px in OpenCV 4) leave a few grey levels
        # on sharp edges when rotated; a centre one pixel off gives mean ~6 and max > 150.
        assert diff.max() <= 8 and diff.mean() < 0.05


def test_rotation_keeps_keypoints_inside_the_crop() -> None:
    rng = np.random.default_rng(2)
    c, s = np.array([300.0, 200.0]), np.array([150.0, 200.0])
    # points within the disc of diameter = crop width stay inside the crop at any angle,
    # at the same distance from the crop centre (times the scale).
    ang = rng.uniform(0, 2 * np.pi, 200)
    rad = rng.uniform(0, 0.49 * s[0], 200)
    pts = c + np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
    scale = OUT_HW[1] / s[0]
    for rot in (-80.0, -45.0, 17.0, 90.0):
        crop = apply_affine(pts, crop_affine(c, s, rot, OUT_HW))
        assert np.all((crop >= 0) & (crop <= [OUT_HW[1] - 1, OUT_HW[0] - 1]))
        np.testing.assert_allclose(np.linalg.norm(crop - [96, 128], axis=1), rad * scale, rtol=1e-9)
    # the rotation turns content counter-clockwise in the crop: a point right of the centre
    # goes up (smaller y) for a positive angle
    right = apply_affine(c + [50.0, 0.0], crop_affine(c, s, 30.0, OUT_HW))
    assert right[1] < 128 and right[0] > 96


def test_augmented_rotation_draws_are_within_limits() -> None:
    cfg = AugmentConfig()
    rots, scales, flips = [], [], []
    for i in range(400):
        p = sample_crop_params(np.zeros(2), np.array([75.0, 100.0]), np.zeros((17, 3)), cfg, 0.75, np.random.default_rng(i))
        rots.append(p.rotation)
        scales.append(p.size_wh[0] / 75.0)
        flips.append(p.flip)
    rots_a, scales_a = np.array(rots), np.array(scales)
    assert np.all(np.abs(rots_a) <= 2 * cfg.rotation_factor)
    assert 0.3 < np.mean(rots_a != 0) < 0.9  # rotation_prob 0.6
    assert np.all((scales_a >= 1 - cfg.scale_factor - 1e-9) & (scales_a <= 1 + cfg.scale_factor + 1e-9))
    assert 0.35 < np.mean(flips) < 0.65


def test_half_body_keeps_the_chosen_half_inside(coco_mini: Path) -> None:
    res = load_coco(coco_mini / "annotations" / "person_keypoints_train2017.json")
    cfg = AugmentConfig(half_body=True, half_body_prob=1.0, scale_factor=0.0, rotation_prob=0.0, flip=False)
    upper = np.zeros(17, bool)
    upper[list(cfg.upper_body_ids)] = True
    chosen_in, other_in = [], []
    for inst in res.instances:
        kp = inst.keypoints
        if np.sum(kp[:, 2] > 0) <= cfg.half_body_min_joints:
            continue
        center, size = box_to_center_size(inst.box_xywh, 0.75, 1.25)
        lab = kp[:, 2] > 0
        for seed in range(4):
            p = sample_crop_params(center, size, kp, cfg, 0.75, np.random.default_rng(seed))
            assert p.half_body
            # HRNet's box: centre = mean of the chosen joints, extent fixed to 3:4, x1.5
            chosen = None
            for part in (lab & upper, lab & ~upper):
                pts = kp[part, :2]
                if len(pts) < 2:
                    continue
                w, h = np.ptp(pts, axis=0)
                w, h = (w, w / 0.75) if w > 0.75 * h else (h * 0.75, h)
                if np.allclose(p.center, pts.mean(axis=0)) and np.allclose(p.size_wh, np.array([w, h]) * 1.5):
                    chosen = part
            assert chosen is not None, f"annotation {inst.ann_id}: crop is not HRNet's half-body box"
            m = crop_matrix(p, 10_000, OUT_HW)
            np.testing.assert_allclose(apply_affine(p.center, m), [96, 128], atol=1e-9)
            crop = keypoints_to_crop(kp, m, False, list(range(17)))
            inside = (crop[:, 0] >= 0) & (crop[:, 0] <= 191) & (crop[:, 1] >= 0) & (crop[:, 1] <= 255)
            chosen_in.extend(inside[chosen])
            other_in.extend(inside[lab & ~chosen])
    assert len(chosen_in) >= 100
    # Centred on the joints' mean (not their box), a far joint can fall just outside:
    # the chosen half is (nearly) all inside, the other half mostly not.
    assert np.mean(chosen_in) > 0.95
    assert np.mean(other_in) < 0.5
