"""CrowdPose: keypoint set from the category, AP with easy/medium/hard, through the dataset switch.

The reference is xtcocotools' ``COCOeval(gt, dt, "keypoints_crowd", sigmas, use_area=False)``
(the CrowdPose toolkit as mmpose runs it); the comparison runs where xtcocotools is installed
(it ships wheels for Python 3.10/3.11 only). The files are CrowdPose-format JSON written from
coco-mini by tests/dataset_files.py.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from dataset_files import write_crowdpose

from hsrpose.data.datasets import ground_truth, load_dataset
from hsrpose.data.keypoints import CROWDPOSE_KEYPOINTS
from hsrpose.errors import DataError
from hsrpose.evaluation.crowdpose import CROWDPOSE_METRIC_NAMES, score_crowdpose
from hsrpose.evaluation.scorers import CrowdPoseScorer

COCO_ANN = Path("annotations") / "person_keypoints_train2017.json"


@pytest.fixture(scope="module")
def crowd_file(coco_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_crowdpose(coco_mini / COCO_ANN, tmp_path_factory.mktemp("crowdpose") / "crowdpose_test.json")


def noisy_results(gt_file: Path, seed: int, noise: float = 0.08) -> list[dict]:
    """Ground truth moved by ``noise`` x box size, random scores, a few misses and false positives."""
    rng = np.random.default_rng(seed)
    d = json.loads(gt_file.read_text())
    out = []
    for a in d["annotations"]:
        if a["iscrowd"] or a["num_keypoints"] == 0 or rng.random() < 0.1:
            continue
        k = np.asarray(a["keypoints"], float).reshape(14, 3)
        size = max(a["bbox"][2], a["bbox"][3])
        k[:, :2] += rng.normal(size=(14, 2)) * noise * size * rng.uniform(0.2, 2.0)
        k[:, 2] = rng.uniform(0.1, 1.0, 14)
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k.reshape(-1).tolist(), "score": float(rng.random())})
        if rng.random() < 0.2:  # a false positive beside the person
            fp = k.copy()
            fp[:, 0] += size
            out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": fp.reshape(-1).tolist(), "score": float(rng.random())})
    return out


def import_xtcocotools() -> tuple[object, object]:
    """xtcocotools' ``coco`` and ``cocoeval`` modules (skip when it is not installed).

    Its 1.14.3 wheels were compiled against numpy 1.x: under numpy 2 the compiled ``_mask``
    fails to import ("numpy.dtype size changed"). Keypoint evaluation never calls the mask
    code, so the reference's Python source is then imported with an empty ``mask`` module.
    """
    pytest.importorskip("xtcocotools")
    try:
        return importlib.import_module("xtcocotools.coco"), importlib.import_module("xtcocotools.cocoeval")
    except ValueError:
        for name in ("xtcocotools.coco", "xtcocotools.cocoeval", "xtcocotools.mask"):
            sys.modules.pop(name, None)
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(sys.modules, "xtcocotools.mask", types.ModuleType("xtcocotools.mask"))
            coco, cocoeval = importlib.import_module("xtcocotools.coco"), importlib.import_module("xtcocotools.cocoeval")
        return coco, cocoeval


def xtcocotools_crowdpose(gt_file: Path, results: list[dict]) -> list[float]:
    xt_coco, xt_eval = import_xtcocotools()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = xt_coco.COCO(str(gt_file))
        dt = gt.loadRes([dict(r) for r in results])
        ev = xt_eval.COCOeval(gt, dt, "keypoints_crowd", np.array(CROWDPOSE_KEYPOINTS.sigmas), use_area=False)
        ev.params.useSegm = None
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def test_keypoint_set_comes_from_the_category(crowd_file: Path) -> None:
    name, loaded = load_dataset("auto", crowd_file, mode="gt")
    assert name == "crowdpose"
    # flip pairs, sigmas and (the file's names past joint 14) skeleton from the known set
    assert loaded.keypoint_info == CROWDPOSE_KEYPOINTS
    assert loaded.keypoint_info.flip_index == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13]
    assert all(i.keypoints.shape == (14, 3) for i in loaded.instances)
    assert isinstance(ground_truth(name, crowd_file), CrowdPoseScorer)
    # --dataset crowdpose on a file with another keypoint set fails at once, naming the file
    other = crowd_file.with_name("other.json")
    d = json.loads(crowd_file.read_text())
    d["categories"][0]["keypoints"] = [f"k{i}" for i in range(14)]
    d["categories"][0]["skeleton"] = [[1, 2]]
    other.write_text(json.dumps(d))
    with pytest.raises(DataError, match="other.json: its keypoints are not the 14 CrowdPose joints"):
        load_dataset("crowdpose", other, oks_sigmas=[0.1] * 14)


def test_split_is_populated(crowd_file: Path) -> None:
    cis = [im["crowdIndex"] for im in json.loads(crowd_file.read_text())["images"]]
    assert min(cis) < 0.2 and any(0.2 <= c < 0.8 for c in cis) and max(cis) >= 0.8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_xtcocotools_keypoints_crowd(crowd_file: Path, seed: int) -> None:
    results = noisy_results(crowd_file, seed)
    ours = score_crowdpose(crowd_file, results, CROWDPOSE_KEYPOINTS.sigmas)
    assert list(ours) == list(CROWDPOSE_METRIC_NAMES)
    ref = xtcocotools_crowdpose(crowd_file, results)
    assert [ours[k] for k in CROWDPOSE_METRIC_NAMES] == ref
    assert 0.05 < ours["AP"] < 0.95  # a set where the numbers mean something


def test_perfect_results_score_one_and_bad_files_are_named(crowd_file: Path, tmp_path: Path) -> None:
    d = json.loads(crowd_file.read_text())
    perfect = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in d["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0
    ]  # fmt: skip
    m = score_crowdpose(crowd_file, perfect, CROWDPOSE_KEYPOINTS.sigmas)
    assert m["AP"] == pytest.approx(1.0) and m["AP(E)"] == 1.0 and m["AP(H)"] == 1.0
    del d["images"][0]["crowdIndex"]
    bad = tmp_path / "no_crowd_index.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(DataError, match=r"no_crowd_index.json: images\[0\] .* 'crowdIndex'"):
        score_crowdpose(bad, perfect, CROWDPOSE_KEYPOINTS.sigmas)


def test_bad_record_warned_once_by_loader_and_scorer(crowd_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``hsrpose eval --dataset crowdpose``: the loader warns about a bad record, and the CrowdPose
    scorer, checking the same file with the same rules when it scores, does not warn again."""
    import logging

    from hsrpose.engine.eval_config import EvalConfig
    from hsrpose.engine.evaluate import Predictions

    d = json.loads(crowd_file.read_text())
    victim = next(a for a in d["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0)
    victim["keypoints"] = victim["keypoints"][:40]
    bad = tmp_path / "crowd_bad.json"
    bad.write_text(json.dumps(d))
    with caplog.at_level(logging.WARNING):
        name, loaded = load_dataset("crowdpose", bad, mode="gt")
        scorer = ground_truth(name, bad, shown=loaded.report.logged)
        good = [a for a in d["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0 and a is not victim]
        preds = Predictions(
            image_id=np.array([a["image_id"] for a in good]), ann_id=np.array([a["id"] for a in good]),
            keypoints=np.array([a["keypoints"] for a in good], float).reshape(len(good), 14, 3),
            box_score=np.ones(len(good)), area=np.array([a["bbox"][2] * a["bbox"][3] for a in good], float),
            index=np.arange(len(good)),
        )  # fmt: skip
        _, metrics = scorer.finalize(preds, loaded.keypoint_info, EvalConfig())
    lines = [r.getMessage() for r in caplog.records if f"annotation id {victim['id']} " in r.getMessage()]
    assert len(lines) == 1 and "keypoints has 40 values" in lines[0]
    assert 0.9 < metrics["AP"] <= 1.0
