"""MPII loaders: HRNet's json layout and the official .mat, converted to pixel boxes at the boundary.

The center/scale rule is HRNet's ``lib/dataset/mpii.py`` ``MPIIDataset._get_db``
(leoxiaobin/deep-high-resolution-net.pytorch), transcribed in :func:`hrnet_get_db_center_scale`.
Files are written from coco-mini people by tests/dataset_files.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_files import mpii_order_of_official, mpii_people, write_hrnet_mpii, write_official_mpii

from hsrpose.data.datasets import data_root_files, file_layout, ground_truth, load_dataset
from hsrpose.data.geometry import box_to_center_size
from hsrpose.data.keypoints import MPII_KEYPOINTS
from hsrpose.data.mpii import hrnet_center_scale, load_mpii, load_mpii_ground_truth, person_box
from hsrpose.errors import DataError, HsrposeError
from hsrpose.evaluation.scorers import MpiiScorer

COCO_ANN = Path("annotations") / "person_keypoints_train2017.json"


def hrnet_get_db_center_scale(center: list[float], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Transcription of the center/scale lines of HRNet ``MPIIDataset._get_db``."""
    c = np.array(center, dtype=np.float64)
    s = np.array([scale, scale], dtype=np.float64)
    if c[0] != -1:
        c[1] = c[1] + 15 * s[1]
        s = s * 1.25
    c = c - 1
    return c, s


@pytest.fixture(scope="module")
def people(coco_mini: Path) -> list[dict]:
    return mpii_people(coco_mini / COCO_ANN)


