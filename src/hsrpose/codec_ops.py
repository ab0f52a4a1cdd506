"""Array utilities behind :class:`~hsrpose.codec.HeatmapCodec`, written once for numpy and torch.

Every function takes numpy arrays or torch tensors (any device) and returns the same
kind; the arithmetic is the same expressions in the same order on both, so the CPU
data path (``HeatmapCodec.encode``, numpy) and the GPU data path
(``data.gpu_targets``, torch) build their targets with one piece of code. torch is
never imported at module level (torch-free deployments decode with numpy).

Coordinate spaces: keypoints given to :func:`gaussian_heatmaps` are **crop px**;
peaks and offsets are **heatmap px** (pixel centres at integers).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

__all__ = ["is_torch", "gaussian_heatmaps", "argmax_peaks", "quarter_offset", "taylor_offset", "gather_peaks"]


_EXP_FLOOR = -110.0


def is_torch(x: Any) -> bool:
    """True for a torch tensor, recognised by its module name (no torch import here)."""
    return type(x).__module__.startswith("torch")


def _xp(x: Any) -> Any:
    if is_torch(x):
        import torch

        return torch
    return np


def gaussian_heatmaps(
    keypoints_crop: Any,
    labelled: Any,
    input_hw: Sequence[int],
    heatmap_hw: Sequence[int],
    sigma: float = 2.0,
    dark: bool = False,
) -> tuple[Any, Any]:
    """Gaussian targets of keypoints ``(..., K, 2)`` crop px -> heatmaps ``(..., K, h, w)``, weights ``(..., K)``.

    ``dark=False`` is SimpleBaseline/HRNet ``generate_target`` (``lib/dataset/JointsDataset.py``):
    ``mu = int(kp / stride + 0.5)`` (C truncation, also for negative values), the Gaussian
    ``exp(-d^2 / (2 sigma^2))`` around the window's centre cell pasted into the window
    ``[int(mu - 3 sigma), int(mu + 3 sigma + 1))`` (at most ``ceil(6 sigma + 1)`` cells),
    zero elsewhere; weight 0 when the window misses the map. ``dark=True`` (DARK / mmpose
    ``unbiased``): centred on the exact ``kp / stride`` over the whole map; weight 0 when
    its 3-sigma square misses the map. Unlabelled or non-finite joints: weight 0, zero map.

    The Gaussian is evaluated in float64 over the whole map as ``exp(-(dx^2 + dy^2) /
    (2 sigma^2))`` and rounded once to float32, the reference's expression, so numpy gives
    the reference's numbers bit for bit. ``labelled``: ``(..., K)`` bool. Both outputs float32.
    """
    xp = _xp(keypoints_crop)
    torch_in = xp is not np
    if torch_in:
        kp = keypoints_crop.to(xp.float64)
        dev = kp.device
        lab = labelled.to(device=dev, dtype=xp.bool)
        arange = lambda n: xp.arange(n, dtype=xp.float64, device=dev)  # noqa: E731
    else:
        kp = np.asarray(keypoints_crop, dtype=np.float64)
        lab = np.asarray(labelled, dtype=bool)
        arange = lambda n: np.arange(n, dtype=np.float64)  # noqa: E731
    finite = xp.isfinite(kp).all(-1)
    kp = xp.where(finite[..., None], kp, xp.zeros_like(kp))
    radius = sigma * 3.0
    size = 2.0 * radius + 1.0
    inside = finite
    d2 = []
    # axis 0 = x (heatmap width), 1 = y; stride per axis = input / heatmap, as the codec's.
    for d, (n, n_in) in enumerate([(int(heatmap_hw[1]), int(input_hw[1])), (int(heatmap_hw[0]), int(input_hw[0]))]):
        c = kp[..., d] / (n_in / n)
        coords = arange(n)
        if dark:
            centre = c
            inside = inside & (c - radius < n) & (c + radius >= 0)
            in_win = None
        else:
            mu = xp.trunc(c + 0.5)  # python int() of a float
            lo = xp.trunc(mu - radius)  # window [lo, br) in heatmap px
            br = xp.trunc(mu + radius + 1.0)
            inside = inside & (lo < n) & (br >= 0)
            # np.arange(0, size) has ceil(size) cells; the reference's slices stop there.
            hi = xp.minimum(br, lo + float(math.ceil(size)))
            centre = lo + float(size // 2)
            in_win = (coords >= lo[..., None]) & (coords < hi[..., None])
        d2.append(((coords - centre[..., None]) ** 2, in_win))  # (..., K, n)
    (dx2, win_x), (dy2, win_y) = d2
    weight = lab & inside
    arg = -(dx2[..., None, :] + dy2[..., :, None]) / (2 * sigma**2)  # (..., K, h, w)
    mask = weight[..., None, None]
    if win_x is not None:
        mask = mask & win_y[..., :, None] & win_x[..., None, :]
    # exp(-110) and anything below round to float32 0 (its least subnormal is exp(-103.3)):
    # the clamp changes no output and keeps exp off its slow underflow path.
    if torch_in or dark:
        # Whole maps (torch: no data-dependent shapes, so no device->host sync on the GPU path).
        g = xp.exp(arg.clip(min=_EXP_FLOOR))
        heatmaps = xp.where(mask, g, xp.zeros_like(g))
        if torch_in:
            return heatmaps.to(xp.float32), weight.to(xp.float32)
        return heatmaps.astype(np.float32), weight.astype(np.float32)
    # numpy windows: exp only inside them (elementwise, so the same numbers), ~6% of the map.
    mask = np.broadcast_to(mask, arg.shape)
    heatmaps = np.zeros(arg.shape, dtype=np.float32)
    heatmaps[mask] = np.exp(np.maximum(arg[mask], _EXP_FLOOR))
    return heatmaps, weight.astype(np.float32)


def gather_peaks(hm: Any, yy: Any, xx: Any) -> Any:
    """``hm[b, k, yy[b, k], xx[b, k]]`` for heatmaps ``(B, K, h, w)`` and integer indices ``(B, K)``, clamped to the map."""
    b, k, h, w = hm.shape
    if is_torch(hm):
        flat = hm.reshape(b, k, -1)
        return flat.gather(2, (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).unsqueeze(-1)).squeeze(-1)
    bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
    return hm[bi, ki, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]


def argmax_peaks(hm: Any) -> tuple[Any, Any, Any]:
    """Heatmaps ``(B, K, h, w)`` -> integer peak ``px``, ``py`` and the maxima ``(B, K)``.

    The first maximum wins on both backends (torch ``argmax``, not ``max(dim)``, promises that).
    """
    b, k, h, w = hm.shape
    flat = hm.reshape(b, k, h * w)
    if is_torch(flat):
        idx = flat.argmax(dim=2)
        scores = flat.gather(2, idx.unsqueeze(-1)).squeeze(-1)
    else:
        idx = np.argmax(flat, axis=2)
        scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    return idx % w, idx // w, scores


def _stack_where(inside: Any, ox: Any, oy: Any) -> Any:
    """``(B, K, 2)`` offsets, zero outside ``inside``."""
    xp = _xp(ox)
    return xp.stack([xp.where(inside, ox, 0.0), xp.where(inside, oy, 0.0)], -1)


def _float32(x: Any) -> Any:
    return x.float() if is_torch(x) else x.astype(np.float32)


def quarter_offset(hm: Any, px: Any, py: Any) -> Any:
    """HRNet ``get_final_preds`` (``lib/core/inference.py``): +-0.25 heatmap px toward the higher neighbour.

    Both axes move only for a peak strictly inside, ``1 < px < w - 1 and 1 < py < h - 1``
    (one test for both axes). Returns float32 ``(B, K, 2)`` ``(dx, dy)``.
    """
    xp = _xp(hm)
    h, w = hm.shape[2], hm.shape[3]
    inside = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    dx = xp.sign(gather_peaks(hm, py, px + 1) - gather_peaks(hm, py, px - 1))
    dy = xp.sign(gather_peaks(hm, py + 1, px) - gather_peaks(hm, py - 1, px))
    return _float32(_stack_where(inside, dx, dy) * 0.25)


def taylor_offset(logs: Any, px: Any, py: Any) -> Any:
    """DARK's second-order Taylor step at integer ``(px, py)`` on log-heatmaps ``(B, K, h, w)``, float32 ``(B, K, 2)``.

    Computed in float64; points within 2 px of the border (or with a singular Hessian)
    are not refined.
    """
    xp = _xp(logs)
    h, w = logs.shape[2], logs.shape[3]

    def at(dy: int, dx: int) -> Any:
        v = gather_peaks(logs, py + dy, px + dx)
        return v.double() if xp is not np else v.astype(np.float64)

    c = at(0, 0)
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    dyy = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
    det = dxx * dyy - dxy**2
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2) & (det != 0)
    safe = xp.where(inside, det, xp.ones_like(det))
    # offset = -H^-1 g with H^-1 = [[dyy, -dxy], [-dxy, dxx]] / det
    ox = -(dyy * dx - dxy * dy) / safe
    oy = -(-dxy * dx + dxx * dy) / safe
    return _float32(_stack_where(inside, ox, oy))
