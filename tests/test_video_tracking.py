"""Synthetic video clips, the tracked video loop (det-interval, gaps, bad input) and ``predict --track``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hsrpose.cli import main as cli_main
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.data.synthetic_video import VideoSynthConfig, generate_video_clips, render_clip, sample_clip
from hsrpose.errors import HsrposeError
from hsrpose.inference.detectors import CocoResultsDetector, box_iou_xywh
from hsrpose.inference.pipeline import PoseInstance
from hsrpose.inference.video import VideoOptions, VideoRun, open_video, read_frames, track_frames

TINY = "hsrnet_tiny_128x96"
CFG = VideoSynthConfig(image_hw=(120, 160), frames=24)


def test_clips_are_deterministic_with_still_and_moving_figures() -> None:
    a = list(render_clip(sample_clip(5, 0, CFG)))
    b = list(render_clip(sample_clip(5, 0, CFG)))
    assert len(a) == CFG.frames and all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    by_id: dict[int, list[dict[str, Any]]] = {}
    for _, gt in a:
        for g in gt:
            by_id.setdefault(g["track_id"], []).append(g)
    still = [i for i, gs in by_id.items() if gs[0]["still"]]
    assert still, "every clip has a still figure"
    for i in still:  # a still figure does not move; camera noise changes the pixels, not the truth
        assert all(np.array_equal(g["keypoints"][:, :2], by_id[i][0]["keypoints"][:, :2]) for g in by_id[i])
    assert not np.array_equal(a[0][0], a[1][0])
    moving = [i for i in by_id if i not in still]
    assert moving and any(not np.array_equal(by_id[i][0]["keypoints"], by_id[i][-1]["keypoints"]) for i in moving)


def test_figures_enter_and_leave_across_clips() -> None:
    cfg = VideoSynthConfig(image_hw=(120, 160), frames=60)
    entered = left = False
    for clip in range(6):
        frames = [{g["track_id"] for g in gt} for _, gt in render_clip(sample_clip(0, clip, cfg))]
        entered |= bool(frames[-1] - frames[0])
        left |= bool(frames[0] - frames[-1])
    assert entered and left


def test_generated_clip_files(tmp_path: Path) -> None:
    [video] = generate_video_clips(tmp_path, 1, seed=2, cfg=CFG)
    cap, fps, total = open_video(video)
    n = sum(1 for _ in read_frames(cap, total, lambda i: None))
    cap.release()
    assert n == CFG.frames and fps == pytest.approx(CFG.fps)
    ann = json.loads((tmp_path / "annotations" / "clip_000.json").read_text())
    assert [im["id"] for im in ann["images"]] == list(range(CFG.frames))
    assert all("track_id" in a and "still" in a for a in ann["annotations"])
    det = CocoResultsDetector(tmp_path / "boxes" / "clip_000.json")
    boxes, _ = det(np.zeros((120, 160, 3), np.uint8), 0)
    assert len(boxes) == sum(a["image_id"] == 0 for a in ann["annotations"])


class _GtEstimator:
    """A stand-in for PoseEstimator on a rendered clip: the ground-truth poses of the boxes' figures."""

    keypoint_info = COCO_KEYPOINTS

    def __init__(self, frames_gt: list[list[dict[str, Any]]]) -> None:
        self.gt = frames_gt
        self.frame = -1
        self.detector_calls = 0

    def __call__(self, image: np.ndarray, boxes: Any = None, image_key: Any = None) -> list[PoseInstance]:
        gt = self.gt[int(image_key)] if image_key is not None else None
        if image_key is not None:
            self.frame, self.detector_calls = int(image_key), self.detector_calls + 1
            boxes = (np.array([g["bbox"] for g in gt]).reshape(-1, 4), np.ones(len(gt)))
        else:
            self.frame += 1
            gt = self.gt[self.frame]
        out = []
        gt_boxes = np.array([g["bbox"] for g in gt], dtype=float).reshape(-1, 4)
        for box in np.asarray(boxes[0]).reshape(-1, 4):
            if not len(gt):
                break
            g = gt[int(box_iou_xywh(box[None], gt_boxes).argmax())]
            kp = g["keypoints"]
            out.append(PoseInstance(box.astype(np.float32), 1.0, kp[:, :2].astype(np.float32), np.where(kp[:, 2] > 0, 0.9, 0.0).astype(np.float32), 0.9))
        return out


