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

__all__ = ["HeatmapCodec", "dark_blur_kernel_size"]


def _is_torch(x: Any) -> bool:
    # No torch import here: a tensor is recognised by its module name.
    return type(x).__module__.startswith("torch")


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
        Both outputs are float32.
        """
        kpts = np.asarray(keypoints_crop, dtype=np.float64).reshape(-1, 2)
        vis = np.asarray(visible, dtype=np.float64).reshape(-1)
        if vis.shape[0] != kpts.shape[0]:
            raise ValueError(f"encode: {kpts.shape[0]} keypoints but {vis.shape[0]} visibility flags")
        k = kpts.shape[0]
        h, w = self.heatmap_hw
        heatmaps = np.zeros((k, h, w), dtype=np.float32)
        weights = ((vis > 0) & np.all(np.isfinite(kpts), axis=1)).astype(np.float32)
        sx, sy = self.stride
        radius = self.sigma * 3
        for j in range(k):
            if weights[j] == 0:
                continue
            if self.dark:
                mu_x, mu_y = kpts[j, 0] / sx, kpts[j, 1] / sy
                # mmpose unbiased: drop the joint when its 3-sigma square misses the map.
                if mu_x - radius >= w or mu_y - radius >= h or mu_x + radius < 0 or mu_y + radius < 0:
                    weights[j] = 0
                    continue
                xs = np.arange(w, dtype=np.float64)
                ys = np.arange(h, dtype=np.float64)[:, None]
                heatmaps[j] = np.exp(-((xs - mu_x) ** 2 + (ys - mu_y) ** 2) / (2 * self.sigma**2))
                continue
            # SimpleBaseline/HRNet generate_target, literally (int() truncates toward zero).
            mu_x = int(kpts[j, 0] / sx + 0.5)
            mu_y = int(kpts[j, 1] / sy + 0.5)
            ul = (int(mu_x - radius), int(mu_y - radius))
            br = (int(mu_x + radius + 1), int(mu_y + radius + 1))
            if ul[0] >= w or ul[1] >= h or br[0] < 0 or br[1] < 0:
                weights[j] = 0
                continue
            size = 2 * radius + 1
            gx = np.arange(0, size, 1, dtype=np.float64)
            gy = gx[:, None]
            c0 = size // 2
            g = np.exp(-((gx - c0) ** 2 + (gy - c0) ** 2) / (2 * self.sigma**2))
            g_x = max(0, -ul[0]), min(br[0], w) - ul[0]
            g_y = max(0, -ul[1]), min(br[1], h) - ul[1]
            img_x = max(0, ul[0]), min(br[0], w)
            img_y = max(0, ul[1]), min(br[1], h)
            heatmaps[j, img_y[0] : img_y[1], img_x[0] : img_x[1]] = g[g_y[0] : g_y[1], g_x[0] : g_x[1]]
        return heatmaps, weights

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps: Any) -> tuple[Any, Any]:
        """Heatmaps ``(B, K, h, w)`` (numpy or torch) -> coords ``(B, K, 2)`` in **crop px**, scores ``(B, K)``.

        Returns the same kind (numpy float32 or torch float32 on the input's device).
        A channel whose maximum is <= 0 decodes to (0, 0), as in the reference.
        """
        if _is_torch(heatmaps):
            return self._decode_torch(heatmaps)
        return self._decode_numpy(np.asarray(heatmaps))

    def _check_shape(self, shape: Sequence[int]) -> None:
        if len(shape) != 4:
            raise ValueError(f"decode: expected heatmaps (B, K, h, w), got shape {tuple(shape)}")
        if tuple(shape[2:]) != self.heatmap_hw:
            raise ValueError(f"decode: heatmaps are {tuple(shape[2:])}, codec expects {self.heatmap_hw}")

    def _decode_numpy(self, hm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._check_shape(hm.shape)
        hm = hm.astype(np.float32, copy=False)
        b, k, h, w = hm.shape
        flat = hm.reshape(b, k, h * w)
        idx = np.argmax(flat, axis=2)
        scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
        px, py = idx % w, idx // w
        coords = np.stack([px, py], axis=-1).astype(np.float32)
        ok = scores > 0
        if self.dark:
            offset = self._dark_offset_numpy(hm, px, py)
        else:
            offset = self._quarter_offset_numpy(hm, px, py)
        coords = np.where(ok[..., None], coords + offset, 0.0).astype(np.float32)
        return self._to_crop(coords), scores.astype(np.float32)

    @staticmethod
    def _quarter_offset_numpy(hm: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        # +-0.25 toward the higher neighbour on both axes, only for a peak strictly inside
        # (HRNet get_final_preds: ``1 < px < w - 1 and 1 < py < h - 1``, one test for both axes).
        b, k, h, w = hm.shape
        bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
        inside = _quarter_inside(px, py, h, w)
        xr, xl = np.clip(px + 1, 0, w - 1), np.clip(px - 1, 0, w - 1)
        yd, yu = np.clip(py + 1, 0, h - 1), np.clip(py - 1, 0, h - 1)
        dx = hm[bi, ki, py, xr] - hm[bi, ki, py, xl]
        dy = hm[bi, ki, yd, px] - hm[bi, ki, yu, px]
        off = np.stack([np.where(inside, np.sign(dx), 0.0), np.where(inside, np.sign(dy), 0.0)], axis=-1)
        return (off * 0.25).astype(np.float32)

    def _dark_offset_numpy(self, hm: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
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
        logs = np.log(np.maximum(logs, 1e-10))
        return _taylor_offset(logs, px, py, np)

    def _decode_torch(self, hm: Any) -> tuple[Any, Any]:
        import torch

        self._check_shape(hm.shape)
        hm = hm.detach().float()
        b, k, h, w = hm.shape
        flat = hm.reshape(b, k, h * w)
        # argmax returns the first maximum, like numpy (torch.max(dim) does not promise that).
        idx = flat.argmax(dim=2)
        scores = flat.gather(2, idx.unsqueeze(-1)).squeeze(-1)
        px, py = idx % w, torch.div(idx, w, rounding_mode="floor")
        coords = torch.stack([px, py], dim=-1).float()
        ok = scores > 0
        if self.dark:
            g1 = torch.from_numpy(cv2.getGaussianKernel(self.blur_kernel, 0).astype(np.float32)[:, 0]).to(hm.device)
            pad = (self.blur_kernel - 1) // 2
            x = hm.reshape(b * k, 1, h, w)
            x = torch.nn.functional.conv2d(x, g1.view(1, 1, -1, 1), padding=(pad, 0))
            x = torch.nn.functional.conv2d(x, g1.view(1, 1, 1, -1), padding=(0, pad)).reshape(b, k, h, w)
            mx = hm.amax(dim=(2, 3), keepdim=True)
            bmx = x.amax(dim=(2, 3), keepdim=True)
            x = torch.where(bmx > 0, x * (mx / torch.where(bmx > 0, bmx, torch.ones_like(bmx))), x)
            offset = _taylor_offset(torch.log(torch.clamp(x, min=1e-10)), px, py, torch)
        else:
            inside = _quarter_inside(px, py, h, w)
            g = lambda yy, xx: _gather(hm, yy.clamp(0, h - 1), xx.clamp(0, w - 1))  # noqa: E731
            dx = torch.sign(g(py, px + 1) - g(py, px - 1))
            dy = torch.sign(g(py + 1, px) - g(py - 1, px))
            offset = 0.25 * torch.stack([torch.where(inside, dx, 0.0), torch.where(inside, dy, 0.0)], dim=-1)
        coords = torch.where(ok[..., None], coords + offset, torch.zeros_like(coords))
        return self._to_crop(coords), scores

    def _to_crop(self, coords_hm: Any) -> Any:
        """Heatmap px -> crop px (same origin, per-axis stride)."""
        sx, sy = self.stride
        if _is_torch(coords_hm):
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
        if _is_torch(heatmaps):
            import torch

            out = torch.flip(heatmaps, dims=[3])[:, idx]
            if shift:
                out = torch.cat([out[..., :1], out[..., :-1]], dim=3)
            return out
        out = np.asarray(heatmaps)[:, idx, :, ::-1]
        if shift:
            out = np.concatenate([out[..., :1], out[..., :-1]], axis=3)
        return np.ascontiguousarray(out)


def _quarter_inside(px: Any, py: Any, h: int, w: int) -> Any:
    """Where the +-0.25 shift applies: ``1 < px < w - 1 and 1 < py < h - 1`` (numpy or torch (B, K)).

    HRNet ``lib/core/inference.py`` ``get_final_preds`` tests both axes at once: a peak on
    the first two rows/columns or the last one is not moved on either axis.
    """
    return (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)


def _gather(hm: Any, yy: Any, xx: Any) -> Any:
    """``hm[b, k, yy[b, k], xx[b, k]]`` for torch tensors (B, K, h, w) and index tensors (B, K)."""
    w = hm.shape[3]
    flat = hm.reshape(hm.shape[0], hm.shape[1], -1)
    return flat.gather(2, (yy * w + xx).unsqueeze(-1)).squeeze(-1)


def _taylor_offset(logs: Any, px: Any, py: Any, xp: Any) -> Any:
    """DARK's second-order Taylor step at integer ``(px, py)`` on log-heatmaps ``(B, K, h, w)``.

    ``xp`` is ``numpy`` or ``torch``; both paths compute the same expressions so that
    numpy and torch decoding agree. Points within 2 px of the border are not refined.
    """
    b, k, h, w = logs.shape
    is_np = xp is np

    def at(dy: int, dx: int) -> Any:
        yy, xx = py + dy, px + dx
        if is_np:
            bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
            return logs[bi, ki, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)].astype(np.float64)
        return _gather(logs, yy.clamp(0, h - 1), xx.clamp(0, w - 1)).double()

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
    if is_np:
        off = np.stack([np.where(inside, ox, 0.0), np.where(inside, oy, 0.0)], axis=-1)
        return off.astype(np.float32)
    import torch

    off = torch.stack([torch.where(inside, ox, 0.0), torch.where(inside, oy, 0.0)], dim=-1)
    return off.float()
