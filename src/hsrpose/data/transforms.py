"""Network input normalisation and the training augmentation of a top-down crop.

No torch at module level: :func:`to_input_array` and the augmentation serve
torch-free deployments too; :func:`to_input_array` takes tensors as well.

The augmentation reproduces SimpleBaseline's / HRNet's ``JointsDataset``: the
random draws (half-body, scale, rotation, flip, in that order) give a crop
``(center, size_wh, rotation, flip)``; the flip is folded into the 2x3 affine,
so the whole image is never flipped and the crop equals the reference's
"flip the image, mirror the center, then crop". All randomness comes from a
``numpy.random.Generator`` passed in, so a sample depends only on its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hsrpose.codec_ops import is_torch
from hsrpose.data.config import AugmentConfig
from hsrpose.data.geometry import apply_affine, crop_affine

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "to_input_array",
    "CropParams",
    "sample_crop_params",
    "half_body_box",
    "crop_matrix",
    "keypoints_to_crop",
]

# ImageNet statistics of RGB pixels scaled to 0..1 (torchvision's values).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _stack_crops(crops: np.ndarray | Sequence[np.ndarray], channels_first: bool) -> np.ndarray:
    arr = np.stack(list(crops)) if not isinstance(crops, np.ndarray) else crops
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1 if channels_first else -1] != 3:
        want = "(N, 3, H, W) or (3, H, W)" if channels_first else "(N, H, W, 3) or (H, W, 3)"
        raise ValueError(f"expected crops {want}, got shape {arr.shape}")
    return arr


def to_input_array(
    crops: Any,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    value_scale: float = 1.0 / 255.0,
    channel_order: str = "RGB",
    *,
    source_order: str = "BGR",
    channels_first: bool = False,
    device: Any = None,
) -> Any:
    """Crops -> float32 network input ``(N, 3, H, W)``: the one input normalisation.

    ``((x * value_scale) - mean) / std`` per channel in ``channel_order``; the defaults are
    the training normalisation (ImageNet RGB), an export's preprocessing metadata
    (``inference.onnx_backend.Preprocessing``) may name others. ``crops`` are in
    ``source_order`` (BGR: OpenCV images), ``(N, H, W, 3)`` / a list / one crop, or
    ``(N, 3, H, W)`` with ``channels_first``; any dtype. numpy in -> numpy out; a torch
    tensor in -> a tensor out, computed on ``device`` (default: the tensor's own), so
    uint8 can be shipped to the GPU first. Both compute the same float32 expressions.
    """
    flip = source_order.upper() != channel_order.upper()
    # Divide by 1/value_scale (255 exactly for the default): the numbers of the reference.
    divisor = 1.0 / value_scale
    if is_torch(crops):
        import torch

        t = crops if crops.ndim == 4 else crops.unsqueeze(0)
        if device is not None:
            t = t.to(device, non_blocking=True)
        t = t if channels_first else t.permute(0, 3, 1, 2)
        t = (t.flip(1) if flip else t).float() / divisor
        m = torch.tensor(mean, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=t.device).view(1, 3, 1, 1)
        return ((t - m) / s).contiguous()
    arr = _stack_crops(crops, channels_first)
    x = arr if channels_first else arr.transpose(0, 3, 1, 2)
    x = (x[:, ::-1] if flip else x).astype(np.float32) / np.float32(divisor)
    x = (x - np.asarray(mean, np.float32).reshape(3, 1, 1)) / np.asarray(std, np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray(x)


@dataclass(frozen=True)
class CropParams:
    """One crop of an image: ``center`` (2,), ``size_wh`` (2,) image px, ``rotation`` degrees, ``flip``."""

    center: np.ndarray
    size_wh: np.ndarray
    rotation: float = 0.0
    flip: bool = False
    half_body: bool = False


def half_body_box(
    keypoints: np.ndarray,
    upper_body_ids: Sequence[int],
    aspect_wh: float,
    padding: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray] | None:
    """HRNet's ``half_body_transform``: crop around the upper or the lower body's labelled joints.

    Chooses the upper body when ``N(0,1) < 0.5`` (HRNet's draw, p ~ 0.69) and it has more than
    2 labelled joints, else the lower body if it has more than 2, else the upper body. Returns
    ``(center = mean of the joints, size_wh = their extent fixed to the aspect ratio x padding)``,
    or None when the chosen part has fewer than 2 labelled joints.
    """
    labelled = keypoints[:, 2] > 0
    upper_mask = np.zeros(len(keypoints), dtype=bool)
    upper_mask[[i for i in upper_body_ids if i < len(keypoints)]] = True
    upper = keypoints[labelled & upper_mask, :2]
    lower = keypoints[labelled & ~upper_mask, :2]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    center = chosen.mean(axis=0)
    w, h = chosen.max(axis=0) - chosen.min(axis=0)
    if w > aspect_wh * h:
        h = w / aspect_wh
    elif w < aspect_wh * h:
        w = h * aspect_wh
    return center.astype(np.float64), np.array([w, h], dtype=np.float64) * padding


def sample_crop_params(
    center: np.ndarray,
    size_wh: np.ndarray,
    keypoints: np.ndarray,
    cfg: AugmentConfig,
    aspect_wh: float,
    rng: np.random.Generator,
) -> CropParams:
    """Draw the augmented crop of one instance (SimpleBaseline/HRNet order and distributions).

    Args:
        center, size_wh: the instance's un-augmented crop (image px).
        keypoints: (K, 3) image px with visibility; used by half-body only.
        cfg: the augmentation settings; ``cfg.enabled=False`` returns the crop unchanged.
        aspect_wh: crop aspect ratio ``input_w / input_h`` (for half-body boxes).
        rng: the sample's generator (all randomness comes from it).
    """
    c = np.asarray(center, dtype=np.float64).copy()
    s = np.asarray(size_wh, dtype=np.float64).copy()
    if not cfg.enabled:
        return CropParams(c, s)
    half = False
    if cfg.half_body and np.sum(keypoints[:, 2] > 0) > cfg.half_body_min_joints and rng.random() < cfg.half_body_prob:
        box = half_body_box(keypoints, cfg.upper_body_ids, aspect_wh, cfg.half_body_padding, rng)
        if box is not None:
            c, s = box
            half = True
    sf, rf = cfg.scale_factor, cfg.rotation_factor
    s = s * float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
    rot = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf)) if rng.random() <= cfg.rotation_prob else 0.0
    flip = bool(cfg.flip and rng.random() <= cfg.flip_prob)
    return CropParams(c, s, rot, flip, half)


def crop_matrix(params: CropParams, image_w: int, output_hw: tuple[int, int]) -> np.ndarray:
    """2x3 affine: original (unflipped) image px -> crop px, the flip folded in.

    With ``params.flip`` this equals the reference's "flip the image (x -> W-1-x), mirror
    the center, crop with the rotation", so the crop is bit-identical to it.
    """
    if not params.flip:
        return crop_affine(params.center, params.size_wh, params.rotation, output_hw)
    c = params.center.copy()
    c[0] = image_w - 1 - c[0]
    m = crop_affine(c, params.size_wh, params.rotation, output_hw)
    hflip = np.array([[-1.0, 0.0, image_w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return m @ hflip


def keypoints_to_crop(keypoints: np.ndarray, m: np.ndarray, flip: bool, flip_index: Sequence[int]) -> np.ndarray:
    """(K, 3) image keypoints -> (K, 3) crop keypoints ``(x, y, v)``; a flip also swaps left/right channels.

    Unlabelled joints (v = 0) keep (0, 0) as in the reference.
    """
    out = np.zeros((len(keypoints), 3), dtype=np.float64)
    labelled = keypoints[:, 2] > 0
    out[labelled, :2] = apply_affine(keypoints[labelled, :2], m)
    out[:, 2] = keypoints[:, 2]
    if flip:
        out = out[list(flip_index)]
    return out
