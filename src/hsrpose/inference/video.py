"""Pose estimation on a video, frame by frame, with tracking, box propagation and smoothing.

Per decoded frame ``t`` (``hsrpose predict VIDEO --track``):

1. boxes: the person detector on every ``det_interval``-th decoded frame; on the
   frames between, each track matched in the previous frame gets the box enclosing its
   confident keypoints (:func:`~hsrpose.inference.tracking.boxes_from_keypoints`,
   SimpleBaseline's box propagation), with the track's last detector score;
2. poses: :class:`~hsrpose.inference.pipeline.PoseEstimator` on those boxes;
3. identities: :class:`~hsrpose.inference.tracking.PoseTracker`;
4. smoothing (optional): :class:`~hsrpose.inference.smoothing.KeypointSmoother` per track.
   The tracker keeps the raw poses (association and box propagation use what the
   network saw); the output gets the smoothed keypoints.

A frame that cannot be decoded is skipped and counted; tracks survive the gap (the
tracker ages them by the frames missed). No torch import.
"""

from __future__ import annotations

import colorsys
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from hsrpose.data.keypoints import KeypointInfo
from hsrpose.errors import HsrposeError
from hsrpose.inference.smoothing import KeypointSmoother, OneEuroConfig
from hsrpose.inference.tracking import PoseTracker, TrackedPose, TrackerConfig, boxes_from_keypoints

__all__ = ["VideoOptions", "FrameResult", "VideoRun", "open_video", "read_frames", "track_frames", "draw_tracks", "posetrack_json", "track_color"]


@dataclass(frozen=True)
class VideoOptions:
    """How a video is processed.

    Attributes:
        track: give poses track ids (else every pose gets ``track_id`` None).
        det_interval: run the detector every this many decoded frames (1: every frame;
            > 1 needs ``track``: the boxes between come from the tracks).
        smooth: One-Euro smoothing of each track's keypoints (needs ``track``).
        tracker: :class:`TrackerConfig`. smoothing: :class:`OneEuroConfig`.
        propagate_kpt_thr: keypoints above this score define a propagated box.
        propagate_box_scale: enlargement of the keypoints' bounding box (1.2).
    """

    track: bool = True
    det_interval: int = 1
    smooth: bool = True
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    smoothing: OneEuroConfig = field(default_factory=OneEuroConfig)
    propagate_kpt_thr: float = 0.3
    propagate_box_scale: float = 1.2

    def __post_init__(self) -> None:
        if self.det_interval < 1:
            raise HsrposeError(f"--det-interval must be >= 1, got {self.det_interval}")
        if not self.track and (self.det_interval > 1 or self.smooth):
            raise HsrposeError("--det-interval > 1 and --smooth need --track (both work on tracks)")


@dataclass
class FrameResult:
    """One decoded frame: its index in the file, size, the poses (``track_id`` None without tracking), whether the detector ran."""

    index: int
    image_hw: tuple[int, int]
    poses: list[TrackedPose]
    detected: bool


@dataclass
class VideoRun:
    """Counts of a processed video: frames decoded, frames skipped as undecodable, seconds spent, frames/s."""

    frames_ok: int = 0
    frames_bad: int = 0
    seconds: float = 0.0
    detector_calls: int = 0
    track_ids: set[int] = field(default_factory=set)

    @property
    def fps(self) -> float:
        return self.frames_ok / self.seconds if self.seconds > 0 else 0.0


def open_video(path: str | Path) -> tuple[Any, float, int]:
    """``cv2.VideoCapture`` of ``path``, its frame rate (25 if the file has none) and frame count (0 if unknown)."""
    p = Path(path)
    if not p.is_file():
        raise HsrposeError(f"{p}: no such video file")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise HsrposeError(f"{p}: OpenCV cannot open this video (unknown container or codec, or not a video)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    fps = fps if 0 < fps < 1000 else 25.0
    return cap, fps, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)


def read_frames(cap: Any, total: int, on_bad: Callable[[int], None], max_failures: int = 25) -> Iterator[tuple[int, np.ndarray]]:
    """(index in the file, BGR frame) of a capture (anything with ``read() -> (ok, frame)``).

    ``read()`` returns False both at the end and on a broken frame: with a known frame
    count ``total``, a failure before the end is a bad frame (``on_bad(index)``; up to
    ``max_failures`` in a row), and indices keep counting so they stay the file's. A failure
    at the last counted frame ends the video (containers often count one frame too many).
    """
    index = failures = 0
    while True:
        ok, frame = cap.read()
        if ok and frame is not None:
            failures = 0
            yield index, frame
        else:
            if total <= 0 or index >= total - 1 or failures >= max_failures:
                return
            failures += 1
            on_bad(index)
        index += 1


