"""OKS, OKS-NMS, soft-OKS-NMS and rescoring against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hsrpose.evaluation.nms import batched_oks_nms, oks_iou, oks_nms, soft_oks_nms
from hsrpose.evaluation.rescoring import rescore

# Two keypoints with sigma 0.5: (2 sigma)^2 = 1, so e = d^2 / area_mean / 2.
SIG2 = np.array([0.5, 0.5])


def kp(*xys: tuple[float, float, float]) -> np.ndarray:
    return np.array(xys, dtype=np.float64)


def test_oks_iou_hand_computed() -> None:
    g = kp((0, 0, 1), (10, 0, 1))
    d = np.stack([kp((1, 0, 1), (10, 0, 1)), kp((0, 0, 1), (10, 3, 1)), g])
    # areas 50 and 150 -> mean 100; d^2 = 1 -> e = 1/100/2; d^2 = 9 -> e = 9/200.
    got = oks_iou(g, d, 50.0, np.array([150.0, 150.0, 150.0]), sigmas=SIG2)
    want = [(math.exp(-0.005) + 1) / 2, (1 + math.exp(-0.045)) / 2, 1.0]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_oks_iou_coco_sigmas_default() -> None:
    g = np.zeros((17, 3))
    d = g.copy()[None]
    d[0, 5, 0] = 2.0  # left shoulder moved 2 px; sigma .079
    got = oks_iou(g, d, 400.0, np.array([400.0]))
    e = 4.0 / (2 * 0.079) ** 2 / 400.0 / 2
    np.testing.assert_allclose(got, [(16 + math.exp(-e)) / 17], rtol=1e-12)


def test_oks_iou_in_vis_thr_uses_both_instances() -> None:
    g = kp((0, 0, 0.9), (10, 0, 0.1))  # second keypoint of g is not confident
    d = kp((1, 0, 0.9), (50, 50, 0.9))[None]
    # Only keypoint 0 counts (score > 0.2 in both): OKS = exp(-1/100/2).
    np.testing.assert_allclose(oks_iou(g, d, 100, np.array([100.0]), SIG2, in_vis_thr=0.2), [math.exp(-0.005)])
    # Without the threshold both count, and the far second keypoint pulls the OKS down.
    e2 = (40**2 + 50**2) / 100 / 2
    np.testing.assert_allclose(oks_iou(g, d, 100, np.array([100.0]), SIG2), [(math.exp(-0.005) + math.exp(-e2)) / 2])
    # No keypoint above the threshold in both -> 0.
    d0 = kp((0, 0, 0.1), (10, 0, 0.1))[None]
    assert oks_iou(g, d0, 100, np.array([100.0]), SIG2, in_vis_thr=0.2)[0] == 0.0


def test_oks_nms_hand_computed() -> None:
    a = kp((0, 0, 1), (10, 0, 1))
    b = kp((1, 0, 1), (10, 0, 1))  # OKS(a, b) = (exp(-0.005) + 1) / 2 = 0.99750...
    c = kp((100, 100, 1), (110, 100, 1))  # far from both: OKS ~ 0
    kps = np.stack([c, b, a])
    scores = np.array([0.7, 0.8, 0.9])
    areas = np.full(3, 100.0)
    assert oks_nms(kps, scores, areas, thr=0.9, sigmas=SIG2).tolist() == [2, 0]
    oks_ab = (math.exp(-0.005) + 1) / 2
    # Suppression is OKS > thr: at thr == OKS the instance stays, just below it goes.
    assert oks_nms(kps, scores, areas, thr=oks_ab, sigmas=SIG2).tolist() == [2, 1, 0]
    assert oks_nms(kps, scores, areas, thr=oks_ab - 1e-9, sigmas=SIG2).tolist() == [2, 0]
    # Larger areas make the same pixel offset matter less.
    assert oks_nms(kps, scores, np.full(3, 1e-3), thr=0.9, sigmas=SIG2).tolist() == [2, 1, 0]


def test_oks_nms_is_greedy_chain() -> None:
    # a-b close, b-c close, a-c not: a kept, b dropped by a, c kept (b never suppresses).
    a = kp((0, 0, 1), (0, 10, 1))
    b = kp((3, 0, 1), (3, 10, 1))
    c = kp((6, 0, 1), (6, 10, 1))
    kps, scores, areas = np.stack([a, b, c]), np.array([0.9, 0.8, 0.7]), np.full(3, 100.0)
    o_ab = oks_iou(a, b[None], 100, np.array([100.0]), SIG2)[0]
    o_ac = oks_iou(a, c[None], 100, np.array([100.0]), SIG2)[0]
    np.testing.assert_allclose([o_ab, o_ac], [math.exp(-9 / 200), math.exp(-36 / 200)])
    assert oks_nms(kps, scores, areas, thr=0.9, sigmas=SIG2).tolist() == [0, 2]
    assert oks_nms(np.zeros((0, 2, 3)), np.zeros(0), np.zeros(0)).tolist() == []


def test_soft_oks_nms_hand_computed() -> None:
    a = kp((0, 0, 1), (10, 0, 1))
    b = kp((1, 0, 1), (10, 0, 1))
    c = kp((100, 100, 1), (110, 100, 1))
    kps, scores, areas = np.stack([a, b, c]), np.array([0.9, 0.8, 0.7]), np.full(3, 100.0)
    # After keeping a: b -> 0.8 * exp(-oks_ab^2 / 0.9) = 0.265 < 0.7, so c comes before b.
    oks_ab = (math.exp(-0.005) + 1) / 2
    assert 0.8 * math.exp(-(oks_ab**2) / 0.9) < 0.7
    assert soft_oks_nms(kps, scores, areas, thr=0.9, sigmas=SIG2).tolist() == [0, 2, 1]
    assert soft_oks_nms(kps, scores, areas, thr=0.9, sigmas=SIG2, max_dets=2).tolist() == [0, 2]
    # With a weak decay (huge thr) b keeps its rank.
    assert soft_oks_nms(kps, scores, areas, thr=100.0, sigmas=SIG2).tolist() == [0, 1, 2]
    # Greedy NMS would drop b altogether.
    assert oks_nms(kps, scores, areas, thr=0.9, sigmas=SIG2).tolist() == [0, 2]


def test_rescore_hand_computed() -> None:
    box = np.array([0.8, 0.5, 1.0])
    kpts = np.array(
        [
            [0.5, 0.1, 0.2, 0.3],  # above 0.2 (strictly): 0.5, 0.3 -> mean 0.4 -> 0.32
            [0.1, 0.2, 0.0, 0.15],  # none above -> 0
            [0.9, 0.9, 0.9, 0.9],
        ]
    )
    np.testing.assert_allclose(rescore(box, kpts), [0.32, 0.0, 0.9], rtol=1e-12)
    np.testing.assert_allclose(rescore(box, kpts, thr=0.0), [0.8 * 1.1 / 4, 0.5 * 0.45 / 3, 0.9])
    with pytest.raises(ValueError):
        rescore(box, kpts[:2])


def _per_image_oks_nms(ids: np.ndarray, kp: np.ndarray, sc: np.ndarray, ar: np.ndarray, **kw: object) -> np.ndarray:
    """The per-image loop ``engine.evaluate.postprocess`` ran before batched_oks_nms (transcribed)."""
    order = np.argsort(ids, kind="stable")
    s_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, s_ids[1:] != s_ids[:-1]])
    ends = np.r_[starts[1:], len(s_ids)]
    kept = [order[s:e][oks_nms(kp[order[s:e]], sc[order[s:e]], ar[order[s:e]], **kw)] for s, e in zip(starts, ends)]
    return np.concatenate(kept)


@pytest.mark.parametrize("thr, in_vis_thr, max_elements", [(0.9, None, 1 << 21), (0.5, None, 5000), (0.7, 0.3, 1 << 21), (0.3, None, 1)])
def test_batched_oks_nms_equals_per_image_loop(thr: float, in_vis_thr: float | None, max_elements: int) -> None:
    """Same indices, same order, on clustered instances with score ties, a NaN keypoint and one-instance images."""
    rng = np.random.default_rng(int(thr * 10))
    n_img, k = 60, 17
    counts = rng.integers(1, 40, n_img)
    ids = np.repeat(rng.permutation(np.arange(1000, 1000 + n_img)), counts)
    perm = rng.permutation(len(ids))
    ids = ids[perm]  # instances of an image are not contiguous
    n = len(ids)
    centers = rng.uniform(0, 500, (n_img * 3, 2))
    who = rng.integers(0, len(centers), n)
    kp = np.concatenate([centers[who][:, None, :] + rng.normal(0, rng.choice([0.5, 3, 30], n))[:, None, None] * rng.normal(0, 1, (n, k, 2)),
                         rng.uniform(0, 1, (n, k, 1))], axis=2)  # fmt: skip
    sc = np.round(rng.uniform(0, 1, n), 1)  # many exact ties
    ar = rng.uniform(500, 20000, n)
    kp[5, 3, 0] = np.nan
    sigmas = rng.uniform(0.02, 0.1, k)
    for sig in (None, sigmas):
        ref = _per_image_oks_nms(ids, kp, sc, ar, thr=thr, sigmas=sig, in_vis_thr=in_vis_thr)
        got = batched_oks_nms(ids, kp, sc, ar, thr=thr, sigmas=sig, in_vis_thr=in_vis_thr, max_elements=max_elements)
        assert got.dtype == np.int64 and got.tolist() == ref.tolist()
        assert 0 < len(got) < n  # something was suppressed, something kept
    assert batched_oks_nms(np.zeros(0), np.zeros((0, k, 3)), np.zeros(0), np.zeros(0)).shape == (0,)
