"""PCKh equals HRNet's MPII evaluation.

The reference is ``lib/dataset/mpii.py`` ``MPIIDataset.evaluate`` of
leoxiaobin/deep-high-resolution-net.pytorch, transcribed below (:func:`hrnet_evaluate`)
and run on the same ``gt_valid.mat`` layout (written by tests/dataset_files.py from coco-mini
people) with random predictions.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from dataset_files import mpii_people, write_hrnet_mpii
from scipy.io import loadmat

from hsrpose.errors import DataError
from hsrpose.evaluation.pckh import MpiiGroundTruth, format_pckh, load_gt_mat, pckh

COCO_ANN = Path("annotations") / "person_keypoints_train2017.json"


def hrnet_evaluate(preds: np.ndarray, gt_file: Path) -> OrderedDict:
    """Transcription of HRNet ``lib/dataset/mpii.py`` ``MPIIDataset.evaluate`` (preds 0-based, (N,16,2))."""
    preds = preds[:, :, 0:2] + 1.0
    SC_BIAS = 0.6
    threshold = 0.5
    gt_dict = loadmat(str(gt_file))
    dataset_joints = gt_dict["dataset_joints"]
    jnt_missing = gt_dict["jnt_missing"]
    pos_gt_src = gt_dict["pos_gt_src"]
    headboxes_src = gt_dict["headboxes_src"]
    pos_pred_src = np.transpose(preds, [1, 2, 0])
    head = np.where(dataset_joints == "head")[1][0]
    lsho = np.where(dataset_joints == "lsho")[1][0]
    lelb = np.where(dataset_joints == "lelb")[1][0]
    lwri = np.where(dataset_joints == "lwri")[1][0]
    lhip = np.where(dataset_joints == "lhip")[1][0]
    lkne = np.where(dataset_joints == "lkne")[1][0]
    lank = np.where(dataset_joints == "lank")[1][0]
    rsho = np.where(dataset_joints == "rsho")[1][0]
    relb = np.where(dataset_joints == "relb")[1][0]
    rwri = np.where(dataset_joints == "rwri")[1][0]
    rkne = np.where(dataset_joints == "rkne")[1][0]
    rank = np.where(dataset_joints == "rank")[1][0]
    rhip = np.where(dataset_joints == "rhip")[1][0]
    jnt_visible = 1 - jnt_missing
    uv_error = pos_pred_src - pos_gt_src
    uv_err = np.linalg.norm(uv_error, axis=1)
    headsizes = headboxes_src[1, :, :] - headboxes_src[0, :, :]
    headsizes = np.linalg.norm(headsizes, axis=0)
    headsizes *= SC_BIAS
    scale = np.multiply(headsizes, np.ones((len(uv_err), 1)))
    scaled_uv_err = np.divide(uv_err, scale)
    scaled_uv_err = np.multiply(scaled_uv_err, jnt_visible)
    jnt_count = np.sum(jnt_visible, axis=1)
    less_than_threshold = np.multiply((scaled_uv_err <= threshold), jnt_visible)
    PCKh = np.divide(100.0 * np.sum(less_than_threshold, axis=1), jnt_count)
    rng = np.arange(0, 0.5 + 0.01, 0.01)
    pckAll = np.zeros((len(rng), 16))
    for r in range(len(rng)):
        threshold = rng[r]
        less_than_threshold = np.multiply(scaled_uv_err <= threshold, jnt_visible)
        pckAll[r, :] = np.divide(100.0 * np.sum(less_than_threshold, axis=1), jnt_count)
    PCKh = np.ma.array(PCKh, mask=False)
    PCKh.mask[6:8] = True
    jnt_count = np.ma.array(jnt_count, mask=False)
    jnt_count.mask[6:8] = True
    jnt_ratio = jnt_count / np.sum(jnt_count).astype(np.float64)
    name_value = [
        ("Head", PCKh[head]),
        ("Shoulder", 0.5 * (PCKh[lsho] + PCKh[rsho])),
        ("Elbow", 0.5 * (PCKh[lelb] + PCKh[relb])),
        ("Wrist", 0.5 * (PCKh[lwri] + PCKh[rwri])),
        ("Hip", 0.5 * (PCKh[lhip] + PCKh[rhip])),
        ("Knee", 0.5 * (PCKh[lkne] + PCKh[rkne])),
        ("Ankle", 0.5 * (PCKh[lank] + PCKh[rank])),
        ("Mean", np.sum(PCKh * jnt_ratio)),
        ("Mean@0.1", np.sum(pckAll[11, :] * jnt_ratio)),
    ]
    return OrderedDict(name_value)


@pytest.fixture(scope="module")
def gt_files(coco_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    people = mpii_people(coco_mini / COCO_ANN)
    annot = tmp_path_factory.mktemp("mpii") / "annot"
    write_hrnet_mpii(people, annot, "valid")
    return annot / "gt_valid.mat", people


def max_difference_to_reference(gt_file: Path, people: list[dict], seeds: range) -> float:
    """Largest |ours - reference| over every table entry and seed (random predictions around the truth)."""
    gt = load_gt_mat(gt_file)
    worst = 0.0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        truth = np.stack([p["joints"] for p in people])
        head = np.linalg.norm(gt.headboxes[:, 1] - gt.headboxes[:, 0], axis=1)[:, None, None]
        # errors from 0 to ~1.5 head sizes, so every threshold sees hits and misses
        preds = truth + rng.normal(size=truth.shape) * head * rng.uniform(0.0, 0.6, size=(len(people), 16, 1))
        ours = pckh(preds, gt).table
        ref = hrnet_evaluate(preds, gt_file)
        assert list(ours) == list(ref)
        worst = max(worst, max(abs(ours[k] - float(ref[k])) for k in ref))
    return worst


def test_pckh_equals_hrnet_evaluate_on_random_predictions(gt_files: tuple[Path, list[dict]]) -> None:
    gt_file, people = gt_files
    assert len(people) >= 40
    assert max_difference_to_reference(gt_file, people, range(20)) == 0.0


def test_pckh_known_cases(gt_files: tuple[Path, list[dict]]) -> None:
    gt = load_gt_mat(gt_files[0])
    perfect = pckh(gt.joints, gt).table
    assert all(v == 100.0 for v in perfect.values())
    far = pckh(gt.joints + 1e4, gt).table
    assert all(v == 0.0 for v in far.values())
    # pelvis and thorax (6, 7) are dropped from the mean: moving them changes nothing
    moved = gt.joints.copy()
    moved[:, 6:8] += 1e4
    assert pckh(moved, gt).table == perfect
    # a wrong wrist only: Wrist falls to 0, the others stay
    wrong = gt.joints.copy()
    wrong[:, [10, 15]] += 1e4
    t = pckh(wrong, gt).table
    assert t["Wrist"] == 0.0 and t["Head"] == 100.0 and 0 < t["Mean"] < 100
    # exactly at 0.5 head sizes counts as correct (<=)
    one = MpiiGroundTruth(np.zeros((1, 16, 2)), np.ones((1, 16), bool), np.array([[[0.0, 0.0], [10.0, 0.0]]]))
    at = np.zeros((1, 16, 2))
    at[0, :, 0] = 0.5 * 0.6 * 10.0
    assert pckh(at, one).table["Mean"] == 100.0
    assert "| Head | Shoulder |" in format_pckh(t)


def test_gt_mat_errors_name_the_file_and_field(tmp_path: Path) -> None:
    from scipy.io import savemat

    bad = tmp_path / "gt_valid.mat"
    savemat(bad, {"jnt_missing": np.zeros((16, 2)), "pos_gt_src": np.zeros((16, 2, 2))})
    with pytest.raises(DataError, match=r"gt_valid.mat: lacks field\(s\) \['dataset_joints', 'headboxes_src'\]"):
        load_gt_mat(bad)
    names = np.empty((1, 16), dtype=object)
    names[0, :] = ["x"] * 16
    savemat(bad, {"dataset_joints": names, "jnt_missing": np.zeros((16, 2)), "pos_gt_src": np.zeros((16, 2, 2)),
                  "headboxes_src": np.zeros((2, 2, 2))})  # fmt: skip
    with pytest.raises(DataError, match="dataset_joints"):
        load_gt_mat(bad)
    notmat = tmp_path / "x.mat"
    notmat.write_text("hello")
    with pytest.raises(DataError, match="not a readable MATLAB"):
        load_gt_mat(notmat)
