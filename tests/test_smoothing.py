"""One-Euro filter: the published recurrence, score weighting, scale-free speed, per-track state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hsrpose.inference.smoothing import KeypointSmoother, OneEuroConfig, OneEuroFilter


def _reference_one_euro(xs: list[float], fps: float, min_cutoff: float, beta: float, d_cutoff: float) -> list[float]:
    """Casiez et al. 2012, the paper's pseudo-code (OneEuroFilter.filter / LowPassFilter) for a scalar:
    alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc); dx from the previous *filtered* value."""

    def alpha(fc: float) -> float:
        return 1.0 / (1.0 + (1.0 / (2 * math.pi * fc)) * fps)

    out, x_hat, dx_hat = [], None, 0.0
    for x in xs:
        if x_hat is None:
            x_hat = x
        else:
            dx = (x - x_hat) * fps
            dx_hat = dx_hat + alpha(d_cutoff) * (dx - dx_hat)
            x_hat = x_hat + alpha(min_cutoff + beta * abs(dx_hat)) * (x - x_hat)
        out.append(x_hat)
    return out


def test_matches_the_published_recurrence() -> None:
    rng = np.random.default_rng(0)
    xs = list(np.cumsum(rng.normal(0, 3, size=50)))
    cfg = OneEuroConfig(min_cutoff=1.0, beta=0.05, d_cutoff=1.0)
    f = OneEuroFilter(cfg)
    ours = [float(f(np.array([x]), t / 25.0)[0]) for t, x in enumerate(xs)]
    np.testing.assert_allclose(ours, _reference_one_euro(xs, 25.0, 1.0, 0.05, 1.0), rtol=1e-12)


def test_documented_default_alpha_for_a_still_keypoint() -> None:
    """Module doc: at 25 frames/s a still keypoint gets alpha 0.20 with the defaults (a 0.1 px
    step of a 100 px tall person is far too slow to raise the cutoff)."""
    f = OneEuroFilter(OneEuroConfig())
    f(np.array([0.0]), 0.0)
    step = f(np.array([0.1]), 0.04, scale=100.0)[0] / 0.1
    assert step == pytest.approx(1 / (1 + 25 / (2 * math.pi)), rel=0.01)
    assert step == pytest.approx(0.20, abs=0.005)


def test_reduces_jitter_of_a_still_point_and_follows_a_moving_one() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 2.0, size=(100, 2))
    f = OneEuroFilter()
    still = np.array([f(np.array([100.0, 50.0]) + n, t / 25.0, scale=100.0) for t, n in enumerate(noise)])
    accel = lambda p: np.linalg.norm(p[2:] - 2 * p[1:-1] + p[:-2], axis=1).mean()  # noqa: E731
    assert accel(still[10:]) < accel(np.array([100.0, 50.0]) + noise[10:]) / 3
    # a point moving 1 body height per second: the speed term keeps the lag small
    ramp = np.stack([np.arange(100) * 4.0, np.zeros(100)], axis=1)
    lag_adaptive = ramp[-1, 0] - _run(OneEuroFilter(OneEuroConfig()), ramp)[-1, 0]
    lag_fixed = ramp[-1, 0] - _run(OneEuroFilter(OneEuroConfig(beta=0.0)), ramp)[-1, 0]
    assert 0 < lag_adaptive < lag_fixed / 2


def _run(f: OneEuroFilter, xs: np.ndarray) -> np.ndarray:
    return np.array([f(x, t / 25.0, scale=100.0) for t, x in enumerate(xs)])


def test_score_weighting() -> None:
    f = OneEuroFilter(OneEuroConfig(score_full=0.5))
    f(np.array([[0.0, 0.0], [0.0, 0.0]]), 0.0)
    # keypoint 0: score 0 -> stays; keypoint 1: full score -> moves
    out = f(np.array([[10.0, 10.0], [10.0, 10.0]]), 0.04, weight=np.array([[0.0], [1.0]]))
    assert out[0].tolist() == [0.0, 0.0] and out[1, 0] > 0
    smoother = KeypointSmoother(fps=25.0)
    smoother(1, np.zeros((2, 2)), np.array([0.9, 0.9]), 0, box_h=100.0)
    half = smoother(1, np.full((2, 2), 10.0), np.array([0.25, 0.9]), 1, box_h=100.0)
    # score 0.25 = half of score_full: a smaller step than the confident keypoint
    assert 0 < half[0, 0] < half[1, 0]


def test_smoother_keeps_one_state_per_track_and_forgets_old_tracks() -> None:
    s = KeypointSmoother(fps=25.0, forget_frames=3)
    a0 = s(1, np.zeros((1, 2)), np.ones(1), 0, 100.0)
    b0 = s(2, np.full((1, 2), 500.0), np.ones(1), 0, 100.0)
    assert a0[0, 0] == 0.0 and b0[0, 0] == 500.0  # first sample of each track passes through
    a1 = s(1, np.full((1, 2), 10.0), np.ones(1), 1, 100.0)
    assert 0 < a1[0, 0] < 10.0  # filtered against track 1's state, not track 2's
    again = s(2, np.full((1, 2), 0.0), np.ones(1), 10, 100.0)  # track 2 unseen for 10 > 3 frames: restarted
    assert again[0, 0] == 0.0
    with pytest.raises(ValueError):
        OneEuroConfig(min_cutoff=0.0)
