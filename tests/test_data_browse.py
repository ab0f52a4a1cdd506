"""``hsrpose browse`` writes viewable PNGs of augmented samples."""

from __future__ import annotations

from pathlib import Path

import cv2

from hsrpose.cli import main


def test_browse_writes_pngs(tmp_path: Path, coco_mini: Path, capsys) -> None:
    out = tmp_path / "browse"
    rc = main([
        "browse", "--ann", str(coco_mini / "annotations" / "person_keypoints_train2017.json"),
        "--images", str(coco_mini / "train2017"), "--out", str(out), "--num", "3", "--seed", "1",
        "--input-size", "128x96", "--half-body",
    ])  # fmt: skip
    assert rc == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 3
    for p in pngs:
        img = cv2.imread(str(p))
        # two 128x96 crops upscaled x3 side by side (+4 px gap) under a 28 px title bar
        assert img.shape == (28 + 384, 2 * 288 + 4, 3)
        assert img[28:, :288].std() > 10  # a real picture, not a blank
    assert "3 samples written" in capsys.readouterr().out


def test_browse_reports_bad_folder(tmp_path: Path, coco_mini: Path, capsys) -> None:
    rc = main([
        "browse", "--ann", str(coco_mini / "annotations" / "person_keypoints_train2017.json"),
        "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
    ])  # fmt: skip
    assert rc == 1
    assert "image folder not found" in capsys.readouterr().err
