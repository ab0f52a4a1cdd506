"""INT8 export (hsrpose.quantize, ``hsrpose export --int8``): calibration on real coco-mini crops, QDQ graph,
fp32 nodes, metadata, a torch-free run through PoseEstimator, and the bad-input messages.

The models are test_export's "meaningful" random models (BN statistics measured on
the crops, heatmap std 0.1): their activations have realistic ranges, so the INT8
heatmaps must follow the fp32 ones closely; a quantisation that used wrong ranges
(no calibration data, a range thrown away) or a wrong scale gives uncorrelated heatmaps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsrpose.cli import main as cli_main
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.errors import CheckpointError, DataError, HsrposeError
from hsrpose.inference.onnx_backend import OnnxPoseMeta, OnnxRuntimeBackend
from hsrpose.models.weights import save_pose_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from hsrpose.quantize import calibration_crops, is_quantized, quantize_onnx  # noqa: E402
from test_export import NO_TORCH_CHILD, TINY, build, export, people  # noqa: E402,F401  (people: fixture)

ANN = Path("annotations") / "person_keypoints_train2017.json"
CALIB_CROPS = 8


@pytest.fixture(scope="module")
def fp32_and_int8(people: list, coco_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """A meaningful tiny model exported to fp32 and quantised with the defaults; the people's crops."""
    tmp = tmp_path_factory.mktemp("int8")
    model, images = build(TINY, people)
    fp32 = export(model, TINY, tmp / "m.onnx")
    int8 = tmp / "m.int8.onnx"
    quantize_onnx(fp32, int8, coco_mini / "train2017", max_crops=CALIB_CROPS, ann_file=coco_mini / ANN)
    return fp32, int8, images


def test_int8_follows_fp32_on_real_crops(fp32_and_int8: tuple[Path, Path, np.ndarray]) -> None:
    fp32, int8, images = fp32_and_int8
    ref, got = OnnxRuntimeBackend(fp32)(images), OnnxRuntimeBackend(int8)(images)
    assert got.shape == ref.shape and got.dtype == np.float32
    # Measured: correlation 0.97, RMS error 0.24 std (a random 20-layer net amplifies int8 rounding more than a
    # trained one does); without calibrated ranges or with a wrong scale the heatmaps are uncorrelated.
    corr = np.corrcoef(got.ravel(), ref.ravel())[0, 1]
    rms = np.sqrt(np.mean((got - ref) ** 2)) / ref.std()
    assert corr > 0.95, corr
    assert rms < 0.3, rms
    assert not np.array_equal(got, ref)  # it is quantised
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size


def test_graph_is_qdq_with_final_conv_in_fp32(fp32_and_int8: tuple[Path, Path, np.ndarray]) -> None:
    _, int8, _ = fp32_and_int8
    proto = onnx.load(str(int8))
    assert is_quantized(proto)
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 10 and "DequantizeLinear" in ops
    final = next(n for n in proto.graph.node if "heatmaps" in n.output)
    assert final.op_type == "Conv"
    # kept in fp32: its weight is a float initializer, not the output of a DequantizeLinear
    inits = {t.name: t for t in proto.graph.initializer}
    assert final.input[1] in inits and inits[final.input[1]].data_type == onnx.TensorProto.FLOAT
    # every other Conv reads dequantised int8 weights, quantised per output channel
    producers = {o: n for n in proto.graph.node for o in n.output}
    others = [n for n in proto.graph.node if n.op_type in ("Conv", "ConvTranspose") and n is not final]
    for node in others:
        dq = producers[node.input[1]]
        assert dq.op_type == "DequantizeLinear", node.name
        assert inits[dq.input[0]].data_type == onnx.TensorProto.INT8
        assert len(inits[dq.input[1]].dims) == 1 and inits[dq.input[1]].dims[0] > 1  # one scale per channel


def test_metadata_kept_and_extended(fp32_and_int8: tuple[Path, Path, np.ndarray]) -> None:
    fp32, int8, _ = fp32_and_int8
    a, b = OnnxRuntimeBackend(fp32).meta, OnnxRuntimeBackend(int8).meta
    assert a.precision == "fp32" and a.fp32_nodes == () and a.calibration is None
    assert b.precision == "int8"
    assert b.fp32_nodes == ("/final_layer/Conv",)
    assert b.calibration == {"method": "minmax", "crops": CALIB_CROPS, "images": b.calibration["images"],
                             "activations": "uint8", "weight_bits": 7}  # fmt: skip
    for field in ("preset", "input_hw", "heatmap_hw", "keypoint_info", "preprocessing", "opset", "input_multiple"):
        assert getattr(a, field) == getattr(b, field), field


def test_metadata_without_precision_is_fp32_and_bad_values_are_named() -> None:
    from hsrpose.inference.onnx_backend import Preprocessing

    props = OnnxPoseMeta(
        preset=TINY, input_hw=(128, 96), heatmap_hw=(32, 24), keypoint_info=COCO_KEYPOINTS,
        preprocessing=Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        hsrpose_version="x", opset=17, dynamic_size=False,
    ).to_props()  # fmt: skip
    old = {k: v for k, v in props.items() if k not in ("precision", "fp32_nodes", "calibration")}
    assert OnnxPoseMeta.from_props(old).precision == "fp32"
    with pytest.raises(CheckpointError, match="'precision' is malformed"):
        OnnxPoseMeta.from_props({**props, "precision": "int4"}, source="m.onnx")
    with pytest.raises(CheckpointError, match="'fp32_nodes' is malformed"):
        OnnxPoseMeta.from_props({**props, "fp32_nodes": '"final"'}, source="m.onnx")


