"""INT8 static quantisation of an hsrpose ONNX export (onnxruntime, QDQ, per-channel weights).

``quantize_onnx(src, out, calib_dir, ...)`` reads an fp32 hsrpose ``.onnx`` file
(:func:`hsrpose.export.export_onnx`), calibrates the activation ranges on real
person crops, and writes a QDQ model whose ``metadata_props`` are the source's
plus ``precision=int8``, the nodes kept in fp32 and the calibration used
(:class:`hsrpose.inference.onnx_backend.OnnxPoseMeta`). The file runs through
``PoseEstimator(weights="x.onnx", backend="onnxruntime")`` like the fp32 one.

Calibration crops go through the inference pipeline's own steps:
``make_crops`` (box -> aspect-extended, 1.25x padded affine crop) and
``normalise_crops`` with the preprocessing stored in the file's metadata.
Person boxes come from a COCO keypoint annotation file (``ann_file``, ground-truth
boxes as evaluation uses them) or, for a plain folder of person photos, the
whole image is the box.

Steps: ``quant_pre_process`` (onnxruntime's graph optimisation, which folds the
head's BatchNorms into the deconvs, and shape inference) -> ``quantize_static``
(QDQ, weights int8 (7-bit range) per output channel, activations uint8 per tensor) -> metadata.

onnxruntime's quantisation tools need ``onnx`` and ``onnxruntime``; no torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from hsrpose.errors import DataError, HsrposeError
from hsrpose.inference.onnx_backend import OnnxPoseMeta, Preprocessing
from hsrpose.utils.io import atomic_write_bytes

__all__ = [
    "CALIB_METHODS",
    "DEFAULT_CALIB_METHOD",
    "DEFAULT_KEEP_FP32",
    "DEFAULT_CALIB_CROPS",
    "KEEP_ALIASES",
    "QuantizeReport",
    "calibration_crops",
    "is_quantized",
    "resolve_nodes",
    "quantize_onnx",
    "keypoint_agreement",
    "describe_int8",
    "add_int8_arguments",
    "run_int8_export",
]

CALIB_METHODS = ("entropy", "minmax")
# Chosen on measurement (benchmarks/int8.py, README "Deploy on CPU"): see the closing note of issue 20.
DEFAULT_CALIB_METHOD = "minmax"
# Node aliases: the network's last layers, found in the graph by position, not by name.
KEEP_ALIASES = ("final-conv", "last-deconv")
DEFAULT_KEEP_FP32: tuple[str, ...] = ("final-conv",)
DEFAULT_CALIB_CROPS = 64
# Crops whose intermediate outputs are held at once during calibration (~1 GB for a 256x192 model).
# onnxruntime's "CalibStridedMinMax" (used for both methods) reduces each stride before the next; its
# "CalibMaxIntermediateOutputs" would not do: in onnxruntime 1.32 MinMax drops those outputs unmerged.
_CALIB_STRIDE = 8
# Ops whose presence marks a graph as already quantised.
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul"}


@dataclass(frozen=True)
class QuantizeReport:
    """What :func:`quantize_onnx` did: the written metadata and the calibration actually used."""

    meta: OnnxPoseMeta
    method: str
    fp32_nodes: tuple[str, ...]
    calib_crops: int
    calib_images: int
    skipped_images: tuple[str, ...]


# ----------------------------------------------------------------------------- calibration data


def _image_files(folder: Path) -> list[Path]:
    from hsrpose.commands.predict import IMAGE_EXTS

    if not folder.is_dir():
        raise DataError(f"calibration folder {folder}: not found or not a folder")
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    except OSError as e:
        raise DataError(f"calibration folder {folder}: cannot be listed: {e.strerror or e}") from None
    if not files:
        raise DataError(f"calibration folder {folder}: no images ({', '.join(IMAGE_EXTS)}) in it")
    return files


def _boxes_by_file(ann_file: Path) -> dict[str, list[np.ndarray]]:
    from hsrpose.data.coco import load_coco

    res = load_coco(ann_file, mode="gt")
    boxes: dict[str, list[np.ndarray]] = {}
    for inst in res.instances:
        boxes.setdefault(Path(inst.file_name).name, []).append(np.asarray(inst.box_xywh, dtype=np.float64))
    return boxes


def calibration_crops(
    calib_dir: str | os.PathLike[str],
    input_hw: tuple[int, int],
    preprocessing: Preprocessing | None = None,
    max_crops: int = DEFAULT_CALIB_CROPS,
    ann_file: str | os.PathLike[str] | None = None,
    skipped: list[str] | None = None,
) -> Iterator[tuple[Path, np.ndarray]]:
    """Yield ``(image path, normalised crops (n,3,H,W) float32)`` per image, ``max_crops`` in all.

    Boxes: the ground-truth person boxes of ``ann_file`` (images without one are
    skipped), else the whole image. Crops: the pipeline's ``make_crops`` and
    ``normalise_crops`` with ``input_hw`` and ``preprocessing`` (an export's metadata;
    None: the training normalisation). An unreadable
    image is skipped and its path and reason appended to ``skipped``.
    """
    from hsrpose.data.imageio import ImageReadError, read_image_bgr
    from hsrpose.inference.pipeline import make_crops, normalise_crops

    folder = Path(calib_dir)
    files = _image_files(folder)
    boxes = _boxes_by_file(Path(ann_file)) if ann_file is not None else None
    left = int(max_crops)
    for path in files:
        if left <= 0:
            return
        if boxes is not None and path.name not in boxes:
            continue
        try:
            image = read_image_bgr(path)
        except ImageReadError as e:
            if skipped is not None:
                skipped.append(f"{path}: {e}")
            continue
        h, w = image.shape[:2]
        b = np.stack(boxes[path.name]) if boxes is not None else np.array([[0.0, 0.0, w, h]])
        crops = make_crops(image, b[:left], input_hw)
        left -= len(crops.images)
        yield path, normalise_crops(crops.images, preprocessing)


class _CropReader:
    """onnxruntime ``CalibrationDataReader`` over crops held in memory, one crop (batch 1) per ``get_next()``.

    ``__len__``/``set_range`` let ``quantize_static`` calibrate in strides
    (``CalibStridedMinMax``): the intermediate outputs of one stride are reduced to
    ranges / histograms before the next runs, which bounds memory for 256x192 models.
    """

    def __init__(self, input_name: str, crops: list[np.ndarray]) -> None:
        self.input_name = input_name
        self.crops = crops
        self.start, self.stop = 0, len(crops)

    def __len__(self) -> int:
        return len(self.crops)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.stop = start_index, min(end_index, len(self.crops))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.start >= self.stop:
            return None
        self.start += 1
        return {self.input_name: self.crops[self.start - 1][None]}


# ----------------------------------------------------------------------------- graph helpers


def is_quantized(model: "object") -> bool:
    """True if an ``onnx.ModelProto`` already holds quantisation ops or says ``precision=int8``."""
    props = {p.key: p.value for p in model.metadata_props}  # type: ignore[attr-defined]
    if props.get("precision", "fp32") != "fp32":
        return True
    return any(n.op_type in _QUANT_OPS for n in model.graph.node)  # type: ignore[attr-defined]


def resolve_nodes(model: "object", names: Sequence[str]) -> tuple[str, ...]:
    """Node names for ``names``: graph node names, or the aliases ``final-conv`` / ``last-deconv``.

    ``final-conv``: the Conv node that writes the graph output; ``last-deconv``: the
    last ConvTranspose in graph (topological) order. An unknown name is an error
    that lists the aliases and the last convolutions' names.
    """
    nodes = list(model.graph.node)  # type: ignore[attr-defined]
    outputs = {o.name for o in model.graph.output}  # type: ignore[attr-defined]
    by_name = {n.name for n in nodes}
    out: list[str] = []
    for name in names:
        if name == "final-conv":
            hits = [n.name for n in nodes if n.op_type == "Conv" and set(n.output) & outputs]
        elif name == "last-deconv":
            hits = [n.name for n in nodes if n.op_type == "ConvTranspose"][-1:]
        elif name in by_name:
            hits = [name]
        else:
            convs = [n.name for n in nodes if n.op_type in ("Conv", "ConvTranspose")][-4:]
            raise HsrposeError(
                f"--keep-fp32 {name!r}: no such node; use {' or '.join(KEEP_ALIASES)} or a node name, "
                f"e.g. {', '.join(convs)}"
            )
        if not hits:
            raise HsrposeError(f"--keep-fp32 {name!r}: the graph has no such layer")
        out.extend(h for h in hits if h not in out)
    return tuple(out)


# ----------------------------------------------------------------------------- quantisation


def quantize_onnx(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    calib_dir: str | os.PathLike[str],
    *,
    method: str = DEFAULT_CALIB_METHOD,
    keep_fp32: Sequence[str] = DEFAULT_KEEP_FP32,
    max_crops: int = DEFAULT_CALIB_CROPS,
    ann_file: str | os.PathLike[str] | None = None,
    activations: str = "uint8",
    reduce_range: bool = True,
) -> QuantizeReport:
    """Quantise the fp32 hsrpose export ``src`` to ``out`` (written atomically); see the module docstring.

    ``activations``: ``uint8`` (default: onnxruntime's fast x86 kernels without VNNI, i.e. AVX2;
    int8 activations measured slower than fp32 there, benchmarks/int8.py) or ``int8``.
    ``reduce_range``: 7-bit weights. AVX2's uint8 x int8 multiply-add saturates 16-bit
    sums of two products; 7-bit weights keep them in range (onnxruntime's advice for
    per-channel models on machines without VNNI; measured in benchmarks/int8.py).

    Raises HsrposeError for an input that is already quantised, an unknown method or
    node, and DataError for a calibration folder that is missing, empty or has no
    readable image.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, out = Path(src), Path(out)
    if method not in CALIB_METHODS:
        raise HsrposeError(f"calibration method {method!r}: choose one of {', '.join(CALIB_METHODS)}")
    if max_crops < 1:
        raise HsrposeError(f"calibration crops must be >= 1, got {max_crops}")
    if activations not in ("uint8", "int8"):
        raise HsrposeError(f"activations {activations!r}: choose uint8 or int8")
    model = onnx.load(str(src))
    meta = OnnxPoseMeta.from_props({p.key: p.value for p in model.metadata_props}, source=src)
    if is_quantized(model):
        raise HsrposeError(f"{src}: already quantised (precision {meta.precision}); quantise the fp32 export instead")
    skipped: list[str] = []
    crops: list[np.ndarray] = []
    images = 0
    for _, x in calibration_crops(calib_dir, meta.input_hw, meta.preprocessing, max_crops, ann_file, skipped):
        crops.extend(x)
        images += 1
    if not crops:
        reasons = "; ".join(skipped[:3]) or "no image has a person box in the annotations"
        raise DataError(f"calibration folder {calib_dir}: no crop could be made ({reasons})")
    reader = _CropReader(meta.input_name, crops)
    # quantize_static needs the crop count to be a multiple of the stride.
    stride = max(d for d in range(1, _CALIB_STRIDE + 1) if len(crops) % d == 0)

    with tempfile.TemporaryDirectory(prefix="hsrpose-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Graph optimisation first: BatchNorm after a ConvTranspose is folded into it, so the
        # quantiser sees Conv/ConvTranspose + Relu chains it can fuse.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        pre_model = onnx.load(str(pre))
        fp32_nodes = resolve_nodes(pre_model, keep_fp32)
        q = Path(tmp) / "int8.onnx"
        # The entropy calibrator prints progress on stdout, where the CLI writes its JSON summary.
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(
                str(pre),
                str(q),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(fp32_nodes),
                calibrate_method=CalibrationMethod.Entropy if method == "entropy" else CalibrationMethod.MinMax,
                extra_options={"CalibStridedMinMax": stride},
            )
        qmodel = onnx.load(str(q))
    calibration = {
        "method": method, "crops": len(crops), "images": images, "activations": activations,
        "weight_bits": 7 if reduce_range else 8,
    }  # fmt: skip
    new_meta = replace(meta, precision="int8", fp32_nodes=fp32_nodes, calibration=calibration)
    del qmodel.metadata_props[:]
    for key, value in new_meta.to_props().items():
        entry = qmodel.metadata_props.add()
        entry.key, entry.value = key, value
    qmodel.doc_string = model.doc_string + f" [INT8 QDQ, {method} calibration on {len(crops)} crops]"
    atomic_write_bytes(out, qmodel.SerializeToString())
    return QuantizeReport(new_meta, method, fp32_nodes, len(crops), images, tuple(skipped))


def describe_int8(report: QuantizeReport) -> dict[str, object]:
    """JSON-able summary (printed by ``hsrpose export --int8``)."""
    return {
        "precision": "int8",
        "calibration": report.method,
        "calib_crops": report.calib_crops,
        "calib_images": report.calib_images,
        "skipped_images": len(report.skipped_images),
        "fp32_nodes": list(report.fp32_nodes),
    }



def keypoint_agreement(fp32_path: str | os.PathLike[str], int8_path: str | os.PathLike[str], images: np.ndarray) -> dict[str, float]:
    """Decoded-keypoint difference between two exports on ``images`` (B,3,H,W) normalised.

    Both heatmap sets are decoded with the pipeline's codec (argmax + quarter-pixel
    shift) to crop pixels; returns ``mean_px``/``max_px`` of the Euclidean distance
    over all B x K keypoints and ``heatmap_max_abs`` (heatmap units).
    """
    from hsrpose.codec import HeatmapCodec
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend

    ref, got = OnnxRuntimeBackend(fp32_path), OnnxRuntimeBackend(int8_path)
    codec = HeatmapCodec(ref.input_hw, ref.heatmap_hw)
    h_ref, h_got = ref(images), got(images)
    dist = np.linalg.norm(codec.decode(h_ref)[0] - codec.decode(h_got)[0], axis=-1)
    return {
        "mean_px": float(dist.mean()),
        "max_px": float(dist.max()),
        "heatmap_max_abs": float(np.abs(h_ref - h_got).max()),
    }


# ----------------------------------------------------------------------------- CLI (hsrpose export --int8)


def add_int8_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--int8`` options of ``hsrpose export``."""
    g = parser.add_argument_group("INT8 (onnxruntime static quantisation, QDQ, per-channel weights)")
    g.add_argument("--int8", action="store_true",
                   help="write an INT8 model; --weights may then also be an fp32 hsrpose .onnx export")
    g.add_argument("--calib", type=Path, metavar="DIR",
                   help="calibration images (needed with --int8), e.g. coco-mini/train2017; "
                        "without --calib-ann each image is one person box")
    g.add_argument("--calib-ann", type=Path, metavar="FILE",
                   help="COCO keypoint annotations of the --calib images: crops of their ground-truth person boxes")
    g.add_argument("--calib-method", choices=CALIB_METHODS, default=DEFAULT_CALIB_METHOD,
                   help=f"activation range calibration (default {DEFAULT_CALIB_METHOD}, chosen on measurement)")
    g.add_argument("--calib-crops", type=int, default=DEFAULT_CALIB_CROPS,
                   help=f"number of calibration crops (default {DEFAULT_CALIB_CROPS})")
    g.add_argument("--keep-fp32", nargs="*", metavar="NODE", default=None,
                   help=f"nodes left in fp32: node names or {', '.join(KEEP_ALIASES)} "
                        f"(default {' '.join(DEFAULT_KEEP_FP32)}; give the flag alone to quantise every node)")  # fmt: skip


def run_int8_export(args: argparse.Namespace, fp32: Path) -> int:
    """``hsrpose export --int8``: the fp32 hsrpose ``.onnx`` ``fp32`` -> INT8 ``args.out``; prints a JSON summary.

    ``hsrpose export`` has checked the paths and the packages, and exported the weights to
    ``fp32`` (or was given an fp32 ``.onnx``).
    """
    out = Path(args.out)
    keep = DEFAULT_KEEP_FP32 if args.keep_fp32 is None else tuple(args.keep_fp32)
    report = quantize_onnx(
        fp32, out, args.calib, method=args.calib_method, keep_fp32=keep, max_crops=args.calib_crops,
        ann_file=args.calib_ann,
    )  # fmt: skip
    summary: dict[str, object] = {"out": str(out), "size_mb": round(out.stat().st_size / 2**20, 2)}
    summary["fp32_size_mb"] = round(fp32.stat().st_size / 2**20, 2)
    summary.update(describe_int8(report))
    if not args.no_verify:
        # On calibration crops: a check that quantisation kept the keypoints, not a held-out accuracy.
        x = np.concatenate([c for _, c in calibration_crops(args.calib, report.meta.input_hw, report.meta.preprocessing, 8, args.calib_ann)])
        agree = keypoint_agreement(fp32, out, x)
        summary["keypoint_diff_px"] = {k: round(v, 3) for k, v in agree.items()}
    for line in report.skipped_images:
        print(f"skipped calibration image {line}", file=sys.stderr)
    print(json.dumps(summary))
    return 0
