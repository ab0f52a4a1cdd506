"""ONNX Runtime heatmap backend: numpy in, numpy out, no torch.

A deployment needs numpy, OpenCV and onnxruntime only. Everything the pipeline
needs besides the graph (input and heatmap sizes, preprocessing, keypoint names,
flip pairs, skeleton, OKS sigmas) is read back from the ``metadata_props`` that
:func:`hsrpose.export.export_onnx` writes; :class:`OnnxPoseMeta` is the one place
that defines those keys, for the writer and the reader.

This module must not import torch, at module level or anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hsrpose.data.keypoints import KeypointInfo
from hsrpose.decode_settings import DECODE_KEY, DecodeSettings
from hsrpose.errors import CheckpointError

__all__ = ["ONNX_FORMAT", "ONNX_FORMAT_VERSION", "Preprocessing", "OnnxPoseMeta", "OnnxRuntimeBackend"]

# Value of the ``hsrpose_format`` metadata key; a file without it is not an hsrpose export.
ONNX_FORMAT = "hsrpose-onnx-pose"
# Bumped when the metadata schema changes incompatibly.
ONNX_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """How crops become network input: ``((x * value_scale) - mean) / std`` per channel, in ``channel_order``, NCHW."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"
    value_scale: float = 1.0 / 255.0
    layout: str = "NCHW"

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": self.channel_order,
            "value_scale": self.value_scale,
            "layout": self.layout,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Preprocessing":
        for key in ("mean", "std"):
            if len(d[key]) != 3:
                raise ValueError(f"'{key}' needs 3 values (one per channel), got {d[key]!r}")
        if str(d["channel_order"]).upper() not in ("RGB", "BGR"):
            raise ValueError(f"'channel_order' must be RGB or BGR, got {d['channel_order']!r}")
        return cls(
            mean=tuple(float(v) for v in d["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in d["std"]),  # type: ignore[arg-type]
            channel_order=str(d["channel_order"]),
            value_scale=float(d["value_scale"]),
            layout=str(d.get("layout", "NCHW")),
        )


@dataclass(frozen=True)
class OnnxPoseMeta:
    """The metadata an hsrpose ONNX file carries (string key/value pairs in ``metadata_props``).

    ``input_hw``/``heatmap_hw`` are the sizes the model was built (and trained) for.
    ``dynamic_size`` says whether the graph also accepts other input sizes; those must
    be multiples of ``input_multiple`` (the backbone's output stride) so that the
    heatmaps are exactly input/4.
    The batch axis is dynamic in hsrpose exports; an imported foreign graph may fix it (run crop by crop).
    ``precision`` is ``"fp32"`` or ``"int8"`` (:mod:`hsrpose.quantize`: QDQ static
    quantisation); an INT8 file names the ``fp32_nodes`` left unquantised and its
    ``calibration`` (method, number of crops and images).
    """

    preset: str
    input_hw: tuple[int, int]
    heatmap_hw: tuple[int, int]
    keypoint_info: KeypointInfo
    preprocessing: Preprocessing
    hsrpose_version: str
    opset: int
    dynamic_size: bool
    input_multiple: int = 1
    input_name: str = "images"
    output_name: str = "heatmaps"
    # Decode settings (hsrpose.decode_settings, key "decode"); files exported before they
    # were stored read back with the protocol defaults and ``decode_note`` set.
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    decode_note: str | None = None
    precision: str = "fp32"
    fp32_nodes: tuple[str, ...] = ()
    calibration: Mapping[str, Any] | None = None

    def to_props(self) -> dict[str, str]:
        """String key -> string value, as ONNX ``metadata_props`` (JSON for structured values)."""
        return {
            "hsrpose_format": ONNX_FORMAT,
            "hsrpose_format_version": str(ONNX_FORMAT_VERSION),
            "hsrpose_version": self.hsrpose_version,
            "preset": self.preset,
            "input_hw": json.dumps(list(self.input_hw)),
            "heatmap_hw": json.dumps(list(self.heatmap_hw)),
            "keypoint_info": json.dumps(self.keypoint_info.to_dict()),
            "preprocessing": json.dumps(self.preprocessing.to_dict()),
            "opset": str(self.opset),
            "dynamic_size": "true" if self.dynamic_size else "false",
            "input_multiple": str(self.input_multiple),
            "input_name": self.input_name,
            "output_name": self.output_name,
            DECODE_KEY: json.dumps(self.decode.to_dict()),
            "precision": self.precision,
            "fp32_nodes": json.dumps(list(self.fp32_nodes)),
            "calibration": json.dumps(self.calibration),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str | os.PathLike[str] = "<onnx>") -> "OnnxPoseMeta":
        """Parse ``metadata_props``; a missing or malformed key raises CheckpointError naming ``source`` and the key."""
        if props.get("hsrpose_format") != ONNX_FORMAT:
            raise CheckpointError(
                f"{source}: not an hsrpose ONNX export (metadata 'hsrpose_format' is "
                f"{props.get('hsrpose_format')!r}, expected {ONNX_FORMAT!r}); export it with 'hsrpose export'"
            )
        def get(key: str) -> str:
            if key not in props:
                raise CheckpointError(f"{source}: ONNX metadata key {key!r} is missing")
            return props[key]

        key = "hsrpose_format_version"
        try:
            version = int(get(key))
            if version > ONNX_FORMAT_VERSION:
                raise CheckpointError(
                    f"{source}: ONNX metadata format version {version} is newer than this hsrpose "
                    f"understands ({ONNX_FORMAT_VERSION}); upgrade hsrpose"
                )
            key = "input_hw"
            input_hw = _hw(json.loads(get(key)))
            key = "heatmap_hw"
            heatmap_hw = _hw(json.loads(get(key)))
            key = "keypoint_info"
            keypoint_info = KeypointInfo.from_dict(json.loads(get(key)))
            key = "preprocessing"
            preprocessing = Preprocessing.from_dict(json.loads(get(key)))
            key = "dynamic_size"
            if get(key) not in ("true", "false"):
                raise ValueError(f"expected 'true' or 'false', got {props[key]!r}")
            key = "opset"
            opset = int(get(key))
            key = DECODE_KEY
            decode, decode_note = DecodeSettings.from_metadata(props, str(source))
            key = "input_multiple"
            input_multiple = int(props.get(key, "1"))
            if input_multiple < 1:
                raise ValueError(f"must be >= 1, got {input_multiple}")
            # Files written before INT8 export existed have none of these three keys: fp32.
            key = "precision"
            precision = props.get(key, "fp32")
            if precision not in ("fp32", "int8"):
                raise ValueError(f"expected 'fp32' or 'int8', got {precision!r}")
            key = "fp32_nodes"
            fp32_nodes = json.loads(props.get(key, "[]"))
            if not (isinstance(fp32_nodes, list) and all(isinstance(n, str) for n in fp32_nodes)):
                raise ValueError(f"expected a list of node names, got {fp32_nodes!r}")
            key = "calibration"
            calibration = json.loads(props.get(key, "null"))
            if calibration is not None and not isinstance(calibration, dict):
                raise ValueError(f"expected an object or null, got {calibration!r}")
            return cls(
                preset=get("preset"),
                input_hw=input_hw,
                heatmap_hw=heatmap_hw,
                keypoint_info=keypoint_info,
                preprocessing=preprocessing,
                hsrpose_version=props.get("hsrpose_version", "unknown"),
                opset=opset,
                dynamic_size=props["dynamic_size"] == "true",
                input_multiple=input_multiple,
                input_name=props.get("input_name", "images"),
                output_name=props.get("output_name", "heatmaps"),
                decode=decode,
                decode_note=decode_note,
                precision=precision,
                fp32_nodes=tuple(fp32_nodes),
                calibration=calibration,
            )
        except (KeyError, ValueError, TypeError) as e:  # a field inside a JSON value; JSONDecodeError is a ValueError
            raise CheckpointError(f"{source}: ONNX metadata key {key!r} is malformed: {e!r}") from None


def _hw(value: Any) -> tuple[int, int]:
    if not (isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise ValueError(f"expected [height, width] of positive integers, got {value!r}")
    return int(value[0]), int(value[1])


class OnnxRuntimeBackend:
    """Heatmaps from an hsrpose ONNX file with onnxruntime.

    ``backend(images)``: images float32 (B,3,H,W), RGB, normalised as
    ``self.preprocessing`` says -> heatmaps float32 (B,K,h,w) in heatmap pixels
    (crop px / 4). Attributes ``input_hw``, ``heatmap_hw``, ``keypoint_info``,
    ``preset``, ``meta`` come from the file's metadata.

    ``providers``: onnxruntime execution providers, default CPU only (explicit, so a
    GPU build of onnxruntime does not silently change the numbers).
    ``intra_op_threads``: threads inside one operator (None: onnxruntime's default,
    one per physical core).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        providers: Sequence[str] | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        from hsrpose.utils.extras import require_extra

        ort = require_extra("onnxruntime", "export", purpose=f"running the ONNX model {path}")
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: ONNX file not found")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads is not None:
            if intra_op_threads < 1:
                raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
            options.intra_op_num_threads = int(intra_op_threads)
        # One graph, executed node after node: a second pool would only compete for the same cores.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.providers = list(providers) if providers is not None else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
            raise CheckpointError(f"{self.path}: onnxruntime cannot load this file: {e}") from None
        self.meta = OnnxPoseMeta.from_props(self.session.get_modelmeta().custom_metadata_map, source=self.path)
        names_in = [i.name for i in self.session.get_inputs()]
        names_out = [o.name for o in self.session.get_outputs()]
        if self.meta.input_name not in names_in or self.meta.output_name not in names_out:
            raise CheckpointError(
                f"{self.path}: graph inputs {names_in} / outputs {names_out} do not contain the "
                f"'{self.meta.input_name}' / '{self.meta.output_name}' named in its metadata"
            )
        # A graph imported with a fixed batch axis (``hsrpose import-onnx``) runs that many crops per call.
        batch = self.session.get_inputs()[names_in.index(self.meta.input_name)].shape[0]
        self.fixed_batch: int | None = int(batch) if isinstance(batch, int) and batch > 0 else None

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.meta.input_hw

    @property
    def heatmap_hw(self) -> tuple[int, int]:
        return self.meta.heatmap_hw

    @property
    def keypoint_info(self) -> KeypointInfo:
        return self.meta.keypoint_info

    @property
    def preset(self) -> str:
        return self.meta.preset

    @property
    def preprocessing(self) -> Preprocessing:
        return self.meta.preprocessing

    @property
    def decode_settings(self) -> DecodeSettings:
        return self.meta.decode

    @property
    def decode_note(self) -> str | None:
        return self.meta.decode_note

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(B,3,H,W) float32 normalised -> (B,K,h,w) float32 heatmaps."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {images.shape}")
        if not self.meta.dynamic_size and tuple(images.shape[2:]) != self.meta.input_hw:
            raise ValueError(
                f"{self.path.name} was exported for input {self.meta.input_hw} (H, W) without --dynamic-size; "
                f"got {tuple(images.shape[2:])}"
            )
        m = self.meta.input_multiple
        if images.shape[2] % m or images.shape[3] % m:
            raise ValueError(
                f"input height and width must be multiples of {m} for this model, got {tuple(images.shape[2:])}"
            )
        if images.shape[0] == 0:
            # Same size rule as the graph: heatmaps are input / stride.
            (ih, iw), (hh, hw) = self.meta.input_hw, self.meta.heatmap_hw
            shape = (0, self.meta.keypoint_info.num_keypoints, images.shape[2] * hh // ih, images.shape[3] * hw // iw)
            return np.zeros(shape, dtype=np.float32)
        from hsrpose.inference.foreign_onnx import run_fixed_batches

        def run(x: np.ndarray) -> np.ndarray:
            (heatmaps,) = self.session.run([self.meta.output_name], {self.meta.input_name: x})
            return heatmaps

        return run_fixed_batches(run, np.ascontiguousarray(images, dtype=np.float32), self.fixed_batch)

    def __repr__(self) -> str:
        return (
            f"OnnxRuntimeBackend({str(self.path)!r}, preset={self.preset!r}, input_hw={self.input_hw}, "
            f"heatmap_hw={self.heatmap_hw}, providers={self.providers})"
        )
