"""ONNX export and the onnxruntime backend: parity with PyTorch on real coco-mini crops, metadata, CLI, no-torch run.

The models have random weights, made numerically meaningful: BN affine parameters
random, running statistics measured on the crops themselves (then perturbed, so
they are neither 0/1 nor exact batch statistics), and the final 1x1 conv scaled
so that the heatmaps have a standard deviation of 0.1 (the range of a trained
model's heatmaps, whose peaks are below 1). An export bug (wrong padding,
dilation, BN folding, a dropped SE branch) changes such heatmaps by O(0.1); fp32
rounding in a 59-layer net changes them by ~1e-5.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from hsrpose.cli import main as cli_main
from hsrpose.codec import HeatmapCodec
from hsrpose.data.geometry import box_to_center_size, crop_affine, warp_crop
from hsrpose.data.imageio import read_image_bgr
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_input_array
from hsrpose.errors import CheckpointError
from hsrpose.export import DEFAULT_OPSET, export_onnx
from hsrpose.inference.onnx_backend import OnnxRuntimeBackend
from hsrpose.models import create_model, get_preset
from hsrpose.models.weights import save_pose_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ANN = Path("annotations") / "person_keypoints_train2017.json"
NUM_CROPS = 3
TINY = "hsrnet_tiny_128x96"
TINY_MS = "hsr_msnet_tiny_128x96"
# One real paper preset per backbone family, at its real size.
PAPER_PRESETS = ["simplebaseline_res50_256x192", "hsrnet59_256x192", "hsr_msnet59_256x192"]


# ----------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def people(coco_mini: Path) -> list[tuple[Path, np.ndarray]]:
    """(image path, box xywh) of the NUM_CROPS largest well-annotated people, one per image."""
    ann = json.loads((coco_mini / ANN).read_text())
    files = {im["id"]: im["file_name"] for im in ann["images"]}
    candidates = sorted(
        (a for a in ann["annotations"] if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) >= 10),
        key=lambda a: -float(a["area"]),
    )
    out: list[tuple[Path, np.ndarray]] = []
    seen: set[int] = set()
    for a in candidates:
        if a["image_id"] not in seen:
            seen.add(a["image_id"])
            out.append((coco_mini / "train2017" / files[a["image_id"]], np.asarray(a["bbox"], dtype=np.float64)))
        if len(out) == NUM_CROPS:
            break
    assert len(out) == NUM_CROPS, "coco-mini has too few annotated people"
    return out


def crops_for(people: list[tuple[Path, np.ndarray]], input_hw: tuple[int, int]) -> np.ndarray:
    """Normalised network input (N,3,H,W) float32 of the people's crops (geometry as the pipeline's)."""
    h, w = input_hw
    crops = []
    for path, box in people:
        center, size_wh = box_to_center_size(box, aspect_wh=w / h, padding=1.25)
        crops.append(warp_crop(read_image_bgr(path), crop_affine(center, size_wh, 0.0, input_hw), input_hw))
    return to_input_array(np.stack(crops))


# ----------------------------------------------------------------------------- models


def make_meaningful(model: nn.Module, images: np.ndarray, seed: int = 0) -> nn.Module:
    """Random BN parameters and statistics (measured on ``images``, then perturbed); heatmap std 0.1. Eval mode."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    x = torch.from_numpy(images)
    with torch.no_grad():
        for bn in bns:
            # gamma < 1 keeps the random residual net from amplifying rounding errors layer after layer.
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=g) * 0.5 + 0.25)
            bn.bias.copy_(torch.rand(bn.bias.shape, generator=g) * 0.4 - 0.2)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: after one batch, running stats = that batch's statistics
        model.train()
        model(x)
        model.eval()
        for bn in bns:
            bn.momentum = 0.1
            var = bn.running_var
            var.add_(0.1 * var.mean())  # no near-zero variance (a dead channel) blowing up its scale
            bn.running_mean.add_(0.1 * torch.randn(var.shape, generator=g) * var.sqrt())
            var.mul_(torch.rand(var.shape, generator=g) * 0.4 + 0.8)
        final: nn.Conv2d = model.final_layer  # type: ignore[assignment]
        nn.init.normal_(final.weight, std=final.in_channels**-0.5, generator=g)
        nn.init.normal_(final.bias, std=0.1, generator=g)
        scale = 0.1 / float(model(x).std())
        final.weight.mul_(scale)
        final.bias.mul_(scale)
    return model.eval()


def build(preset: str, people: list[tuple[Path, np.ndarray]], seed: int = 0) -> tuple[nn.Module, np.ndarray]:
    torch.manual_seed(seed)
    images = crops_for(people, get_preset(preset).input_hw)
    return make_meaningful(create_model(preset), images, seed), images


def torch_heatmaps(model: nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(images)).numpy()


