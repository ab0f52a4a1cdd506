"""PoseTracker (association, ByteTrack second pass, lost tracks), box propagation, tracking metrics."""

from __future__ import annotations

import numpy as np
import pytest

from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.data.synthetic_video import VideoSynthConfig, render_clip, sample_clip
from hsrpose.evaluation.tracking import FrameGT, FramePred, coco_oks, jitter, tracking_metrics
from hsrpose.inference.pipeline import PoseInstance
from hsrpose.inference.tracking import PoseTracker, TrackerConfig, _assign, boxes_from_keypoints

SIGMAS = COCO_KEYPOINTS.sigmas_array


def _pose(center_x: float, score: float = 0.9, center_y: float = 100.0, height: float = 80.0) -> PoseInstance:
    """A simple upright pose of 17 keypoints spread over a box centred at (center_x, center_y)."""
    rng = np.random.default_rng(0)
    offsets = rng.uniform(-0.5, 0.5, size=(17, 2)) * [height * 0.4, height]
    kp = (np.array([center_x, center_y]) + offsets).astype(np.float32)
    box = np.array([center_x - height * 0.2, center_y - height / 2, height * 0.4, height], dtype=np.float32)
    return PoseInstance(box, 1.0, kp, np.full(17, 0.9, np.float32), float(score))


def _ids(tracked: list, xs: list[float]) -> list[int]:
    """Track ids in the order of the poses' x positions."""
    by_x = {round(float(t.instance.box_xywh[0] + t.instance.box_xywh[2] / 2)): t.track_id for t in tracked}
    return [by_x[round(x)] for x in xs]


def test_ids_follow_the_people_not_the_input_order() -> None:
    tracker = PoseTracker(COCO_KEYPOINTS)
    first = tracker.update([_pose(50), _pose(200)], 0)
    ids = _ids(first, [50, 200])
    assert sorted(ids) == [1, 2]
    for t in range(1, 6):  # both walk 4 px per frame; given in reversed order
        tracked = tracker.update([_pose(200 + 4 * t), _pose(50 + 4 * t)], t)
        assert _ids(tracked, [50 + 4 * t, 200 + 4 * t]) == ids


def test_low_score_detection_continues_a_track_but_never_starts_one() -> None:
    cfg = TrackerConfig(high_thr=0.5, low_thr=0.1)
    tracker = PoseTracker(COCO_KEYPOINTS, cfg)
    [a] = tracker.update([_pose(50, 0.9)], 0)
    # frame 1: the person is now detected with a low score (blur, occlusion), a stranger too
    tracked = tracker.update([_pose(52, 0.2), _pose(250, 0.2)], 1)
    assert [t.track_id for t in tracked] == [a.track_id]
    assert float(tracked[0].instance.box_xywh[0]) == pytest.approx(52 - 16)
    # below low_thr: ignored, the track is lost for this frame
    assert tracker.update([_pose(54, 0.05)], 2) == []
    # after undecodable frames 3..4 the previous decoded frame (2) counts as "the previous frame":
    # but the track was lost at frame 2, so a low-score pose cannot continue it ...
    assert tracker.update([_pose(56, 0.2)], 5) == []
    # ... while a track matched in the last decoded frame can be continued across a gap
    [b] = tracker.update([_pose(58, 0.9)], 6)
    [c] = tracker.update([_pose(60, 0.2)], 9)
    assert c.track_id == b.track_id == a.track_id


def test_lost_track_survives_a_gap_and_is_forgotten_after_max_lost() -> None:
    tracker = PoseTracker(COCO_KEYPOINTS, TrackerConfig(max_lost=5))
    [a] = tracker.update([_pose(80)], 0)
    # frames 1..5 missing (undecodable or no detection): same id at frame 6
    [b] = tracker.update([_pose(82)], 6)
    assert b.track_id == a.track_id
    # now missing for 6 frames (> max_lost): a new id
    [c] = tracker.update([_pose(84)], 13)
    assert c.track_id != a.track_id
    with pytest.raises(ValueError, match="not after"):
        tracker.update([], 13)


def test_assignment_is_optimal_not_greedy() -> None:
    """Greedy matching takes the single best pair (0,0)=0.9 and leaves (1,1)=0.1 below the
    threshold; scipy's linear_sum_assignment finds (0,1)+(1,0) = 1.65."""
    sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert sorted(_assign(sim, 0.2)) == [(0, 1), (1, 0)]
    assert _assign(np.zeros((0, 3)), 0.2) == []


def test_boxes_from_keypoints() -> None:
    kp = np.array([[10.0, 20.0], [30.0, 60.0], [500.0, 500.0]])
    box = boxes_from_keypoints(kp, np.array([0.9, 0.8, 0.1]), kpt_thr=0.3, box_scale=1.2)
    # enclosing box of the two confident points: x 10..30, y 20..60 -> centre (20, 40), size 24 x 48
    np.testing.assert_allclose(box, [8.0, 16.0, 24.0, 48.0])
    assert boxes_from_keypoints(kp, np.array([0.9, 0.1, 0.1])) is None


def _clip_gt(seed: int, clip: int, frames: int) -> list[FrameGT]:
    out = []
    for _, gt in render_clip(sample_clip(seed, clip, VideoSynthConfig(frames=frames))):
        out.append(FrameGT(
            ids=np.array([g["track_id"] for g in gt], dtype=int),
            keypoints=np.array([g["keypoints"] for g in gt]).reshape(-1, 17, 3),
            areas=np.array([g["area"] for g in gt], dtype=float),
            still=np.array([g["still"] for g in gt], dtype=bool),
        ))  # fmt: skip
    return out


