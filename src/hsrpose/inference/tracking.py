"""Pose tracking across video frames: stable ``track_id`` per person.

:class:`PoseTracker` takes the poses of one frame at a time (image px) and gives
each a track id, ByteTrack-style, with a pose-aware similarity:

1. **Similarity** between a track (its last pose) and a detection is
   ``oks_weight * OKS + (1 - oks_weight) * IoU``. OKS is COCO's (the keypoint set's
   sigmas, :func:`hsrpose.evaluation.nms.oks_iou`) over keypoints whose score is above
   ``kpt_thr`` in both poses, with the mean of the two box areas as the scale; IoU is
   that of the two boxes. Assignment maximises the total similarity with
   :func:`scipy.optimize.linear_sum_assignment`; pairs below ``match_thr`` stay unmatched.
2. **First association**: detections with instance score >= ``high_thr`` against every
   track (tracked last frame, or lost for up to ``max_lost`` frames).
3. **Second association** (ByteTrack): detections with ``low_thr <= score < high_thr``
   against the tracks tracked in the previous (decoded) frame that are still unmatched; a
   low-score detection continues a track but never starts one.
4. Unmatched high-score detections start new tracks (ids 1, 2, ...); unmatched tracks
   become lost and are deleted after ``max_lost`` frames without a match.

Frame indices need not be contiguous: a gap (undecodable frames) ages lost tracks by
the number of frames missed, and tracks survive it when it is shorter than ``max_lost``.

:func:`boxes_from_keypoints` gives the SimpleBaseline box propagation used by
``--det-interval``: on frames without detection, each track tracked in the previous
frame gets the box enclosing its confident keypoints, enlarged by ``box_scale``.

No torch import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from hsrpose.data.keypoints import KeypointInfo
from hsrpose.evaluation.nms import oks_iou
from hsrpose.inference.detectors import box_iou_xywh

__all__ = ["TrackerConfig", "PoseTracker", "TrackedPose", "Track", "pose_similarity", "boxes_from_keypoints"]


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker parameters (defaults used by ``hsrpose predict --track``).

    Attributes:
        high_thr: detections at or above this instance score take part in the first
            association and may start tracks.
        low_thr: detections below this score are ignored; between ``low_thr`` and
            ``high_thr`` they may only continue a track (second association).
        match_thr: minimum similarity of a matched (track, detection) pair.
        oks_weight: weight of OKS in the similarity, IoU gets ``1 - oks_weight``.
        kpt_thr: keypoints with a score at or below this do not count in the OKS.
        max_lost: frames a track is kept without a match before it is deleted.
    """

    high_thr: float = 0.3
    low_thr: float = 0.1
    match_thr: float = 0.2
    oks_weight: float = 0.5
    kpt_thr: float = 0.3
    max_lost: int = 30

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_thr <= self.high_thr:
            raise ValueError(f"TrackerConfig: need 0 <= low_thr ({self.low_thr}) <= high_thr ({self.high_thr})")
        if not 0.0 <= self.oks_weight <= 1.0:
            raise ValueError(f"TrackerConfig.oks_weight must be in [0, 1], got {self.oks_weight}")
        if self.max_lost < 0:
            raise ValueError(f"TrackerConfig.max_lost must be >= 0, got {self.max_lost}")


@dataclass
class TrackedPose:
    """A pose of one frame with its identity; ``instance`` is a :class:`~hsrpose.inference.pipeline.PoseInstance`."""

    track_id: int | None
    instance: Any

    def to_coco(self, image_id: int, category_id: int = 1) -> dict[str, Any]:
        """COCO keypoint results entry plus ``track_id`` (left out when None: tracking off)."""
        entry = self.instance.to_coco(image_id, category_id)
        return entry if self.track_id is None else {**entry, "track_id": int(self.track_id)}


@dataclass
class Track:
    """A track's state: the last matched pose and the frame it was seen in."""

    track_id: int
    instance: Any
    last_frame: int
    hits: int = 1


def _pose_array(inst: Any) -> np.ndarray:
    """(K,3) keypoints image px + score of an instance."""
    return np.concatenate([np.asarray(inst.keypoints, np.float64), np.asarray(inst.keypoint_scores, np.float64)[:, None]], axis=1)


def _box(inst: Any) -> np.ndarray:
    return np.asarray(inst.box_xywh, dtype=np.float64).reshape(4)


def pose_similarity(tracks: Sequence[Any], dets: Sequence[Any], sigmas: np.ndarray, oks_weight: float, kpt_thr: float) -> np.ndarray:
    """(T,D) similarity in [0, 1] between track poses and detected poses (see module doc)."""
    sim = np.zeros((len(tracks), len(dets)), dtype=np.float64)
    if not len(tracks) or not len(dets):
        return sim
    det_kp = np.stack([_pose_array(d) for d in dets])  # (D,K,3)
    det_boxes = np.stack([_box(d) for d in dets])  # (D,4)
    det_area = det_boxes[:, 2] * det_boxes[:, 3]
    for i, t in enumerate(tracks):
        tb = _box(t)
        oks = oks_iou(_pose_array(t), det_kp, float(tb[2] * tb[3]), det_area, sigmas=sigmas, in_vis_thr=kpt_thr)
        iou = box_iou_xywh(tb[None], det_boxes).reshape(-1)
        sim[i] = oks_weight * oks + (1.0 - oks_weight) * iou
    return sim


