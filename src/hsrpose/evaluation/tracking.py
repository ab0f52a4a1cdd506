"""Multi-person pose tracking metrics against per-frame identity ground truth.

Poses are matched to ground truth by COCO's OKS (the ground truth's visible/labelled
keypoints, its ``area`` as the scale; :func:`coco_oks`). On that similarity:

- **ID switches, MOTA, IDF1** come from ``motmetrics`` (py-motmetrics): per frame,
  distance ``1 - OKS``, pairs with OKS below ``oks_thr`` (0.5) cannot match.
- **HOTA** (with DetA and AssA) comes from TrackEval (``trackeval.metrics.HOTA``,
  the reference implementation by the metric's authors) with OKS as the similarity:
  HOTA averaged over its 19 localisation thresholds 0.05 ... 0.95.
- **Jitter**: on ground-truth figures marked ``still`` (they do not move), the mean
  over keypoints (labelled in the ground truth) and frames of the acceleration
  ``|p(t+1) - 2 p(t) + p(t-1)|`` in px/frame^2 of the matched prediction, where the
  prediction matched in frame t is the one assigned to the figure by maximum OKS
  (scipy's solver, OKS >= ``oks_thr``) in that frame: it needs no track ids, so it
  measures untracked output the same way. The ground truth's own acceleration is 0.

No torch import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from hsrpose.evaluation.nms import oks_iou

__all__ = ["FrameGT", "FramePred", "coco_oks", "tracking_metrics", "jitter", "frames_from_coco"]


@dataclass
class FrameGT:
    """Ground truth of one frame: ``ids`` (G,), ``keypoints`` (G,K,3) image px + COCO visibility, ``areas`` (G,), ``still`` (G,) bool."""

    ids: np.ndarray
    keypoints: np.ndarray
    areas: np.ndarray
    still: np.ndarray


@dataclass
class FramePred:
    """Predictions of one frame: ``ids`` (P,) track ids, ``keypoints`` (P,K,2) image px."""

    ids: np.ndarray
    keypoints: np.ndarray


def coco_oks(gt: FrameGT, pred: FramePred, sigmas: np.ndarray) -> np.ndarray:
    """(G,P) OKS as COCOeval computes it: ground-truth keypoints with v > 0, the ground truth's area."""
    g, p = len(gt.ids), len(pred.ids)
    out = np.zeros((g, p), dtype=np.float64)
    if not g or not p:
        return out
    d = np.concatenate([np.asarray(pred.keypoints, np.float64)[:, :, :2], np.ones(np.asarray(pred.keypoints).shape[:2] + (1,))], axis=2)
    for i in range(g):
        # oks_iou with in_vis_thr=0 counts the keypoints whose column 2 is > 0 in both: the
        # ground truth's visibility flag and the predictions' 1s; both areas = the gt's area.
        out[i] = oks_iou(gt.keypoints[i], d, float(gt.areas[i]), np.full(p, float(gt.areas[i])), sigmas=sigmas, in_vis_thr=0.0)
    return out


def _similarities(gts: Sequence[FrameGT], preds: Sequence[FramePred], sigmas: np.ndarray) -> list[np.ndarray]:
    if len(gts) != len(preds):
        raise ValueError(f"tracking metrics: {len(gts)} ground-truth frames but {len(preds)} prediction frames")
    return [coco_oks(g, p, sigmas) for g, p in zip(gts, preds)]


Clip = tuple[Sequence[FrameGT], Sequence[FramePred]]


def tracking_metrics(clips: Sequence[Clip], sigmas: np.ndarray, oks_thr: float = 0.5) -> dict[str, float]:
    """Over all ``clips`` (each a (ground-truth frames, prediction frames) pair): ``num_switches``,
    ``mota``, ``idf1``, ``num_misses``, ``num_false_positives``, ``num_objects`` (motmetrics,
    its overall row) and ``hota``, ``deta``, ``assa`` (TrackEval, its combination of sequences)."""
    import motmetrics as mm
    from trackeval.metrics import HOTA

    accs, hota_res = [], {}
    for n, (gts, preds) in enumerate(clips):
        sims = _similarities(gts, preds, sigmas)
        acc = mm.MOTAccumulator(auto_id=True)
        for g, p, s in zip(gts, preds, sims):
            acc.update([int(i) for i in g.ids], [int(i) for i in p.ids], np.where(s >= oks_thr, 1.0 - s, np.nan))
        accs.append(acc)
        hota_res[f"clip{n}"] = HOTA().eval_sequence(_trackeval_data(gts, preds, sims))
    names = ["num_switches", "mota", "idf1", "num_misses", "num_false_positives", "num_objects"]
    summary = mm.metrics.create().compute_many(accs, metrics=names, names=[f"clip{i}" for i in range(len(accs))], generate_overall=True)
    out = {n: float(summary.loc["OVERALL", n]) for n in names}
    combined = HOTA().combine_sequences(hota_res)
    out.update({"hota": float(np.mean(combined["HOTA"])), "deta": float(np.mean(combined["DetA"])), "assa": float(np.mean(combined["AssA"]))})
    return out


