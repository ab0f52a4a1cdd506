"""``hsrpose export``: hsrpose weights or a training checkpoint -> ONNX file with deployment metadata."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hsrpose.errors import HsrposeError

HELP = "export weights to ONNX (dynamic batch; preprocessing, sizes and keypoint metadata stored in the file)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hsrpose.decode_settings import add_decode_arguments
    from hsrpose.export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    parser.add_argument("--weights", required=True, help="hsrpose weights (.pth / .safetensors), training checkpoint, "
                        "or a SimpleBaseline pose_resnet / mmpose checkpoint")
    parser.add_argument("--preset", default=None, help="preset of a foreign checkpoint (default: inferred from its shapes)")
    parser.add_argument("--input-size", default=None, metavar="HxW", help="input size of a foreign checkpoint (picks "
                        "between presets that differ only in it; default 256x192)")
    parser.add_argument("--keypoints", default=None, metavar="coco17|CATEGORY.json", help="keypoint set of a foreign "
                        "checkpoint (default coco17)")  # fmt: skip
    parser.add_argument(
        "--format", default="onnx", choices=["onnx"], help="output format (no TorchScript: torch.jit is deprecated)"
    )
    parser.add_argument("--out", required=True, help="output file, e.g. model.onnx (written atomically)")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset {MIN_OPSET}..{MAX_OPSET}, default {DEFAULT_OPSET}"
    )
    parser.add_argument(
        "--dynamic-size",
        action="store_true",
        help="also make input height/width dynamic (heatmaps are input/4 for sizes divisible by the backbone stride: "
        "32 for ResNet, 16 for HSRNet/HSR-MSNet); the batch axis is always dynamic",
    )
    add_decode_arguments(parser)
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the check that onnxruntime reproduces the PyTorch heatmaps on a random batch",
    )
    from hsrpose.quantize import add_int8_arguments

    add_int8_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from hsrpose.decode_settings import decode_overrides, resolve_decode
    from hsrpose.export import describe, export_onnx, onnx_parity
    from hsrpose.commands.model_options import keypoints_from_args, parse_hw
    from hsrpose.models.foreign import load_any_pose_model
    from hsrpose.utils.extras import require_extra
    from hsrpose.utils.paths import check_output_file

    weights, out = Path(args.weights), Path(args.out)
    if not weights.is_file():
        raise HsrposeError(f"{weights}: weights file not found")
    if out.suffix.lower() != ".onnx":
        raise HsrposeError(f"--out {out}: expected a file name ending in .onnx")
    # before any work: the packages the export needs, and a place to write
    require_extra("onnx", "export", purpose="hsrpose export")
    if not args.no_verify:
        require_extra("onnxruntime", "export", purpose="the parity check of hsrpose export (skip it with --no-verify)")
    check_output_file(out)
    if args.int8:
        if args.calib is None:
            raise HsrposeError("--int8 needs --calib DIR: a folder of images to calibrate on (e.g. coco-mini/train2017)")
        require_extra("onnxruntime", "export", purpose="hsrpose export --int8")
        if weights.suffix.lower() == ".onnx":  # an fp32 hsrpose export: quantise it as it is
            from hsrpose.quantize import run_int8_export

            return run_int8_export(args, weights)
    hw = parse_hw(args.input_size) if args.input_size else None
    model, info = load_any_pose_model(weights, device="cpu", preset=args.preset, input_hw=hw, keypoint_info=keypoints_from_args(args))
    if info.decode_note:
        print(info.decode_note, file=sys.stderr)
    # The weights' decode settings travel into the ONNX metadata; an explicit option overrides one.
    decode = resolve_decode(info.decode, decode_overrides(args))

    def write_fp32(path: Path) -> Any:
        return export_onnx(
            model, path, preset=info.preset, input_hw=tuple(info.input_hw),  # type: ignore[arg-type]
            heatmap_hw=tuple(info.heatmap_hw), keypoint_info=info.keypoint_info,  # type: ignore[arg-type]
            opset=args.opset, dynamic_size=args.dynamic_size, decode=decode,
        )  # fmt: skip

    if args.int8:  # the fp32 graph (with the weights' metadata) is the quantiser's input
        import tempfile

        from hsrpose.quantize import run_int8_export

        with tempfile.TemporaryDirectory(prefix="hsrpose-export-") as tmp:
            write_fp32(Path(tmp) / "fp32.onnx")
            return run_int8_export(args, Path(tmp) / "fp32.onnx")
    meta = write_fp32(out)
    summary = {"out": str(out), "size_mb": round(out.stat().st_size / 2**20, 2), **describe(meta)}
    if not args.no_verify:
        # Normalised-image statistics are roughly N(0, 1): a random batch exercises every channel.
        images = np.random.default_rng(0).standard_normal((2, 3, *meta.input_hw)).astype(np.float32)
        diff, _, _ = onnx_parity(model, out, images)
        summary["parity_max_abs_diff"] = float(f"{diff:.3g}")
        if not diff < 1e-3:
            raise HsrposeError(
                f"{out} was written, but onnxruntime heatmaps differ from PyTorch by up to {diff:.3g} (> 1e-3)"
            )
    print(json.dumps(summary))
    return 0
