"""A metadata-free ONNX model through ``hsrpose eval`` gives the AP of the same weights as hsrpose weights.

Trains a tiny model briefly on coco-mini (so that the AP is not zero), saves it as hsrpose
weights, and exports it to ONNX the way other projects do: no hsrpose metadata, a fixed
batch of 1, and BGR 0-255 input (the normalisation baked into the graph). Then runs

    hsrpose eval --weights tiny.pth --gt-boxes ...
    hsrpose eval --weights plain.onnx --gt-boxes --channel-order BGR --mean 0,0,0 --std 1,1,1 --value-scale 1 ...
    hsrpose import-onnx plain.onnx --out imported.onnx --channel-order BGR ... ; hsrpose eval --weights imported.onnx ...

on coco-mini with ground-truth boxes and prints the three APs (they must be equal).

    python benchmarks/foreign_onnx_eval.py [--steps 150] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PRESET = "hsrnet_tiny_128x96"
BGR255 = ["--channel-order", "BGR", "--mean", "0,0,0", "--std", "1,1,1", "--value-scale", "1"]


def export_plain_onnx(model: Any, path: Path, input_hw: tuple[int, int], bgr255: bool = True, batch: int | None = 1) -> None:
    """Export ``model`` without hsrpose metadata: input ``input`` (batch,3,H,W), output ``output``.

    ``bgr255``: the graph takes BGR 0-255 and applies hsrpose's training normalisation itself
    (RGB, /255, ImageNet mean/std). ``batch`` None makes the batch axis dynamic.
    """
    import inspect
    import warnings

    import torch

    from hsrpose.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    class Bgr255(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x.flip(1) / 255.0 - self.mean) / self.std)

    net = (Bgr255(model) if bgr255 else model).eval()
    example = torch.zeros((batch or 2, 3, *input_hw))
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    axes = {} if batch else {"dynamic_axes": {"input": {0: "n"}, "output": {0: "n"}}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(path), **legacy, **axes, opset_version=17,
                          input_names=["input"], output_names=["output"])  # fmt: skip


def train_briefly(coco_mini: Path, steps: int, seed: int = 0) -> Any:
    """``PRESET`` trained ``steps`` Adam steps (batch 16, no augmentation) on coco-mini: a model with a non-zero AP."""
    import torch

    from hsrpose.codec import HeatmapCodec
    from hsrpose.data.coco import load_coco
    from hsrpose.data.dataset import TopDownDataset
    from hsrpose.data.loader import build_loader
    from hsrpose.models import create_model, get_preset

    torch.manual_seed(seed)
    p = get_preset(PRESET)
    model = create_model(PRESET)
    coco = load_coco(coco_mini / "annotations" / "person_keypoints_train2017.json", mode="train")
    codec = HeatmapCodec(p.input_hw, p.heatmap_hw)
    data = TopDownDataset(coco.instances, coco_mini / "train2017", p.input_hw, codec, augment=None, keypoint_info=coco.keypoint_info)
    loader = build_loader(data, batch_size=16, shuffle=True, num_workers=0, seed=seed, drop_last=True)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    step = 0
    while step < steps:
        for batch in loader:
            out = model(batch["image"])
            w = batch["target_weight"][:, :, None, None]
            loss = (((out - batch["target"]) * w) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= steps:
                break
    return model.eval()


def eval_ap(argv: list[str]) -> float:
    """``hsrpose eval argv`` in this process; its AP line."""
    from hsrpose.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["eval", *argv])
    if rc != 0:
        raise SystemExit(f"hsrpose eval {' '.join(argv)} failed ({rc})")
    line = next(ln for ln in buf.getvalue().splitlines() if ln.startswith("AP "))
    return float(line.split()[1])


def run(coco_mini: Path, out: Path, steps: int) -> dict[str, float]:
    """The three APs (hsrpose weights, plain ONNX with options, imported ONNX) on coco-mini with GT boxes."""
    from hsrpose.cli import main
    from hsrpose.data.keypoints import COCO_KEYPOINTS
    from hsrpose.models import get_preset
    from hsrpose.models.weights import save_pose_model

    model = train_briefly(coco_mini, steps)
    weights, plain, imported = out / "tiny.pth", out / "plain.onnx", out / "imported.onnx"
    save_pose_model(model, weights, PRESET, COCO_KEYPOINTS)
    export_plain_onnx(model, plain, get_preset(PRESET).input_hw)
    with contextlib.redirect_stdout(io.StringIO()):
        if main(["import-onnx", str(plain), "--out", str(imported), *BGR255]) != 0:
            raise SystemExit("hsrpose import-onnx failed")
    common = ["--gt-boxes", "--ann", str(coco_mini / "annotations" / "person_keypoints_train2017.json"),
              "--images", str(coco_mini / "train2017"), "--device", "cpu", "--workers", "0"]  # fmt: skip
    return {
        "hsrpose weights": eval_ap(["--weights", str(weights), "--out", str(out / "r_pth.json"), *common]),
        "plain ONNX + options": eval_ap(["--weights", str(plain), "--out", str(out / "r_plain.json"), *common, *BGR255]),
        "imported ONNX": eval_ap(["--weights", str(imported), "--out", str(out / "r_imported.json"), *common]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150, help="training steps before evaluating (default 150)")
    ap.add_argument("--out", default=None, help="folder for the files (default: a temporary folder)")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import find_coco_mini

    root = find_coco_mini()
    if root is None:
        raise SystemExit("coco-mini not found: set HSRPOSE_COCO_MINI")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        aps = run(root, out, args.steps)
    for name, value in aps.items():
        print(f"{name}: AP {value:.4f}")
    same = len(set(aps.values())) == 1
    print(f"equal: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
