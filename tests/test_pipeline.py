"""The top-down inference pipeline (PoseEstimator) and ``hsrpose predict``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hsrpose.cli import main as cli_main
from hsrpose.data.keypoints import COCO_KEYPOINTS, KeypointInfo
from hsrpose.errors import CheckpointError, HsrposeError
from hsrpose.inference.pipeline import PoseEstimator, PoseInstance, as_bgr_uint8

REPO = Path(__file__).resolve().parents[1]
TINY = "hsr_msnet_tiny_128x96"
FIVE = KeypointInfo(names=("a", "b", "c", "d", "e"), flip_pairs=((1, 2),), skeleton=((0, 1),), sigmas=(0.05,) * 5)


def _load_benchmark(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class PeakBackend:
    """Stand-in network: keypoint j peaks at a fixed crop pixel ``PEAKS[j]`` in every crop."""

    input_hw = (256, 192)
    heatmap_hw = (64, 48)
    keypoint_info = COCO_KEYPOINTS
    # crop px (x, y), multiples of the stride 4 so that decoding is exact
    PEAKS = np.array([[4 * (2 + 2 * j), 4 * (3 + 3 * j)] for j in range(17)], dtype=np.float64)

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(images))
        hm = np.zeros((len(images), 17, 64, 48), np.float32)
        yy, xx = np.mgrid[0:64, 0:48]
        for j, (x, y) in enumerate(self.PEAKS / 4):
            hm[:, j] = 0.9 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
        return hm


class NoDetector:
    def __call__(self, image_bgr: np.ndarray, image_key: object = None) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from hsrpose.models import create_model
    from hsrpose.models.weights import save_pose_model

    torch.manual_seed(0)
    model = create_model(TINY)
    path = tmp_path_factory.mktemp("w") / "tiny.pth"
    save_pose_model(model, path, TINY, COCO_KEYPOINTS)
    return path


def _expected_image_points(box_xywh: np.ndarray, crop_points: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """Crop px -> image px written out from the protocol (box centre, 3:4 extension, x1.25), not via geometry.py."""
    x, y, w, h = box_xywh
    c = np.array([x + w / 2, y + h / 2])
    aspect = input_hw[1] / input_hw[0]
    w, h = (w, w / aspect) if w > aspect * h else (h * aspect, h)
    scale = w * 1.25 / input_hw[1]  # image px per crop px
    return c + (crop_points - np.array([input_hw[1] / 2, input_hw[0] / 2])) * scale


def test_pose_instance_to_coco() -> None:
    inst = PoseInstance(np.array([1, 2, 3, 4], np.float32), 0.5, np.arange(34, dtype=np.float32).reshape(17, 2), np.full(17, 0.25, np.float32), 0.4)
    entry = inst.to_coco(42)
    assert entry["image_id"] == 42 and entry["category_id"] == 1 and entry["score"] == pytest.approx(0.4)
    assert len(entry["keypoints"]) == 51 and entry["keypoints"][:3] == [0.0, 1.0, 0.25]
    json.dumps(entry)  # plain JSON types


def test_crop_mapping_batching_and_rescoring() -> None:
    backend = PeakBackend()
    est = PoseEstimator(backend, detector=None, flip_test=False, batch_size=2, nms_thr=None)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), rng.integers(0, 255, (500, 250, 3), dtype=np.uint8)]
    boxes = [
        (np.array([[10, 20, 100, 50], [200, 50, 60, 200]], np.float32), np.array([0.8, 0.6], np.float32)),  # wide, tall
        (np.array([[30, 40, 150, 300], [0, 0, 40, 40], [100, 100, 120, 90]], np.float32), np.array([0.9, 0.5, 0.7], np.float32)),
    ]
    out = est.predict_batch(images, boxes=boxes)
    assert backend.batch_sizes == [2, 2, 1]  # the 5 crops of both images share batches of 2
    for (b, s), instances in zip(boxes, out):
        assert len(instances) == len(b)
        assert [i.score for i in instances] == sorted([i.score for i in instances], reverse=True)
        for inst in instances:
            k = int(np.flatnonzero((b == inst.box_xywh).all(axis=1))[0])
            expected = _expected_image_points(b[k].astype(np.float64), PeakBackend.PEAKS, backend.input_hw)
            np.testing.assert_allclose(inst.keypoints, expected, atol=1e-3)
            np.testing.assert_allclose(inst.keypoint_scores, 0.9, rtol=1e-5)
            assert inst.score == pytest.approx(s[k] * 0.9, rel=1e-5)  # box score x mean keypoint score > 0.2
    # OKS-NMS (on by default) merges two boxes that give the same pose.
    same = PoseEstimator(backend, detector=None, flip_test=False)(images[0], boxes=np.array([[10, 20, 100, 50], [10.5, 20, 100, 50]]))
    assert len(same) == 1


def test_torch_backend_batches_images_and_paths(tiny_weights: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    boxes_a = np.array([[10, 10, 100, 200], [150, 30, 120, 180], [5, 5, 50, 50]], np.float32)
    boxes_b = np.array([[20, 20, 100, 150]], np.float32)
    est_small = PoseEstimator(tiny_weights, detector=None, batch_size=3, nms_thr=None, flip_test=False)
    est_big = PoseEstimator(tiny_weights, detector=None, batch_size=64, nms_thr=None, flip_test=False)
    together = est_small.predict_batch([a, b], boxes=[boxes_a, boxes_b])
    alone = [est_big(a, boxes=boxes_a), est_big(b, boxes=boxes_b)]
    for x, y in zip(together, alone):
        assert len(x) == len(y) > 0
        for i, j in zip(x, y):
            np.testing.assert_allclose(i.keypoints, j.keypoints, atol=1e-3)
            np.testing.assert_allclose(i.keypoint_scores, j.keypoint_scores, atol=1e-5)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), a)
    from_path = est_big(path, boxes=boxes_a)
    np.testing.assert_allclose(from_path[0].keypoints, alone[0][0].keypoints, atol=1e-4)
    with pytest.raises(HsrposeError, match="broken.jpg"):
        (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
        est_big(tmp_path / "broken.jpg", boxes=boxes_a)


def test_from_model_and_keypoint_count_mismatch(tiny_weights: Path) -> None:
    from hsrpose.models import create_model

    model = create_model(TINY)
    est = PoseEstimator.from_model(model, COCO_KEYPOINTS, (128, 96), detector=None)
    inst = est(np.zeros((100, 100, 3), np.uint8), boxes=np.array([[10, 10, 50, 80]]))
    assert len(inst) == 1 and inst[0].keypoints.shape == (17, 2)
    # a 17-channel model declared as a 5-keypoint set: clear error at the first call
    wrong = PoseEstimator.from_model(model, FIVE, (128, 96), detector=None)
    with pytest.raises(CheckpointError, match="5-keypoint"):
        wrong(np.zeros((100, 100, 3), np.uint8), boxes=np.array([[10, 10, 50, 80]]))
    # weights of 17 keypoints with a configuration of 5: clear error at construction
    with pytest.raises(CheckpointError, match="17 keypoints but the configuration has 5"):
        PoseEstimator(tiny_weights, detector=None, keypoint_info=FIVE)


def test_no_person_odd_and_huge_images() -> None:
    backend = PeakBackend()
    est = PoseEstimator(backend, detector=NoDetector(), flip_test=False)
    assert est(np.zeros((50, 60, 3), np.uint8)) == []
    assert est.predict_batch([np.zeros((50, 60, 3), np.uint8)] * 2) == [[], []]
    assert backend.batch_sizes == []  # no crop, no network call
    box = np.array([[10, 10, 30, 40]], np.float32)
    gray = np.full((80, 90), 128, np.uint8)
    results = [est(x, boxes=box) for x in (gray, gray[:, :, None], np.dstack([gray] * 4), gray.astype(np.uint16) * 256)]
    for r in results:
        np.testing.assert_allclose(r[0].keypoints, results[0][0].keypoints)
    assert as_bgr_uint8(np.dstack([gray] * 4)).shape == (80, 90, 3)
    with pytest.raises(HsrposeError, match="dtype float64"):
        est(np.zeros((10, 10, 3)), boxes=box)
    huge = np.zeros((6000, 8000, 3), np.uint8)
    big_box = np.array([[5000, 1000, 2400, 4800]], np.float32)
    (inst,) = est(huge, boxes=big_box)
    expected = _expected_image_points(big_box[0].astype(np.float64), PeakBackend.PEAKS, backend.input_hw)
    np.testing.assert_allclose(inst.keypoints, expected, atol=0.05)
    with pytest.raises(HsrposeError, match="no detector"):
        PoseEstimator(backend, detector=None)(gray)


def test_deployment_modules_import_no_torch() -> None:
    code = "import sys, hsrpose.inference.pipeline, hsrpose.inference.detectors, hsrpose.vis; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("flip_test", [False, True])
def test_oracle_pipeline_coco_mini(coco_mini: Path, flip_test: bool) -> None:
    """benchmarks/oracle_pipeline.py: ground-truth heatmaps through the whole pipeline score AP >= 0.98."""
    oracle = _load_benchmark("oracle_pipeline")
    metrics = oracle.run_oracle(
        coco_mini / "annotations" / "person_keypoints_train2017.json", coco_mini / "train2017", flip_test=flip_test
    )
    assert metrics["AP"] >= 0.98, metrics


def test_onnxruntime_backend_matches_torch(tiny_weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from hsrpose.export import export_onnx
    from hsrpose.models.weights import load_pose_model

    model, meta = load_pose_model(tiny_weights)
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(model, onnx_path, preset=meta.preset, input_hw=meta.input_hw, heatmap_hw=meta.heatmap_hw, keypoint_info=meta.keypoint_info)
    image = np.random.default_rng(2).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    boxes = np.array([[20, 10, 80, 150], [150, 40, 100, 120]], np.float32)
    t = PoseEstimator(tiny_weights, detector=None, nms_thr=None)(image, boxes=boxes)
    o = PoseEstimator(onnx_path, detector=None, backend="onnxruntime", nms_thr=None)(image, boxes=boxes)
    for i, j in zip(t, o):
        np.testing.assert_allclose(i.keypoints, j.keypoints, atol=0.05)
        np.testing.assert_allclose(i.keypoint_scores, j.keypoint_scores, atol=1e-3)


# ----------------------------------------------------------------------------- hsrpose predict


def test_cli_predict_folder(tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    cv2.imwrite(str(folder / "000000000011.jpg"), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "empty.png"), np.zeros((90, 90), np.uint8))  # grayscale, nobody detected
    (folder / "broken.jpg").write_bytes(b"this is no image")
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 11, "category_id": 1, "bbox": [10, 10, 60, 90], "score": 0.9}]))
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 11, "file_name": "000000000011.jpg"}, {"id": 5, "file_name": "empty.png"}], "categories": []}))
    out = tmp_path / "out"
    rc = cli_main(["predict", str(folder), "--weights", str(tiny_weights), "--detector", f"coco:{dets}", "--ann", str(ann), "--out", str(out), "--box-thr", "0"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "skipped" in err
    results = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in results] == [11] and len(results[0]["keypoints"]) == 51
    assert {im["id"] for im in json.loads((out / "images.json").read_text())} == {11, 5}
    assert sorted(p.name for p in (out / "vis").iterdir()) == ["000000000011.jpg", "empty.png"]
    assert cv2.imread(str(out / "vis" / "000000000011.jpg")).shape == (120, 160, 3)


def test_cli_predict_video_with_a_broken_frame(tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    assert writer.isOpened()
    for i in range(6):
        writer.write(np.random.default_rng(i).integers(0, 255, (64, 96, 3), dtype=np.uint8))
    writer.release()
    # wipe the start of frame 2's JPEG (its SOI marker): that frame no longer decodes
    data = bytearray(video.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == 6
    data[starts[2] : starts[2] + 400] = bytes(400)
    video.write_bytes(bytes(data))
    dets = tmp_path / "dets.json"  # precomputed boxes for frames 1 and 3, keyed by frame index
    dets.write_text(json.dumps([{"image_id": f, "category_id": 1, "bbox": [10, 5, 30, 50], "score": 0.8} for f in (1, 3)]))
    out = tmp_path / "out"
    argv = ["predict", str(video), "--weights", str(tiny_weights), "--detector", f"coco:{dets}", "--out", str(out), "--frames-per-batch", "2", "--no-flip"]
    assert cli_main(argv) == 0
    captured = capsys.readouterr()
    assert "video frame 2 could not be decoded; skipped" in captured.err
    assert "5 frames, 1 unreadable skipped, 2 people" in captured.out
    assert sorted(r["image_id"] for r in json.loads((out / "results.json").read_text())) == [1, 3]
    assert [im["id"] for im in json.loads((out / "images.json").read_text())] == [0, 1, 3, 4, 5]
    cap = cv2.VideoCapture(str(out / "clip_pose.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (96, 64)
    cap.release()
    assert not list(out.glob(".*partial*"))


def test_cli_predict_errors(tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((40, 40, 3), np.uint8))
    ann = tmp_path / "five.json"
    ann.write_text(json.dumps({"images": [], "categories": [{"id": 1, "name": "thing", "keypoints": list(FIVE.names), "skeleton": [[1, 2]]}]}))
    # a custom 5-keypoint set needs sigmas: the clear error names the category
    assert cli_main(["predict", str(image), "--weights", str(tiny_weights), "--ann", str(ann), "--out", str(tmp_path / "o")]) == 1
    assert "sigmas" in capsys.readouterr().err
    # with its sigmas it is a valid configuration, but the weights predict 17 keypoints
    cat = {"id": 1, "name": "thing", "keypoints": list(FIVE.names), "skeleton": [[1, 2]], "sigmas": list(FIVE.sigmas)}
    ann.write_text(json.dumps({"images": [], "categories": [cat]}))
    assert cli_main(["predict", str(image), "--weights", str(tiny_weights), "--ann", str(ann), "--out", str(tmp_path / "o")]) == 1
    assert "17 keypoints but the configuration has 5" in capsys.readouterr().err
    assert cli_main(["predict", str(tmp_path / "nothing"), "--weights", str(tiny_weights), "--out", str(tmp_path / "o")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert cli_main(["predict", str(image), "--weights", str(tmp_path / "missing.pth"), "--detector", "coco:" + str(ann), "--out", str(tmp_path / "o")]) == 1
    assert "missing.pth" in capsys.readouterr().err
