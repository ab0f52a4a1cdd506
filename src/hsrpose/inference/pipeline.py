"""Top-down inference on whole images: detect people, crop, run the network, map back, rescore, OKS-NMS.

image (BGR uint8) -> detector boxes (xywh, image px) -> crop (center, size_wh,
2x3 affine ``M``) -> normalised crops (B,3,H,W) -> backend heatmaps (B,K,h,w)
[flip test] -> decode (crop px) -> ``M_inv`` (image px) -> rescoring + OKS-NMS
-> ``list[PoseInstance]``.

The post-processing is the evaluation protocol's (``hsrpose.evaluation``):
instance score = box score x mean keypoint score above 0.2, then OKS-NMS at 0.9
with the keypoint set's sigmas, areas = crop region area. Crops of one image and
of several images (:meth:`PoseEstimator.predict_batch`) go through the network
together in batches of ``batch_size``.

No torch import at module level: with ``backend="onnxruntime"`` this runs on a
deployment without torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from hsrpose.data.geometry import box_to_center_size, crop_affine, invert_affine, warp_crop
from hsrpose.data.imageio import read_image_bgr
from hsrpose.data.keypoints import KeypointInfo
from hsrpose.data.transforms import to_input_array
from hsrpose.decode_settings import DecodeSettings
from hsrpose.errors import CheckpointError, HsrposeError
from hsrpose.evaluation.postprocess import select_instances
from hsrpose.inference.detectors import CocoResultsDetector, PersonDetector, build_detector
from hsrpose.inference.topdown import heatmaps_to_image, predict_heatmaps

__all__ = ["PoseInstance", "PoseEstimator", "Crops", "make_crops", "normalise_crops", "as_bgr_uint8"]

log = logging.getLogger(__name__)

# Boxes given instead of running the detector: (N,4) xywh (scores 1) or (boxes (N,4), scores (N,)).
BoxesInput = Any


@dataclass
class PoseInstance:
    """One person: box and keypoints in image pixels.

    Attributes:
        box_xywh: (4,) float32 detector box, COCO xywh, image px.
        box_score: detector confidence.
        keypoints: (K,2) float32 (x, y) image px.
        keypoint_scores: (K,) float32 heatmap maxima.
        score: instance score (box score x mean keypoint score above the rescoring threshold).
    """

    box_xywh: np.ndarray
    box_score: float
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    score: float

    def to_coco(self, image_id: int, category_id: int = 1) -> dict[str, Any]:
        """COCO keypoint results entry: ``keypoints`` flat ``[x, y, score] * K``."""
        kpts = np.concatenate([self.keypoints.astype(np.float64), self.keypoint_scores.astype(np.float64)[:, None]], axis=1)
        return {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [round(float(v), 3) for v in kpts.reshape(-1)],
            "score": float(self.score),
            "bbox": [round(float(v), 2) for v in self.box_xywh],
            "box_score": float(self.box_score),
        }


@dataclass
class Crops:
    """Person crops of one image.

    Attributes:
        images: (N,H,W,3) uint8 BGR crops of ``input_hw``.
        M: (N,2,3) image px -> crop px.  M_inv: (N,2,3) crop px -> image px.
        areas: (N,) crop region area in image px^2 (the OKS-NMS area).
    """

    images: np.ndarray
    M: np.ndarray
    M_inv: np.ndarray
    areas: np.ndarray


def make_crops(
    image_bgr: np.ndarray, boxes_xywh: np.ndarray, input_hw: tuple[int, int], padding: float = 1.25, aspect_wh: float | None = None
) -> Crops:
    """Crop every box: extended to the aspect ratio ``aspect_wh`` (default: the input's), enlarged by ``padding``, no rotation.

    Boxes are used as given (not clipped): the same crops as the evaluation dataset's.
    """
    boxes = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    h, w = int(input_hw[0]), int(input_hw[1])
    aspect = w / h if aspect_wh is None else float(aspect_wh)
    n = len(boxes)
    images = np.zeros((n, h, w, 3), dtype=np.uint8)
    ms = np.zeros((n, 2, 3), dtype=np.float64)
    m_invs = np.zeros((n, 2, 3), dtype=np.float64)
    areas = np.zeros((n,), dtype=np.float64)
    for i, box in enumerate(boxes):
        center, size_wh = box_to_center_size(box, aspect_wh=aspect, padding=padding)
        m = crop_affine(center, size_wh, 0.0, (h, w))
        images[i] = warp_crop(image_bgr, m, (h, w))
        ms[i], m_invs[i] = m, invert_affine(m)
        areas[i] = size_wh[0] * size_wh[1]
    return Crops(images, ms, m_invs, areas)


def as_bgr_uint8(image: np.ndarray, source: str = "image") -> np.ndarray:
    """Any 8/16-bit grayscale, BGR or BGRA array -> (H,W,3) uint8 BGR."""
    a = np.asarray(image)
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)  # keep the top 8 bits, as cv2.IMREAD_COLOR does
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        raise HsrposeError(f"{source}: expected a uint8 image (BGR), got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.ndim == 3 and a.shape[2] == 4:
        return cv2.cvtColor(a, cv2.COLOR_BGRA2BGR)
    if a.ndim == 3 and a.shape[2] == 3:
        return np.ascontiguousarray(a)
    raise HsrposeError(f"{source}: expected an image (H,W), (H,W,3) or (H,W,4), got shape {a.shape}")


def normalise_crops(crops: np.ndarray, preprocessing: Any = None) -> np.ndarray:
    """BGR uint8 crops (N,H,W,3) -> backend input (N,3,H,W) float32.

    The default is ImageNet RGB normalisation (``to_input_array``); a backend that
    declares other ``preprocessing`` (an ONNX file's metadata) gets exactly that.
    """
    if preprocessing is None:
        return to_input_array(crops)
    p = preprocessing
    return to_input_array(crops, p.mean, p.std, p.value_scale, str(p.channel_order))


class PoseEstimator:
    """Multi-person pose estimation on images.

    Args:
        weights: hsrpose weights / training checkpoint, or a SimpleBaseline ``pose_resnet`` /
            mmpose 1.x checkpoint (``backend="torch"``); an ``.onnx`` file, hsrpose's export or
            any top-down heatmap graph (``backend="onnxruntime"``); or a ready backend
            object (callable numpy -> numpy with ``input_hw``, ``heatmap_hw``,
            ``keypoint_info``; then ``backend`` and ``device`` are ignored).
        detector: a spec (``auto``: YOLO when one is available, else HOG with a warning; ``hog``,
            ``yolo:PATH``, ``coco:FILE``, ``darknet:CFG,WEIGHTS``; built at its first use), a
            :class:`PersonDetector`, or None (then boxes must be given to each call).
        device: torch device of the model and of an Ultralytics detector.
        backend: ``"torch"`` or ``"onnxruntime"``.
        flip_test: average with the heatmaps of the mirrored crop (the published protocol).
        batch_size: crops per network call.
        keypoint_info: the keypoint set the caller's configuration expects; must match
            the weights' (a clear error otherwise). Default: the weights'.
        box_score_thr: boxes below this detector score are dropped (protocol: 0.0).
        rescore_thr: keypoint score threshold of the rescoring (0.2).
        nms_thr: OKS-NMS threshold (0.9); None disables NMS.
        decode: decode settings (sigma, decoder, box padding, aspect ratio, flip shift);
            default: those stored in the weights (protocol defaults for older files).
        padding: explicit box padding, overrides ``decode`` / the weights' (None = keep).
        dark: explicit decoder choice (True = DARK, False = standard), overrides ``decode`` /
            the weights' (None = keep).

        exif_orientation: for images given as paths: apply the EXIF orientation tag (user
            photos). None = yes, except with a ``coco:`` results-file detector, whose boxes
            refer to the stored pixels as in the reference (``hsrpose eval`` reads them so).

    ``decode_settings`` holds what is used; ``decode_note`` says when the weights stored none.
        preset: the preset of a foreign torch checkpoint (default: inferred from its tensor shapes).
        onnx_spec: preprocessing and keypoints of an ONNX graph without hsrpose metadata
            (:class:`~hsrpose.inference.foreign_onnx.ForeignOnnxSpec`; default RGB ImageNet, COCO 17).

    ``decode_settings`` holds what is used; ``decode_note`` says when the weights stored none.
    Given boxes (and a ``coco:`` file's) are cropped as they are, never clipped to the image.
    """

    def __init__(
        self,
        weights: Any,
        detector: str | PersonDetector | None = "auto",
        device: str = "cpu",
        backend: str = "torch",
        flip_test: bool = True,
        batch_size: int = 32,
        keypoint_info: KeypointInfo | None = None,
        box_score_thr: float = 0.0,
        rescore_thr: float = 0.2,
        nms_thr: float | None = 0.9,
        padding: float | None = None,
        dark: bool | None = None,
        decode: DecodeSettings | None = None,
        exif_orientation: bool | None = None,
        preset: str | None = None,
        onnx_spec: Any = None,
    ) -> None:
        if batch_size < 1:
            raise HsrposeError(f"batch_size must be >= 1, got {batch_size}")
        self.backend = _make_backend(weights, backend, device, preset, onnx_spec, keypoint_info)
        info = self.backend.keypoint_info
        if keypoint_info is not None and keypoint_info.num_keypoints != info.num_keypoints:
            raise CheckpointError(
                f"{_describe(weights)}: the weights predict {info.num_keypoints} keypoints but the configuration "
                f"has {keypoint_info.num_keypoints} ({', '.join(keypoint_info.names[:4])}...)"
            )
        self.keypoint_info: KeypointInfo = keypoint_info or info
        self.input_hw = tuple(int(v) for v in self.backend.input_hw)
        stored = getattr(self.backend, "decode_settings", None) or DecodeSettings()
        self.decode_note: str | None = None if decode is not None else getattr(self.backend, "decode_note", None)
        self.use_decode(
            (decode or stored).replace(box_padding=padding, decoder=None if dark is None else ("dark" if dark else "standard"))
        )
        # A spec string is turned into a detector at its first use, so that a caller who
        # always passes boxes never needs the default detector's dependencies.
        self.detector: str | PersonDetector | None = detector
        self.device = device
        self.flip_test = bool(flip_test)
        self.batch_size = int(batch_size)
        self.box_score_thr = float(box_score_thr)
        self.rescore_thr = float(rescore_thr)
        self.nms_thr = nms_thr
        self.exif_orientation = exif_orientation

    def reads_exif(self) -> bool:
        """Whether images given as paths are read with their EXIF orientation applied."""
        if self.exif_orientation is not None:
            return bool(self.exif_orientation)
        d = self.detector
        return not (isinstance(d, CocoResultsDetector) or (isinstance(d, str) and d.strip().lower().startswith("coco:")))

    def use_decode(self, settings: DecodeSettings) -> None:
        """Decode (and crop) with ``settings`` from now on: codec, box padding, aspect ratio, flip shift."""
        self.decode_settings: DecodeSettings = settings
        self.codec = settings.codec(self.input_hw, self.backend.heatmap_hw)
        self.padding = float(settings.box_padding)
        self.aspect_wh = settings.aspect_for(self.input_hw)

    @classmethod
    def from_model(
        cls,
        model: Any,
        keypoint_info: KeypointInfo,
        input_hw: tuple[int, int],
        heatmap_hw: tuple[int, int] | None = None,
        device: str = "cpu",
        **kwargs: Any,
    ) -> "PoseEstimator":
        """Wrap an in-memory torch model (``(B,3,H,W) -> (B,K,h,w)``); ``kwargs`` as for the constructor."""
        from hsrpose.inference.backends import TorchBackend

        return cls(TorchBackend(model, keypoint_info, input_hw, heatmap_hw, device=device), device=device, **kwargs)

    # ------------------------------------------------------------------ public API
    def __call__(self, image: Any, boxes: BoxesInput = None, image_key: str | int | None = None) -> list[PoseInstance]:
        """Poses in one image (BGR uint8 array of any size, grayscale/BGRA too, or a path).

        ``boxes``: skip the detector and use these person boxes, (N,4) xywh or
        ``(boxes, scores)``. ``image_key``: image id or file name for a file-based
        detector (default: the path's file name).
        """
        return self.predict_batch([image], None if boxes is None else [boxes], None if image_key is None else [image_key])[0]

    def predict_batch(
        self,
        images: Sequence[Any],
        boxes: Sequence[BoxesInput] | None = None,
        image_keys: Sequence[str | int | None] | None = None,
    ) -> list[list[PoseInstance]]:
        """Poses in several images; the crops of all of them share network batches."""
        n = len(images)
        if boxes is not None and len(boxes) != n:
            raise HsrposeError(f"predict_batch: {n} images but {len(boxes)} box sets")
        if image_keys is not None and len(image_keys) != n:
            raise HsrposeError(f"predict_batch: {n} images but {len(image_keys)} image keys")
        per_image: list[tuple[np.ndarray, np.ndarray, Crops]] = []
        for i, img in enumerate(images):
            key = image_keys[i] if image_keys is not None else None
            if isinstance(img, (str, Path)):
                key = Path(img).name if key is None else key
                bgr = read_image_bgr(img, exif_orientation=self.reads_exif())
            else:
                bgr = as_bgr_uint8(img)
            b, s = self._boxes(bgr, None if boxes is None else boxes[i], key)
            per_image.append((b, s, make_crops(bgr, b, self.input_hw, self.padding, self.aspect_wh)))
        if not any(len(c.images) for _, _, c in per_image):
            return [[] for _ in range(n)]
        crops = np.concatenate([c.images for _, _, c in per_image])
        m_inv = np.concatenate([c.M_inv for _, _, c in per_image])
        keypoints, kpt_scores = self._keypoints(crops, m_inv)
        out: list[list[PoseInstance]] = []
        start = 0
        for b, s, c in per_image:
            stop = start + len(b)
            out.append(self._instances(b, s, c.areas, keypoints[start:stop], kpt_scores[start:stop]))
            start = stop
        return out

    # ------------------------------------------------------------------ steps
    def _boxes(self, image: np.ndarray, given: BoxesInput, key: str | int | None) -> tuple[np.ndarray, np.ndarray]:
        if given is not None:
            if isinstance(given, tuple) and len(given) == 2:
                b, s = given
            else:
                b = given
                s = np.ones((len(np.asarray(b).reshape(-1, 4)),), dtype=np.float32)
        elif self.detector is not None:
            if isinstance(self.detector, str):
                self.detector = build_detector(self.detector, device=self.device)
            b, s = self.detector(image, key)
        else:
            raise HsrposeError("no detector configured: pass person boxes to the call")
        # As the reference: boxes are not clipped to the image and w/h <= 0 is kept; only a
        # box that gives no crop at all (non-finite, or zero size after the aspect fix) is
        # dropped -- the evaluation dataset marks the same boxes invalid.
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        if len(s) != len(b):
            raise HsrposeError(f"{len(b)} boxes but {len(s)} scores")
        croppable = np.array([_croppable(x, self.aspect_wh, self.padding) for x in b], bool).reshape(-1)
        if not croppable.all():
            log.warning("image %s: %d box(es) give no crop (non-finite or zero size) and were skipped", key, int((~croppable).sum()))
        keep = (s >= self.box_score_thr) & np.isfinite(s) & croppable
        return b[keep], s[keep]

    def _keypoints(self, crops: np.ndarray, m_inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Crops (N,H,W,3) -> keypoints (N,K,2) image px and scores (N,K), in batches."""
        inputs = normalise_crops(crops, getattr(self.backend, "preprocessing", None))
        flip_index = self.keypoint_info.flip_index if self.flip_test else None
        k_expected = self.keypoint_info.num_keypoints
        kpts, scores = [], []

        def network(x: np.ndarray) -> np.ndarray:
            hm = np.asarray(self.backend(x))
            # checked before the flip test permutes channels by the keypoint set's flip pairs
            if hm.ndim != 4 or hm.shape[0] != len(x) or hm.shape[1] != k_expected:
                raise CheckpointError(
                    f"the model outputs heatmaps of shape {tuple(hm.shape)}, expected ({len(x)}, {k_expected}, h, w) "
                    f"for the {k_expected}-keypoint configuration"
                )
            return hm

        for i in range(0, len(inputs), self.batch_size):
            hm = predict_heatmaps(network, inputs[i : i + self.batch_size], flip_index, codec=self.codec, shift=self.decode_settings.flip_shift)
            k, s = heatmaps_to_image(hm, m_inv[i : i + self.batch_size], self.codec)
            kpts.append(k)
            scores.append(s)
        return np.concatenate(kpts), np.concatenate(scores)

    def _instances(
        self, boxes: np.ndarray, box_scores: np.ndarray, areas: np.ndarray, keypoints: np.ndarray, kpt_scores: np.ndarray
    ) -> list[PoseInstance]:
        if len(boxes) == 0:
            return []
        kp3 = np.concatenate([keypoints, kpt_scores[:, :, None]], axis=2)
        order, scores = select_instances(np.zeros(len(boxes), np.int64), kp3, box_scores, areas, rescore_thr=self.rescore_thr,
                                         nms_thr=self.nms_thr, sigmas=self.keypoint_info.sigmas_array)  # fmt: skip
        return [
            PoseInstance(
                box_xywh=boxes[i].astype(np.float32),
                box_score=float(box_scores[i]),
                keypoints=keypoints[i].astype(np.float32),
                keypoint_scores=kpt_scores[i].astype(np.float32),
                score=float(scores[i]),
            )
            for i in order
        ]


def _croppable(box: np.ndarray, aspect_wh: float, padding: float) -> bool:
    """True when ``box`` gives a crop (finite, positive width after the aspect fix)."""
    if not np.all(np.isfinite(box)):
        return False
    _, size_wh = box_to_center_size(box, aspect_wh, padding)
    return bool(np.isfinite(size_wh[0]) and size_wh[0] > 0)


def _describe(weights: Any) -> str:
    return str(weights) if isinstance(weights, (str, Path)) else type(weights).__name__


def _make_backend(weights: Any, backend: str, device: str, preset: str | None = None, onnx_spec: Any = None,
                  keypoint_info: KeypointInfo | None = None) -> Any:  # fmt: skip
    if not isinstance(weights, (str, Path)):
        for attr in ("input_hw", "heatmap_hw", "keypoint_info"):
            if not hasattr(weights, attr) or not callable(weights):
                raise HsrposeError(f"weights: expected a file path or a backend object with {attr!r}, got {type(weights).__name__}")
        return weights
    path = Path(weights)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    if backend == "torch":
        from hsrpose.inference.backends import TorchBackend
        from hsrpose.models.foreign import load_any_pose_model

        hw = getattr(onnx_spec, "input_hw", None)
        model, meta = load_any_pose_model(path, device=device, preset=preset, input_hw=hw, keypoint_info=keypoint_info)
        return TorchBackend(model, meta.keypoint_info, meta.input_hw, meta.heatmap_hw, device=device, preset=meta.preset,
                            decode_settings=meta.decode, decode_note=meta.decode_note)  # fmt: skip
    if backend == "onnxruntime":
        from hsrpose.inference.foreign_onnx import open_onnx_backend

        return open_onnx_backend(path, onnx_spec)
    raise HsrposeError(f"unknown backend {backend!r}; use 'torch' or 'onnxruntime'")
