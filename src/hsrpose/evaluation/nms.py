"""OKS-based non-maximum suppression of pose instances (one image at a time).

Follows SimpleBaseline / HRNet ``lib/nms/nms.py`` (the code behind the
published COCO numbers), with these stated choices:

- OKS between instances i and j uses the mean of their two *areas*, and the
  area is that of the crop region (``size_wh[0] * size_wh[1]`` in image px:
  the box extended to 3:4 and padded by 1.25), which is what HRNet stores
  (``np.prod(scale * 200)``). Callers pass whatever area they want.
- OKS = mean over keypoints of ``exp(-d^2 / (2 * area_mean * (2 sigma)^2))``
  (plus ``np.spacing(1)`` on the area, as the reference).
- ``in_vis_thr``: HRNet's evaluation calls the NMS with ``in_vis_thre=None``
  (all keypoints count), which is our default. When given, only keypoints whose
  score is above it in *both* instances count (the reference writes
  ``list(a) and list(b)``, which in Python evaluates to ``list(b)`` alone: a bug
  mmpose fixed with ``&``; we follow the fix). No keypoint left -> OKS 0.
- Greedy NMS keeps an instance and drops the others with OKS ``> thr``.
- Soft-OKS-NMS multiplies the remaining scores by ``exp(-oks^2 / thr)``
  (Gaussian), re-sorts, and keeps at most ``max_dets`` (20 in the reference)
  instances per image. As in the reference it returns indices only; the kept
  instances keep their original scores.
- Ties in score: the reference sorts with NumPy's unstable quicksort
  (``argsort()[::-1]``); we sort stably, so among equal scores the earlier
  instance wins. Only exact ties can differ from the reference.
"""

from __future__ import annotations

import numpy as np

from hsrpose.data.keypoints import COCO_KEYPOINTS

__all__ = ["oks_iou", "oks_nms", "soft_oks_nms", "batched_oks_nms"]


def _sigmas(sigmas: np.ndarray | None, k: int) -> np.ndarray:
    s = COCO_KEYPOINTS.sigmas_array if sigmas is None else np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if s.shape[0] != k:
        raise ValueError(f"OKS: {s.shape[0]} sigmas for {k} keypoints")
    return s


def oks_iou(
    g: np.ndarray,
    d: np.ndarray,
    area_g: float,
    area_d: np.ndarray,
    sigmas: np.ndarray | None = None,
    in_vis_thr: float | None = None,
) -> np.ndarray:
    """OKS (M,) between one instance ``g`` (K,3) and instances ``d`` (M,K,3); image px.

    Column 2 of the keypoints is the keypoint score (used only with ``in_vis_thr``).
    ``area_g`` and ``area_d`` (M,) are the instances' areas in px^2; their mean normalises
    the distances. COCO-17 sigmas unless ``sigmas`` (K,) is given.
    """
    g = np.asarray(g, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64).reshape(-1, *g.shape)
    var = (2.0 * _sigmas(sigmas, g.shape[0])) ** 2  # (K,)
    area = (float(area_g) + np.asarray(area_d, dtype=np.float64).reshape(-1)) / 2.0  # (M,)
    sq = ((d[:, :, :2] - g[None, :, :2]) ** 2).sum(axis=2)  # (M,K)
    e = sq / var[None, :] / (area[:, None] + np.spacing(1)) / 2.0
    if in_vis_thr is None:
        return np.exp(-e).mean(axis=1) if g.shape[0] else np.zeros(len(d))
    used = (g[None, :, 2] > in_vis_thr) & (d[:, :, 2] > in_vis_thr)  # (M,K)
    n = used.sum(axis=1)
    total = np.where(used, np.exp(-e), 0.0).sum(axis=1)
    return np.divide(total, n, out=np.zeros_like(total), where=n > 0)