def _propagated_boxes(tracker: PoseTracker, opts: VideoOptions) -> tuple[np.ndarray, np.ndarray]:
    boxes, scores = [], []
    for t in tracker.active_tracks():
        b = boxes_from_keypoints(t.instance.keypoints, t.instance.keypoint_scores, opts.propagate_kpt_thr, opts.propagate_box_scale)
        if b is not None:
            boxes.append(b)
            scores.append(float(t.instance.box_score))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, dtype=np.float64)


def track_frames(
    frames: Iterable[tuple[int, np.ndarray]], estimator: Any, opts: VideoOptions, fps: float,
    run: VideoRun | None = None, image_key: Callable[[int], Any] = lambda i: i,
) -> Iterator[FrameResult]:  # fmt: skip
    """Poses of each ``(index, BGR frame)`` (see module doc); ``run`` collects the counts.

    ``estimator`` is a :class:`~hsrpose.inference.pipeline.PoseEstimator` (its detector
    runs on detection frames; ``image_key(index)`` is passed as the detector's key).
    Frame indices must increase; a jump is a gap of skipped frames.
    """
    run = run if run is not None else VideoRun()
    tracker = PoseTracker(estimator.keypoint_info, opts.tracker) if opts.track else None
    smoother = KeypointSmoother(fps, opts.smoothing, forget_frames=opts.tracker.max_lost + 1) if opts.smooth else None
    decoded = 0
    t0 = time.perf_counter()
    for index, frame in frames:
        detect = tracker is None or decoded % opts.det_interval == 0
        decoded += 1
        if detect:
            instances = estimator(frame, image_key=image_key(index))
            run.detector_calls += 1
        else:
            instances = estimator(frame, boxes=_propagated_boxes(tracker, opts))  # type: ignore[arg-type]
        if tracker is None:
            poses = [TrackedPose(None, inst) for inst in instances]  # type: ignore[arg-type]
        else:
            poses = tracker.update(instances, index)
        if smoother is not None:
            poses = [
                TrackedPose(p.track_id, dataclasses.replace(p.instance, keypoints=smoother(
                    p.track_id, p.instance.keypoints, p.instance.keypoint_scores, index, float(p.instance.box_xywh[3])
                ).astype(np.float32)))
                for p in poses
            ]  # fmt: skip
        run.frames_ok += 1
        run.track_ids.update(p.track_id for p in poses if p.track_id is not None)
        run.seconds = time.perf_counter() - t0
        yield FrameResult(index, (int(frame.shape[0]), int(frame.shape[1])), poses, detect)
        t0 = time.perf_counter() - run.seconds  # time spent by the consumer is not ours


