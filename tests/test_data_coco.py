"""Loading COCO keypoint files: protocol filters, detection boxes, bad records, malformed files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO

from hsrpose.data.coco import load_coco, load_coco_instances
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.errors import DataError


def _ann(coco_mini: Path) -> Path:
    return coco_mini / "annotations" / "person_keypoints_train2017.json"


@pytest.fixture(scope="module")
def coco_dict(coco_mini: Path) -> dict[str, Any]:
    return json.loads(_ann(coco_mini).read_text())


def _write(tmp_path: Path, obj: Any, name: str = "ann.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def test_train_instances_match_pycocotools(coco_mini: Path) -> None:
    res = load_coco(_ann(coco_mini))
    coco = COCO(str(_ann(coco_mini)))
    expected = {
        a["id"]
        for a in coco.loadAnns(coco.getAnnIds(catIds=[1]))
        if not a["iscrowd"] and a["num_keypoints"] > 0 and a["area"] > 0
    }
    assert {i.ann_id for i in res.instances} == expected
    assert res.keypoint_info == COCO_KEYPOINTS  # from the categories entry
    assert res.report.num_skipped == 0 and res.report.kept == len(expected)
    for inst in res.instances:
        img = coco.imgs[inst.image_id]
        ann = coco.anns[inst.ann_id]
        assert inst.file_name == img["file_name"] and inst.image_hw == (img["height"], img["width"])
        np.testing.assert_array_equal(inst.keypoints, np.asarray(ann["keypoints"], float).reshape(17, 3))
        x, y, w, h = inst.box_xywh  # clipped into the image, reference w-1 convention
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= img["width"] - 1 and y + h <= img["height"] - 1
        assert inst.score == 1.0


def test_bad_records_are_skipped_and_counted(tmp_path: Path, coco_mini: Path, coco_dict: dict[str, Any]) -> None:
    d = copy.deepcopy(coco_dict)
    good = [i for i, a in enumerate(d["annotations"]) if a["num_keypoints"] > 0 and not a["iscrowd"]]
    bad_ids = {}
    d["annotations"][good[0]]["keypoints"] = d["annotations"][good[0]]["keypoints"][:-3]  # wrong length
    bad_ids[d["annotations"][good[0]]["id"]] = "bad keypoints"
    d["annotations"][good[1]]["bbox"] = [float("nan"), 10.0, 50.0, 80.0]
    bad_ids[d["annotations"][good[1]]["id"]] = "bad box"
    d["annotations"][good[2]]["bbox"] = [10.0, 10.0, -5.0, 80.0]
    bad_ids[d["annotations"][good[2]]["id"]] = "bad box"
    d["annotations"][good[3]]["image_id"] = 999_999_999
    bad_ids[d["annotations"][good[3]]["id"]] = "unknown image id"
    p = tmp_path / "ann.json"
    p.write_text(json.dumps(d))  # json writes NaN as the (non-standard) literal NaN, as Python reads it
    res = load_coco(p)
    assert res.report.skipped == {"bad keypoints": 1, "bad box": 2, "unknown image id": 1}
    kept = {i.ann_id for i in res.instances}
    assert kept.isdisjoint(bad_ids) and len(kept) == len(good) - 4
    text = " ".join(m for ms in res.report.examples.values() for m in ms)
    for ann_id in bad_ids:
        assert f"annotation id {ann_id}" in text
    assert "skipped bad records" in res.report.summary()


def test_detection_boxes(tmp_path: Path, coco_mini: Path, coco_dict: dict[str, Any]) -> None:
    img = coco_dict["images"][0]
    dets = [
        {"image_id": img["id"], "category_id": 1, "bbox": [10, 20, 100, 200], "score": 0.9},
        {"image_id": img["id"], "category_id": 1, "bbox": [10, 20, 100, 200], "score": 0.0},
        {"image_id": img["id"], "category_id": 2, "bbox": [10, 20, 100, 200], "score": 0.9},
        {"image_id": 123456789, "category_id": 1, "bbox": [10, 20, 100, 200], "score": 0.9},
        {"image_id": img["id"], "category_id": 1, "bbox": [10, 20, float("nan"), 200], "score": 0.9},
        {"image_id": img["id"], "category_id": 1, "bbox": [10, 20, 0, 200], "score": 0.9},  # HRNet keeps w = 0
        {"image_id": img["id"], "category_id": 1, "bbox": [-50.5, 20, 1e5, 200], "score": 0.3},  # not clipped
    ]
    det = tmp_path / "dets.json"
    det.write_text(json.dumps(dets))
    res = load_coco(_ann(coco_mini), mode="det", det_file=det)  # protocol default threshold 0.0 keeps score 0
    assert [i.ann_id for i in res.instances] == [0, 1, 5, 6]
    assert res.instances[0].file_name == img["file_name"] and res.instances[0].score == 0.9
    assert not res.instances[0].keypoints.any() and res.instances[0].keypoints.shape == (17, 3)
    assert res.instances[3].box_xywh.tolist() == [-50.5, 20, 1e5, 200] and res.instances[3].box_xywh.dtype == np.float64
    assert res.report.skipped == {"unknown image id": 1, "bad box": 1}
    assert res.report.filtered["other category"] == 1
    high = load_coco_instances(_ann(coco_mini), mode="det", det_file=det, score_thr=0.5)
    assert [i.ann_id for i in high] == [0, 5]
    with pytest.raises(DataError, match=r"detections\[0\]"):
        load_coco(_ann(coco_mini), mode="det", det_file=_write(tmp_path, [{"bbox": [1, 2, 3, 4]}], "d2.json"))


def test_malformed_files_name_the_location(tmp_path: Path, coco_dict: dict[str, Any]) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"images": [],\n "annotations": [}\n')
    with pytest.raises(DataError, match=r"bad\.json: invalid JSON at line 2, column 18"):
        load_coco(bad_json)
    with pytest.raises(DataError, match="file not found"):
        load_coco(tmp_path / "missing.json")
    with pytest.raises(DataError, match="top level must be a JSON object"):
        load_coco(_write(tmp_path, [1, 2]))
    d = {k: v for k, v in coco_dict.items() if k != "annotations"}
    with pytest.raises(DataError, match="missing top-level 'annotations'"):
        load_coco(_write(tmp_path, d))
    d = copy.deepcopy(coco_dict)
    d["annotations"][3] = "oops"
    with pytest.raises(DataError, match=r"annotations\[3\] is a str"):
        load_coco(_write(tmp_path, d))
    d = copy.deepcopy(coco_dict)
    ann_id = d["annotations"][5]["id"]
    del d["annotations"][5]["image_id"]
    with pytest.raises(DataError, match=rf"annotations\[5\] \(id {ann_id}\) lacks field\(s\) \['image_id'\]"):
        load_coco(_write(tmp_path, d))
    d = copy.deepcopy(coco_dict)
    del d["images"][2]["file_name"]
    with pytest.raises(DataError, match=r"images\[2\]"):
        load_coco(_write(tmp_path, d))
    d = copy.deepcopy(coco_dict)
    del d["categories"][0]["keypoints"]
    with pytest.raises(DataError, match="categories have 'keypoints'"):
        load_coco(_write(tmp_path, d))


def test_custom_keypoint_set_from_category(tmp_path: Path) -> None:
    d = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "categories": [{"id": 7, "name": "hand", "keypoints": ["wrist", "thumb", "index"], "skeleton": [[1, 2], [1, 3]]}],
        "annotations": [
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [5, 5, 40, 30], "area": 900, "iscrowd": 0,
             "keypoints": [10, 10, 2, 20, 20, 1, 0, 0, 0]},
            {"id": 4, "image_id": 1, "category_id": 7, "bbox": [5, 5, 40, 30], "area": 900, "iscrowd": 0,
             "keypoints": [10, 10, 2, 20, 20, 1, 0, 0, 0, 1, 1, 1]},
        ],
    }  # fmt: skip
    p = _write(tmp_path, d)
    with pytest.raises(DataError, match="needs OKS sigmas"):
        load_coco(p)
    res = load_coco(p, flip_pairs=[[1, 2]], oks_sigmas=[0.05, 0.03, 0.03])
    assert res.keypoint_info.names == ("wrist", "thumb", "index")
    assert res.keypoint_info.skeleton == ((0, 1), (0, 2)) and res.keypoint_info.flip_index == [0, 2, 1]
    assert [i.ann_id for i in res.instances] == [3] and res.instances[0].keypoints.shape == (3, 3)
    assert res.report.skipped == {"bad keypoints": 1}  # annotation 4 has 4 keypoints
    np.testing.assert_allclose(res.instances[0].box_xywh, [5, 5, 39, 29])  # reference w-1 clipping
