"""Heatmap codec: Gaussian targets (encode), argmax/DARK decoding and flip-back, in one place.

Coordinate spaces (docs/architecture.md): keypoints given to :meth:`HeatmapCodec.encode`
and returned by :meth:`HeatmapCodec.decode` are **crop pixels** (network input
pixels, pixel centres at integer coordinates). Heatmap pixel = crop pixel / stride
with the same origin, ``stride = input_w / heatmap_w`` (4 for 256x192 -> 64x48).

Encoding (``dark=False``) is the SimpleBaseline/HRNet ``generate_target``: the
Gaussian (sigma 2 by default) is centred on the *integer* heatmap pixel
``int(x / stride + 0.5)`` and pasted in a ``6 sigma + 1`` window; the joint's
target weight is 0 when it is unlabelled or the window lies wholly outside the map.

Decoding (``dark=False``) is HRNet's ``get_final_preds``: argmax per channel,
score = the maximum, then a +-0.25 heatmap-pixel move toward the higher neighbour on
both axes, only when the peak lies strictly inside (``1 < x < w-1 and 1 < y < h-1``).

``dark=True`` follows DARK (Zhang et al., CVPR 2020) and mmpose's ``unbiased=True``:
encoding centres the Gaussian on the exact sub-pixel position (no rounding) over
the whole map, and decoding refines the argmax with a second-order Taylor step on
the log of the Gaussian-blurred heatmap. Decoding with ``dark=True`` also improves
models trained with ``dark=False`` targets.

Everything works on numpy arrays without torch; :meth:`decode` and :meth:`flip_back`
also take torch tensors (any device) and return tensors. torch is imported lazily.
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from hsrpose.codec_ops import argmax_peaks, gaussian_heatmaps, is_torch, quarter_offset, taylor_offset

__all__ = ["HeatmapCodec", "dark_blur_kernel_size"]


def dark_blur_kernel_size(sigma: float) -> int:
    """Odd Gaussian-blur kernel size DARK uses for heatmap modulation (11 for sigma 2)."""
    k = int((sigma * 20 - 7) // 3)
    return k - 1 if k % 2 == 0 else k


class HeatmapCodec:
    """Encode keypoints into Gaussian heatmaps and decode heatmaps into keypoints.

    Args:
        input_hw: network input (crop) size ``(H, W)``, e.g. ``(256, 192)``.
        heatmap_hw: heatmap size ``(h, w)``, e.g. ``(64, 48)``.
        sigma: Gaussian standard deviation in heatmap pixels (2 in the protocol).
        dark: DARK encoding (sub-pixel Gaussian centre) and decoding (Taylor refinement).
    """

    def __init__(self, input_hw: Sequence[int], heatmap_hw: Sequence[int], sigma: float = 2.0, dark: bool = False) -> None:
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.heatmap_hw = (int(heatmap_hw[0]), int(heatmap_hw[1]))
        if min(self.input_hw) <= 0 or min(self.heatmap_hw) <= 0:
            raise ValueError(f"HeatmapCodec: sizes must be positive, got input {self.input_hw}, heatmap {self.heatmap_hw}")
        if not sigma > 0:
            raise ValueError(f"HeatmapCodec: sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)
        self.dark = bool(dark)
        # (stride_x, stride_y): crop px per heatmap px along each axis.
        self.stride = (self.input_hw[1] / self.heatmap_hw[1], self.input_hw[0] / self.heatmap_hw[0])
        self.blur_kernel = dark_blur_kernel_size(self.sigma)

    def __repr__(self) -> str:
        return f"HeatmapCodec(input_hw={self.input_hw}, heatmap_hw={self.heatmap_hw}, sigma={self.sigma}, dark={self.dark})"

    # ------------------------------------------------------------------ encode
    def encode(self, keypoints_crop: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints ``(K, 2)`` in crop px and visibility ``(K,)`` -> heatmaps ``(K, h, w)``, weights ``(K,)``.

        A joint counts as labelled when ``visible > 0`` (COCO v=1 occluded and v=2
        visible alike, as in the reference). Non-finite coordinates get weight 0.
        Both outputs are float32 (:func:`~hsrpose.codec_ops.gaussian_heatmaps`, the
        same code the GPU data path runs on batches).
        """
        kpts = np.asarray(keypoints_crop, dtype=np.float64).reshape(-1, 2)
        vis = np.asarray(visible, dtype=np.float64).reshape(-1)
        if vis.shape[0] != kpts.shape[0]:
            raise ValueError(f"encode: {kpts.shape[0]} keypoints but {vis.shape[0]} visibility flags")
        return gaussian_heatmaps(kpts, vis > 0, self.input_hw, self.heatmap_hw, self.sigma, self.dark)

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps: Any) -> tuple[Any, Any]:
        """Heatmaps ``(B, K, h, w)`` (numpy or torch) -> coords ``(B, K, 2)`` in **crop px**, scores ``(B, K)``.

        Returns the same kind (numpy float32 or torch float32 on the input's device).
        A channel whose maximum is <= 0 decodes to (0, 0), as in the reference.
        One path for both kinds (:mod:`hsrpose.codec_ops`); only DARK's blur differs
        (OpenCV for numpy, ``conv2d`` for torch).
        """
        torch_in = is_torch(heatmaps)
        self._check_shape(heatmaps.shape)
        hm = heatmaps.detach().float() if torch_in else np.asarray(heatmaps).astype(np.float32, copy=False)
        px, py, scores = argmax_peaks(hm)
        if self.dark:
            logs = self._log_blurred_torch(hm) if torch_in else self._log_blurred_numpy(hm)
            offset = taylor_offset(logs, px, py)
        else:
            offset = quarter_offset(hm, px, py)
        if torch_in:
            import torch

            coords = torch.stack([px, py], dim=-1).float()
            coords = torch.where((scores > 0)[..., None], coords + offset, torch.zeros_like(coords))
            return self._to_crop(coords), scores
        coords = np.stack([px, py], axis=-1).astype(np.float32)
        coords = np.where((scores > 0)[..., None], coords + offset, 0.0).astype(np.float32)
        return self._to_crop(coords), scores.astype(np.float32)

    def _check_shape(self, shape: Sequence[int]) -> None:
        if len(shape) != 4:
            raise ValueError(f"decode: expected heatmaps (B, K, h, w), got shape {tuple(shape)}")
        if tuple(shape[2:]) != self.heatmap_hw:
            raise ValueError(f"decode: heatmaps are {tuple(shape[2:])}, codec expects {self.heatmap_hw}")

    def _log_blurred_numpy(self, hm: np.ndarray) -> np.ndarray:
        """DARK modulation: per channel, zero-padded Gaussian blur rescaled to the channel maximum, then log."""
        b, k, h, w = hm.shape
        g1 = cv2.getGaussianKernel(self.blur_kernel, 0).astype(np.float32)[:, 0]
        logs = np.empty_like(hm)
        for i in range(b):
            for j in range(k):
                m = hm[i, j]
                # Zero padding then blur (what DARK's padded cv2.GaussianBlur amounts to),
                # then rescale to keep the channel maximum as DARK does.
                blurred = cv2.sepFilter2D(m, cv2.CV_32F, g1, g1, borderType=cv2.BORDER_CONSTANT)
                mx, bmx = float(m.max()), float(blurred.max())
                if bmx > 0:
                    blurred = blurred * np.float32(mx / bmx)
                logs[i, j] = blurred
        return np.log(np.maximum(logs, 1e-10))

    def _log_blurred_torch(self, hm: Any) -> Any:
        """:meth:`_log_blurred_numpy` on a tensor's device (separable ``conv2d``, zero padding)."""
        import torch

        b, k, h, w = hm.shape
        g1 = torch.from_numpy(cv2.getGaussianKernel(self.blur_kernel, 0).astype(np.float32)[:, 0]).to(hm.device)
        pad = (self.blur_kernel - 1) // 2
        x = hm.reshape(b * k, 1, h, w)
        x = torch.nn.functional.conv2d(x, g1.view(1, 1, -1, 1), padding=(pad, 0))
        x = torch.nn.functional.conv2d(x, g1.view(1, 1, 1, -1), padding=(0, pad)).reshape(b, k, h, w)
        mx = hm.amax(dim=(2, 3), keepdim=True)
        bmx = x.amax(dim=(2, 3), keepdim=True)
        x = torch.where(bmx > 0, x * (mx / torch.where(bmx > 0, bmx, torch.ones_like(bmx))), x)
        return torch.log(torch.clamp(x, min=1e-10))

    def _to_crop(self, coords_hm: Any) -> Any:
        """Heatmap px -> crop px (same origin, per-axis stride)."""
        sx, sy = self.stride
        if is_torch(coords_hm):
            import torch

            return coords_hm * torch.tensor([sx, sy], dtype=coords_hm.dtype, device=coords_hm.device)
        return (coords_hm * np.array([sx, sy], dtype=np.float32)).astype(np.float32)

    # ---------------------------------------------------------------- flip back
    @staticmethod
    def flip_back(heatmaps: Any, flip_index: Sequence[int], shift: bool = True) -> Any:
        """Heatmaps of horizontally flipped crops ``(B, K, h, w)`` -> heatmaps of the unflipped crops.

        Mirror the width axis, reorder channels (``out[:, i] = in[:, flip_index[i]]``, i.e.
        swap left/right) and, with ``shift`` (the published flip test), move the result one
        heatmap pixel right, keeping column 0. numpy in -> numpy out, torch in -> torch out.
        """
        idx = list(flip_index)
        if len(idx) != heatmaps.shape[1]:
            raise ValueError(f"flip_back: flip_index has {len(idx)} entries for {heatmaps.shape[1]} channels")
        if is_torch(heatmaps):
            import torch

            out = torch.flip(heatmaps, dims=[3])[:, idx]
            if shift:
                out = torch.cat([out[..., :1], out[..., :-1]], dim=3)
            return out
        out = np.asarray(heatmaps)[:, idx, :, ::-1]
        if shift:
            out = np.concatenate([out[..., :1], out[..., :-1]], axis=3)
        return np.ascontiguousarray(out)

