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
(a few grey levels on sharp edges; mean 0.26, max ~5 on coco-mini); targets come
from the codec's own code (``codec_ops.gaussian_heatmaps``, torch instead of numpy:
equal up to the last float64 bit of ``exp``) and the input normalisation is
``transforms.to_input_array``'s. tests/test_gpu_pipeline.py checks both on real images.

Modules: :mod:`hsrpose.data.gpu_decode` (decode), :mod:`hsrpose.data.gpu_warp`
(warp, keypoints); this one holds the worker half (dataset, collate, loader) and the
device half (:class:`GpuBatchBuilder`) that puts them together.

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
from torch.utils.data import Dataset

from hsrpose.codec import HeatmapCodec
from hsrpose.codec_ops import gaussian_heatmaps
from hsrpose.data.dataset import TopDownDataset
from hsrpose.data.geometry import invert_affine
from hsrpose.data.gpu_decode import decode_jpegs, gpu_decode_available
from hsrpose.data.gpu_warp import keypoints_to_crop_batch, pad_to_canvas, upload, warp_crops
from hsrpose.data.imageio import ImageReadError, read_image_bgr, read_image_bytes
from hsrpose.data.transforms import CropParams, crop_matrix, to_input_array

__all__ = [
    "GpuSampleDataset",
    "collate_gpu_samples",
    "GpuBatch",
    "GpuBatchBuilder",
]

log = logging.getLogger(__name__)

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
    normalise, keypoints -> crop (flip swap), :func:`~hsrpose.codec_ops.gaussian_heatmaps`
    (the codec's own target code). Works on CPU
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
                out[i] = upload(d, self.device).permute(2, 0, 1).flip(0)
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
        images = to_input_array(crops, source_order="RGB", channels_first=True)  # the CPU path's normalisation
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        valid = upload(ok, self.device)
        kp = upload(batch["keypoints"], self.device)
        m = upload(batch["M"], self.device)
        flipped = upload(batch["flipped"], self.device)
        xy, labelled = keypoints_to_crop_batch(kp, m, flipped, self._flip_perm)
        targets, weight = gaussian_heatmaps(
            xy, labelled & valid[:, None], self.input_hw, self.heatmap_hw, self.codec.sigma, self.codec.dark
        )
        return GpuBatch(images=images, targets=targets, target_weight=weight, valid=valid)
