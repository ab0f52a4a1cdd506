"""The published top-down COCO evaluation protocol (SimpleBaseline / HRNet), fast enough for training.

    crops from boxes (dataset) -> network [+ flip test] -> decode (crop px)
    -> inverse affine (image px) -> rescoring -> per-image OKS-NMS -> COCO results -> COCOeval

Three steps so that distributed validation is simple:

- :func:`predict` runs the network over a dataset or loader and returns
  :class:`Predictions` (plain arrays, cheap to pickle and gather);
- :func:`postprocess` turns predictions into COCO keypoint results (rescoring + OKS-NMS);
- :func:`finalize` = postprocess + scoring.

:func:`evaluate` does all three and, under ``torch.distributed``, shards the
dataset across ranks, gathers the predictions, scores on rank 0 and gives every
rank the metrics.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from hsrpose.data.keypoints import KeypointInfo
from hsrpose.engine.eval_config import EvalConfig
from hsrpose.evaluation.cocoeval import GroundTruth, score_results
from hsrpose.evaluation.postprocess import select_instances
from hsrpose.inference.topdown import heatmaps_to_image, predict_heatmaps
from hsrpose.utils.gcpause import gc_paused

__all__ = ["EvalConfig", "Predictions", "predict", "postprocess", "finalize", "evaluate", "make_loader"]

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Raw per-instance predictions before rescoring and NMS (N instances, K keypoints).

    keypoints: (N,K,3) float64, image px x, y and the keypoint score (heatmap maximum);
    box_score: (N,) detector score (1 for ground-truth boxes); area: (N,) crop-region area
    ``size_wh[0] * size_wh[1]`` in px^2 (HRNet's OKS-NMS area); image_id, ann_id: (N,) int64;
    index: (N,) int64 dataset index (-1 if unknown), used to drop the repeats a
    ``DistributedSampler`` adds to even out its shards.
    """

    image_id: np.ndarray
    ann_id: np.ndarray
    keypoints: np.ndarray
    box_score: np.ndarray
    area: np.ndarray
    index: np.ndarray | None = None
    num_invalid: int = 0

    def __len__(self) -> int:
        return int(self.image_id.shape[0])

    @classmethod
    def empty(cls, num_keypoints: int) -> "Predictions":
        return cls(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, num_keypoints, 3)), np.zeros(0), np.zeros(0)
        )

    @classmethod
    def concat(cls, parts: Iterable["Predictions"]) -> "Predictions":
        """Join predictions, e.g. those gathered from every rank."""
        parts = list(parts)
        if not parts:
            raise ValueError("Predictions.concat: nothing to join")
        return cls(
            image_id=np.concatenate([p.image_id for p in parts]),
            ann_id=np.concatenate([p.ann_id for p in parts]),
            keypoints=np.concatenate([p.keypoints for p in parts]),
            box_score=np.concatenate([p.box_score for p in parts]),
            area=np.concatenate([p.area for p in parts]),
            index=np.concatenate([p.index if p.index is not None else np.full(len(p), -1, np.int64) for p in parts]),
            num_invalid=sum(p.num_invalid for p in parts),
        )

    def deduplicated(self) -> "Predictions":
        """Keep the first prediction of every dataset index (index -1 = unknown: always kept)."""
        if self.index is None or len(self) == 0:
            return self
        known = self.index >= 0
        _, first = np.unique(self.index[known], return_index=True)
        keep = np.concatenate([np.flatnonzero(known)[first], np.flatnonzero(~known)])
        if len(keep) == len(self):
            return self
        keep.sort()
        return Predictions(
            self.image_id[keep], self.ann_id[keep], self.keypoints[keep], self.box_score[keep], self.area[keep],
            self.index[keep], self.num_invalid,
        )  # fmt: skip


