"""``hsrpose export``: hsrpose weights or a training checkpoint -> ONNX file with deployment metadata."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hsrpose.errors import HsrposeError

HELP = "export weights to ONNX (dynamic batch; preprocessing, sizes and keypoint metadata stored in the file)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hsrpose.export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET

    parser.add_argument("--weights", required=True, help="hsrpose weights (.pth / .safetensors) or training checkpoint")
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
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the check that onnxruntime reproduces the PyTorch heatmaps on a random batch",
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from hsrpose.export import describe, export_onnx, onnx_parity
    from hsrpose.models.weights import load_pose_model
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
    model, info = load_pose_model(weights, device="cpu")
    meta = export_onnx(
        model,
        out,
        preset=info.preset,
        input_hw=tuple(info.input_hw),  # type: ignore[arg-type]
        heatmap_hw=tuple(info.heatmap_hw),  # type: ignore[arg-type]
        keypoint_info=info.keypoint_info,
        opset=args.opset,
        dynamic_size=args.dynamic_size,
    )
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
