"""Top-down inference steps shared by evaluation and the inference pipeline.

crops (B,3,H,W) -> heatmaps (B,K,h,w) [with the flip test] -> keypoints in image px.

Works with torch tensors and numpy arrays alike (the onnxruntime backend is
numpy-only), so torch is never imported at module level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hsrpose.codec_ops import is_torch
from hsrpose.data.geometry import apply_affine

__all__ = ["predict_heatmaps", "heatmaps_to_image", "flip_images"]


def flip_images(images: Any) -> Any:
    """Mirror a batch (B,3,H,W) along the width axis (numpy -> contiguous numpy, torch -> torch)."""
    if is_torch(images):
        import torch

        return torch.flip(images, dims=[3])
    return np.ascontiguousarray(np.asarray(images)[..., ::-1])


def predict_heatmaps(
    model_fn: Callable[[Any], Any],
    images: Any,
    flip_index: Sequence[int] | None = None,
    codec: Any = None,
    shift: bool = True,
) -> Any:
    """Heatmaps (B,K,h,w) of normalised crops ``images`` (B,3,H,W), same array type as ``model_fn`` returns.

    With ``flip_index`` (the keypoint set's left/right permutation) this is the published
    flip test: run the mirrored batch too, map its heatmaps back with ``flip_back``
    (mirror, swap left/right channels, shift one heatmap pixel right when ``shift``),
    and average the two. ``codec`` supplies ``flip_back`` (default: :class:`HeatmapCodec`'s).
    The two batches run as two calls so that a backend with a fixed batch size still works.
    """
    heatmaps = model_fn(images)
    if flip_index is None:
        return heatmaps
    if codec is None:
        from hsrpose.codec import HeatmapCodec

        flip_back = HeatmapCodec.flip_back
    else:
        flip_back = codec.flip_back
    flipped = flip_back(model_fn(flip_images(images)), list(flip_index), shift=shift)
    return (heatmaps + flipped) * 0.5


def heatmaps_to_image(heatmaps: Any, M_inv: Any, codec: Any) -> tuple[np.ndarray, np.ndarray]:
    """Decode heatmaps (B,K,h,w) and map the keypoints through each crop's inverse affine.

    Args:
        heatmaps: numpy array or torch tensor (decoded on its device; only (B,K,2) comes back).
        M_inv: (B,2,3) crop px -> image px (numpy or torch).
        codec: a :class:`~hsrpose.codec.HeatmapCodec` whose ``decode`` returns crop px.
    Returns:
        keypoints (B,K,2) float64 in image px, scores (B,K) float64 (the heatmap maxima).
    """
    coords, scores = codec.decode(heatmaps)
    coords_np = _to_numpy(coords).astype(np.float64)
    scores_np = _to_numpy(scores).astype(np.float64)
    m = _to_numpy(M_inv).astype(np.float64).reshape(-1, 2, 3)
    if m.shape[0] != coords_np.shape[0]:
        raise ValueError(f"heatmaps_to_image: {coords_np.shape[0]} heatmaps but {m.shape[0]} affines")
    return apply_affine(coords_np, m), scores_np


def _to_numpy(x: Any) -> np.ndarray:
    if is_torch(x):
        import torch

        x = x.detach()
        if x.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)
