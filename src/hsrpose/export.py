"""ONNX export of pose models, with the metadata a torch-free deployment needs.

``export_onnx(model, out, ...)`` writes one self-contained ``.onnx`` file:

- graph: input ``images`` float32 (B, 3, H, W), normalised RGB; output ``heatmaps``
  float32 (B, K, H/4, W/4). The batch axis is always dynamic. With
  ``dynamic_size=True`` H and W are dynamic too: every layer is a convolution,
  a transposed convolution, BN, ReLU, an elementwise op or a global mean (SE), so
  the graph runs at any size; the heatmaps are exactly input/4 when H and W are
  multiples of the backbone's output stride (``model.input_multiple``: 32 for the
  ResNet rows, 16 for HSRNet / HSR-MSNet), which the metadata stores and the
  onnxruntime backend enforces. The metadata keeps the size the model was built for.
- ``metadata_props`` (see :class:`hsrpose.inference.onnx_backend.OnnxPoseMeta`):
  preset, input and heatmap size, preprocessing (ImageNet mean/std, RGB, x/255,
  NCHW), ``KeypointInfo.to_dict()`` as JSON (names, flip pairs, skeleton, sigmas),
  hsrpose version, opset.

Exporter: torch's TorchScript-based exporter (``dynamo=False``). The
torch.export-based one (the default since torch 2.9) needs the extra package
onnxscript; these models are static convolutional graphs, which tracing
captures exactly, and the traced export is fast enough for the tests. The
legacy exporter is deprecated in recent torch (it still works in 2.13); its
DeprecationWarning is silenced here because the choice is deliberate.

Default opset 17: every op used here exists there unchanged, and onnxruntime
>= 1.13 and most other runtimes support it. The TorchScript exporter accepts
opsets up to 20.

torch and onnx are imported inside the functions: this module is importable (for
its constants) without them.
"""

from __future__ import annotations

import inspect
import io
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from hsrpose.data.keypoints import KeypointInfo
from hsrpose.decode_settings import DecodeSettings
from hsrpose.errors import HsrposeError
from hsrpose.inference.onnx_backend import OnnxPoseMeta, Preprocessing
from hsrpose.utils.io import atomic_write_bytes

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET", "export_onnx", "onnx_parity", "describe"]

DEFAULT_OPSET = 17
# The TorchScript exporter's range in torch 2.13 (7..20); every opset in it exports these models
# (Conv, ConvTranspose, BN folded into Conv, Relu, Add, Mul, ReduceMean, Sigmoid, Split/Slice, Concat, MaxPool).
MIN_OPSET = 7
MAX_OPSET = 20

INPUT_NAME = "images"
OUTPUT_NAME = "heatmaps"


def _preprocessing() -> Preprocessing:
    # The normalisation the training pipeline uses (docs/architecture.md: RGB, x/255, ImageNet mean/std).
    from hsrpose.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    mean = tuple(float(v) for v in np.asarray(IMAGENET_MEAN, dtype=np.float64).reshape(3))
    std = tuple(float(v) for v in np.asarray(IMAGENET_STD, dtype=np.float64).reshape(3))
    return Preprocessing(mean=mean, std=std, channel_order="RGB", value_scale=1.0 / 255.0)  # type: ignore[arg-type]


