"""Dataset and augmentation settings (composed into the training config as ``data.*`` and ``augment.*``).

Defaults follow ../shared/design/protocol.md: SimpleBaseline's recipe (the
paper's), with HRNet's variants available by changing a field. Every field can
be overridden on the command line (``augment.scale_factor=0.35``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hsrpose.overrides import bounded

__all__ = ["AugmentConfig", "DataConfig", "COCO_UPPER_BODY_IDS"]

# HRNet's upper_body_ids for COCO-17: nose, eyes, ears, shoulders, elbows, wrists.
COCO_UPPER_BODY_IDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)


@dataclass
class AugmentConfig:
    """Training augmentation of a top-down crop, drawn per sample.

    The draws reproduce SimpleBaseline's/HRNet's ``JointsDataset.__getitem__``:
    ``scale = clip(N(0,1) * scale_factor + 1, 1 - scale_factor, 1 + scale_factor)``,
    ``rotation = clip(N(0,1) * rotation_factor, -2 rotation_factor, 2 rotation_factor)``
    with probability ``rotation_prob`` (else 0), horizontal flip with probability
    ``flip_prob``, and (HRNet only) half-body with probability ``half_body_prob``.

    Attributes:
        enabled: False gives the plain evaluation crop (no randomness at all).
        flip: random horizontal flip with left/right keypoint swap (both codebases).
        flip_prob: probability of a flip (0.5 in both codebases).
        scale_factor: size jitter, 0.3 = SimpleBaseline (default, the paper's recipe);
            HRNet uses 0.35.
        rotation_factor: rotation standard deviation in degrees before clipping to +-2x;
            40 = SimpleBaseline (default); HRNet uses 45.
        rotation_prob: probability that a sample is rotated at all; 0.6 in both codebases.
        half_body: HRNet's half-body augmentation (crop the upper or the lower body);
            SimpleBaseline had none, so off by default (protocol.md: "optional").
        half_body_prob: probability of a half-body crop when enabled (HRNet 0.3).
        half_body_min_joints: a half-body crop needs more than this many labelled joints
            (HRNet NUM_JOINTS_HALF_BODY = 8).
        half_body_padding: enlargement of the half-body box (HRNet: 1.5).
        upper_body_ids: keypoint indices of the upper body (HRNet's COCO list); for a custom
            keypoint set give its own list, or disable half-body.
    """

    enabled: bool = True
    flip: bool = True
    flip_prob: float = bounded(0.5, ge=0, le=1)
    scale_factor: float = bounded(0.3, ge=0, lt=1)  # 1 - scale_factor is the smallest scale
    rotation_factor: float = bounded(40.0, ge=0)
    rotation_prob: float = bounded(0.6, ge=0, le=1)
    half_body: bool = False
    half_body_prob: float = bounded(0.3, ge=0, le=1)
    half_body_min_joints: int = bounded(8, ge=0)
    half_body_padding: float = bounded(1.5, gt=0)
    upper_body_ids: tuple[int, ...] = bounded(COCO_UPPER_BODY_IDS, ge=0)


@dataclass
class DataConfig:
    """Where the data is and how crops and targets are made.

    Attributes:
        dataset: ``auto`` (from the files), ``coco``, ``mpii`` or ``crowdpose``: how the annotation
            files are read and validation is scored (see hsrpose.data.datasets).
        train_ann: COCO-format keypoint annotation file of the training split (MPII: HRNet json
            or the official .mat).
        train_images: folder holding the training images (``file_name`` is relative to it).
        val_ann: annotation file of the validation split ('' = no validation).
        val_images: folder of the validation images.
        val_det_file: COCO detection results file with the person boxes for validation;
            '' = ground-truth boxes (about +2 AP; always reported as such).
        category_id: annotation category to use; None = the one category with ``keypoints``.
        box_padding: box enlargement after fixing the aspect ratio (1.25 in the protocol).
        sigma: Gaussian target sigma in heatmap pixels (2 in the protocol).
        dark: DARK targets and decoding (unbiased sub-pixel Gaussian, Taylor refinement);
            False = the published SimpleBaseline/HRNet codec.
        flip_pairs: 0-based left/right pairs for a custom keypoint set (None = COCO's when the
            category is COCO person).
        oks_sigmas: OKS sigmas for a custom keypoint set (None = COCO's for COCO person).
        num_workers: DataLoader worker processes per rank.
        pin_memory: pin host memory of batches (useful with CUDA).
        pipeline: where training crops and targets are made: 'cpu' (DataLoader workers,
            OpenCV warps; the default) or 'gpu' (workers only read files and draw the
            augmentation; decoding, warps and targets run batched on the training device,
            see hsrpose.data.gpu). Validation always uses the CPU path.
        gpu_decode: with pipeline='gpu': 'device' = send JPEG bytes and decode on the GPU
            (nvJPEG when torchvision is importable), 'worker' = decode in the workers (PNG data).
    """

    dataset: str = "auto"
    train_ann: str = ""
    train_images: str = ""
    val_ann: str = ""
    val_images: str = ""
    val_det_file: str = ""
    category_id: int | None = bounded(None, ge=0)
    box_padding: float = bounded(1.25, gt=0)
    sigma: float = bounded(2.0, gt=0)
    dark: bool = False
    flip_pairs: list[list[int]] | None = None
    oks_sigmas: list[float] | None = bounded(None, gt=0)
    num_workers: int = bounded(4, ge=0)
    pin_memory: bool = True
    pipeline: Literal["cpu", "gpu"] = "cpu"
    gpu_decode: Literal["device", "worker"] = "device"