def export(model: nn.Module, preset: str, out: Path, **kwargs: object) -> Path:
    p = get_preset(preset)
    export_onnx(
        model, out, preset=preset, input_hw=p.input_hw, heatmap_hw=p.heatmap_hw, keypoint_info=COCO_KEYPOINTS,
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    return out


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("preset", PAPER_PRESETS)
def test_parity_paper_presets(preset: str, people: list, tmp_path: Path) -> None:
    torch.set_num_threads(2)
    model, images = build(preset, people)
    ref = torch_heatmaps(model, images)
    assert ref.std() == pytest.approx(0.1, rel=1e-3)  # heatmaps with real structure, not ~0

    path = export(model, preset, tmp_path / f"{preset}.onnx")
    backend = OnnxRuntimeBackend(path, intra_op_threads=2)
    got = backend(images)  # batch 3, though the graph was traced with batch 2: the batch axis is dynamic
    assert got.dtype == np.float32 and got.shape == ref.shape == (NUM_CROPS, 17, *get_preset(preset).heatmap_hw)
    assert np.abs(got - ref).max() < 1e-4

    codec = HeatmapCodec(backend.input_hw, backend.heatmap_hw)
    (c_ref, s_ref), (c_got, s_got) = codec.decode(ref), codec.decode(got)
    np.testing.assert_array_equal(c_got, c_ref)
    np.testing.assert_allclose(s_got, s_ref, atol=1e-4, rtol=0)
    # one crop alone gives the same heatmaps as inside the batch
    np.testing.assert_allclose(backend(images[1:2])[0], got[1], atol=1e-5, rtol=0)

    # metadata read back
    p = get_preset(preset)
    assert (backend.preset, backend.input_hw, backend.heatmap_hw) == (preset, p.input_hw, p.heatmap_hw)
    assert backend.keypoint_info == COCO_KEYPOINTS
    assert backend.preprocessing.mean == pytest.approx(IMAGENET_MEAN)
    assert backend.preprocessing.std == pytest.approx(IMAGENET_STD)
    assert (backend.preprocessing.channel_order, backend.preprocessing.value_scale) == ("RGB", pytest.approx(1 / 255))
    assert backend.meta.opset == DEFAULT_OPSET and not backend.meta.dynamic_size
    assert backend.meta.input_multiple == model.input_multiple  # type: ignore[attr-defined]


def test_dynamic_size_and_size_checks(people: list, tmp_path: Path) -> None:
    model, images = build(TINY, people)
    fixed = OnnxRuntimeBackend(export(model, TINY, tmp_path / "fixed.onnx"))
    dynamic = OnnxRuntimeBackend(export(model, TINY, tmp_path / "dyn.onnx", dynamic_size=True, opset=13))
    assert dynamic.meta.dynamic_size and dynamic.meta.opset == 13
    big = crops_for(people, (160, 128))  # another multiple of the stride (16)
    ref = torch_heatmaps(model, big)
    got = dynamic(big)
    assert got.shape == (NUM_CROPS, 17, 40, 32)
    assert np.abs(got - ref).max() < 1e-4
    # the declared size still gives the trained-size result
    assert np.abs(dynamic(images) - torch_heatmaps(model, images)).max() < 1e-4
    with pytest.raises(ValueError, match="without --dynamic-size"):
        fixed(big)
    with pytest.raises(ValueError, match="multiples of 16"):
        dynamic(crops_for(people, (136, 96)))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        fixed(images[:, :2])
    assert fixed(images[:0]).shape == (0, 17, 32, 24)


# ----------------------------------------------------------------------------- pipeline and CLI


def test_pose_estimator_onnxruntime_equals_torch(people: list, tmp_path: Path) -> None:
    """Whole pipeline (flip test, decode, inverse affine, rescoring, NMS): same keypoints from both backends."""
    from hsrpose.inference.pipeline import PoseEstimator

    model, _ = build(TINY_MS, people)
    weights = tmp_path / "tiny.safetensors"
    save_pose_model(model, weights, TINY_MS, COCO_KEYPOINTS)
    onnx_path = export(model, TINY_MS, tmp_path / "tiny.onnx")
    path, box = people[0]
    results = {}
    for backend, w in (("torch", weights), ("onnxruntime", onnx_path)):
        est = PoseEstimator(w, detector=None, backend=backend)
        results[backend] = est(path, boxes=box[None])
    (a,), (b,) = results["torch"], results["onnxruntime"]
    np.testing.assert_array_equal(b.keypoints, a.keypoints)
    np.testing.assert_allclose(b.keypoint_scores, a.keypoint_scores, atol=1e-4, rtol=0)


def test_cli_export(people: list, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, images = build(TINY, people)
    weights = tmp_path / "w.pth"
    save_pose_model(model, weights, TINY, COCO_KEYPOINTS)
    out = tmp_path / "sub" / "m.onnx"
    argv = ["--weights", str(weights), "--format", "onnx", "--out", str(out), "--opset", "18", "--dynamic-size"]
    rc = cli_main(["export", *argv])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["opset"] == 18 and summary["dynamic_axes"] == ["batch", "height", "width"]
    assert summary["parity_max_abs_diff"] < 1e-4

    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [18]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["preset"] == TINY
    assert json.loads(props["input_hw"]) == [128, 96] and json.loads(props["heatmap_hw"]) == [32, 24]
    assert json.loads(props["keypoint_info"]) == COCO_KEYPOINTS.to_dict()
    pre = json.loads(props["preprocessing"])
    assert pre["channel_order"] == "RGB" and pre["mean"] == pytest.approx(IMAGENET_MEAN)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"] and dims[1].dim_value == 3
    got = OnnxRuntimeBackend(out)(images)
    assert np.abs(got - torch_heatmaps(model, images)).max() < 1e-4

    assert cli_main(["export", "--weights", str(tmp_path / "missing.pth"), "--out", str(out)]) == 1
    assert "missing.pth" in capsys.readouterr().err
    assert cli_main(["export", "--weights", str(weights), "--out", str(tmp_path / "m.txt")]) == 1
    assert cli_main(["export", "--weights", str(weights), "--out", str(out), "--opset", "21"]) == 1
    assert "opset 21" in capsys.readouterr().err


def test_not_an_hsrpose_onnx_file(people: list, tmp_path: Path) -> None:
    model, _ = build(TINY, people)
    good = export(model, TINY, tmp_path / "good.onnx")
    proto = onnx.load(str(good))

    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(CheckpointError, match=r"plain\.onnx: not an hsrpose ONNX export"):
        OnnxRuntimeBackend(plain)

    proto = onnx.load(str(good))
    for p in proto.metadata_props:
        if p.key == "keypoint_info":
            p.value = "{not json"
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))
    with pytest.raises(CheckpointError, match=r"broken\.onnx: ONNX metadata key 'keypoint_info' is malformed"):
        OnnxRuntimeBackend(broken)

    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(CheckpointError, match="junk.onnx: onnxruntime cannot load"):
        OnnxRuntimeBackend(junk)
    with pytest.raises(CheckpointError, match="not found"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx")


# ----------------------------------------------------------------------------- deployment without torch

# Runs in a fresh interpreter whose import system refuses torch, as on a machine without it.
NO_TORCH_CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ImportError(f"torch is not installed here (blocked import of {name!r})")
            return None

    sys.meta_path.insert(0, NoTorch())
    try:
        import torch  # noqa: F401
        raise SystemExit("the torch blocker does not work")
    except ImportError:
        pass

    import numpy as np
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend
    from hsrpose.inference.pipeline import PoseEstimator

    onnx_path, inputs_path, dets_path, images_json, out_path = sys.argv[1:6]
    backend = OnnxRuntimeBackend(onnx_path, intra_op_threads=1)
    heatmaps = backend(np.load(inputs_path))
    estimator = PoseEstimator(onnx_path, detector="coco:" + dets_path, backend="onnxruntime")
    instances = estimator.predict_batch(json.loads(images_json))
    kpts = np.stack([inst[0].keypoints for inst in instances])
    assert not any(m.split(".")[0] == "torch" for m in sys.modules), "torch was imported"
    np.savez(out_path, heatmaps=heatmaps, keypoints=kpts)
    print("ok", backend.preset, heatmaps.shape)
    """
)


def test_runs_where_torch_cannot_be_imported(people: list, tmp_path: Path) -> None:
    from hsrpose.inference.pipeline import PoseEstimator

    model, images = build(TINY_MS, people, seed=1)
    onnx_path = export(model, TINY_MS, tmp_path / "m.onnx")
    # torch results: heatmaps, and the torch pipeline's keypoints on the same detector boxes
    ref = torch_heatmaps(model, images)
    weights = tmp_path / "m.safetensors"
    save_pose_model(model, weights, TINY_MS, COCO_KEYPOINTS)
    dets = [
        {"image_id": int(path.stem), "category_id": 1, "bbox": [float(v) for v in box], "score": 0.9}
        for path, box in people
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    image_paths = [str(path) for path, _ in people]
    est = PoseEstimator(weights, detector=f"coco:{tmp_path / 'dets.json'}", backend="torch")
    ref_kpts = np.stack([inst[0].keypoints for inst in est.predict_batch(image_paths)])
    np.save(tmp_path / "inputs.npy", images)

    out = tmp_path / "child.npz"
    args = [str(onnx_path), str(tmp_path / "inputs.npy"), str(tmp_path / "dets.json"), json.dumps(image_paths)]
    args.append(str(out))
    proc = subprocess.run([sys.executable, "-c", NO_TORCH_CHILD, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok " + TINY_MS)
    child = np.load(out)
    assert np.abs(child["heatmaps"] - ref).max() < 1e-4
    np.testing.assert_array_equal(child["keypoints"], ref_kpts)