def test_det_interval_runs_the_detector_every_n_frames_and_propagates_boxes() -> None:
    rendered = list(render_clip(sample_clip(1, 0, CFG)))
    est = _GtEstimator([gt for _, gt in rendered])
    frames = list(track_frames(((i, f) for i, (f, _) in enumerate(rendered)), est, VideoOptions(det_interval=5, smooth=False), 25.0))
    assert est.detector_calls == 5  # frames 0, 5, 10, 15, 20 of 24
    assert [f.detected for f in frames[:6]] == [True, False, False, False, False, True]
    # on propagated frames the people present since the last detection keep their ids
    ids0 = {p.track_id for p in frames[0].poses}
    assert ids0 and ids0 <= {p.track_id for p in frames[3].poses} | ids0


def test_tracks_survive_a_gap_of_undecodable_frames() -> None:
    """A capture whose frames 6..8 fail to decode: skipped, counted, and the ids after the gap are those before."""
    rendered = list(render_clip(sample_clip(1, 0, CFG)))

    class Capture:
        def __init__(self) -> None:
            self.i = 0

        def read(self) -> tuple[bool, Any]:
            i, self.i = self.i, self.i + 1
            if i >= len(rendered) or 6 <= i <= 8:
                return False, None
            return True, rendered[i][0]

    bad: list[int] = []
    est = _GtEstimator([gt for _, gt in rendered])
    run = VideoRun()
    frames = list(track_frames(read_frames(Capture(), len(rendered), bad.append), est, VideoOptions(), 25.0, run))
    assert bad == [6, 7, 8]
    assert [f.index for f in frames] == [i for i in range(len(rendered)) if not 6 <= i <= 8]
    still_ids = {g["track_id"] for g in rendered[5][1] if g["still"]}
    before = {p.track_id for p in frames[5].poses}
    after = {p.track_id for p in frames[6].poses}  # frame 9
    assert frames[6].index == 9 and still_ids and len(before & after) >= len(still_ids)
    assert run.frames_ok == len(rendered) - 3