def _gt_poses(g: FrameGT, rng: np.random.Generator, noise: float) -> list[PoseInstance]:
    poses = []
    for kp in g.keypoints:
        vis = kp[:, 2] > 0
        xy = kp[:, :2] + rng.normal(0, noise, size=(17, 2))
        lo, hi = kp[vis, :2].min(0), kp[vis, :2].max(0)
        box = np.array([lo[0], lo[1], hi[0] - lo[0] + 1, hi[1] - lo[1] + 1], np.float32)
        poses.append(PoseInstance(box, 1.0, xy.astype(np.float32), np.where(vis, 0.9, 0.0).astype(np.float32), 0.9))
    # shuffle: a per-frame estimator gives no stable order
    return [poses[i] for i in rng.permutation(len(poses))]


def test_tracker_on_a_synthetic_clip_with_crossings_keeps_every_identity() -> None:
    """Ground-truth poses (+1 px noise) in shuffled order: the tracker must recover every id,
    while the per-frame order (tracking off) switches ids."""
    frames = 40
    gts = _clip_gt(seed=3, clip=1, frames=frames)
    rng = np.random.default_rng(0)
    tracker = PoseTracker(COCO_KEYPOINTS)
    tracked, untracked = [], []
    for t, g in enumerate(gts):
        poses = _gt_poses(g, rng, 1.0)
        out = tracker.update(poses, t)
        tracked.append(FramePred(np.array([p.track_id for p in out], int), np.array([p.instance.keypoints for p in out]).reshape(-1, 17, 2)))
        untracked.append(FramePred(np.arange(1, len(poses) + 1), np.array([p.keypoints for p in poses]).reshape(-1, 17, 2)))
    on = tracking_metrics([(gts, tracked)], SIGMAS)
    off = tracking_metrics([(gts, untracked)], SIGMAS)
    assert on["num_switches"] == 0 and on["mota"] == pytest.approx(1.0)
    assert on["hota"] > 0.9
    assert off["num_switches"] > 0 and off["hota"] < on["hota"]


def test_hota_and_id_switch_on_a_hand_checkable_case() -> None:
    """One person, two frames, perfectly localised, but the tracker changes its id.

    By hand (TrackEval's HOTA, Luiten et al. 2021): at every alpha both frames are true
    positives, so DetA = TP / (TP + FN + FP) = 2 / 2 = 1. Each TP's association score is
    TPA / (TPA + FNA + FPA) with TPA = 1 (the pair (gt, A) or (gt, B) matches once),
    FNA = 1 (the gt's other frame), FPA = 0: AssA = 1/2, HOTA = sqrt(DetA * AssA) = 0.7071.
    CLEAR MOT: one switch, MOTA = 1 - (FN + FP + IDSW) / GT = 1 - 1/2.
    """
    kp = np.zeros((1, 17, 3))
    kp[0, :, 0] = np.linspace(10, 50, 17)
    kp[0, :, 1] = np.linspace(20, 120, 17)
    kp[0, :, 2] = 2
    gts = [FrameGT(np.array([7]), kp, np.array([4000.0]), np.array([True]))] * 2
    preds = [FramePred(np.array([1]), kp[:, :, :2]), FramePred(np.array([2]), kp[:, :, :2])]
    m = tracking_metrics([(gts, preds)], SIGMAS)
    assert m["deta"] == pytest.approx(1.0)
    assert m["assa"] == pytest.approx(0.5)
    assert m["hota"] == pytest.approx(np.sqrt(0.5))
    assert m["num_switches"] == 1 and m["mota"] == pytest.approx(0.5)


def test_coco_oks_and_jitter() -> None:
    """OKS as COCOeval's computeOks: exp(-d^2 / (2 area (2 sigma)^2)) averaged over labelled keypoints."""
    gt_kp = np.zeros((1, 17, 3))
    gt_kp[0, :, :2] = 100.0
    gt_kp[0, :, 2] = 2
    gt_kp[0, 5:, 2] = 0  # only the 5 face keypoints are labelled
    d = np.full((1, 17, 2), 100.0)
    d[0, :5, 0] += 3.0  # 3 px off on the labelled ones; the others far off but unlabelled
    d[0, 5:, :] = 0.0
    area = 900.0
    expected = np.mean(np.exp(-9.0 / (2 * area * (2 * SIGMAS[:5]) ** 2)))
    oks = coco_oks(FrameGT(np.array([1]), gt_kp, np.array([area]), np.array([True])), FramePred(np.array([1]), d), SIGMAS)
    assert oks[0, 0] == pytest.approx(expected)
    # jitter: a still figure predicted at x = 100, 102, 100, 102: acceleration |x2 - 2 x1 + x0| = 4 px (only labelled keypoints)
    gts = [FrameGT(np.array([1]), gt_kp, np.array([area]), np.array([True]))] * 4
    preds = []
    for t in range(4):
        p = np.full((1, 17, 2), 100.0)
        p[0, :, 0] += 2.0 * (t % 2)
        preds.append(FramePred(np.array([1]), p))
    value, n = jitter([(gts, preds)], SIGMAS)
    assert value == pytest.approx(4.0) and n == 2 * 5