def track_color(track_id: int | None) -> tuple[int, int, int]:
    """A BGR colour per identity: hues spaced by the golden ratio, so neighbouring ids differ."""
    if track_id is None:
        return (0, 200, 0)
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_tracks(image: np.ndarray, poses: list[TrackedPose], keypoint_info: KeypointInfo, kpt_thr: float = 0.3, box_thr: float = 0.3) -> np.ndarray:
    """A copy of ``image`` with each pose's skeleton, box and ``id N`` label in its identity's colour."""
    canvas = image.copy()
    h, w = canvas.shape[:2]
    scale = max(h, w) / 640.0
    line = max(1, round(2 * scale))
    radius = max(2, round(line * 1.6))
    font_scale, font_thick = max(0.35, 0.5 * scale), max(1, round(scale))
    for p in poses:
        inst = p.instance
        if float(inst.score) < box_thr:
            continue
        color = track_color(p.track_id)
        kpts = np.asarray(inst.keypoints, dtype=np.float64)
        ok = (np.asarray(inst.keypoint_scores) >= kpt_thr) & np.isfinite(kpts).all(axis=1)
        x, y, bw, bh = (float(v) for v in inst.box_xywh)
        cv2.rectangle(canvas, (round(x), round(y)), (round(x + bw), round(y + bh)), color, max(1, line // 2), cv2.LINE_AA)
        for a, b in keypoint_info.skeleton:
            if ok[a] and ok[b]:
                cv2.line(canvas, (round(kpts[a, 0]), round(kpts[a, 1])), (round(kpts[b, 0]), round(kpts[b, 1])), color, line, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            cv2.circle(canvas, (round(kpts[j, 0]), round(kpts[j, 1])), radius, color, -1, cv2.LINE_AA)
        if p.track_id is not None:
            text = f"id {p.track_id}"
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thick)
            tx, ty = min(max(0, round(x)), max(0, w - tw)), max(th + 1, round(y) - base)
            cv2.rectangle(canvas, (tx, ty - th - 1), (tx + tw, ty + base), color, -1)
            cv2.putText(canvas, text, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), font_thick, cv2.LINE_AA)
    return canvas


def posetrack_json(video_name: str, frames: list[FrameResult], keypoint_info: KeypointInfo) -> dict[str, Any]:
    """PoseTrack-style predictions: ``images`` (one per decoded frame, ``id`` = frame index,
    ``frame_id``, ``file_name``), ``annotations`` (``image_id``, ``track_id``, ``keypoints``
    [x, y, score] * K, ``scores`` (K,), ``bbox`` xywh, ``score``), ``categories``."""
    images, annotations = [], []
    for fr in frames:
        images.append({"id": fr.index, "frame_id": fr.index, "file_name": f"{video_name}#frame={fr.index}",
                       "height": fr.image_hw[0], "width": fr.image_hw[1]})  # fmt: skip
        for p in fr.poses:
            entry = p.instance.to_coco(fr.index)
            annotations.append({
                "image_id": fr.index, "category_id": 1, "track_id": p.track_id, "keypoints": entry["keypoints"],
                "scores": [round(float(s), 4) for s in p.instance.keypoint_scores], "bbox": entry["bbox"], "score": entry["score"],
            })  # fmt: skip
    categories = [{"id": 1, "name": "person", "keypoints": list(keypoint_info.names),
                   "skeleton": [[a + 1, b + 1] for a, b in keypoint_info.skeleton]}]  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": categories}


def run_video_file(
    src: Path, out: Path, estimator: Any, opts: VideoOptions, draw: bool = True, kpt_thr: float = 0.3, box_thr: float = 0.3,
    progress: bool = True,
) -> tuple[list[FrameResult], VideoRun]:  # fmt: skip
    """The whole ``predict VIDEO --track`` run: writes ``results.json`` (COCO + ``track_id``),
    ``images.json``, ``posetrack.json`` and the drawn ``<stem>_pose.mp4`` into ``out``."""
    from tqdm import tqdm

    from hsrpose.utils.io import atomic_write_json
    from hsrpose.utils.videoio import AtomicVideoWriter

    cap, fps, total = open_video(src)
    run = VideoRun()

    def bad(index: int) -> None:
        run.frames_bad += 1
        tqdm.write(f"hsrpose predict: warning: {src.name}: frame {index} could not be decoded; skipped (tracks carry on)", file=sys.stderr)

    frames: list[FrameResult] = []
    images: dict[int, np.ndarray] = {}

    def keep(it: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
        for i, f in it:  # the frame is drawn after track_frames has yielded its poses
            images[i] = f
            yield i, f

    try:
        with AtomicVideoWriter(out / f"{src.stem}_pose.mp4", fps) as writer, \
                tqdm(total=total or None, desc="predict", unit="frame", disable=None if progress else True) as bar:  # fmt: skip
            for fr in track_frames(keep(read_frames(cap, total, bad)), estimator, opts, fps, run):
                frames.append(fr)
                image = images.pop(fr.index)
                if draw:
                    writer.write(draw_tracks(image, fr.poses, estimator.keypoint_info, kpt_thr, box_thr))
                bar.update(fr.index + 1 - bar.n)
                bar.set_postfix(fps=f"{run.fps:.1f}", tracks=len(run.track_ids), refresh=False)
    finally:
        cap.release()
    if run.frames_ok == 0:
        what = f"none of its {total} frames could be decoded" if total > 0 else "it has 0 frames"
        raise HsrposeError(f"{src}: {what}")
    results = [p.to_coco(fr.index) for fr in frames for p in fr.poses]
    atomic_write_json(out / "results.json", results)
    atomic_write_json(out / "images.json", [
        {"id": fr.index, "file_name": f"{src.name}#frame={fr.index}", "height": fr.image_hw[0], "width": fr.image_hw[1]} for fr in frames
    ])  # fmt: skip
    atomic_write_json(out / "posetrack.json", posetrack_json(src.name, frames, estimator.keypoint_info))
    return frames, run