def _trackeval_data(gts: Sequence[FrameGT], preds: Sequence[FramePred], sims: Sequence[np.ndarray]) -> dict[str, Any]:
    """One sequence in TrackEval's input layout (ids renumbered 0..n-1 as it requires)."""
    gt_map = {v: i for i, v in enumerate(sorted({int(x) for g in gts for x in g.ids}))}
    pr_map = {v: i for i, v in enumerate(sorted({int(x) for p in preds for x in p.ids}))}
    return {
        "num_timesteps": len(gts),
        "num_gt_ids": len(gt_map),
        "num_tracker_ids": len(pr_map),
        "num_gt_dets": int(sum(len(g.ids) for g in gts)),
        "num_tracker_dets": int(sum(len(p.ids) for p in preds)),
        "gt_ids": [np.array([gt_map[int(x)] for x in g.ids], dtype=int) for g in gts],
        "tracker_ids": [np.array([pr_map[int(x)] for x in p.ids], dtype=int) for p in preds],
        "similarity_scores": [np.asarray(s, dtype=np.float64) for s in sims],
    }


def jitter(clips: Sequence[Clip], sigmas: np.ndarray, oks_thr: float = 0.5) -> tuple[float, int]:
    """Mean acceleration (px/frame^2) of the predictions matched to still figures over all ``clips``, and the number of samples."""
    values = np.concatenate([_accelerations(gts, preds, sigmas, oks_thr) for gts, preds in clips] or [np.zeros(0)])
    return (float(values.mean()) if len(values) else float("nan")), int(len(values))


def _accelerations(gts: Sequence[FrameGT], preds: Sequence[FramePred], sigmas: np.ndarray, oks_thr: float) -> np.ndarray:
    sims = _similarities(gts, preds, sigmas)
    tracks: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}  # gt id -> frame -> (pred kpts (K,2), labelled (K,))
    for t, (g, p, s) in enumerate(zip(gts, preds, sims)):
        if not s.size:
            continue
        rows, cols = linear_sum_assignment(s, maximize=True)
        for r, c in zip(rows, cols):
            if g.still[r] and s[r, c] >= oks_thr:
                tracks.setdefault(int(g.ids[r]), {})[t] = (np.asarray(p.keypoints[c], np.float64)[:, :2], g.keypoints[r][:, 2] > 0)
    acc: list[np.ndarray] = []
    for frames in tracks.values():
        for t in frames:
            if t - 1 in frames and t + 1 in frames:
                (a, la), (b, lb), (c, lc) = frames[t - 1], frames[t], frames[t + 1]
                ok = la & lb & lc
                acc.append(np.linalg.norm(c - 2.0 * b + a, axis=1)[ok])
    return np.concatenate(acc) if acc else np.zeros(0)


def frames_from_coco(ann: dict[str, Any], num_frames: int | None = None) -> list[FrameGT]:
    """Per-frame ground truth from a clip's COCO annotations (image id = frame index, ``track_id``, ``still``)."""
    n = num_frames if num_frames is not None else len(ann["images"])
    by_frame: dict[int, list[dict[str, Any]]] = {}
    for a in ann["annotations"]:
        by_frame.setdefault(int(a["image_id"]), []).append(a)
    out = []
    for t in range(n):
        rows = by_frame.get(t, [])
        k = len(ann["categories"][0]["keypoints"])
        out.append(FrameGT(
            ids=np.array([int(a["track_id"]) for a in rows], dtype=int),
            keypoints=np.array([a["keypoints"] for a in rows], dtype=np.float64).reshape(-1, k, 3),
            areas=np.array([float(a["area"]) for a in rows], dtype=np.float64),
            still=np.array([bool(a.get("still", False)) for a in rows], dtype=bool),
        ))  # fmt: skip
    return out