def make_loader(dataset: Dataset, cfg: EvalConfig, device: torch.device) -> DataLoader:
    """In-order loader over an evaluation dataset (data/loader.py's builder, ``seed=None``)."""
    from hsrpose.data.loader import build_loader

    return build_loader(dataset, cfg.batch_size, shuffle=False, num_workers=cfg.num_workers, seed=None, pin_memory=device.type == "cuda")


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _batch_array(batch: dict[str, Any], key: str, default: Any = None) -> np.ndarray:
    v = batch.get(key, default)
    if v is None:
        raise KeyError(f"evaluation batch has no '{key}' field")
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def predict(
    model: Any,
    data: Dataset | DataLoader | Iterable[dict[str, Any]],
    codec: Any,
    keypoint_info: KeypointInfo,
    cfg: EvalConfig | None = None,
    device: torch.device | str | None = None,
) -> Predictions:
    """Run the network over every crop of ``data`` and decode keypoints to image px.

    ``data`` is a dataset whose items follow :class:`hsrpose.data.dataset.TopDownDataset`
    (``image`` (3,H,W) normalised, ``M_inv`` (2,3), ``image_id``, ``ann_id``, ``score``,
    ``size_wh``, ``valid``) or any iterable of such collated batches (a DataLoader).
    Items with ``valid`` False (unreadable images) are skipped and counted.
    The model is put in eval mode and restored to its previous mode afterwards.
    """
    cfg = cfg or EvalConfig()
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        # Ranks may run different numbers of batches: the bare module does no collective calls.
        model = model.module
    dev = torch.device(device) if device not in (None, "auto") else _model_device(model)
    loader = make_loader(data, cfg, dev) if isinstance(data, Dataset) else data
    flip_index = keypoint_info.flip_index if cfg.flip_test else None
    amp = torch.autocast("cuda", dtype=torch.float16) if (cfg.amp and dev.type == "cuda") else contextlib.nullcontext()
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("image_id", "ann_id", "keypoints", "box_score", "area", "index")}
    num_invalid = 0
    iterator: Iterable[dict[str, Any]] = loader
    if cfg.progress:
        from hsrpose.utils.progress import progress  # a bar on a terminal, lines in logs

        iterator = progress(loader, desc="eval", unit="batch")
    try:
        with torch.inference_mode():
            for batch in iterator:
                images = batch["image"].to(dev, non_blocking=True)
                with amp:
                    heatmaps = predict_heatmaps(model, images, flip_index, codec, shift=cfg.shift_heatmap)
                kpts, kscores = heatmaps_to_image(heatmaps.float(), batch["M_inv"], codec)
                n = kpts.shape[0]
                valid = _batch_array(batch, "valid", np.ones(n, bool)).astype(bool).reshape(n)
                size_wh = _batch_array(batch, "size_wh").astype(np.float64).reshape(n, 2)
                num_invalid += int((~valid).sum())
                parts["image_id"].append(_batch_array(batch, "image_id").astype(np.int64).reshape(n)[valid])
                parts["ann_id"].append(_batch_array(batch, "ann_id", np.full(n, -1)).astype(np.int64).reshape(n)[valid])
                parts["keypoints"].append(np.concatenate([kpts, kscores[..., None]], axis=2)[valid])
                parts["box_score"].append(_batch_array(batch, "score").astype(np.float64).reshape(n)[valid])
                parts["area"].append((size_wh[:, 0] * size_wh[:, 1])[valid])
                parts["index"].append(_batch_array(batch, "index", np.full(n, -1)).astype(np.int64).reshape(n)[valid])
    finally:
        if hasattr(model, "train"):
            model.train(was_training)
    if num_invalid:
        log.warning("evaluation: %d crop(s) could not be read and were skipped (see the dataset's log)", num_invalid)
    if not parts["image_id"]:
        out = Predictions.empty(keypoint_info.num_keypoints)
        out.num_invalid = num_invalid
        return out
    return Predictions(**{k: np.concatenate(v) for k, v in parts.items()}, num_invalid=num_invalid)


