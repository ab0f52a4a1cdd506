"""Issue 13: the reference protocol exactly, and decode settings that travel with the weights.

Each test names the reference rule it pins (HRNet = leoxiaobin/deep-high-resolution-net.pytorch).
The border rule of the decoder is pinned in tests/test_codec.py, EXIF orientation in
tests/test_data_dataset.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hsrpose.cli import main as cli_main
from hsrpose.data.coco import load_coco
from hsrpose.data.dataset import TopDownDataset
from hsrpose.data.keypoints import COCO_KEYPOINTS, KeypointInfo
from hsrpose.decode_settings import DecodeSettings
from hsrpose.inference.detectors import CocoResultsDetector
from hsrpose.inference.pipeline import PoseEstimator, make_crops, normalise_crops
from hsrpose.models import create_model
from hsrpose.models.weights import load_pose_model, save_pose_model
from conftest import write_coco_subset

TINY = "hsrnet_tiny_128x96"
ANN = Path("annotations") / "person_keypoints_train2017.json"
CUSTOM = DecodeSettings(sigma=3.0, decoder="dark", box_padding=1.3, aspect_wh=0.7, flip_shift=False)


def _weights(path: Path, decode: DecodeSettings | None = None, info: KeypointInfo = COCO_KEYPOINTS) -> Path:
    torch.manual_seed(0)
    save_pose_model(create_model(TINY, num_keypoints=info.num_keypoints), path, TINY, info, decode=decode)
    return path


def _strip_decode(path: Path) -> None:
    """Rewrite ``path`` as a file written before decode settings were stored."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata())
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        info = json.loads(meta["hsrpose"])
        del info["decode"]
        save_file(tensors, str(path), metadata={"hsrpose": json.dumps(info)})
    else:
        obj = torch.load(path, weights_only=True)
        del obj["decode"]
        torch.save(obj, path)


# ----------------------------------------------------------------------------- 4. settings travel


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_decode_settings_stored_in_weights_and_old_files_get_defaults(tmp_path: Path, suffix: str) -> None:
    path = _weights(tmp_path / f"w{suffix}", CUSTOM)
    _, meta = load_pose_model(path)
    assert meta.decode == CUSTOM and meta.decode_note is None
    _strip_decode(path)
    _, meta = load_pose_model(path)
    assert meta.decode == DecodeSettings() and meta.decode.decoder == "standard" and meta.decode.box_padding == 1.25
    assert meta.decode_note is not None and str(path) in meta.decode_note and "protocol defaults" in meta.decode_note


def test_onnx_metadata_carries_decode_settings(tmp_path: Path) -> None:
    from hsrpose.inference.onnx_backend import OnnxPoseMeta, OnnxRuntimeBackend

    weights = _weights(tmp_path / "w.pth", CUSTOM)
    onnx = tmp_path / "m.onnx"
    # export keeps the weights' settings, an explicit option overrides one of them
    assert cli_main(["export", "--weights", str(weights), "--out", str(onnx), "--box-padding", "1.4", "--no-verify"]) == 0
    backend = OnnxRuntimeBackend(onnx)
    assert backend.decode_settings == CUSTOM.replace(box_padding=1.4) and backend.decode_note is None
    est = PoseEstimator(onnx, detector=None, backend="onnxruntime")
    assert est.decode_settings == CUSTOM.replace(box_padding=1.4) and est.codec.dark and est.codec.sigma == 3.0
    # an export written before the settings existed: protocol defaults and a note
    props = backend.meta.to_props()
    del props["decode"]
    old = OnnxPoseMeta.from_props(props, source="old.onnx")
    assert old.decode == DecodeSettings() and "old.onnx" in (old.decode_note or "")


def test_pose_estimator_uses_stored_settings_explicit_options_override(tmp_path: Path) -> None:
    est = PoseEstimator(_weights(tmp_path / "w.pth", CUSTOM), detector=None)
    assert est.decode_settings == CUSTOM and est.codec.dark and est.padding == 1.3 and est.aspect_wh == 0.7
    est = PoseEstimator(tmp_path / "w.pth", detector=None, dark=False, padding=1.25)
    assert not est.codec.dark and est.padding == 1.25 and est.decode_settings.sigma == 3.0
    # the flip shift setting reaches the flip test: no shift gives other heatmaps
    image = np.random.default_rng(0).integers(0, 255, (200, 150, 3), dtype=np.uint8)
    box = np.array([[20.0, 30.0, 80.0, 120.0]])
    with_shift = PoseEstimator(tmp_path / "w.pth", detector=None, decode=CUSTOM.replace(flip_shift=True), nms_thr=None)(image, box)
    without = PoseEstimator(tmp_path / "w.pth", detector=None, decode=CUSTOM, nms_thr=None)(image, box)
    assert not np.array_equal(with_shift[0].keypoint_scores, without[0].keypoint_scores)


