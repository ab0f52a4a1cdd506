"""``hsrpose demo``: the quick configuration end to end (data, real training, evaluation, pipeline, drawing)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hsrpose.commands import demo
from hsrpose.errors import HsrposeError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_quick_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hsrpose.cli import main
    from hsrpose.evaluation.cocoeval import METRIC_NAMES
    from hsrpose.models.weights import load_pose_model

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick", "--seed", "1"]) == 0
    printed = capsys.readouterr().out

    # The ten COCOeval numbers, printed and saved, from the real protocol on GT boxes.
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["boxes"] == "ground truth"
    for name in METRIC_NAMES:
        assert -1.0 <= metrics[name] <= 1.0
        assert f"  {name:<5} {metrics[name]:.3f}" in printed
    assert (out / "summary.txt").read_text() == printed

    # Datasets, trained weights (reloadable), curves from the training engine.
    train_ann = json.loads((out / "data" / "train" / "annotations" / "person_keypoints.json").read_text())
    assert len(train_ann["images"]) == demo.QUICK.train_images
    model, meta = load_pose_model(out / "train" / "last.pth")
    assert meta.preset == demo.QUICK.preset
    curves = cv2.imread(str(out / "train" / "curves.png"))
    assert curves is not None and curves.size > 0

    # The predictions picture: a grid of validation images with the poses drawn over them.
    pred = cv2.imread(str(out / "predictions.png"))
    h, w = demo.QUICK.image_hw
    assert pred.shape == (h, w * demo.QUICK.draw_images, 3)
    first = cv2.imread(str(out / "data" / "val" / "images" / "000000.jpg"))
    assert np.abs(pred[:, :w].astype(int) - first.astype(int)).max() > 100  # something was drawn on it
    for path in (out / "predictions.png", out / "train" / "curves.png", out / "train" / "last.pth"):
        assert str(path) in printed

    # A second run into the same folder refuses to overwrite without --force.
    assert main(["demo", "--out", str(out), "--quick"]) == 1


def test_force_removes_only_what_the_demo_wrote(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "summary.txt").write_text("old")
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(HsrposeError, match="--force"):
        demo._prepare_out(tmp_path, force=False)
    demo._prepare_out(tmp_path, force=True)
    assert not (tmp_path / "train").exists() and not (tmp_path / "summary.txt").exists()
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_settings_from_args() -> None:
    assert demo.settings_from_args(_args()) == demo.FULL
    assert demo.settings_from_args(_args("--quick")) == demo.QUICK
    s = demo.settings_from_args(_args("--epochs", "28", "--lr", "1e-3", "--train-images", "50"))
    assert (s.epochs, s.lr, s.train_images) == (28, 1e-3, 50)
    # lr drops stay at the same fractions of the run.
    assert s.milestones == tuple(round(m * 28 / demo.FULL.epochs) for m in demo.FULL.milestones)
    with pytest.raises(HsrposeError):
        demo.settings_from_args(_args("--epochs", "0"))