def _check(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1)
    ar = np.asarray(areas, dtype=np.float64).reshape(-1)
    if kp.ndim != 3 or kp.shape[2] not in (2, 3) or not (kp.shape[0] == sc.shape[0] == ar.shape[0]):
        raise ValueError(f"OKS-NMS: keypoints {kp.shape} must be (N,K,3) with N scores {sc.shape} and areas {ar.shape}")
    if kp.shape[2] == 2:  # no keypoint scores: every keypoint counts
        kp = np.concatenate([kp, np.ones(kp.shape[:2] + (1,))], axis=2)
    return kp, sc, ar


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: np.ndarray | None = None,
    in_vis_thr: float | None = None,
) -> np.ndarray:
    """Greedy OKS-NMS of the instances of one image.

    Args:
        keypoints: (N,K,3) image px + keypoint score (or (N,K,2)).
        scores: (N,) instance scores (after rescoring).
        areas: (N,) instance areas in px^2 (see module docstring).
        thr: instances with OKS ``> thr`` to a kept, higher-scored instance are dropped.
    Returns:
        indices (int64) of the kept instances, highest score first.
    """
    kp, sc, ar = _check(keypoints, scores, areas)
    order = np.argsort(-sc, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ovr = oks_iou(kp[i], kp[rest], ar[i], ar[rest], sigmas, in_vis_thr)
        order = rest[ovr <= thr]
    return np.asarray(keep, dtype=np.int64)


def soft_oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: np.ndarray | None = None,
    in_vis_thr: float | None = None,
    max_dets: int = 20,
) -> np.ndarray:
    """Soft-OKS-NMS (Gaussian decay ``score * exp(-oks^2 / thr)``) of one image's instances.

    Same arguments as :func:`oks_nms`; keeps at most ``max_dets`` instances.
    Returns the kept indices in the order they were selected.
    """
    kp, sc, ar = _check(keypoints, scores, areas)
    order = np.argsort(-sc, kind="stable")
    cur = sc[order]
    keep: list[int] = []
    while order.size > 0 and len(keep) < max_dets:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ovr = oks_iou(kp[i], kp[rest], ar[i], ar[rest], sigmas, in_vis_thr)
        cur = cur[1:] * np.exp(-(ovr**2) / thr)
        resort = np.argsort(-cur, kind="stable")
        order, cur = rest[resort], cur[resort]
    return np.asarray(keep, dtype=np.int64)


def batched_oks_nms(
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float = 0.9,
    sigmas: np.ndarray | None = None,
    in_vis_thr: float | None = None,
    max_elements: int = 1 << 18,
) -> np.ndarray:
    """Greedy OKS-NMS of every image at once; the same indices as :func:`oks_nms` per image.

    Equal, index for index, to running :func:`oks_nms` on each image's instances (taken in
    their original order) and joining the kept indices image by image in ascending image id.
    Instead of one Python loop per image and per kept instance, images of similar instance
    counts are padded into blocks, each block's pairwise OKS is computed in one pass with the
    same float operations as :func:`oks_iou` (so bit-identical values), and the greedy scan
    runs over score ranks for all images of a block together.

    Args:
        image_ids: (N,) int image of each instance.
        keypoints, scores, areas, thr, sigmas, in_vis_thr: as :func:`oks_nms` (N instances).
        max_elements: size bound of a block's (images, M (M - 1) / 2, K) OKS terms; changes speed and
            memory, never results (2 MB of float64 by default: cache-sized blocks measured fastest).
    Returns:
        (n_kept,) int64 indices into the N instances: by ascending image id, then highest score first.
    """
    kp, sc, ar = _check(keypoints, scores, areas)
    ids = np.asarray(image_ids).reshape(-1)
    if ids.shape[0] != sc.shape[0]:
        raise ValueError(f"OKS-NMS: {ids.shape[0]} image ids for {sc.shape[0]} instances")
    n, k = kp.shape[0], kp.shape[1]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    var = (2.0 * _sigmas(sigmas, k)) ** 2  # (K,)
    # Image-major, then score-descending; stable, so ties keep the original order as oks_nms does.
    order = np.lexsort((-sc, ids))
    kp_s, ar_s = kp[order], ar[order]
    starts = np.flatnonzero(np.r_[True, ids[order][1:] != ids[order][:-1]])
    counts = np.diff(np.r_[starts, n])
    keep_sorted = np.zeros(n, dtype=bool)
    by_count = np.argsort(counts, kind="stable")  # similar counts share a block: little padding
    i = 0
    while i < len(by_count):
        j = i + 1  # add images (ascending counts) while the block's pair terms stay within the bound
        while j < len(by_count) and (j - i + 1) * int(counts[by_count[j]]) ** 2 * max(k, 1) <= 2 * max_elements:
            j += 1
        block = by_count[i:j]
        m = int(counts[block].max())
        pos = starts[block][:, None] + np.arange(m)[None, :]  # (B,M) positions in the sorted order
        valid = np.arange(m)[None, :] < counts[block][:, None]
        pos = np.where(valid, pos, starts[block][:, None])  # padding repeats the first instance
        keep_sorted[pos[valid]] = _greedy_block(kp_s[pos], ar_s[pos], valid, var, thr, in_vis_thr)[valid]
        i = j
    return order[keep_sorted].astype(np.int64)