def test_options_need_tracking() -> None:
    with pytest.raises(HsrposeError, match="need --track"):
        VideoOptions(track=False, det_interval=5, smooth=False)
    with pytest.raises(HsrposeError, match="det-interval"):
        VideoOptions(det_interval=0)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose heatmaps are random plus a constant 0.9: every crop gets confident
    keypoints, so the tracker has poses to follow (random weights alone score near 0)."""
    import torch

    from hsrpose.models import create_model
    from hsrpose.models.weights import save_pose_model

    torch.manual_seed(0)
    model = create_model(TINY)
    with torch.no_grad():
        model.final_layer.weight.mul_(0.01)
        model.final_layer.bias.fill_(0.9)
    path = tmp_path_factory.mktemp("w") / "tiny.pth"
    save_pose_model(model, path, TINY, COCO_KEYPOINTS)
    return path


def _write_avi_with_broken_frame(path: Path, frames: list[np.ndarray], broken: int) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    data[starts[broken] : starts[broken] + 400] = bytes(400)  # wipe the JPEG start: that frame no longer decodes
    path.write_bytes(bytes(data))


def test_cli_predict_track(tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_torch_thread: None) -> None:
    cfg = VideoSynthConfig(image_hw=(120, 160), frames=8)
    rendered = list(render_clip(sample_clip(1, 0, cfg)))
    video = tmp_path / "clip.avi"
    _write_avi_with_broken_frame(video, [f for f, _ in rendered], broken=3)
    dets = tmp_path / "dets.json"  # every figure's box with score 1: instance scores are the keypoint scores
    dets.write_text(json.dumps([{"image_id": t, "category_id": 1, "bbox": g["bbox"], "score": 1.0} for t, (_, gt) in enumerate(rendered) for g in gt]))
    out = tmp_path / "out"
    argv = ["predict", str(video), "--weights", str(tiny_weights), "--detector", f"coco:{dets}", "--out", str(out), "--no-flip", "--track"]
    assert cli_main(argv) == 0
    captured = capsys.readouterr()
    assert "frame 3 could not be decoded; skipped" in captured.err
    assert "7 frames, 1 undecodable skipped" in captured.out and "frames/s" in captured.out
    results = json.loads((out / "results.json").read_text())
    posetrack = json.loads((out / "posetrack.json").read_text())
    assert [im["id"] for im in posetrack["images"]] == [0, 1, 2, 4, 5, 6, 7]
    assert results and all("track_id" in r for r in results) and len(posetrack["annotations"]) == len(results)
    # one id per figure: the boxes are the figures' (IoU similarity), with no crossing in these 8 frames
    figures = {g["track_id"] for _, gt in rendered for g in gt}
    assert len({r["track_id"] for r in results}) == len(figures)
    cap = cv2.VideoCapture(str(out / "clip_pose.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    cap.release()
    # --det-interval 2: the detector on decoded frames 0, 2, 4, 6 (file frames 0, 2, 5, 7)
    assert cli_main(argv + ["--det-interval", "2", "--no-smooth", "--no-draw", "--out", str(tmp_path / "out2")]) == 0
    assert "(detector on 4)" in capsys.readouterr().out
    assert not (tmp_path / "out2" / "clip_pose.mp4").exists()


def test_cli_predict_track_bad_input(tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    assert cli_main(["predict", str(not_video), "--weights", str(tiny_weights), "--out", str(tmp_path / "o"), "--track"]) == 1
    assert "notes.mp4: OpenCV cannot open this video" in capsys.readouterr().err
    empty = tmp_path / "empty.avi"  # a container with 0 frames
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (32, 32))
    writer.release()
    assert cli_main(["predict", str(empty), "--weights", str(tiny_weights), "--out", str(tmp_path / "o"), "--track"]) == 1
    err = capsys.readouterr().err
    assert "empty.avi" in err and ("0 frames" in err or "cannot open" in err)
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((40, 40, 3), np.uint8))
    assert cli_main(["predict", str(image), "--weights", str(tiny_weights), "--out", str(tmp_path / "o"), "--track"]) == 1
    assert "work on a video file" in capsys.readouterr().err
    assert cli_main(["predict", str(not_video), "--weights", str(tiny_weights), "--out", str(tmp_path / "o"), "--det-interval", "3"]) == 1
    assert "need --track" in capsys.readouterr().err


def test_cli_synth_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["synth", "--video", "--out", str(tmp_path), "--clips", "1", "--frames", "5", "--size", "96x128", "--quiet"]) == 0
    assert (tmp_path / "videos" / "clip_000.mp4").is_file() and "track_id" in capsys.readouterr().out
    assert cli_main(["synth", "--out", str(tmp_path / "x")]) == 1
    assert "--images N is required" in capsys.readouterr().err


def test_atomic_video_writer_leaves_no_partial_file(tmp_path: Path) -> None:
    from hsrpose.utils.videoio import AtomicVideoWriter

    target = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError):
        with AtomicVideoWriter(target, 25.0) as w:
            w.write(np.zeros((32, 48, 3), np.uint8))
            raise RuntimeError("interrupted")
    assert not target.exists() and not list(tmp_path.iterdir())
    with AtomicVideoWriter(target, 25.0) as w:
        for _ in range(3):
            w.write(np.zeros((32, 48, 3), np.uint8))
    cap, _, total = open_video(target)
    cap.release()
    assert total == 3 and [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
