"""Top-down dataset (image -> augmented crop + heatmap targets); its loader is ``data/loader.py``.

Determinism: every sample draws its augmentation from its own generator
``numpy.random.default_rng([seed, epoch, index])``, so a sample depends only on
(seed, epoch, index): not on the number of workers, the batch it lands in or the
DDP rank. The order comes from :class:`hsrpose.data.loader.EpochSampler` (also with one
process) seeded by ``seed`` and advanced by :func:`hsrpose.data.loader.set_loader_epoch`.

Bad records never stop an epoch: a sample whose image cannot be used (missing,
truncated, undecodable, wrong size) or whose crop is degenerate comes back with
``valid=False``, a zero image and zero target weights (so it adds nothing to the
loss), and the problem is logged with the file and annotation id. The training
loop counts ``(~batch["valid"]).sum()`` per epoch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hsrpose.codec import HeatmapCodec
from hsrpose.data.coco import Instance
from hsrpose.data.config import AugmentConfig
from hsrpose.data.geometry import box_to_center_size, invert_affine, warp_crop
from hsrpose.data.instance_store import InstanceStore
from hsrpose.data.imageio import ImageReadError, read_image_bgr
from hsrpose.data.keypoints import COCO_KEYPOINTS, KeypointInfo
from hsrpose.data.transforms import CropParams, crop_matrix, keypoints_to_crop, sample_crop_params, to_input_array

__all__ = ["TopDownDataset"]

log = logging.getLogger(__name__)


class TopDownDataset(Dataset):
    """Person instances -> network-ready crops and targets.

    Args:
        instances: from :func:`hsrpose.data.coco.load_coco_instances`.
        image_dir: folder that ``Instance.file_name`` is relative to.
        input_hw: crop size ``(H, W)``.
        codec: heatmap codec (its ``input_hw`` must equal ``input_hw``).
        augment: training augmentation, or None for the plain evaluation crop.
        keypoint_info: keypoint set (flip pairs for the flip augmentation).
        seed: base seed of the per-sample augmentation generators.
        box_padding: box enlargement (1.25 in the protocol).
        aspect_wh: crop aspect ratio w/h boxes are extended to (None = the input's ``W / H``).

    Item (a dict; collated by the default collate into batched tensors):
        ``image`` float32 (3, H, W) normalised RGB; ``target`` float32 (K, h, w);
        ``target_weight`` float32 (K,); ``keypoints_crop`` float32 (K, 3) crop px + visibility
        (after the flip swap); ``center``, ``size_wh`` float64 (2,) image px of the crop before
        the flip; ``rotation`` float (degrees); ``flipped`` bool; ``M_inv`` float64 (2, 3) crop px
        -> image px of the original image; ``image_id``, ``ann_id``, ``index`` int; ``score``
        float; ``valid`` bool; ``error`` str ('' when valid).
    """

    def __init__(
        self,
        instances: Sequence[Instance],
        image_dir: str | Path,
        input_hw: Sequence[int],
        codec: HeatmapCodec,
        augment: AugmentConfig | None = None,
        keypoint_info: KeypointInfo = COCO_KEYPOINTS,
        seed: int = 0,
        box_padding: float = 1.25,
        aspect_wh: float | None = None,
    ) -> None:
        # An InstanceStore stays one (workers share its arrays); anything else becomes a list.
        self.instances = instances if isinstance(instances, InstanceStore) else list(instances)
        self.image_dir = Path(image_dir)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        if tuple(codec.input_hw) != self.input_hw:
            raise ValueError(f"TopDownDataset: codec input {codec.input_hw} != dataset input {self.input_hw}")
        self.codec = codec
        self.augment = augment
        self.keypoint_info = keypoint_info
        if augment is not None and augment.half_body and any(i >= keypoint_info.num_keypoints for i in augment.upper_body_ids):
            raise ValueError(
                f"augment.upper_body_ids {augment.upper_body_ids} has indices >= {keypoint_info.num_keypoints} keypoints"
            )
        self.seed = int(seed)
        self.epoch = 0
        self.box_padding = float(box_padding)
        self.aspect_wh = self.input_hw[1] / self.input_hw[0] if aspect_wh is None else float(aspect_wh)
        self._flip_index = keypoint_info.flip_index

    def __len__(self) -> int:
        return len(self.instances)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (call before iterating; see :func:`set_loader_epoch`)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def crop_params(self, index: int, image_w: int | None = None) -> CropParams:
        """The (possibly augmented) crop of sample ``index`` for the current epoch."""
        inst = self.instances[index]
        center, size_wh = box_to_center_size(inst.box_xywh, self.aspect_wh, self.box_padding)
        if self.augment is None:
            return CropParams(center, size_wh)
        return sample_crop_params(center, size_wh, inst.keypoints, self.augment, self.aspect_wh, self.rng(index))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        # ``(epoch, index)`` comes from data/loader.py's EpochSampler: the epoch travels with the
        # index, so persistent workers (holding an old copy of the dataset) draw correctly.
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        if epoch != self.epoch:
            self.epoch = int(epoch)
        inst = self.instances[index]
        path = self.image_dir / inst.file_name
        try:
            image = read_image_bgr(path, inst.image_hw)
            return self._make_item(index, inst, image)
        except (ImageReadError, ValueError, np.linalg.LinAlgError, cv2.error) as e:
            # ValueError/LinAlgError: a degenerate crop (e.g. zero-size box) from crop_affine;
            # cv2.error: OpenCV refusing an image (e.g. too large to warp).
            msg = str(e) if isinstance(e, ImageReadError) else f"{path}: {e}"
            log.warning("invalid sample: %s (image id %d, annotation id %d)", msg, inst.image_id, inst.ann_id)
            return self._invalid_item(index, inst, f"{msg} (annotation id {inst.ann_id})")

    def _make_item(self, index: int, inst: Instance, image: np.ndarray) -> dict[str, Any]:
        params = self.crop_params(index)
        m = crop_matrix(params, image.shape[1], self.input_hw)
        crop = warp_crop(image, m, self.input_hw)
        kpts = keypoints_to_crop(inst.keypoints, m, params.flip, self._flip_index)
        target, weight = self.codec.encode(kpts[:, :2], kpts[:, 2])
        return {
            "image": torch.from_numpy(to_input_array(crop)[0]),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "keypoints_crop": torch.from_numpy(kpts.astype(np.float32)),
            "center": torch.from_numpy(np.asarray(params.center, dtype=np.float64)),
            "size_wh": torch.from_numpy(np.asarray(params.size_wh, dtype=np.float64)),
            "rotation": float(params.rotation),
            "flipped": bool(params.flip),
            "M_inv": torch.from_numpy(invert_affine(m)),
            "image_id": int(inst.image_id),
            "ann_id": int(inst.ann_id),
            "index": int(index),
            "score": float(inst.score),
            "valid": True,
            "error": "",
        }

    def _invalid_item(self, index: int, inst: Instance, error: str) -> dict[str, Any]:
        h, w = self.input_hw
        k = self.keypoint_info.num_keypoints
        hh, hw = self.codec.heatmap_hw
        return {
            "image": torch.zeros(3, h, w, dtype=torch.float32),
            "target": torch.zeros(k, hh, hw, dtype=torch.float32),
            "target_weight": torch.zeros(k, dtype=torch.float32),
            "keypoints_crop": torch.zeros(k, 3, dtype=torch.float32),
            "center": torch.zeros(2, dtype=torch.float64),
            "size_wh": torch.zeros(2, dtype=torch.float64),
            "rotation": 0.0,
            "flipped": False,
            "M_inv": torch.zeros(2, 3, dtype=torch.float64),
            "image_id": int(inst.image_id),
            "ann_id": int(inst.ann_id),
            "index": int(index),
            "score": float(inst.score),
            "valid": False,
            "error": error,
        }
