"""``hsrpose import-onnx``: a top-down heatmap ONNX graph without hsrpose metadata -> a copy that carries it.

    hsrpose import-onnx pose_resnet_50.onnx --out pose_resnet_50_hsrpose.onnx --channel-order RGB

The graph is run once with the given preprocessing to check it (one (N,3,H,W) input, K heatmap
channels). The copy gets the input size, heatmap size, preprocessing and keypoint set as
``metadata_props``, so ``predict``/``eval``/``PoseEstimator`` need no options for it. The input
file is never modified.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hsrpose.errors import HsrposeError

HELP = "write a copy of a foreign top-down ONNX model with hsrpose's metadata (input size, preprocessing, keypoints)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hsrpose.commands.model_options import add_onnx_options

    parser.add_argument("input", metavar="FILE.onnx", help="the foreign ONNX model (read only)")
    parser.add_argument("--out", required=True, help="the copy to write, ending in .onnx (written atomically)")
    add_onnx_options(parser)


def run(args: argparse.Namespace) -> int:
    from hsrpose.commands.model_options import onnx_spec_from_args
    from hsrpose.inference.foreign_onnx import has_hsrpose_metadata, import_onnx
    from hsrpose.utils.extras import require_extra
    from hsrpose.utils.paths import check_output_file

    src, out = Path(args.input), Path(args.out)
    if not src.is_file():
        raise HsrposeError(f"{src}: no such file")
    if out.suffix.lower() != ".onnx":
        raise HsrposeError(f"--out {out}: expected a file name ending in .onnx")
    require_extra("onnx", "export", purpose="hsrpose import-onnx")
    require_extra("onnxruntime", "export", purpose="hsrpose import-onnx")
    check_output_file(out)
    if has_hsrpose_metadata(src):
        raise HsrposeError(f"{src}: already carries hsrpose metadata; use it as it is")
    meta = import_onnx(src, out, onnx_spec_from_args(args, always=True))
    summary = {
        "out": str(out), "input_hw": list(meta.input_hw), "heatmap_hw": list(meta.heatmap_hw),
        "keypoints": meta.keypoint_info.num_keypoints, "preprocessing": meta.preprocessing.to_dict(),
        "input": meta.input_name, "output": meta.output_name,
    }  # fmt: skip
    print(json.dumps(summary))
    return 0