def _assign(sim: np.ndarray, thr: float) -> list[tuple[int, int]]:
    """Maximum-similarity matching (scipy's Hungarian solver); pairs below ``thr`` dropped."""
    if sim.size == 0:
        return []
    rows, cols = linear_sum_assignment(sim, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if sim[r, c] >= thr]


class PoseTracker:
    """Give the poses of consecutive frames stable track ids (see module doc).

    Args:
        keypoint_info: the keypoint set (its OKS sigmas).
        cfg: :class:`TrackerConfig`.
    """

    def __init__(self, keypoint_info: KeypointInfo, cfg: TrackerConfig = TrackerConfig()) -> None:
        self.cfg = cfg
        self.sigmas = keypoint_info.sigmas_array
        self.tracks: list[Track] = []
        self.next_id = 1
        self.frame: int | None = None

    def reset(self) -> None:
        self.tracks, self.next_id, self.frame = [], 1, None

    def active_tracks(self) -> list[Track]:
        """Tracks matched in the last frame seen (those that ``--det-interval`` propagates)."""
        return [t for t in self.tracks if self.frame is not None and t.last_frame == self.frame]

    def update(self, instances: Sequence[Any], frame: int) -> list[TrackedPose]:
        """Poses of ``frame`` (PoseInstance-like: ``keypoints`` (K,2), ``keypoint_scores`` (K,),
        ``box_xywh`` (4,), ``score``, ``box_score``) -> the tracked ones, best score first.

        Detections below ``low_thr`` and unmatched low-score detections are dropped.
        """
        cfg = self.cfg
        if self.frame is not None and frame <= self.frame:
            raise ValueError(f"PoseTracker.update: frame {frame} is not after frame {self.frame}")
        # Drop tracks lost for longer than max_lost frames (a gap of undecodable frames counts).
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= cfg.max_lost + 1]
        scores = np.array([float(d.score) for d in instances], dtype=np.float64)
        high = [i for i in range(len(instances)) if scores[i] >= cfg.high_thr]
        low = [i for i in range(len(instances)) if cfg.low_thr <= scores[i] < cfg.high_thr]

        matched: dict[int, Track] = {}  # detection index -> track
        # 1. high-score detections against all kept tracks
        pool = list(self.tracks)
        sim = pose_similarity([t.instance for t in pool], [instances[i] for i in high], self.sigmas, cfg.oks_weight, cfg.kpt_thr)
        used_tracks: set[int] = set()
        for r, c in _assign(sim, cfg.match_thr):
            matched[high[c]] = pool[r]
            used_tracks.add(r)
        # 2. low-score detections against the still-unmatched tracks of the previous frame seen
        # (after a gap of undecodable frames, that is the last decoded one)
        rest = [t for j, t in enumerate(pool) if j not in used_tracks and t.last_frame == self.frame]
        sim = pose_similarity([t.instance for t in rest], [instances[i] for i in low], self.sigmas, cfg.oks_weight, cfg.kpt_thr)
        for r, c in _assign(sim, cfg.match_thr):
            matched[low[c]] = rest[r]
        # 3. new tracks from unmatched high-score detections
        for i in high:
            if i not in matched:
                t = Track(self.next_id, instances[i], frame)
                self.next_id += 1
                self.tracks.append(t)
                matched[i] = t
                t.hits = 0  # counted below with the matched ones
        out = []
        for i, t in matched.items():
            t.instance, t.last_frame, t.hits = instances[i], frame, t.hits + 1
            out.append(TrackedPose(t.track_id, instances[i]))
        self.frame = frame
        out.sort(key=lambda p: (-float(p.instance.score), p.track_id))
        return out


def boxes_from_keypoints(
    keypoints: np.ndarray, scores: np.ndarray, kpt_thr: float = 0.3, box_scale: float = 1.2, min_points: int = 2
) -> np.ndarray | None:
    """SimpleBaseline's box propagation: the box (xywh, image px) enclosing the keypoints with a
    score above ``kpt_thr``, enlarged ``box_scale`` times about its centre (keypoints lie inside
    the body outline: the head top, hands and feet reach beyond them). None when fewer than
    ``min_points`` keypoints are confident (the track is not propagated).

    Args:
        keypoints: (K,2) image px. scores: (K,).
    """
    kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    ok = np.asarray(scores, dtype=np.float64).reshape(-1) > kpt_thr
    if ok.sum() < min_points:
        return None
    lo, hi = kp[ok].min(axis=0), kp[ok].max(axis=0)
    center, size = (lo + hi) / 2.0, (hi - lo) * box_scale
    size = np.maximum(size, 1.0)
    return np.array([center[0] - size[0] / 2, center[1] - size[1] / 2, size[0], size[1]], dtype=np.float64)