def test_calibration_crops_are_the_pipelines(coco_mini: Path) -> None:
    """Crops = PoseEstimator's own steps (make_crops + normalise_crops) on the ground-truth boxes evaluation uses,
    with the preprocessing the file declares (here a non-default one: BGR, other mean/std)."""
    from hsrpose.data.coco import load_coco
    from hsrpose.data.imageio import read_image_bgr
    from hsrpose.inference.onnx_backend import Preprocessing
    from hsrpose.inference.pipeline import make_crops, normalise_crops

    pre = Preprocessing(mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4), channel_order="BGR")
    got = list(calibration_crops(coco_mini / "train2017", (128, 96), pre, 5, coco_mini / ANN))
    assert sum(len(x) for _, x in got) == 5
    gt = load_coco(coco_mini / ANN, mode="gt").instances
    for path, x in got:
        boxes = np.stack([i.box_xywh for i in gt if Path(i.file_name).name == path.name])
        want = normalise_crops(make_crops(read_image_bgr(path), boxes, (128, 96)).images, pre)
        np.testing.assert_array_equal(x, want[: len(x)])
    # the last image contributes only the crops still needed
    assert len(got[-1][1]) <= len([i for i in gt if Path(i.file_name).name == got[-1][0].name])


def test_keep_fp32_choices(people: list, coco_mini: Path, tmp_path: Path) -> None:
    model, _ = build(TINY, people)
    fp32 = export(model, TINY, tmp_path / "m.onnx")
    # no person annotations: every image is one box
    rep = quantize_onnx(fp32, tmp_path / "a.onnx", coco_mini / "train2017", max_crops=3,
                        keep_fp32=("final-conv", "last-deconv"), method="entropy")  # fmt: skip
    assert rep.fp32_nodes == ("/final_layer/Conv", "/deconv_layers/deconv_layers.3/ConvTranspose")
    assert rep.calib_crops == 3 and rep.calib_images == 3
    proto = onnx.load(str(tmp_path / "a.onnx"))
    kept = [n for n in proto.graph.node if n.name in rep.fp32_nodes]
    assert [n.op_type for n in kept] == ["ConvTranspose", "Conv"]
    with pytest.raises(HsrposeError, match=r"--keep-fp32 'nope': no such node; use final-conv or last-deconv"):
        quantize_onnx(fp32, tmp_path / "b.onnx", coco_mini / "train2017", max_crops=1, keep_fp32=("nope",))


def test_bad_calibration_input_and_already_quantised(
    fp32_and_int8: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    fp32, int8, _ = fp32_and_int8
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"calibration folder .*empty: no images \(\.jpg"):
        quantize_onnx(fp32, tmp_path / "o.onnx", empty)
    with pytest.raises(DataError, match=r"missing: not found or not a folder"):
        quantize_onnx(fp32, tmp_path / "o.onnx", tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.jpg", "b.png"):
        (broken / name).write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"broken: no crop could be made \(.*a\.jpg"):
        quantize_onnx(fp32, tmp_path / "o.onnx", broken)
    with pytest.raises(HsrposeError, match=r"m\.int8\.onnx: already quantised \(precision int8\)"):
        quantize_onnx(int8, tmp_path / "o.onnx", empty)
    assert not (tmp_path / "o.onnx").exists()


def test_cli_export_int8(
    people: list, coco_mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _ = build(TINY, people)
    weights = tmp_path / "m.pth"
    save_pose_model(model, weights, TINY, COCO_KEYPOINTS)
    out = tmp_path / "m.int8.onnx"
    calib = ["--calib", str(coco_mini / "train2017"), "--calib-ann", str(coco_mini / ANN), "--calib-crops", "4"]
    assert cli_main(["export", "--weights", str(weights), "--out", str(out), "--int8", *calib]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["precision"] == "int8" and summary["calibration"] == "minmax"
    assert summary["fp32_nodes"] == ["/final_layer/Conv"] and summary["calib_crops"] == 4
    assert summary["size_mb"] < summary["fp32_size_mb"]
    assert summary["keypoint_diff_px"]["mean_px"] >= 0

    # an fp32 .onnx is accepted as input; --keep-fp32 alone quantises every node
    fp32 = export(model, TINY, tmp_path / "m.onnx")
    out2 = tmp_path / "all.onnx"
    args = ["export", "--weights", str(fp32), "--out", str(out2), "--int8", *calib, "--keep-fp32", "--no-verify"]
    assert cli_main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["fp32_nodes"] == []

    # clear one-line errors, no traceback
    for argv, message in [
        (["--weights", str(out), "--out", str(tmp_path / "x.onnx"), "--int8", *calib], "already quantised"),
        (["--weights", str(weights), "--out", str(tmp_path / "x.onnx"), "--int8"], "--int8 needs --calib DIR"),
        (["--weights", str(weights), "--out", str(tmp_path / "x.onnx"), "--int8", "--calib", str(tmp_path)],
         "no images"),
    ]:  # fmt: skip
        assert cli_main(["export", *argv]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_int8_runs_where_torch_cannot_be_imported(
    people: list, fp32_and_int8: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    """test_export's torch-free child process, on the INT8 file: PoseEstimator(weights='x.onnx') without torch."""
    fp32, int8, images = fp32_and_int8
    dets = [
        {"image_id": int(path.stem), "category_id": 1, "bbox": [float(v) for v in box], "score": 0.9}
        for path, box in people
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    np.save(tmp_path / "inputs.npy", images)
    out = tmp_path / "child.npz"
    image_paths = json.dumps([str(path) for path, _ in people])
    args = [str(int8), str(tmp_path / "inputs.npy"), str(tmp_path / "dets.json"), image_paths, str(out)]
    proc = subprocess.run([sys.executable, "-c", NO_TORCH_CHILD, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok " + TINY)
    np.testing.assert_array_equal(np.load(out)["heatmaps"], OnnxRuntimeBackend(int8)(images))