def test_training_checkpoint_stores_validation_decode_and_eval_uses_it(
    coco_mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run with data.dark=true stores DARK; ``hsrpose eval`` on its checkpoint decodes with DARK."""
    ann = write_coco_subset(coco_mini, tmp_path / "two.json", 2)
    run = tmp_path / "run"
    images = str(coco_mini / "train2017")
    rc = cli_main([
        "train", TINY, "--ann", str(ann), "--images", images, "--out", str(run), "pretrained=none",
        "data.num_workers=0", "optim.batch_size=2", "optim.epochs=1", "progress=false", "tensorboard=false",
        "augment.enabled=false", "data.dark=true", "data.sigma=2.5", "eval.shift_heatmap=false",
    ])  # fmt: skip
    assert rc == 0
    assert "--pretrained" not in capsys.readouterr().err  # pretrained=none: from scratch on purpose, no warning
    _, meta = load_pose_model(run / "last.pth")
    assert meta.decode == DecodeSettings(sigma=2.5, decoder="dark", box_padding=1.25, aspect_wh=0.75, flip_shift=False)
    common = ["--weights", str(run / "last.pth"), "--ann", str(ann), "--images", images, "--gt-boxes", "--device", "cpu", "--workers", "0"]
    assert cli_main(["eval", TINY, *common, "--out", str(tmp_path / "r1.json")]) == 0
    out = capsys.readouterr().out
    assert "# decode: decoder dark, sigma 2.5, box padding 1.25, aspect 0.75, flip shift off" in out
    assert "(one-pixel shift)" not in out
    # explicit options override; dotted overrides may follow the options
    assert cli_main(["eval", TINY, *common, "--decoder", "standard", "--out", str(tmp_path / "r2.json"), "shift_heatmap=true"]) == 0
    out = capsys.readouterr().out
    assert "# decode: decoder standard, sigma 2.5, box padding 1.25, aspect 0.75, flip shift on" in out


# ----------------------------------------------------------------------------- 5. pretrained warning


def test_train_without_pretrained_warns_once(coco_mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", TINY, "--ann", str(tmp_path / "missing.json"), "--images", str(tmp_path), "--out", str(tmp_path / "r")]
    assert cli_main(args) == 1  # fails later on the missing file; the warning comes first
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "--pretrained FILE" in warnings[0] and "pretrained=none" in warnings[0]
    assert cli_main([*args, "pretrained=none"]) == 1
    assert "warning:" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- 3. one box reader


class Recorder:
    """Heatmap backend stand-in that keeps every network input it is given (zero heatmaps out)."""

    keypoint_info = COCO_KEYPOINTS

    def __init__(self, input_hw: tuple[int, int] = (64, 48)) -> None:
        self.input_hw = input_hw
        self.heatmap_hw = (input_hw[0] // 4, input_hw[1] // 4)
        self.seen: list[np.ndarray] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(x.copy())
        return np.zeros((len(x), 17, *self.heatmap_hw), np.float32)


def test_eval_and_predict_crop_the_same_detection_boxes(coco_mini: Path, tmp_path: Path) -> None:
    """HRNet ``COCODataset._load_coco_person_detection_results`` + ``_xywh2cs``: boxes as they are,
    including boxes that cross the image border and w <= 0; eval and predict give identical crops."""
    gt = json.loads((coco_mini / ANN).read_text())
    im = next(i for i in gt["images"] if i["file_name"] == "000000535506.jpg")  # 480 x 640 (w x h)
    boxes = [
        [100.5, 120.25, 200.0, 300.0],  # inside
        [-60.0, 30.0, 150.0, 400.0],  # past the left edge
        [400.0, 500.0, 300.0, 250.0],  # past the right and bottom edges
        [200.0, 100.0, 0.0, 80.0],  # w = 0: kept (aspect fix gives it a width)
        [10.0, 10.0, 50.0, -5.0],  # h < 0: kept as well
    ]
    dets = [{"image_id": im["id"], "category_id": 1, "bbox": b, "score": 0.9 - 0.1 * i} for i, b in enumerate(boxes)]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets))

    # eval --boxes: load_coco (mode det) -> TopDownDataset crops
    coco = load_coco(coco_mini / ANN, mode="det", det_file=det_file)
    assert [i.box_xywh.tolist() for i in coco.instances] == boxes
    ds = TopDownDataset(coco.instances, coco_mini / "train2017", (256, 192), DecodeSettings().codec((256, 192), (64, 48)))
    items = [ds[i] for i in range(len(ds))]
    assert all(it["valid"] for it in items)

    # predict --detector coco:FILE: PoseEstimator with the results-file detector; record what the network sees
    rec = Recorder((256, 192))
    det = CocoResultsDetector(det_file, file_names={im["file_name"]: im["id"]})
    est = PoseEstimator(rec, detector=det, flip_test=False, nms_thr=None)
    est(coco_mini / "train2017" / im["file_name"])
    crops = np.concatenate(rec.seen)
    assert crops.shape[0] == len(boxes)
    for i, it in enumerate(items):
        np.testing.assert_array_equal(crops[i], it["image"].numpy())
    # and the inverse affines agree
    bgr = __import__("cv2").imread(str(coco_mini / "train2017" / im["file_name"]))
    c = make_crops(bgr, np.array(boxes), (256, 192))
    np.testing.assert_array_equal(c.M_inv, np.stack([it["M_inv"].numpy() for it in items]))
    # not clipping matters: the clipped box of the border-crossing one gives another crop
    clipped = make_crops(bgr, np.array([[0.0, 30.0, 90.0, 400.0]]), (256, 192))
    assert not np.array_equal(normalise_crops(clipped.images)[0], crops[1])


def test_pose_estimator_does_not_clip_given_boxes() -> None:
    rec = Recorder()
    image = np.random.default_rng(1).integers(0, 255, (100, 80, 3), dtype=np.uint8)
    box = np.array([[-30.0, -10.0, 60.0, 90.0]])
    res = PoseEstimator(rec, detector=None, flip_test=False, nms_thr=None)(image, box)
    np.testing.assert_array_equal(res[0].box_xywh, box[0])
    np.testing.assert_array_equal(rec.seen[0][0], normalise_crops(make_crops(image, box, (64, 48)).images)[0])


# ----------------------------------------------------------------------------- 6. custom keypoint sets in eval


def _custom_ann(coco_mini: Path, out: Path, with_sigmas: bool) -> tuple[Path, list[int]]:
    """coco-mini reduced to 5 keypoints under new names (a custom keypoint set)."""
    keep = [0, 5, 6, 11, 12]
    data = json.loads(write_coco_subset(coco_mini, out.with_name("sub.json"), 6).read_text())
    cat = {"id": 1, "name": "person", "keypoints": ["head", "l_sh", "r_sh", "l_hip", "r_hip"], "skeleton": [[2, 3], [4, 5]]}
    if with_sigmas:
        cat["sigmas"] = [0.026, 0.079, 0.079, 0.107, 0.107]
        cat["flip_pairs"] = [[1, 2], [3, 4]]
    data["categories"] = [cat]
    for a in data["annotations"]:
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)[keep]
        a["keypoints"] = kp.reshape(-1).tolist()
        a["num_keypoints"] = int((kp[:, 2] > 0).sum())
    data["annotations"] = [a for a in data["annotations"] if a["num_keypoints"] > 0]
    out.write_text(json.dumps(data))
    return out, keep


def test_eval_scores_a_custom_keypoint_set(coco_mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hsrpose.evaluation.cocoeval import format_metrics, score_results

    ann, _ = _custom_ann(coco_mini, tmp_path / "custom.json", with_sigmas=True)
    info = KeypointInfo(("head", "l_sh", "r_sh", "l_hip", "r_hip"), ((1, 2), (3, 4)), (), (0.1,) * 5)
    weights = _weights(tmp_path / "w5.pth", info=info)
    common = ["--weights", str(weights), "--ann", str(ann), "--images", str(coco_mini / "train2017"), "--gt-boxes",
              "--device", "cpu", "--workers", "0"]  # fmt: skip
    # the category's sigmas are used (not the weights' 0.1)
    out = tmp_path / "r.json"
    assert cli_main(["eval", TINY, *common, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "OKS sigmas [0.026, 0.079, 0.079, 0.107, 0.107]" in printed
    numbers = "\n".join(line for line in printed.splitlines() if not line.startswith("#"))
    assert numbers == format_metrics(score_results(ann, out, sigmas=[0.026, 0.079, 0.079, 0.107, 0.107], backend="pycocotools"))
    # an eval setting given after the options wins
    assert cli_main(["eval", TINY, *common, "--out", str(out), "oks_sigmas=[0.05,0.05,0.05,0.05,0.05]"]) == 0
    assert "OKS sigmas [0.05, 0.05, 0.05, 0.05, 0.05]" in capsys.readouterr().out
    # a category without sigmas: the weights' (what training used)
    ann2, _ = _custom_ann(coco_mini, tmp_path / "custom2.json", with_sigmas=False)
    assert cli_main(["eval", TINY, *common[:2], "--ann", str(ann2), *common[4:], "--out", str(out)]) == 0
    assert "OKS sigmas [0.1, 0.1, 0.1, 0.1, 0.1]" in capsys.readouterr().out


def test_custom_set_without_sigmas_names_the_settings() -> None:
    cat: dict[str, Any] = {"id": 1, "name": "hand", "keypoints": ["a", "b"]}
    with pytest.raises(ValueError, match=r"'sigmas' list to the category.*eval: oks_sigmas="):
        KeypointInfo.from_coco_category(cat)
    assert KeypointInfo.from_coco_category({**cat, "sigmas": [0.1, 0.2]}).sigmas == (0.1, 0.2)


def test_predict_reads_dataset_images_as_stored_with_a_results_file(tmp_path: Path, coco_mini: Path) -> None:
    """With ``coco:`` boxes (dataset images) the pipeline reads pixels as stored, like eval; else as displayed."""
    import io

    import cv2
    from PIL import Image

    rgb = cv2.imread(str(coco_mini / "train2017" / "000000535506.jpg"))[:200, :150, ::-1]
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180 to display
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    path = tmp_path / "000000000042.jpg"
    path.write_bytes(buf.getvalue())
    raw = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    box = [10.0, 20.0, 60.0, 120.0]
    det_file = tmp_path / "d.json"
    det_file.write_text(json.dumps([{"image_id": 42, "category_id": 1, "bbox": box, "score": 1.0}]))
    rec = Recorder()
    PoseEstimator(rec, detector=f"coco:{det_file}", flip_test=False)(path)
    stored = normalise_crops(make_crops(raw, np.array([box]), (64, 48)).images)[0]
    np.testing.assert_array_equal(rec.seen[-1][0], stored)
    PoseEstimator(rec, detector=None, flip_test=False)(path, np.array([box]))
    shown = normalise_crops(make_crops(np.ascontiguousarray(raw[::-1, ::-1]), np.array([box]), (64, 48)).images)[0]
    np.testing.assert_array_equal(rec.seen[-1][0], shown)


def test_safetensors_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(tmp_path: Path) -> None:
    """Storing the decode settings grew the header; a length whose low byte is 0x80 (pickle's PROTO)
    must still be read as safetensors."""
    from safetensors.torch import save_file

    from hsrpose.models.weights import read_checkpoint_file

    path = tmp_path / "w.safetensors"
    for pad in range(300):
        save_file({"x": torch.zeros(2)}, str(path), metadata={"hsrpose": "{}", "pad": "p" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    obj, meta = read_checkpoint_file(path)
    assert meta is not None and meta["hsrpose"] == "{}" and set(obj) == {"x"}


def test_a_box_that_gives_no_crop_is_skipped_and_reported(coco_mini: Path, caplog: pytest.LogCaptureFixture) -> None:
    """w = h = 0 (the aspect fix cannot give it a size): eval marks the item invalid, predict skips it, both say so."""
    rec = Recorder()
    image = np.zeros((50, 40, 3), np.uint8)
    with caplog.at_level("WARNING"):
        res = PoseEstimator(rec, detector=None, flip_test=False)(image, np.array([[5.0, 5.0, 0.0, 0.0], [5.0, 5.0, 20.0, 30.0]]))
    assert len(res) == 1 and len(rec.seen[0]) == 1
    assert "1 box(es) give no crop" in caplog.text

    # the evaluation dataset: the same box gives an invalid item (skipped and counted by evaluate)
    from hsrpose.data.coco import Instance

    inst = Instance(1, 0, "000000535506.jpg", np.array([5.0, 5.0, 0.0, 0.0]), np.zeros((17, 3)), 1.0, 0.0, None)
    ds = TopDownDataset([inst], coco_mini / "train2017", (64, 48), DecodeSettings().codec((64, 48), (16, 12)))
    assert not ds[0]["valid"]