def _greedy_block(
    kp: np.ndarray, ar: np.ndarray, valid: np.ndarray, var: np.ndarray, thr: float, in_vis_thr: float | None
) -> np.ndarray:
    """Keep mask (B,M) of greedy OKS-NMS over B images of M score-sorted instances (padding invalid).

    The OKS of rank t (the kept one, ``g``) against each later rank u is :func:`oks_iou`'s, written
    with the same operations in the same order (``dx*dx + dy*dy`` is the sum of the two squares
    it reduces; the mean over keypoints runs on contiguous rows of K, as there).
    """
    b, m, k = kp.shape[:3]
    t_idx, u_idx = np.triu_indices(m, 1)  # the pairs the greedy scan can use: t < u
    x, y = np.ascontiguousarray(kp[..., 0]), np.ascontiguousarray(kp[..., 1])  # (B,M,K)
    # In place, in oks_iou's order: e = sq / var / (area + eps) / 2, then exp(-e).
    e = np.take(x, u_idx, axis=1)  # (B,P,K)
    e -= np.take(x, t_idx, axis=1)  # dx
    e *= e
    dy = np.take(y, u_idx, axis=1)
    dy -= np.take(y, t_idx, axis=1)
    dy *= dy
    e += dy
    del dy
    e /= var
    area = np.take(ar, t_idx, axis=1) + np.take(ar, u_idx, axis=1)  # (B,P)
    area /= 2.0
    area += np.spacing(1)
    e /= area[..., None]
    e /= 2.0
    np.negative(e, out=e)
    np.exp(e, out=e)
    if in_vis_thr is None:
        ovr = e.mean(axis=-1) if k else np.zeros(e.shape[:2])
    else:
        vis = kp[..., 2] > in_vis_thr  # (B,M,K)
        used = np.take(vis, t_idx, axis=1) & np.take(vis, u_idx, axis=1)
        cnt = used.sum(axis=-1)
        total = np.where(used, e, 0.0).sum(axis=-1)
        ovr = np.divide(total, cnt, out=np.zeros_like(total), where=cnt > 0)
    # oks_nms drops the rest with ``not (ovr <= thr)`` (so a NaN OKS drops too).
    drops = np.zeros((b, m, m), dtype=bool)
    drops[:, t_idx, u_idx] = ~(ovr <= thr)
    alive = valid.copy()
    keep = np.zeros((b, m), dtype=bool)
    for t in range(m):
        kt = alive[:, t]
        keep[:, t] = kt
        alive &= ~(drops[:, t, :] & kt[:, None])
    return keep