def export_onnx(
    model: "torch.nn.Module",
    out: str | os.PathLike[str],
    *,
    preset: str,
    input_hw: tuple[int, int],
    heatmap_hw: tuple[int, int],
    keypoint_info: KeypointInfo,
    opset: int = DEFAULT_OPSET,
    dynamic_size: bool = False,
    decode: DecodeSettings | None = None,
) -> OnnxPoseMeta:
    """Export ``model`` ((B,3,H,W) -> (B,K,h,w)) to ``out`` atomically; return the metadata written.

    ``decode`` (the settings the weights store, default the protocol's) goes into the metadata.

    The model is exported in eval mode (BN uses its running statistics) and left in
    the mode it came in. The written graph is validated with ``onnx.checker`` (with
    shape inference) before it replaces ``out``.
    """
    import torch

    from hsrpose.utils.extras import require_extra

    onnx = require_extra("onnx", "export", purpose="ONNX export")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise HsrposeError(f"opset {opset} is not supported: choose {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    input_hw = (int(input_hw[0]), int(input_hw[1]))
    heatmap_hw = (int(heatmap_hw[0]), int(heatmap_hw[1]))
    k = keypoint_info.num_keypoints
    meta = OnnxPoseMeta(
        preset=preset,
        input_hw=input_hw,
        heatmap_hw=heatmap_hw,
        keypoint_info=keypoint_info,
        preprocessing=_preprocessing(),
        hsrpose_version=_version(),
        opset=opset,
        dynamic_size=dynamic_size,
        # PoseNet's output stride: other input sizes must be multiples of it (1: unknown, not checked).
        input_multiple=int(getattr(model, "input_multiple", 1)),
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        decode=decode if decode is not None else DecodeSettings(),
    )

    was_training = model.training
    model.eval()
    # The output shape is checked on the traced call itself (a separate forward would double the cost).
    shapes: list[tuple[int, ...]] = []
    hook = model.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    try:
        device = next(model.parameters()).device
        # Traced with batch 1; the batch axis is declared dynamic (the tests run other batch sizes).
        example = torch.zeros(1, 3, *input_hw, device=device)
        axes_in: dict[int, str] = {0: "batch"}
        axes_out: dict[int, str] = {0: "batch"}
        if dynamic_size:
            axes_in.update({2: "height", 3: "width"})
            axes_out.update({2: "heatmap_height", 3: "heatmap_width"})
        buffer = io.BytesIO()
        # torch < 2.5 has no ``dynamo`` argument (and only the TorchScript exporter); from 2.9 on it defaults to True.
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        with warnings.catch_warnings():
            # The legacy exporter is chosen on purpose (module docstring); its deprecation notice is noise here.
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
            with torch.no_grad():
                torch.onnx.export(
                    model,
                    (example,),
                    buffer,
                    **legacy,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes={INPUT_NAME: axes_in, OUTPUT_NAME: axes_out},
                    do_constant_folding=True,
                    export_params=True,
                )
    finally:
        hook.remove()
        model.train(was_training)
    if not shapes or shapes[0] != (1, k, *heatmap_hw):
        raise HsrposeError(
            f"model output {shapes[0] if shapes else None} does not match the metadata: "
            f"expected (B, {k}, {heatmap_hw[0]}, {heatmap_hw[1]})"
        )

    proto = onnx.load_from_string(buffer.getvalue())
    del proto.metadata_props[:]
    for key, value in meta.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "hsrpose"
    proto.producer_version = meta.hsrpose_version
    proto.doc_string = (
        f"hsrpose {preset}: images float32 (B,3,H,W) RGB, (x/255 - mean)/std -> heatmaps float32 (B,{k},H/4,W/4)"
    )
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as e:
        raise HsrposeError(f"the exported graph for {out} failed onnx.checker: {e}") from None
    atomic_write_bytes(out, proto.SerializeToString())
    return meta


def onnx_parity(
    model: "torch.nn.Module", onnx_path: str | os.PathLike[str], images: np.ndarray, intra_op_threads: int | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Run ``images`` (B,3,H,W) float32 through the torch model (eval) and the ONNX file.

    Returns (max abs difference, torch heatmaps, onnxruntime heatmaps), heatmaps (B,K,h,w) float32.
    """
    import torch

    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            ref = model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)).cpu().numpy()
    finally:
        model.train(was_training)
    got = OnnxRuntimeBackend(onnx_path, intra_op_threads=intra_op_threads)(images)
    return float(np.max(np.abs(ref - got))) if ref.size else 0.0, ref, got


def _version() -> str:
    from hsrpose import __version__

    return str(__version__)


def describe(meta: OnnxPoseMeta) -> dict[str, Any]:
    """Short JSON-able summary of an export (printed by ``hsrpose export``)."""
    return {
        "preset": meta.preset,
        "input_hw": list(meta.input_hw),
        "heatmap_hw": list(meta.heatmap_hw),
        "keypoints": meta.keypoint_info.num_keypoints,
        "opset": meta.opset,
        "dynamic_axes": ["batch", "height", "width"] if meta.dynamic_size else ["batch"],
        "decode": meta.decode.to_dict(),
    }
