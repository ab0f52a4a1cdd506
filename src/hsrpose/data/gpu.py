"""GPU-side training batches: JPEG decode, affine crops, flip, normalisation and heatmap targets.

Why: at thousands of samples/s the CPU pipeline (decode + cv2.warpAffine +
per-joint Gaussians in Python) is the bottleneck long before the GPU is. Here
the CPU workers only do cheap per-sample work (read the file bytes, sample the
augmentation -> one 2x3 affine ``M``), and the device does the rest for the
whole batch at once:

    worker (GpuSampleDataset)            device (GpuBatchBuilder)
    -------------------------            ------------------------
    JPEG bytes (or cv2-decoded image) -> decode (nvJPEG via torchvision, else cv2 + upload)
    M (2,3) image px -> crop px,         zero-padded canvas (B,3,Hmax,Wmax)
      horizontal flip folded in       -> F.affine_grid + F.grid_sample (bilinear, zeros)
    keypoints (K,3) image px, flipped -> keypoints -> crop px, flip channel swap,
                                         Gaussian targets (B,K,h,w) + weights (B,K)
                                      -> (x/255 - mean)/std, optional channels_last

Equivalence with the CPU path (``geometry.warp_crop`` + ``HeatmapCodec.encode``):
``grid_sample(align_corners=False)`` puts pixel centres at ``(2i+1)/W - 1`` in
normalised coordinates, i.e. at integer pixel coordinates, exactly OpenCV's
convention; zero padding equals ``BORDER_CONSTANT 0`` (the canvas padding is zero
too, so padding images of different sizes to one canvas changes nothing). The
crops differ only by OpenCV's arithmetic: its uint8 rounding (the GPU crop stays
float: half a grey level) and, in OpenCV 4, sampling positions quantised to 1/32 px
(a few grey levels on sharp edges; mean 0.26, max ~5 on coco-mini); targets are the
same Gaussians up to float32 rounding (< 1e-6). tests/test_gpu_pipeline.py checks
both on real images.

Flip: ``transforms.crop_matrix`` already folds SimpleBaseline's "flip the image,
mirror the center, crop" into ``M``, so the warp does the flip for free; what is
left for the device is the left/right channel swap of the keypoints.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from hsrpose.codec import HeatmapCodec
from hsrpose.data.dataset import TopDownDataset
from hsrpose.data.geometry import invert_affine
from hsrpose.data.imageio import ImageReadError, imdecode_flags, read_image_bgr, read_image_bytes
from hsrpose.data.transforms import IMAGENET_MEAN, IMAGENET_STD, CropParams, crop_matrix

__all__ = [
    "affine_to_theta",
    "warp_crops",
    "pad_to_canvas",
    "keypoints_to_crop_batch",
    "gaussian_targets",
    "gpu_decode_available",
    "decode_jpegs",
    "GpuSampleDataset",
    "collate_gpu_samples",
    "GpuBatch",
    "GpuBatchBuilder",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- geometry


def _upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
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
    theta = _upload(affine_to_theta(m, (h, w), output_hw).to(torch.float32), images.device)
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


def gaussian_targets(
    keypoints_crop: torch.Tensor,
    labelled: torch.Tensor,
    input_hw: tuple[int, int],
    heatmap_hw: tuple[int, int],
    sigma: float = 2.0,
    dark: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched ``HeatmapCodec.encode``, vectorised over B and K (same numbers, float32 rounding apart).

    ``dark=False`` (SimpleBaseline/HRNet ``generate_target``): ``mu = int(kp / stride
    + 0.5)`` (C-style truncation, also for negative values), a window ``[int(mu -
    3 sigma), int(mu + 3 sigma + 1))`` holding ``exp(-d^2 / (2 sigma^2))`` around the
    window's centre cell, zero elsewhere; weight 0 when the window misses the map.
    ``dark=True``: the Gaussian is centred on the exact ``kp / stride`` over the whole
    map; weight 0 when its 3-sigma square misses the map. Unlabelled or non-finite
    joints get weight 0 and an all-zero heatmap.

    The 2-D Gaussian is separable, so it is built as the outer product of two
    1-D Gaussians (float64, rounded to float32): (B,K,h+w) exps instead of (B,K,h*w).

    Args:
        keypoints_crop: (B,K,2) crop px (float64 preferred: the rounding of mu follows it).
        labelled: (B,K) bool.
    Returns:
        targets (B,K,h,w) float32 and target_weight (B,K) float32.
    """
    # Only scalars and on-device ops here: a host->device copy would stall the stream.
    dev = keypoints_crop.device
    kp = keypoints_crop.to(torch.float64)
    finite = torch.isfinite(kp).all(dim=-1)
    kp = torch.where(finite[..., None], kp, torch.zeros_like(kp))
    radius = sigma * 3.0
    size = 2.0 * radius + 1.0
    inside = finite
    gauss = []
    # axis 0 = x (heatmap width), 1 = y; the stride per axis as the codec's (input / heatmap).
    for d, (n, n_in) in enumerate([(heatmap_hw[1], input_hw[1]), (heatmap_hw[0], input_hw[0])]):
        c = kp[..., d] / (n_in / n)
        coords = torch.arange(n, dtype=torch.float64, device=dev)
        if dark:
            centre = c
            inside = inside & (c - radius < n) & (c + radius >= 0)
            in_win = None
        else:
            mu = torch.trunc(c + 0.5)  # python int() of a float
            lo = torch.trunc(mu - radius)  # window [lo, br) in heatmap px
            br = torch.trunc(mu + radius + 1.0)
            inside = inside & (lo < n) & (br >= 0)
            # np.arange(0, size) has ceil(size) cells; the reference's slices stop there.
            hi = torch.minimum(br, lo + float(np.ceil(size)))
            centre = lo + float(size // 2)
            in_win = (coords >= lo[..., None]) & (coords < hi[..., None])
        g = torch.exp(-((coords - centre[..., None]) ** 2) / (2.0 * sigma**2))  # (B,K,n)
        if in_win is not None:
            g = torch.where(in_win, g, 0.0)
        gauss.append(g.to(torch.float32))
    weight = (labelled.to(dev) & inside).to(torch.float32)
    gx, gy = gauss
    targets = gy[..., :, None] * gx[..., None, :] * weight[..., None, None]
    return targets, weight


# --------------------------------------------------------------------------- decode


def gpu_decode_available() -> bool:
    """True when ``torchvision.io.decode_jpeg`` can decode on CUDA here."""
    if not torch.cuda.is_available():
        return False
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except Exception:  # torchvision missing, or built against another torch
        return False
    return True


def decode_jpegs(data: Sequence[torch.Tensor], device: torch.device, use_gpu: bool) -> list[torch.Tensor | None]:
    """Encoded images (1-D uint8 CPU tensors) -> (3,H,W) uint8 **RGB** on ``device``; None where undecodable.

    ``use_gpu``: nvJPEG via ``torchvision.io.decode_jpeg(device='cuda')`` (one batched
    call; a file it refuses -- CMYK, PNG, corrupt -- is retried alone, then with OpenCV).
    Otherwise OpenCV decodes on the CPU (as ``read_image_bgr``: EXIF orientation ignored,
    like nvJPEG and the reference) and the image is uploaded. The caller compares sizes
    with the annotation file and falls back to ``read_image_bgr`` for its error.
    """
    import cv2

    out: list[torch.Tensor | None] = [None] * len(data)
    todo = list(range(len(data)))
    if use_gpu and todo:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            for i, im in zip(todo, decode_jpeg([data[i] for i in todo], mode=ImageReadMode.RGB, device=device)):
                out[i] = im
            todo = []
        except Exception:  # one bad file fails the batched call
            for i in list(todo):
                try:
                    out[i] = decode_jpeg(data[i], mode=ImageReadMode.RGB, device=device)
                    todo.remove(i)
                except Exception:
                    pass
    for i in todo:
        img = cv2.imdecode(data[i].numpy(), imdecode_flags(exif_orientation=False))  # dataset: stored pixels
        if img is not None:
            out[i] = torch.from_numpy(img).to(device, non_blocking=True).permute(2, 0, 1).flip(0)  # BGR -> RGB
    return out


# --------------------------------------------------------------------------- CPU side




class GpuSampleDataset(Dataset):
    """The cheap, CPU half of a :class:`~hsrpose.data.dataset.TopDownDataset` sample.

    Wraps a ``TopDownDataset`` and uses its augmentation draws (``crop_params``: the
    same generator per ``(seed, epoch, index)``), so sample ``i`` of epoch ``e`` is the
    same crop through both paths. Accepts the same keys (``index`` or ``(epoch, index)``).

    Args:
        base: the dataset whose instances, image folder, crop size and augmentation are used.
        decode: ``device``: ship the encoded file (decoded by :class:`GpuBatchBuilder`,
            nvJPEG on CUDA); ``worker``: decode here with ``read_image_bgr`` (for a
            device without nvJPEG; the decoded image costs shared memory and a bigger upload).

    Item (collate with :func:`collate_gpu_samples`): ``data`` uint8 tensor, the encoded
    file (1-D) or the decoded (H,W,3) **BGR** image; ``image_hw`` int64 (2,) from the
    annotation file ((-1,-1) unknown); ``path`` str; ``M`` float64 (2,3) original image
    px -> crop px with the flip folded in; ``flipped`` bool; ``keypoints`` float64 (K,3)
    original image px; and, as ``TopDownDataset`` items, ``center``, ``size_wh``,
    ``rotation``, ``M_inv``, ``image_id``, ``ann_id``, ``index``, ``score``, ``valid``,
    ``error``. A bad record (missing/empty/truncated file, degenerate box) comes back with
    ``valid=False``, empty data and is logged with the file and annotation id.
    """

    def __init__(self, base: TopDownDataset, decode: Literal["device", "worker"] = "device") -> None:
        if decode not in ("device", "worker"):
            raise ValueError(f"GpuSampleDataset: decode must be 'device' or 'worker', got {decode!r}")
        self.base = base
        self.decode = decode

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    @property
    def seed(self) -> int:
        return self.base.seed

    @seed.setter
    def seed(self, value: int) -> None:
        self.base.seed = int(value)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (self.base.epoch, key)
        self.base.epoch = int(epoch)
        inst = self.base.instances[index]
        path = self.base.image_dir / inst.file_name
        hw = inst.image_hw
        try:
            if self.decode == "worker" or hw is None:
                # Without the size from the annotation file the flip needs the decoded width.
                image = read_image_bgr(path, hw)
                data = torch.from_numpy(image)
                hw = image.shape[:2]
            else:
                data = torch.frombuffer(bytearray(read_image_bytes(path)), dtype=torch.uint8)
            params = self.base.crop_params(index)
            m = crop_matrix(params, int(hw[1]), self.base.input_hw)
            m_inv = invert_affine(m)
        except (ImageReadError, ValueError, np.linalg.LinAlgError) as e:
            msg = str(e) if isinstance(e, ImageReadError) else f"{path}: {e}"
            log.warning("invalid sample: %s (image id %d, annotation id %d)", msg, inst.image_id, inst.ann_id)
            return self._item(index, inst, str(path), None, None, None, f"{msg} (annotation id {inst.ann_id})")
        return self._item(index, inst, str(path), data, hw, (params, m, m_inv), "")

    def _item(
        self,
        index: int,
        inst: Any,
        path: str,
        data: torch.Tensor | None,
        hw: Sequence[int] | None,
        crop: tuple[CropParams, np.ndarray, np.ndarray] | None,
        error: str,
    ) -> dict[str, Any]:
        k = self.base.keypoint_info.num_keypoints
        if crop is None:  # invalid: harmless placeholders, zero weights follow from valid=False
            params = CropParams(np.zeros(2), np.ones(2))
            m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
            m_inv = np.zeros((2, 3))
        else:
            params, m, m_inv = crop
        kp = np.asarray(inst.keypoints, dtype=np.float64).reshape(-1, 3) if crop is not None else np.zeros((k, 3))
        return {
            "data": data if data is not None else torch.zeros(0, dtype=torch.uint8),
            "image_hw": torch.tensor(list(hw) if hw is not None else [-1, -1], dtype=torch.int64),
            "path": path,
            "M": torch.from_numpy(np.asarray(m, dtype=np.float64)),
            "flipped": bool(params.flip),
            "keypoints": torch.from_numpy(kp),
            "center": torch.from_numpy(np.asarray(params.center, dtype=np.float64)),
            "size_wh": torch.from_numpy(np.asarray(params.size_wh, dtype=np.float64)),
            "rotation": float(params.rotation),
            "M_inv": torch.from_numpy(np.asarray(m_inv, dtype=np.float64)),
            "image_id": int(inst.image_id),
            "ann_id": int(inst.ann_id),
            "index": int(index),
            "score": float(inst.score),
            "valid": crop is not None,
            "error": error,
        }




_LIST_KEYS = ("data", "path", "error")


def collate_gpu_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """DataLoader ``collate_fn`` for :class:`GpuSampleDataset` items.

    ``data`` (variable size), ``path`` and ``error`` stay lists; every other field is
    stacked as the default collate would (tensors, bools, ints, floats).
    """
    out: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key in _LIST_KEYS:
            out[key] = values
        elif isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        else:
            out[key] = torch.tensor(values)
    return out


# --------------------------------------------------------------------------- device side


def _canvas_chunks(sizes_hw: Sequence[tuple[int, int]], max_bytes: int) -> list[tuple[int, int]]:
    """Split samples ``[0, n)`` into consecutive ``[lo, hi)`` runs whose float32 3-channel canvas fits ``max_bytes``."""
    chunks: list[tuple[int, int]] = []
    lo, h, w = 0, 0, 0
    for i, (hi_h, hi_w) in enumerate(sizes_hw):
        nh, nw = max(h, hi_h), max(w, hi_w)
        if i > lo and (i - lo + 1) * 3 * nh * nw * 4 > max_bytes:
            chunks.append((lo, i))
            lo, nh, nw = i, hi_h, hi_w
        h, w = nh, nw
    chunks.append((lo, len(sizes_hw)))
    return chunks


@dataclass
class GpuBatch:
    """A training batch on the builder's device.

    images (B,3,H,W) float32 normalised RGB (channels_last if asked); targets (B,K,h,w)
    float32; target_weight (B,K) float32 (zero rows for invalid samples); valid (B,) bool.
    """

    images: torch.Tensor
    targets: torch.Tensor
    target_weight: torch.Tensor
    valid: torch.Tensor


class GpuBatchBuilder:
    """Collated :class:`GpuSampleDataset` batch -> :class:`GpuBatch` on ``device``.

    ``builder(batch)``: decode (nvJPEG on CUDA when torchvision is importable, else
    OpenCV + upload), pad into one zero canvas, ``warp_crops`` with ``batch["M"]``,
    normalise, keypoints -> crop (flip swap), :func:`gaussian_targets`. Works on CPU
    tensors too (slowly), which is how the equivalence tests run.

    Args:
        codec: the heatmap codec of the CPU path (sizes, sigma, dark).
        flip_index: ``KeypointInfo.flip_index``.
        device: where the batch is built.
        channels_last: return images in NHWC memory format.
        gpu_decode: None = nvJPEG when available on ``device``; False = always OpenCV.
    """

    def __init__(
        self,
        codec: HeatmapCodec,
        flip_index: Sequence[int],
        device: str | torch.device = "cuda",
        channels_last: bool = False,
        gpu_decode: bool | None = None,
    ) -> None:
        self.codec = codec
        self.input_hw = codec.input_hw
        self.heatmap_hw = codec.heatmap_hw
        self.flip_index = list(flip_index)
        self.device = torch.device(device)
        self._flip_perm = torch.tensor(self.flip_index, dtype=torch.long, device=self.device)
        self.channels_last = channels_last
        self.gpu_decode = (gpu_decode_available() and self.device.type == "cuda") if gpu_decode is None else gpu_decode
        # (x/255 - mean)/std folded into one multiply-add per pixel.
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32)
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)
        self._scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(self.device)
        self._shift = (-mean / std).view(1, 3, 1, 1).to(self.device)
        self.bad_images = 0  # samples dropped here (undecodable image), for the logs
        # One float32 canvas holds the whole batch (~1.3 GB for 256 COCO images); batches of
        # bigger images are warped in several canvases instead.
        self.max_canvas_bytes = 2 << 30

    def images_on_device(self, batch: dict[str, Any]) -> list[torch.Tensor | None]:
        """(3,H,W) uint8 RGB per sample on the device; None for invalid / undecodable samples."""
        data: list[torch.Tensor] = batch["data"]
        valid = batch["valid"].tolist()
        out: list[torch.Tensor | None] = [None] * len(data)
        encoded = [i for i, d in enumerate(data) if valid[i] and d.ndim == 1]
        for i, d in enumerate(data):
            if valid[i] and d.ndim == 3:  # decoded in the worker: (H,W,3) BGR
                out[i] = _upload(d, self.device).permute(2, 0, 1).flip(0)
        for i, im in zip(encoded, decode_jpegs([data[i] for i in encoded], self.device, self.gpu_decode)):
            want = tuple(int(v) for v in batch["image_hw"][i])
            if im is None or tuple(im.shape[1:]) != want:
                # Undecodable by nvJPEG/OpenCV, or of another size: the CPU reader reports it.
                try:
                    bgr = read_image_bgr(batch["path"][i], want if want[0] > 0 else None)
                    im = torch.from_numpy(bgr).to(self.device).permute(2, 0, 1).flip(0)
                except ImageReadError as e:
                    log.warning("invalid sample: %s (annotation id %d)", e, int(batch["ann_id"][i]))
                    self.bad_images += 1
                    im = None
            out[i] = im
        return out

    def crops(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB crops (B,3,h,w) float32 on 0..255 (not rounded) and the (B,) per-sample ok mask (CPU)."""
        ims = self.images_on_device(batch)
        ok = torch.tensor([im is not None for im in ims], dtype=torch.bool)
        blank = torch.zeros((3, 1, 1), dtype=torch.uint8, device=self.device)
        ims = [im if im is not None else blank for im in ims]
        out = []
        for lo, hi in _canvas_chunks([tuple(im.shape[1:]) for im in ims], self.max_canvas_bytes):
            canvas = pad_to_canvas(ims[lo:hi], dtype=torch.float32)
            out.append(warp_crops(canvas, batch["M"][lo:hi], self.input_hw))
        return (out[0] if len(out) == 1 else torch.cat(out)), ok

    def __call__(self, batch: dict[str, Any]) -> GpuBatch:
        crops, ok = self.crops(batch)
        images = crops * self._scale + self._shift
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        valid = _upload(ok, self.device)
        kp = _upload(batch["keypoints"], self.device)
        m = _upload(batch["M"], self.device)
        flipped = _upload(batch["flipped"], self.device)
        xy, labelled = keypoints_to_crop_batch(kp, m, flipped, self._flip_perm)
        targets, weight = gaussian_targets(
            xy, labelled & valid[:, None], self.input_hw, self.heatmap_hw, self.codec.sigma, self.codec.dark
        )
        return GpuBatch(images=images, targets=targets, target_weight=weight, valid=valid)
