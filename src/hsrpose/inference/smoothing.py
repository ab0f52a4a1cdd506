"""One-Euro filtering of tracked keypoints (Casiez, Roussel and Vogel, CHI 2012).

A first-order low-pass filter whose cutoff rises with the signal's speed: a still
keypoint is smoothed hard (little jitter), a moving one lightly (little lag). Per
keypoint coordinate ``x`` at time ``t`` (seconds), with ``Te`` the time since the
last sample and ``alpha(fc) = 1 / (1 + 1 / (2 pi fc Te))``:

    dx   = (x - x_prev_filtered) / Te                 derivative
    dx^  = dx^_prev + alpha(d_cutoff) (dx - dx^_prev) smoothed derivative
    fc   = min_cutoff + beta |dx^|                     adaptive cutoff
    x^   = x^_prev + alpha(fc) (x - x^_prev)           filtered value

Two choices of ours:

- **Scale-free speed.** ``dx`` is measured in person heights per second (pixels
  divided by the track's box height), so one ``beta`` works for people of any size
  in any video resolution.
- **Score weighting.** The step towards a new measurement is ``alpha(fc) * w`` with
  ``w = clip(score / score_full, 0, 1)``: keypoints at or above ``score_full`` are
  filtered normally; a less confident keypoint moves the estimate less, and a
  keypoint with score 0 leaves it where it was.

Defaults (:class:`OneEuroConfig`): ``min_cutoff`` 1.0 Hz, ``beta`` 2.0 per (heights/s),
``d_cutoff`` 1.0 Hz, ``score_full`` 0.5. At 25 frames/s a still keypoint gets
``alpha`` 0.20 (its jitter shrinks about 3x); a keypoint moving half a body height
per second (a walk across the frame in a few seconds) gets a cutoff of 2 Hz,
``alpha`` 0.33. Time comes from frame indices / fps, so a gap of skipped frames
lets the estimate move further in one step.

No torch import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["OneEuroConfig", "OneEuroFilter", "KeypointSmoother"]


@dataclass(frozen=True)
class OneEuroConfig:
    """One-Euro parameters (see module doc for what the defaults give at 25 frames/s)."""

    min_cutoff: float = 1.0
    beta: float = 2.0
    d_cutoff: float = 1.0
    score_full: float = 0.5

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0 or self.score_full <= 0:
            raise ValueError(f"OneEuroConfig: need min_cutoff, d_cutoff, score_full > 0 and beta >= 0, got {self}")


def _alpha(cutoff: np.ndarray | float, te: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / te)


class OneEuroFilter:
    """One-Euro filter of an array signal (e.g. (K,2) keypoints) with per-element weights.

    ``__call__(x, t, weight=None, scale=1.0)``: ``x`` any shape, ``t`` seconds (increasing),
    ``weight`` broadcastable to ``x`` in [0, 1], ``scale`` divides the derivative (person height).
    """

    def __init__(self, cfg: OneEuroConfig = OneEuroConfig()) -> None:
        self.cfg = cfg
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    def __call__(self, x: np.ndarray, t: float, weight: np.ndarray | None = None, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        w = np.ones_like(x) if weight is None else np.broadcast_to(np.clip(np.asarray(weight, dtype=np.float64), 0.0, 1.0), x.shape)
        if self.x is None or self.t is None:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return self.x.copy()
        te = float(t) - self.t
        if te <= 0:
            raise ValueError(f"OneEuroFilter: time {t} is not after {self.t}")
        c = self.cfg
        dx = (x - self.x) / te / max(float(scale), 1e-6)
        assert self.dx is not None
        self.dx = self.dx + _alpha(c.d_cutoff, te) * w * (dx - self.dx)
        cutoff = c.min_cutoff + c.beta * np.abs(self.dx)
        self.x = self.x + _alpha(cutoff, te) * w * (x - self.x)
        self.t = float(t)
        return self.x.copy()


class KeypointSmoother:
    """One :class:`OneEuroFilter` per track id, over the (K,2) keypoints of each tracked pose.

    ``__call__(track_id, keypoints (K,2) image px, scores (K,), frame, box_h)`` -> smoothed (K,2).
    Filters of tracks not seen for ``forget_frames`` frames are dropped.
    """

    def __init__(self, fps: float, cfg: OneEuroConfig = OneEuroConfig(), forget_frames: int = 60) -> None:
        if not fps > 0:
            raise ValueError(f"KeypointSmoother: fps must be > 0, got {fps}")
        self.fps, self.cfg, self.forget_frames = float(fps), cfg, int(forget_frames)
        self._filters: dict[int, tuple[OneEuroFilter, int]] = {}

    def __call__(self, track_id: int, keypoints: np.ndarray, scores: np.ndarray, frame: int, box_h: float) -> np.ndarray:
        self._filters = {k: v for k, v in self._filters.items() if frame - v[1] <= self.forget_frames}
        f = self._filters[track_id][0] if track_id in self._filters else OneEuroFilter(self.cfg)
        w = np.clip(np.asarray(scores, dtype=np.float64) / self.cfg.score_full, 0.0, 1.0)[:, None]
        out = f(keypoints, frame / self.fps, weight=w, scale=box_h)
        self._filters[track_id] = (f, frame)
        return out
