"""Any top-down heatmap ONNX model without hsrpose metadata, and writing that metadata into a copy.

A foreign graph maps ``(N,3,H,W) -> (N,K,H/s,W/s)``; what it expects as input is given by
:class:`ForeignOnnxSpec` (input size, mean, std, value scale, RGB/BGR, keypoint set) instead of
being read from the file. A graph whose batch axis is a fixed number runs that many crops per
call (the last call padded); a dynamic batch axis takes the whole batch.

:func:`import_onnx` writes the same graph with hsrpose's ``metadata_props``
(:class:`~hsrpose.inference.onnx_backend.OnnxPoseMeta`), so that
:class:`~hsrpose.inference.onnx_backend.OnnxRuntimeBackend` runs it with no options. The
input file is only read.

No torch import here (deployment without torch); :func:`as_torch_model` imports it lazily.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hsrpose.decode_settings import DecodeSettings
from hsrpose.data.keypoints import COCO_KEYPOINTS, KeypointInfo
from hsrpose.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from hsrpose.errors import CheckpointError
from hsrpose.inference.onnx_backend import ONNX_FORMAT, OnnxPoseMeta, Preprocessing

__all__ = ["ForeignOnnxSpec", "ForeignOnnxBackend", "has_hsrpose_metadata", "load_keypoint_set", "import_onnx",
           "run_fixed_batches", "as_torch_model", "open_onnx_backend"]  # fmt: skip


def load_keypoint_set(spec: str | KeypointInfo) -> KeypointInfo:
    """``coco17`` or a JSON file holding a COCO category (a dict with ``keypoints``) or a COCO file (its category 1)."""
    if isinstance(spec, KeypointInfo):
        return spec
    if spec.lower() == "coco17":
        return COCO_KEYPOINTS
    path = Path(spec)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"keypoints {spec!r}: neither 'coco17' nor a readable COCO category JSON ({e})") from None
    cats = data.get("categories") if isinstance(data, dict) and "keypoints" not in data else [data]
    cat = next((c for c in cats or [] if isinstance(c, dict) and "keypoints" in c and c.get("id", 1) == 1), None)
    if cat is None:
        raise CheckpointError(f"{path}: field 'keypoints': no category with keypoint names (id 1) in this file")
    try:
        return KeypointInfo.from_coco_category(cat, flip_pairs=cat.get("flip_pairs"), sigmas=cat.get("sigmas"))
    except ValueError as e:
        raise CheckpointError(f"{path}: field 'keypoints': {e}") from None


@dataclass(frozen=True)
class ForeignOnnxSpec:
    """Preprocessing and keypoints of a metadata-free graph: input ``((x * value_scale) - mean) / std`` in ``channel_order``.

    ``input_hw`` None takes the graph's fixed input size (an error if the graph has none).
    The defaults are the common published convention (RGB, ImageNet mean/std on [0, 1]).
    """

    input_hw: tuple[int, int] | None = None
    mean: tuple[float, float, float] = tuple(IMAGENET_MEAN)  # type: ignore[assignment]
    std: tuple[float, float, float] = tuple(IMAGENET_STD)  # type: ignore[assignment]
    value_scale: float = 1.0 / 255.0
    channel_order: str = "RGB"
    keypoints: KeypointInfo = field(default=COCO_KEYPOINTS)

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(
            {"mean": list(self.mean), "std": list(self.std), "channel_order": self.channel_order.upper(),
             "value_scale": self.value_scale}
        )  # fmt: skip


def has_hsrpose_metadata(path: str | os.PathLike[str]) -> bool:
    """True when the ONNX file carries hsrpose's ``hsrpose_format`` metadata (read with onnxruntime, no weights copied)."""
    session = _session(Path(path))
    return session.get_modelmeta().custom_metadata_map.get("hsrpose_format") == ONNX_FORMAT


