"""What a training run reads: the datasets (``build_data``), the batches (``TrainBatches``) and validation.

``TrainBatches`` is the one training loader (data/loader.py's builder and sampler) for both data
paths: ``data.pipeline=cpu`` collates crops and targets made in the workers; ``gpu`` collates
image bytes and augmentation draws (the same ``(seed, epoch, index)`` draw as the CPU path) and
decodes, warps and builds targets batched on the device. Either way it yields device tensors.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from hsrpose.engine import distributed as du
from hsrpose.engine.config import TrainConfig
from hsrpose.errors import HsrposeError

__all__ = ["TrainData", "TrainBatches", "build_data", "validate"]


@dataclass
class TrainData:
    train_set: Any  # TopDownDataset
    val_set: Any  # TopDownDataset or None
    val_gt: Any  # validated COCO ground truth (load_gt) or a dataset scorer (data.datasets.ground_truth)
    keypoint_info: Any  # KeypointInfo
    codec: Any  # HeatmapCodec


def build_data(cfg: TrainConfig, input_hw: tuple[int, int], heatmap_hw: tuple[int, int]) -> TrainData:
    """Training set (GT boxes, protocol.md filters) and validation set (GT or detection boxes)."""
    from hsrpose.codec import HeatmapCodec
    from hsrpose.data.dataset import TopDownDataset
    from hsrpose.data.datasets import ground_truth, load_dataset

    d = cfg.data
    if not d.train_ann:
        raise HsrposeError("data.train_ann is empty: give the training annotation file (or --data-root)")
    codec = HeatmapCodec(input_hw, heatmap_hw, sigma=d.sigma, dark=d.dark)
    kw = {"category_id": d.category_id, "flip_pairs": d.flip_pairs, "oks_sigmas": d.oks_sigmas}
    kw["box_padding"] = d.box_padding
    dataset, loaded = load_dataset(d.dataset, d.train_ann, mode="train", **kw)
    if du.is_main_process():
        print(loaded.report.summary(), file=sys.stderr)
    instances = loaded.instances[: cfg.train_subset] if cfg.train_subset > 0 else loaded.instances
    if not instances:
        raise HsrposeError(f"{d.train_ann}: no training instances with labelled keypoints")
    augment = cfg.augment if cfg.augment.enabled else None
    train_set = TopDownDataset(instances, d.train_images, input_hw, codec, augment=augment,
                               keypoint_info=loaded.keypoint_info, seed=cfg.seed, box_padding=d.box_padding)  # fmt: skip
    val_set, val_warned = None, []
    if d.val_ann:
        mode = "det" if d.val_det_file else "gt"
        _, val = load_dataset(dataset, d.val_ann, mode=mode, det_file=d.val_det_file or None, score_thr=cfg.eval.det_score_thr, **kw)
        if du.is_main_process():
            print(val.report.summary() + (" (detection boxes)" if d.val_det_file else " (ground-truth boxes)"), file=sys.stderr)
        val_set = TopDownDataset(val.instances, d.val_images or d.train_images, input_hw, codec, augment=None,
                                 keypoint_info=val.keypoint_info, seed=cfg.seed, box_padding=d.box_padding)  # fmt: skip
        val_warned = val.report.logged
    # Scored against ground truth read and checked once (bad records warned about once, not every
    # epoch, and not again after the loader's warning).
    val_gt = ground_truth(dataset, d.val_ann, shown=val_warned) if d.val_ann else None
    return TrainData(train_set, val_set, val_gt, loaded.keypoint_info, codec)


class TrainBatches:
    """This rank's training batches as device tensors ``(images, target, target_weight, bad)``.

    ``per_rank_batch`` samples a step, the last incomplete batch dropped (equal batches on every
    step and rank: BatchNorm, DDP equivalence); ``bad`` counts this rank's unusable samples.
    """

    def __init__(self, cfg: TrainConfig, data: TrainData, per_rank_batch: int, world: int, device: torch.device) -> None:
        from hsrpose.data.loader import build_loader

        self.device = device
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        dataset = data.train_set
        collate_fn = None
        self.gpu_builder = None
        if cfg.data.pipeline == "gpu":
            from hsrpose.data.gpu import GpuBatchBuilder, GpuSampleDataset, collate_gpu_samples

            dataset = GpuSampleDataset(data.train_set, decode=cfg.data.gpu_decode)
            collate_fn = collate_gpu_samples
            self.gpu_builder = GpuBatchBuilder(data.codec, data.keypoint_info.flip_index, device=device, channels_last=cfg.channels_last)
        self.loader = build_loader(
            dataset, per_rank_batch, shuffle=True, num_workers=cfg.data.num_workers, seed=cfg.seed, distributed=world > 1,
            drop_last=True, pin_memory=cfg.data.pin_memory and device.type == "cuda",
            persistent_workers=cfg.data.num_workers > 0,  # the epoch travels with each index
            collate_fn=collate_fn,
        )  # fmt: skip
        self.sampler = self.loader.sampler
        self.steps_per_epoch = len(self.sampler) // per_rank_batch
        if self.steps_per_epoch == 0:
            raise HsrposeError(
                f"{len(dataset)} training instances are fewer than one batch per process ({per_rank_batch}); lower optim.batch_size"
            )

    def set_epoch(self, epoch: int, skip_samples: int = 0) -> None:
        """Order and augmentation draws of ``epoch``; ``skip_samples`` re-enters a checkpointed epoch where it stopped."""
        from hsrpose.data.loader import set_loader_epoch

        set_loader_epoch(self.loader, epoch)
        if skip_samples:
            self.sampler.set_skip(skip_samples)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        device = self.device
        for batch in self.loader:
            bad = int((~batch["valid"].bool()).sum()) if "valid" in batch else 0
            if self.gpu_builder is not None:
                bad_before = self.gpu_builder.bad_images
                gb = self.gpu_builder(batch)
                images, target, target_weight = gb.images, gb.targets, gb.target_weight
                bad += self.gpu_builder.bad_images - bad_before  # images neither nvJPEG nor OpenCV could decode
            else:
                images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=self.memory_format)
                target = batch["target"].to(device, non_blocking=True)
                target_weight = batch["target_weight"].to(device, non_blocking=True)
            yield images, target, target_weight, bad


def validate(model: nn.Module, data: TrainData, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """The evaluation protocol on the validation set; under DDP each rank predicts a shard,
    rank 0 scores, every rank gets the metrics (hsrpose.engine.evaluate does the gathering)."""
    from hsrpose.engine.evaluate import evaluate

    _, metrics = evaluate(model, data.val_set, data.codec, data.keypoint_info, cfg=cfg.eval, device=device, gt=data.val_gt)
    return {k: float(v) for k, v in metrics.items()}
