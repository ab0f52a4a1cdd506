"""One dataset switch through the commands: train validates with PCKh / CrowdPose AP, eval prints
the dataset's table, browse draws the dataset's skeleton, predict checks the keypoint set.

Files are written from coco-mini (tests/dataset_files.py); models are the tiny preset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataset_files import mpii_people, write_crowdpose, write_hrnet_mpii, write_official_mpii

from hsrpose.cli import main as cli_main
from hsrpose.engine.checkpoint import load_checkpoint
from hsrpose.engine.logging import read_metrics

COCO_ANN = Path("annotations") / "person_keypoints_train2017.json"
QUICK = [
    "data.num_workers=0", "eval.num_workers=0", "optim.batch_size=4", "optim.epochs=1", "train_subset=4",
    "eval_interval=1", "progress=false", "tensorboard=false",
]  # fmt: skip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mpii_files(coco_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mpii")
    people = mpii_people(coco_mini / COCO_ANN)[:6]
    return write_hrnet_mpii(people, root / "annot", "valid"), write_official_mpii(people, root / "release.mat")


def test_mpii_train_eval_browse(coco_mini: Path, mpii_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    js, mat = mpii_files
    images = str(coco_mini / "train2017")
    run = tmp_path / "run"
    rc = cli_main(["train", "hsrnet_tiny_128x96", "--dataset", "mpii", "--ann", str(mat), "--images", images,
                   "--val-ann", str(js), "--val-images", images, "--out", str(run), *QUICK])  # fmt: skip
    assert rc == 0
    assert "best PCKh" in capsys.readouterr().out
    val = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "val"]
    assert set(val[0]) >= {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"}
    ck = load_checkpoint(run / "last.pth")
    assert ck["num_keypoints"] == 16 and ck["keypoint_info"]["names"][0] == "right_ankle"

    rc = cli_main(["eval", "hsrnet_tiny_128x96", "--weights", str(run / "last.pth"), "--ann", str(js), "--images", images,
                   "--gt-boxes", "--out", str(tmp_path / "r.json"), "--workers", "0", "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "# | Head | Shoulder | Elbow | Wrist | Hip | Knee | Ankle | Mean | Mean@0.1 |" in out
    assert "annotated center/scale" in out and "# MPII: one prediction per annotated person (no rescoring, no NMS)" in out
    values = dict(line.split() for line in out.splitlines() if line and not line.startswith("#"))
    assert list(values) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"]
    assert float(values["Mean"]) == pytest.approx(val[-1]["Mean"], abs=1e-6)  # eval = training's validation
    assert len(json.loads((tmp_path / "r.json").read_text())) == 6  # one result per annotated person, no NMS

    rc = cli_main(["browse", "--ann", str(js), "--images", images, "--out", str(tmp_path / "b"), "--num", "2",
                   "--input-size", "128x128"])  # fmt: skip
    assert rc == 0 and len(list((tmp_path / "b").glob("*.png"))) == 2
    # a COCO switch on an MPII file is refused at once, naming the file
    assert cli_main(["browse", "--dataset", "coco", "--ann", str(js), "--images", images, "--out", str(tmp_path / "c")]) == 1
    assert "an MPII annotation file" in capsys.readouterr().err


def test_crowdpose_train_eval(coco_mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ann = write_crowdpose(coco_mini / COCO_ANN, tmp_path / "crowdpose.json")
    d = json.loads(ann.read_text())
    keep = sorted({a["image_id"] for a in d["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]})[:4]
    d["images"] = [im for im in d["images"] if im["id"] in keep]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in keep]
    ann.write_text(json.dumps(d))
    images = str(coco_mini / "train2017")
    run = tmp_path / "run"
    rc = cli_main(["train", "hsrnet_tiny_128x96", "--ann", str(ann), "--images", images,
                   "--val-ann", str(ann), "--val-images", images, "--out", str(run), *QUICK])  # fmt: skip
    assert rc == 0
    val = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "val"]
    assert {"AP", "AP(E)", "AP(M)", "AP(H)"} <= set(val[0])
    assert load_checkpoint(run / "last.pth")["num_keypoints"] == 14
    capsys.readouterr()
    rc = cli_main(["eval", "hsrnet_tiny_128x96", "--weights", str(run / "last.pth"), "--ann", str(ann), "--images", images,
                   "--gt-boxes", "--out", str(tmp_path / "r.json"), "--workers", "0", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    values = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line and not line.startswith("#")]
    assert values == ["AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP(E)", "AP(M)", "AP(H)"]


def test_predict_checks_the_dataset_keypoint_set(coco_mini: Path, mpii_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from hsrpose.data.keypoints import MPII_KEYPOINTS
    from hsrpose.models import create_model
    from hsrpose.models.weights import save_pose_model

    w = tmp_path / "mpii.pth"
    save_pose_model(create_model("hsrnet_tiny_128x96", num_keypoints=16), w, "hsrnet_tiny_128x96", MPII_KEYPOINTS)
    img = next((coco_mini / "train2017").glob("*.jpg"))
    rc = cli_main(["predict", str(img), "--weights", str(w), "--dataset", "coco", "--out", str(tmp_path / "p"), "--no-draw"])
    assert rc == 1 and "16" in capsys.readouterr().err
    rc = cli_main(["predict", str(img), "--weights", str(w), "--dataset", "mpii", "--out", str(tmp_path / "p"), "--no-draw"])
    assert rc == 0