def postprocess(preds: Predictions, keypoint_info: KeypointInfo, cfg: EvalConfig | None = None) -> list[dict[str, Any]]:
    """Rescoring and per-image OKS-NMS -> COCO keypoint results (list of dicts, image px).

    Result ``keypoints`` hold ``x, y, keypoint score`` per joint (as the reference writes them),
    ``score`` the rescored instance score. Repeated dataset indices (DistributedSampler padding)
    count once.
    """
    cfg = cfg or EvalConfig()
    preds = preds.deduplicated()
    if len(preds) == 0:
        return []
    sel, scores = select_instances(preds.image_id, preds.keypoints, preds.box_score, preds.area, rescore_thr=cfg.in_vis_thr,
                                   nms_thr=cfg.oks_nms_thr, soft=cfg.soft_nms, sigmas=keypoint_info.sigmas_array)  # fmt: skip
    flat = preds.keypoints[sel].reshape(len(sel), -1)
    category_id = int(cfg.category_id)
    with gc_paused():  # about 65k lists and dicts per 100k boxes: the GC's passes cost 2x the building
        return [
            {"image_id": i, "category_id": category_id, "keypoints": k, "score": s}
            for i, k, s in zip(preds.image_id[sel].tolist(), flat.tolist(), scores[sel].tolist())
        ]


def finalize(
    preds: Predictions,
    gt: GroundTruth | None,
    keypoint_info: KeypointInfo,
    cfg: EvalConfig | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Postprocess and score: ``(COCO results, the ten COCOeval numbers)`` ({} when ``gt`` is None).

    A :class:`~hsrpose.evaluation.scorers.DatasetScorer` as ``gt`` (MPII, CrowdPose) does both
    steps its own way (see :func:`hsrpose.data.datasets.ground_truth`).
    """
    from hsrpose.evaluation.scorers import DatasetScorer

    cfg = cfg or EvalConfig()
    if isinstance(gt, DatasetScorer):
        return gt.finalize(preds, keypoint_info, cfg)
    results = postprocess(preds, keypoint_info, cfg)
    if gt is None:
        return results, {}
    metrics = score_results(gt, results, sigmas=keypoint_info.sigmas_array, backend=cfg.backend, validate=False)
    return results, metrics


def evaluate(
    model: Any,
    data: Dataset | DataLoader | Iterable[dict[str, Any]],
    codec: Any,
    keypoint_info: KeypointInfo,
    cfg: EvalConfig | None = None,
    device: torch.device | str | None = None,
    gt: GroundTruth | None = None,
    distributed: bool | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The whole protocol: ``(COCO keypoint results, metrics)``.

    Args:
        model: callable (B,3,H,W) -> (B,K,h,w) heatmaps (an ``nn.Module``, DDP-wrapped or not).
        data: evaluation dataset (crops from GT or detector boxes) or a loader over it.
        codec: the :class:`~hsrpose.codec.HeatmapCodec` of the model's input/heatmap sizes.
        keypoint_info: flip index for the flip test and OKS sigmas for NMS and scoring.
        gt: ground truth (annotation path, dict or COCO) to score against; None -> metrics {}.
        distributed: shard ``data`` (a Dataset) over the ``torch.distributed`` ranks and gather
            the predictions (default: when a process group of more than one rank is up).
            Rank 0 returns the results; every rank returns the metrics. A loader you pass is
            used as is: its batches are this rank's share (e.g. ``data.loader.build_loader(distributed=True)``),
            the predictions are gathered and repeats dropped by dataset ``index``.
    """
    from hsrpose.engine import distributed as du

    cfg = cfg or EvalConfig()
    dist_on = du.is_distributed() if distributed is None else (distributed and du.is_distributed())
    if dist_on:
        rank, world = du.get_rank(), du.get_world_size()
        shard: Any = data
        if isinstance(data, Dataset):
            # Subset keeps each item's own "index" field, so predictions stay identifiable.
            shard = Subset(data, list(range(rank, len(data), world)))  # type: ignore[arg-type]
        preds = Predictions.concat(du.all_gather_object(predict(model, shard, codec, keypoint_info, cfg, device)))
        results: list[dict[str, Any]] = []
        metrics: dict[str, float] = {}
        if rank == 0:
            results, metrics = finalize(preds, gt, keypoint_info, cfg)
        return results, du.broadcast_object(metrics)
    preds = predict(model, data, codec, keypoint_info, cfg, device)
    return finalize(preds, gt, keypoint_info, cfg)
