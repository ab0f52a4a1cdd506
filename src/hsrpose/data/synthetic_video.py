"""Synthetic video clips with identity and keypoint ground truth per frame.

Built on the still-image generator :mod:`hsrpose.data.synthetic` (same stick figures,
same backgrounds, same occluders, same visibility rules; :func:`render_scene` draws
every frame). What a clip adds is motion:

- **still** figures stand at one place in one pose for the whole clip (at least one
  per clip): the frame-to-frame motion of their estimated keypoints is pure jitter;
- **walkers** move horizontally at a constant speed (``speed_px`` per frame) and
  swing between two sampled poses, so limbs move too. Walkers start inside or
  outside the frame and walk in either direction, so they enter, leave and cross
  one another and the still figures; the drawing order (fixed per figure) decides
  who occludes whom at a crossing;
- an optional static occluder (a "pillar") that figures pass behind;
- per-frame camera noise (Gaussian, ``noise_sigma`` grey levels), so that two frames
  of a still figure are never pixel-identical (as with a real camera).

A figure's identity is ``track_id`` = its index in the clip + 1. A figure is in a
frame's ground truth when at least one keypoint lies inside the image (as in the
still-image generator). Everything is deterministic per (seed, clip): the clip is
drawn from ``numpy.random.default_rng([seed, clip])`` alone. No torch import.

Files written by :func:`generate_video_clips` under ``out_dir``:

- ``videos/clip_NNN.mp4`` (mp4v, ``fps`` frames/s);
- ``annotations/clip_NNN.json``: COCO keypoint format, one image per frame with
  ``id`` = 0-based frame index (the ids ``hsrpose predict VIDEO`` gives its frames),
  ``file_name`` ``clip_NNN.mp4#frame=I``, ``frame_id``, ``video``; each annotation
  carries ``track_id`` and ``still`` besides the COCO fields;
- ``boxes/clip_NNN.json``: the ground-truth boxes as a COCO detection results file
  (score 1), usable as ``--detector coco:FILE`` (an oracle person detector).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.data.synthetic import _coco_categories
from hsrpose.data.synthetic_figures import Figure, Occluder, _sample_background, sample_figure
from hsrpose.data.synthetic_render import render_scene
from hsrpose.utils.io import atomic_write_json
from hsrpose.utils.videoio import AtomicVideoWriter

__all__ = ["VideoSynthConfig", "ClipFigure", "sample_clip", "render_clip", "generate_video_clips", "VIDEO_DIR", "ANN_DIR", "BOX_DIR"]

VIDEO_DIR = "videos"
ANN_DIR = "annotations"
BOX_DIR = "boxes"


@dataclass(frozen=True)
class VideoSynthConfig:
    """What a clip is sampled from.

    Attributes:
        image_hw: (height, width) of every frame in pixels.
        frames: frames per clip.
        fps: frame rate written into the video file (and used by the smoothing filter).
        people: inclusive (min, max) figures per clip, still ones included (min >= 1).
        still: inclusive (min, max) still figures per clip (min >= 1: jitter needs one).
        height_frac: range of a figure's height as a fraction of the image height.
        speed_px: range of a walker's horizontal speed in pixels per frame.
        swing_frames: range of the period (frames) of a walker's swing between its two poses.
        occluder_prob: probability that a clip has a static occluder.
        noise_sigma: per-frame Gaussian camera noise, grey levels.
    """

    image_hw: tuple[int, int] = (240, 320)
    frames: int = 60
    fps: float = 25.0
    people: tuple[int, int] = (2, 4)
    still: tuple[int, int] = (1, 2)
    height_frac: tuple[float, float] = (0.55, 0.9)
    speed_px: tuple[float, float] = (1.0, 3.5)
    swing_frames: tuple[int, int] = (24, 48)
    occluder_prob: float = 0.5
    noise_sigma: float = 4.0

    def __post_init__(self) -> None:
        h, w = self.image_hw
        if h < 32 or w < 32:
            raise ValueError(f"VideoSynthConfig.image_hw {self.image_hw}: both sides must be >= 32 pixels")
        if self.frames < 1:
            raise ValueError(f"VideoSynthConfig.frames must be >= 1, got {self.frames}")
        if not 1 <= self.still[0] <= self.still[1] or not 1 <= self.people[0] <= self.people[1] or self.still[0] > self.people[1]:
            raise ValueError(f"VideoSynthConfig: people {self.people} and still {self.still} need 1 <= min <= max, still min <= people max")
        if not self.fps > 0:
            raise ValueError(f"VideoSynthConfig.fps must be > 0, got {self.fps}")


@dataclass
class ClipFigure:
    """One figure of a clip: two poses relative to the pelvis, a start point and a velocity.

    Attributes:
        pose_a, pose_b: figures drawn at pelvis (0, 0); the clip interpolates their
            keypoints and head centre, colours and widths are ``pose_a``'s.
        start_xy: (2,) pelvis position in frame 0, image px.
        velocity_xy: (2,) pelvis displacement per frame, px (0 for a still figure).
        swing_frames: period of the swing between the two poses (frames).
        phase: swing phase at frame 0, radians.
        still: True for a figure that never moves (same pose, same place).
        track_id: the figure's identity in the ground truth (1-based).
    """

    pose_a: Figure
    pose_b: Figure
    start_xy: np.ndarray
    velocity_xy: np.ndarray
    swing_frames: float
    phase: float
    still: bool
    track_id: int = 0

    def at(self, frame: int) -> Figure:
        """The figure as drawn in ``frame`` (image px)."""
        offset = self.start_xy + self.velocity_xy * frame
        if self.still:
            t = 0.0
        else:
            t = 0.5 - 0.5 * math.cos(2.0 * math.pi * frame / self.swing_frames + self.phase)
        kp = (1.0 - t) * self.pose_a.keypoints + t * self.pose_b.keypoints + offset
        head = (1.0 - t) * self.pose_a.head_center + t * self.pose_b.head_center + offset
        a = self.pose_a
        return Figure(keypoints=kp, head_center=head, head_radius=a.head_radius, limb_width=a.limb_width, colors=a.colors)


@dataclass
class Clip:
    """A sampled clip: background (H,W,3) uint8 BGR, figures in drawing order, occluders, config."""

    background: np.ndarray
    figures: list[ClipFigure]
    occluders: list[Occluder]
    cfg: VideoSynthConfig
    noise_seed: tuple[int, int]


def sample_clip(seed: int, clip: int, cfg: VideoSynthConfig = VideoSynthConfig()) -> Clip:
    """Clip ``clip`` of dataset ``seed`` (deterministic)."""
    rng = np.random.default_rng([int(seed), int(clip)])
    h, w = cfg.image_hw
    bg = _sample_background(rng, (h, w))
    n = int(rng.integers(cfg.people[0], cfg.people[1] + 1))
    n_still = min(n, int(rng.integers(cfg.still[0], cfg.still[1] + 1)))
    figures: list[ClipFigure] = []
    for i in range(n):
        still = i < n_still
        hb = rng.uniform(*cfg.height_frac) * h
        pose_a = sample_figure(rng, (0.0, 0.0), hb)
        pose_b = pose_a if still else sample_figure(rng, (0.0, 0.0), hb)
        y = rng.uniform(0.55, 0.7) * h
        if still:
            start = np.array([rng.uniform(0.15, 0.85) * w, y])
            vel = np.zeros(2)
        else:
            speed = rng.uniform(*cfg.speed_px)
            direction = 1.0 if rng.random() < 0.5 else -1.0
            # Start anywhere from a quarter width outside the frame (enters later) to inside it.
            x0 = rng.uniform(-0.25 * w, 0.7 * w)
            start = np.array([x0 if direction > 0 else w - x0, y])
            vel = np.array([direction * speed, 0.0])
        swing = float(rng.uniform(*cfg.swing_frames))
        figures.append(ClipFigure(pose_a, pose_b, start, vel, swing, float(rng.uniform(0, 2 * np.pi)), still, track_id=i + 1))
    # Drawing order (who passes in front of whom) is random but fixed for the clip;
    # track ids follow the sampled order, so ids and depth are unrelated.
    order = rng.permutation(n)
    occluders: list[Occluder] = []
    if rng.random() < cfg.occluder_prob:
        cx = rng.uniform(0.2, 0.8) * w
        half_w = rng.uniform(0.03, 0.07) * w
        top = rng.uniform(0.3, 0.6) * h
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        occluders.append(Occluder("rect", np.array([[cx - half_w, top], [cx + half_w, h + 1.0]]), color))
    return Clip(bg, [figures[i] for i in order], occluders, cfg, (int(seed), int(clip)))


def render_clip(clip: Clip) -> Iterator[tuple[np.ndarray, list[dict[str, Any]]]]:
    """Frames of ``clip``: (H,W,3) uint8 BGR and the ground truth of the figures in it.

    Each ground-truth dict is a :func:`render_scene` record (``keypoints`` (17,3) image px +
    visibility, ``num_keypoints``, ``bbox``, ``area``) plus ``track_id`` and ``still``.
    """
    noise_rng = np.random.default_rng([*clip.noise_seed, 1])
    for t in range(clip.cfg.frames):
        figs = [f.at(t) for f in clip.figures]
        img, records = render_scene(clip.background, figs, clip.occluders)
        if clip.cfg.noise_sigma > 0:
            noise = noise_rng.normal(0.0, clip.cfg.noise_sigma, size=img.shape)
            img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        gt = []
        for f, r in zip(clip.figures, records):
            if r["num_keypoints"] > 0:
                gt.append({**r, "track_id": f.track_id, "still": f.still})
        yield img, gt


def clip_annotations(clip_name: str, frames_gt: list[list[dict[str, Any]]], cfg: VideoSynthConfig) -> dict[str, Any]:
    """COCO keypoint annotations of one clip: image id = frame index, ``track_id`` per annotation."""
    h, w = cfg.image_hw
    images, annotations = [], []
    for t, gt in enumerate(frames_gt):
        images.append({"id": t, "file_name": f"{clip_name}.mp4#frame={t}", "frame_id": t, "video": f"{clip_name}.mp4", "height": h, "width": w})
        for r in gt:
            annotations.append({
                "id": len(annotations) + 1, "image_id": t, "category_id": 1, "track_id": int(r["track_id"]),
                "still": bool(r["still"]),
                "keypoints": [round(float(v), 2) for v in np.asarray(r["keypoints"]).reshape(-1)],
                "num_keypoints": int(r["num_keypoints"]), "bbox": r["bbox"], "area": r["area"], "iscrowd": 0,
            })  # fmt: skip
    return {
        "info": {"description": "hsrpose synthetic video clip", "video": f"{clip_name}.mp4", "fps": cfg.fps, "image_hw": [h, w]},
        "images": images,
        "annotations": annotations,
        "categories": _coco_categories(COCO_KEYPOINTS),
    }


def generate_video_clips(
    out_dir: str | Path, num_clips: int, seed: int = 0, cfg: VideoSynthConfig = VideoSynthConfig(), progress: bool = False
) -> list[Path]:
    """Write ``num_clips`` clips (video, annotations, oracle boxes) under ``out_dir``; returns the video paths."""
    if num_clips < 1:
        raise ValueError(f"generate_video_clips: num_clips must be >= 1, got {num_clips}")
    out = Path(out_dir)
    h, w = cfg.image_hw
    clips: Any = range(num_clips)
    if progress:
        from tqdm import tqdm

        clips = tqdm(clips, desc=f"synth video {out.name}", unit="clip")
    videos = []
    for c in clips:
        name = f"clip_{c:03d}"
        video = out / VIDEO_DIR / f"{name}.mp4"
        frames_gt: list[list[dict[str, Any]]] = []
        with AtomicVideoWriter(video, cfg.fps) as writer:
            for img, gt in render_clip(sample_clip(seed, c, cfg)):
                writer.write(img)
                frames_gt.append(gt)
        ann = clip_annotations(name, frames_gt, cfg)
        atomic_write_json(out / ANN_DIR / f"{name}.json", ann)
        boxes = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0} for a in ann["annotations"]]
        atomic_write_json(out / BOX_DIR / f"{name}.json", boxes)
        videos.append(video)
    return videos