@pytest.fixture(scope="module")
def files(people: list[dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mpii")
    js = write_hrnet_mpii(people, root / "annot", "valid")
    mat = write_official_mpii(people, root / "mpii_human_pose_v1_u12_1.mat")
    return js, mat


@pytest.mark.parametrize("center,scale", [([320.0, 240.0], 2.5), ([10.5, 700.25], 0.8), ([-1.0, 50.0], 1.0)])
def test_center_scale_rule_is_hrnets(center: list[float], scale: float) -> None:
    c_ref, s_ref = hrnet_get_db_center_scale(center, scale)
    c, s = hrnet_center_scale(np.array(center), scale)
    np.testing.assert_array_equal(c, c_ref)
    assert s == s_ref[0] == s_ref[1]
    if center[0] == -1:
        return
    # The instance box, padded by 1.25 at the model's 1:1 aspect, is HRNet's crop: side 200 * s.
    crop_center, size_wh = box_to_center_size(person_box(np.array(center), scale), aspect_wh=1.0, padding=1.25)
    np.testing.assert_allclose(crop_center, c_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(size_wh, 200.0 * s_ref, rtol=1e-12)


def test_hrnet_json_instances(files: tuple[Path, Path], people: list[dict]) -> None:
    js, _ = files
    assert file_layout(js) == "mpii"
    name, loaded = load_dataset("auto", js, mode="gt")
    assert name == "mpii" and loaded.keypoint_info == MPII_KEYPOINTS
    assert [i.ann_id for i in loaded.instances] == list(range(len(people)))
    for inst, p in zip(loaded.instances, people):
        assert inst.file_name == p["image"]
        lab = inst.keypoints[:, 2] > 0
        np.testing.assert_array_equal(lab, p["labelled"])
        np.testing.assert_allclose(inst.keypoints[lab, :2], p["joints"][lab], atol=1e-9)  # back in 0-based px
        # the crop is centred on the person's box and is 1.25 x its longer side
        x, y, w, h = p["box"]
        c, size = box_to_center_size(inst.box_xywh, 1.0, 1.25)
        np.testing.assert_allclose(c, [x + w / 2, y + h / 2], atol=1e-9)
        np.testing.assert_allclose(size, [1.25 * max(w, h)] * 2, rtol=1e-12)
    same_image = [i.image_id for i in loaded.instances if i.file_name == loaded.instances[0].file_name]
    assert len(set(same_image)) == 1


def test_official_mat_gives_the_same_people(files: tuple[Path, Path], people: list[dict]) -> None:
    js, mat = files
    name, from_mat = load_dataset("auto", mat, mode="gt")
    assert name == "mpii" and from_mat.report.num_skipped == 0
    from_json = load_mpii(js, mode="gt").instances
    order = mpii_order_of_official(people)
    assert len(from_mat.instances) == len(order)
    for inst, k in zip(from_mat.instances, order):
        ref = from_json[k]
        assert inst.file_name == ref.file_name
        np.testing.assert_allclose(inst.box_xywh, ref.box_xywh, atol=1e-9)
        np.testing.assert_allclose(inst.keypoints, ref.keypoints, atol=1e-9)
    # PCKh ground truth: from the .mat's own head boxes, the json's from gt_valid.mat
    g_mat, g_json = load_mpii_ground_truth(mat), load_mpii_ground_truth(js)
    np.testing.assert_allclose(g_mat.headboxes, g_json.headboxes[order], atol=1e-9)
    np.testing.assert_array_equal(g_mat.visible, g_json.visible[order])
    assert isinstance(ground_truth("mpii", mat), MpiiScorer)


def test_bad_records_are_named_counted_and_skipped(people: list[dict], tmp_path: Path) -> None:
    js = write_hrnet_mpii(people[:5], tmp_path / "annot", "train")
    recs = json.loads(js.read_text())
    recs[1]["joints"] = recs[1]["joints"][:15]  # wrong joint count
    recs[3]["scale"] = -1
    js.write_text(json.dumps(recs))
    loaded = load_mpii(js)
    assert [i.ann_id for i in loaded.instances] == [0, 2, 4]
    assert loaded.report.skipped == {"bad joints": 1, "bad center/scale": 1}
    assert "record [1]" in loaded.report.examples["bad joints"][0] and "15 joints" in loaded.report.examples["bad joints"][0]
    # the official .mat: a person without head box is skipped and named
    mat = write_official_mpii(people[:5], tmp_path / "m.mat", drop_head_of=2)
    loaded = load_mpii(mat)
    assert len(loaded.instances) == 4 and loaded.report.skipped == {"missing head box": 1}
    assert "annorect" in loaded.report.examples["missing head box"][0]


def test_malformed_files_raise_naming_the_file(people: list[dict], tmp_path: Path) -> None:
    from scipy.io import savemat

    bad = tmp_path / "wrong.mat"
    savemat(bad, {"annolist": np.zeros(3)})
    with pytest.raises(DataError, match="wrong.mat: no RELEASE struct"):
        load_mpii(bad)
    lst = tmp_path / "valid.json"
    lst.write_text(json.dumps([{"image": "a.jpg", "center": [1, 2]}]))
    with pytest.raises(DataError, match=r"valid.json: record \[0\] lacks field\(s\) \['scale'\]"):
        load_mpii(lst)
    lst.write_text(json.dumps([{"image": "a.jpg", "center": [1, 2], "scale": 1.0, "joints": [[1, 1]] * 16, "joints_vis": [1] * 16}]))
    with pytest.raises(DataError, match="gt_valid.mat next to it"):
        load_mpii_ground_truth(lst)
    # a switch that does not fit the file fails at once
    with pytest.raises(DataError, match="MPII annotation file"):
        load_dataset("coco", lst)
    with pytest.raises(HsrposeError, match="detection file"):
        load_dataset("mpii", lst, mode="det", det_file=lst)


def test_data_root_layouts(files: tuple[Path, Path], tmp_path: Path) -> None:
    js, _ = files
    root = js.parent.parent
    (root / "annot" / "train.json").write_text(js.read_text())
    assert data_root_files(root)[0] == "mpii"
    assert data_root_files(root)[1]["val_ann"] == root / "annot" / "valid.json"
    assert data_root_files(tmp_path)[0] == "coco"