def _session(path: Path, intra_op_threads: int | None = None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise CheckpointError(f"{path}: running an ONNX model needs onnxruntime (pip install 'hsrpose[export]'): {e}") from None
    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX file not found")
    options = ort.SessionOptions()
    if intra_op_threads is not None:
        options.intra_op_num_threads = int(intra_op_threads)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
        raise CheckpointError(f"{path}: not a readable ONNX model (onnxruntime: {str(e).strip().splitlines()[0][:200]})") from None


def _fixed(dim: Any) -> int | None:
    return int(dim) if isinstance(dim, int) and dim > 0 else None


def run_fixed_batches(run: Any, images: np.ndarray, fixed_batch: int | None) -> np.ndarray:
    """``run(x)`` over ``images`` (B,...) in chunks of ``fixed_batch`` (last chunk zero-padded); all at once when None."""
    if fixed_batch is None or len(images) == fixed_batch:
        return np.asarray(run(images))
    outs = []
    for i in range(0, len(images), fixed_batch):
        chunk = images[i : i + fixed_batch]
        n = len(chunk)
        if n < fixed_batch:
            chunk = np.concatenate([chunk, np.zeros((fixed_batch - n, *chunk.shape[1:]), dtype=chunk.dtype)])
        outs.append(np.asarray(run(chunk))[:n])
    return np.concatenate(outs)


class ForeignOnnxBackend:
    """Heatmap backend (numpy in, numpy out) for a top-down ONNX graph without hsrpose metadata.

    ``backend(images float32 (B,3,H,W), preprocessed as self.preprocessing says) -> (B,K,h,w)``.
    The graph is checked once at construction: one input (N,3,H,W), one 4-d output with K
    channels; ``spec.input_hw`` must equal a fixed graph size; ``heatmap_hw`` is the output's
    size (from the graph, or from running one zero batch when the graph leaves it dynamic).
    """

    def __init__(self, path: str | os.PathLike[str], spec: ForeignOnnxSpec | None = None,
                 intra_op_threads: int | None = None) -> None:  # fmt: skip
        self.path = Path(path)
        self.spec = spec or ForeignOnnxSpec()
        self.session = _session(self.path, intra_op_threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise CheckpointError(f"{self.path}: field 'inputs': expected one (N,3,H,W) input, got "
                                  f"{[(i.name, i.shape) for i in inputs]}")  # fmt: skip
        if not outputs or len(outputs[0].shape) != 4:
            raise CheckpointError(f"{self.path}: field 'outputs': expected a (N,K,h,w) heatmap output, got "
                                  f"{[(o.name, o.shape) for o in outputs]}")  # fmt: skip
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        n, c, h, w = inputs[0].shape
        if _fixed(c) not in (None, 3):
            raise CheckpointError(f"{self.path}: input '{self.input_name}' has {c} channels, expected 3")
        self.fixed_batch = _fixed(n)
        graph_hw = (_fixed(h), _fixed(w))
        want = self.spec.input_hw
        if want is None:
            if None in graph_hw:
                raise CheckpointError(f"{self.path}: field 'input_size': the graph's input '{self.input_name}' has a "
                                      f"dynamic size {inputs[0].shape}; give the input size (e.g. --input-size 256x192)")  # fmt: skip
            want = (int(graph_hw[0]), int(graph_hw[1]))  # type: ignore[arg-type]
        for given, fixed, axis in zip(want, graph_hw, ("height", "width")):
            if fixed is not None and int(given) != fixed:
                raise CheckpointError(
                    f"{self.path}: field 'input_size': {want[0]}x{want[1]} given, but the graph's input "
                    f"'{self.input_name}' has a fixed {axis} of {fixed} (shape {inputs[0].shape})"
                )
        self.input_hw = (int(want[0]), int(want[1]))
        k_out, oh, ow = (_fixed(d) for d in outputs[0].shape[1:])
        if k_out is None or oh is None or ow is None:  # dynamic output dims: measure them once
            probe = np.zeros((self.fixed_batch or 1, 3, *self.input_hw), dtype=np.float32)
            k_out, oh, ow = (int(d) for d in self._run(probe).shape[1:])
        k = self.spec.keypoints.num_keypoints
        if k_out != k:
            raise CheckpointError(
                f"{self.path}: field 'keypoints': the graph outputs {k_out} heatmaps but the keypoint set names {k} "
                f"({', '.join(self.spec.keypoints.names[:3])}, ...); give the model's keypoints as a COCO category JSON"
            )
        self.heatmap_hw = (int(oh), int(ow))
        self.keypoint_info = self.spec.keypoints
        self.preprocessing = self.spec.preprocessing
        self.preset = f"onnx:{self.path.name}"
        # A graph without metadata stores no decode settings: the protocol defaults, with a note.
        self.decode_settings, self.decode_note = DecodeSettings.from_metadata({}, str(self.path))

    def _run(self, x: np.ndarray) -> np.ndarray:
        (out,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return np.asarray(out)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(B,3,H,W) float32 preprocessed crops -> (B,K,h,w) float32 heatmaps."""
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != self.input_hw:
            raise ValueError(f"{self.path.name}: images must be (B, 3, {self.input_hw[0]}, {self.input_hw[1]}), got {images.shape}")
        if len(images) == 0:
            return np.zeros((0, self.keypoint_info.num_keypoints, *self.heatmap_hw), dtype=np.float32)
        return run_fixed_batches(self._run, images, self.fixed_batch)

    def meta(self) -> OnnxPoseMeta:
        """The hsrpose metadata this graph gets from :func:`import_onnx`."""
        from hsrpose import __version__

        return OnnxPoseMeta(
            preset=self.preset, input_hw=self.input_hw, heatmap_hw=self.heatmap_hw, keypoint_info=self.keypoint_info,
            preprocessing=self.preprocessing, hsrpose_version=__version__, opset=_opset(self.path),
            dynamic_size=False, input_multiple=1, input_name=self.input_name, output_name=self.output_name,
            decode=self.decode_settings,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"ForeignOnnxBackend({str(self.path)!r}, input_hw={self.input_hw}, heatmap_hw={self.heatmap_hw}, batch={self.fixed_batch or 'dynamic'})"


def _opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return int(next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0))


def import_onnx(src: str | os.PathLike[str], out: str | os.PathLike[str], spec: ForeignOnnxSpec | None = None) -> OnnxPoseMeta:
    """Write ``out``: the graph of ``src`` with hsrpose metadata from ``spec`` (checked by running it). ``src`` is not modified."""
    import onnx

    from hsrpose.utils.io import atomic_save

    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise CheckpointError(f"{out}: the output must be a new file; the input {src} is never modified")
    backend = ForeignOnnxBackend(src, spec)
    meta = backend.meta()
    try:
        model = onnx.load(str(src))
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError and friends
        raise CheckpointError(f"{src}: onnx cannot read this file ({e})") from None
    props = meta.to_props()
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_save(out, lambda tmp: onnx.save(model, str(tmp)))
    return meta


def as_torch_model(backend: Any) -> Any:
    """A callable torch ``(B,3,H,W) -> (B,K,h,w)`` for :func:`hsrpose.engine.evaluate.evaluate` around a numpy backend.

    The evaluation dataset gives crops normalised the training way (ImageNet RGB on [0, 1]);
    they are mapped back to the exact uint8 BGR pixels (rounding removes the float error) and
    preprocessed as ``backend.preprocessing`` says, the numbers ``PoseEstimator`` feeds it.
    """
    import torch

    from hsrpose.data.transforms import to_input_array

    mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(IMAGENET_STD, np.float32).reshape(1, 3, 1, 1)
    p = getattr(backend, "preprocessing", None)

    def model(x: "torch.Tensor") -> "torch.Tensor":
        arr = x.detach().float().cpu().numpy()
        rgb = np.clip(np.rint((arr * std + mean) * 255.0), 0, 255).astype(np.uint8)
        bgr = np.ascontiguousarray(rgb[:, ::-1].transpose(0, 2, 3, 1))
        inp = to_input_array(bgr) if p is None else to_input_array(bgr, p.mean, p.std, p.value_scale, str(p.channel_order))
        return torch.from_numpy(np.ascontiguousarray(backend(inp))).to(x.device)

    return model


def open_onnx_backend(path: str | os.PathLike[str], spec: ForeignOnnxSpec | None = None) -> Any:
    """The backend of an ONNX file: :class:`OnnxRuntimeBackend` for an hsrpose file, else :class:`ForeignOnnxBackend`.

    Preprocessing options (``spec``) with a file that carries hsrpose metadata are an error:
    the file already says how it wants its input.
    """
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend

    if has_hsrpose_metadata(path):
        if spec is not None:
            raise CheckpointError(f"{path}: carries hsrpose metadata (input size, preprocessing, keypoints); "
                                  "drop the ONNX preprocessing options")  # fmt: skip
        return OnnxRuntimeBackend(path)
    return ForeignOnnxBackend(path, spec)
