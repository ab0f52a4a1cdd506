"""Command-line options for models without hsrpose metadata (shared by predict, eval, export, import-onnx).

Not a verb: the verbs call :func:`add_model_options` and :func:`onnx_spec_from_args`.
"""

from __future__ import annotations

import argparse
from typing import Any

from hsrpose.errors import HsrposeError

__all__ = ["add_model_options", "add_onnx_options", "onnx_spec_from_args", "keypoints_from_args", "parse_hw"]

_ONNX_FIELDS = ("input_size", "mean", "std", "value_scale", "channel_order", "keypoints")


def add_onnx_options(parser: argparse.ArgumentParser) -> None:
    """Input size, mean, std, value scale, channel order and keypoint set of a foreign model."""
    g = parser.add_argument_group("models without hsrpose metadata (foreign checkpoints, plain ONNX graphs)")
    g.add_argument("--input-size", default=None, metavar="HxW",
                   help="network input, height x width, e.g. 256x192 (default: the ONNX graph's fixed size / the preset's)")
    g.add_argument("--mean", default=None, metavar="R,G,B",
                   help="per-channel mean subtracted after value scaling, in --channel-order (default ImageNet 0.485,0.456,0.406)")
    g.add_argument("--std", default=None, metavar="R,G,B", help="per-channel std (default ImageNet 0.229,0.224,0.225)")
    g.add_argument("--value-scale", default=None, metavar="S",
                   help="pixel values 0..255 are multiplied by this first: 1/255 (default) or 1 for 0-255 input")
    g.add_argument("--channel-order", default=None, choices=("RGB", "BGR", "rgb", "bgr"), help="channel order the graph expects (default RGB)")
    g.add_argument("--keypoints", default=None, metavar="coco17|CATEGORY.json",
                   help="keypoint set of the model: coco17 (default) or a COCO category JSON (names, skeleton, sigmas, flip_pairs)")  # fmt: skip


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--preset`` for foreign torch checkpoints plus :func:`add_onnx_options`."""
    parser.add_argument("--preset", default=None,
                        help="preset of a SimpleBaseline/mmpose checkpoint (default: inferred from its tensor shapes)")  # fmt: skip
    add_onnx_options(parser)


def parse_hw(text: str, field: str = "--input-size") -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise HsrposeError(f"{field} {text!r}: expected HEIGHTxWIDTH, e.g. 256x192") from None
    if h <= 0 or w <= 0:
        raise HsrposeError(f"{field} {text!r}: sizes must be positive")
    return h, w


def _floats(text: str, field: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise HsrposeError(f"{field} {text!r}: expected three numbers separated by commas") from None
    if len(values) != 3:
        raise HsrposeError(f"{field} {text!r}: expected three numbers (one per channel), got {len(values)}")
    return values  # type: ignore[return-value]


def _scale(text: str) -> float:
    try:
        if "/" in text:
            a, b = text.split("/")
            return float(a) / float(b)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise HsrposeError(f"--value-scale {text!r}: expected a number such as 1/255 or 1") from None


def keypoints_from_args(args: argparse.Namespace) -> Any:
    """The KeypointInfo named by ``--keypoints`` (None when not given)."""
    if getattr(args, "keypoints", None) is None:
        return None
    from hsrpose.inference.foreign_onnx import load_keypoint_set

    return load_keypoint_set(args.keypoints)


def onnx_spec_from_args(args: argparse.Namespace, always: bool = False) -> Any:
    """A :class:`ForeignOnnxSpec` from the options, or None when none was given (and not ``always``)."""
    from hsrpose.inference.foreign_onnx import ForeignOnnxSpec

    if not always and all(getattr(args, f, None) is None for f in _ONNX_FIELDS):
        return None
    d = ForeignOnnxSpec()
    kp = keypoints_from_args(args)
    return ForeignOnnxSpec(
        input_hw=parse_hw(args.input_size) if args.input_size else None,
        mean=_floats(args.mean, "--mean") if args.mean else d.mean,
        std=_floats(args.std, "--std") if args.std else d.std,
        value_scale=_scale(args.value_scale) if args.value_scale else d.value_scale,
        channel_order=args.channel_order.upper() if args.channel_order else d.channel_order,
        keypoints=kp if kp is not None else d.keypoints,
    )
