"""Batched affine crops and keypoints on the device: the geometry half of the GPU data path.

``warp_crops`` is ``geometry.warp_crop`` for a batch (``F.affine_grid`` +
``F.grid_sample``, bilinear, zero border: pixel centres at integer coordinates, as
OpenCV); ``keypoints_to_crop_batch`` is ``transforms.keypoints_to_crop`` for a batch.
See :mod:`hsrpose.data.gpu` for how the pieces make a training batch.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["upload", "affine_to_theta", "warp_crops", "pad_to_canvas", "keypoints_to_crop_batch"]


def upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host tensor -> ``device`` without stalling: a copy from pageable memory to a GPU waits
    for the queued GPU work (the previous training step), one from pinned memory does not."""
    if device.type != "cuda" or t.device.type == "cuda":
        return t.to(device)
    return (t if t.is_pinned() else t.pin_memory()).to(device, non_blocking=True)


def affine_to_theta(m: torch.Tensor, image_hw: tuple[int, int], output_hw: tuple[int, int]) -> torch.Tensor:
    """Pixel affine -> ``F.affine_grid`` theta, for ``align_corners=False``.

    Args:
        m: (B,2,3) image px -> crop px (pixel centres at integers).
        image_hw: (H, W) of the image tensor sampled from (the padded canvas).
        output_hw: (h, w) of the crop.
    Returns:
        theta (B,2,3) float64 mapping normalised crop coords -> normalised image
        coords: ``theta = N_img @ M^-1 @ N_crop^-1`` with ``N(x) = (2x + 1)/W - 1``.
    """
    m = m.to(torch.float64)
    b = m.shape[0]
    h_img, w_img = image_hw
    h_out, w_out = output_hw
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=m.device).expand(b, 1, 3)
    m_inv = torch.linalg.inv(torch.cat([m, bottom], dim=1))  # (B,3,3) crop px -> image px
    # normalised crop coords -> crop px: x = (W/2) u + (W-1)/2
    n_out_inv = torch.tensor(
        [[w_out / 2.0, 0.0, (w_out - 1) / 2.0], [0.0, h_out / 2.0, (h_out - 1) / 2.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64, device=m.device,
    )  # fmt: skip
    # image px -> normalised image coords: u = (2/W) x + 1/W - 1
    n_img = torch.tensor(
        [[2.0 / w_img, 0.0, 1.0 / w_img - 1.0], [0.0, 2.0 / h_img, 1.0 / h_img - 1.0]],
        dtype=torch.float64, device=m.device,
    )  # fmt: skip
    return n_img @ m_inv @ n_out_inv


def warp_crops(images: torch.Tensor, m: torch.Tensor, output_hw: tuple[int, int]) -> torch.Tensor:
    """Batched equivalent of ``geometry.warp_crop`` (bilinear, zero border).

    Args:
        images: (B,C,H,W) floating point; sample ``i`` is cropped from ``images[i]``.
        m: (B,2,3) image px -> crop px.
        output_hw: (h, w).
    Returns:
        (B,C,h,w) crops, same dtype as ``images`` (not rounded).
    """
    b, c, h, w = images.shape
    # theta is computed where m lives (the CPU for loader batches: no tiny GPU kernels).
    theta = upload(affine_to_theta(m, (h, w), output_hw).to(torch.float32), images.device)
    grid = F.affine_grid(theta, [b, c, *output_hw], align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


def pad_to_canvas(images: Sequence[torch.Tensor], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Stack (C,H_i,W_i) images into one zero-padded (B,C,Hmax,Wmax) canvas (top-left aligned).

    Zero padding is what ``BORDER_CONSTANT 0`` samples outside an image, so crops
    taken from the canvas equal crops taken from each image alone.
    """
    if len(images) == 0:
        raise ValueError("pad_to_canvas: no images")
    c = images[0].shape[0]
    h = max(int(im.shape[1]) for im in images)
    w = max(int(im.shape[2]) for im in images)
    canvas = torch.zeros((len(images), c, h, w), dtype=dtype, device=images[0].device)
    for i, im in enumerate(images):
        canvas[i, :, : im.shape[1], : im.shape[2]] = im
    return canvas


def keypoints_to_crop_batch(
    keypoints: torch.Tensor, m: torch.Tensor, flipped: torch.Tensor, flip_index: Sequence[int] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched ``transforms.keypoints_to_crop``: image px -> crop px, left/right swap when flipped.

    Args:
        keypoints: (B,K,3) ``(x, y, v)`` in original (unflipped) image px.
        m: (B,2,3) image px -> crop px (flip folded in, as ``transforms.crop_matrix``).
        flipped: (B,) bool.
        flip_index: channel permutation of a flip (``KeypointInfo.flip_index``; a long
            tensor already on the device saves a host->device copy).
    Returns:
        (B,K,2) float64 crop px and (B,K) bool "labelled" (``v > 0``).
    """
    kp = keypoints.to(torch.float64)
    m = m.to(torch.float64)
    # Same arithmetic as geometry.apply_affine (x' = A p + t), in float64 so that
    # the integer rounding of the Gaussian centre agrees with the CPU codec.
    xy = torch.einsum("bij,bkj->bki", m[:, :, :2], kp[..., :2]) + m[:, None, :, 2]
    labelled = kp[..., 2] > 0
    perm = torch.as_tensor(flip_index, dtype=torch.long, device=kp.device)
    sel = flipped.to(device=kp.device, dtype=torch.bool)[:, None]
    xy = torch.where(sel[..., None], xy[:, perm], xy)
    labelled = torch.where(sel, labelled[:, perm], labelled)
    return xy, labelled
