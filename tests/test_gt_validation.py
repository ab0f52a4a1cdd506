"""Ground truth is checked before any scorer sees it, with the record rules of data loading.

A bad annotation (wrong keypoint length, NaN, negative box, orphan image id, unknown
category, a field COCOeval reads missing) is skipped with one warning line naming the
annotation id and the field; scoring then equals scoring the file without that record,
with every backend. A malformed file is an error with line and column. In training, a
validation that fails cannot lose the epoch.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from hsrpose.cli import main
from hsrpose.data.coco import load_coco
from hsrpose.errors import DataError, HsrposeError
from hsrpose.evaluation.cocoeval import BACKENDS, load_gt, score_results, validate_gt
from test_cocoeval import ANN, make_results, pycocotools_reference

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty ground-truth check cache per test (``hsrpose score`` caches clean ground truth)."""
    monkeypatch.setenv("HSRPOSE_CACHE_DIR", str(tmp_path / "cache"))


def _set(**kw: Any) -> Edit:
    return lambda a: a.update(kw)


def _nan_keypoint(a: dict[str, Any]) -> None:
    a["keypoints"] = list(a["keypoints"])
    a["keypoints"][4] = math.nan


def _drop(field: str) -> Edit:
    return lambda a: a.pop(field)


# kind -> (edit of one annotation, LoadReport reason, text the warning must hold besides the id)
BAD_KINDS: dict[str, tuple[Edit, str, str]] = {
    "keypoint_length": (_set(keypoints=[1.0] * 50), "bad keypoints", "keypoints has 50 values, expected 51"),
    "keypoint_nan": (_nan_keypoint, "bad keypoints", "keypoints has non-finite values"),
    "negative_box": (_set(bbox=[10.0, 10.0, -5.0, 80.0]), "bad box", "bbox [10.0, 10.0, -5.0, 80.0]"),
    "orphan_image_id": (_set(image_id=987654321), "unknown image id", "image_id 987654321 has no entry in 'images'"),
    "unknown_category": (_set(category_id=77), "unknown category", "category_id 77 has no entry in 'categories'"),
    "missing_num_keypoints": (_drop("num_keypoints"), "missing field", "no 'num_keypoints'"),
}


@pytest.fixture(scope="module")
def gt(coco_mini: Path) -> dict[str, Any]:
    return json.loads((coco_mini / ANN).read_text())


def _persons(gt: dict[str, Any]) -> list[int]:
    return [i for i, a in enumerate(gt["annotations"]) if a["num_keypoints"] > 0 and not a["iscrowd"]]


def _with_bad(gt: dict[str, Any], kinds: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[int, str]]:
    """(ground truth with one bad record per kind, the same without those records, ann id -> kind)."""
    bad = copy.deepcopy(gt)
    targets = _persons(bad)[: len(kinds)]
    by_id = {}
    for i, kind in zip(targets, kinds):
        BAD_KINDS[kind][0](bad["annotations"][i])
        by_id[bad["annotations"][i]["id"]] = kind
    clean = {**gt, "annotations": [a for i, a in enumerate(gt["annotations"]) if i not in set(targets)]}
    return bad, clean, by_id


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(BAD_KINDS))
def test_bad_record_skipped_with_one_warning(
    kind: str, backend: str, gt: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad, clean, by_id = _with_bad(gt, [kind])
    (ann_id,) = by_id
    bad_path, clean_path = tmp_path / "bad.json", tmp_path / "clean.json"
    bad_path.write_text(json.dumps(bad))  # NaN is written as the literal NaN, which json reads back
    clean_path.write_text(json.dumps(clean))
    results = make_results(gt, noise=0.03, dup=0.2, extra=30, seed=5)
    with caplog.at_level(logging.WARNING):
        metrics = score_results(bad_path, results, backend=backend)
    assert metrics == pycocotools_reference(clean_path, results)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "skipped annotation" in r.getMessage()]
    assert len(lines) == 1
    assert f"annotation id {ann_id} " in lines[0] and BAD_KINDS[kind][2] in lines[0] and str(bad_path) in lines[0]


def test_pycocotools_crashes_on_the_record_we_skip(gt: dict[str, Any], tmp_path: Path) -> None:
    """Why validation is needed: the issue's 50-number keypoint list makes pycocotools raise IndexError."""
    bad, _, _ = _with_bad(gt, ["keypoint_length"])
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(IndexError):
        pycocotools_reference(p, make_results(gt, noise=0.03, seed=5))


def test_scoring_and_loading_apply_the_same_record_rules(gt: dict[str, Any], tmp_path: Path) -> None:
    kinds = [k for k in BAD_KINDS if k != "missing_num_keypoints"]  # a field only COCOeval reads
    bad, _, by_id = _with_bad(gt, kinds)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    loaded = load_coco(p, mode="gt")
    _, report = validate_gt(json.loads(p.read_text()), str(p))
    assert loaded.report.skipped == report.skipped == {
        "bad keypoints": 2, "bad box": 1, "unknown image id": 1, "unknown category": 1,
    }  # fmt: skip
    assert report.kept == len(bad["annotations"]) - len(kinds)
    assert by_id.keys().isdisjoint(a["id"] for a in load_gt(p)["annotations"])
    assert by_id.keys().isdisjoint(i.ann_id for i in loaded.instances)


def test_score_cli_warns_once_per_bad_record(gt: dict[str, Any], tmp_path: Path) -> None:
    """What a user sees: a fresh ``hsrpose score`` process, its stderr."""
    bad, clean, by_id = _with_bad(gt, list(BAD_KINDS))
    gt_path, res_path = tmp_path / "bad_gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(bad))
    res_path.write_text(json.dumps(make_results(gt, noise=0.03, seed=5)))
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "hsrpose.cli", "score", "--gt", str(gt_path), "--results", str(res_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    out, err = proc.stdout, proc.stderr
    assert len(out.strip().splitlines()) == 10
    warned = [line for line in err.splitlines() if "skipped annotation" in line]
    print("\n".join(warned))  # the closing note quotes these (pytest -s)
    assert len(warned) == len(BAD_KINDS)
    for ann_id in by_id:
        assert sum(f"annotation id {ann_id} " in line for line in warned) == 1


def test_loader_then_scorer_warn_once_per_record(gt: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``hsrpose eval`` and training load the instances, then score against the same file checked
    again with the same rules: each bad record is warned about once in all (a record only the
    scorer rejects, a field only COCOeval reads, included), and both checks skip it."""
    from hsrpose.data.datasets import ground_truth, load_dataset

    bad, _, by_id = _with_bad(gt, list(BAD_KINDS))
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    with caplog.at_level(logging.WARNING):
        name, loaded = load_dataset("coco", p, mode="gt")
        checked = ground_truth(name, p, shown=loaded.report.logged)
    warned = [r.getMessage() for r in caplog.records if "skipped annotation" in r.getMessage()]
    assert len(warned) == len(BAD_KINDS)
    for ann_id in by_id:
        assert sum(f"annotation id {ann_id} " in m for m in warned) == 1
    assert by_id.keys().isdisjoint(a["id"] for a in checked["annotations"])
    loader_rejects = {i for i, kind in by_id.items() if kind != "missing_num_keypoints"}  # training needs no num_keypoints
    assert loader_rejects.isdisjoint(i.ann_id for i in loaded.instances)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_gt(p)  # on its own (hsrpose score), the scorer's check warns about every record
    assert sum("skipped annotation" in r.getMessage() for r in caplog.records) == len(BAD_KINDS)


def test_malformed_gt_file_names_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "broken.json"
    p.write_text('{"images": [],\n "annotations": [}\n')
    with pytest.raises(DataError, match=r"broken\.json: invalid JSON at line 2, column 18"):
        load_gt(p)
    res = tmp_path / "r.json"
    res.write_text("[]")
    assert main(["score", "--gt", str(p), "--results", str(res)]) == 1
    assert "line 2, column 18" in capsys.readouterr().err
    p.write_text(json.dumps({"images": [{"id": 1}], "categories": [{"id": 1, "keypoints": ["a"]}], "annotations": ["x"]}))
    with pytest.raises(DataError, match=r"annotations\[0\] is a str"):
        load_gt(p)


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def val_with_bad_record(coco_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import write_coco_subset

    p = write_coco_subset(coco_mini, tmp_path_factory.mktemp("ann") / "four.json", 4)
    d = json.loads(p.read_text())
    i = _persons(d)[1]
    d["annotations"][i]["keypoints"] = [1.0] * 50  # the crash
    p.write_text(json.dumps(d))
    return p


def test_training_validates_on_ground_truth_with_a_bad_record(
    coco_mini: Path, val_with_bad_record: Path, tmp_path: Path, one_torch_thread: None, caplog: pytest.LogCaptureFixture
) -> None:
    from hsrpose.engine.checkpoint import load_checkpoint
    from hsrpose.engine.train import train
    from test_train import small_cfg

    cfg = small_cfg(coco_mini, val_with_bad_record, tmp_path / "run", f"data.val_ann={val_with_bad_record}",
                    f"data.val_images={coco_mini / 'train2017'}", "eval_interval=1", "train_subset=4")  # fmt: skip
    with caplog.at_level(logging.WARNING):
        result = train(cfg)
    bad_id = next(a["id"] for a in json.loads(val_with_bad_record.read_text())["annotations"] if len(a["keypoints"]) == 50)
    # The file is both data.train_ann and data.val_ann here: its loader for training, its loader for
    # validation and the scorer each check it; the validation loader and the scorer warn once together.
    lines = [r.getMessage() for r in caplog.records if f"annotation id {bad_id} " in r.getMessage()]
    assert len(lines) == 2, lines  # the training set's load, then validation's (loader + scorer: once)
    assert 0.0 <= result.final_metrics["AP"] <= 1.0
    ck = load_checkpoint(tmp_path / "run" / "last.pth")
    assert ck["epoch"] == 1 and ck["best_ap"] == result.final_metrics["AP"]


def test_failing_validation_does_not_lose_the_epoch(
    coco_mini: Path, val_with_bad_record: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    import hsrpose.engine.train as engine
    from hsrpose.engine.checkpoint import load_checkpoint
    from test_train import small_cfg

    def failing_validation(*args: Any, **kwargs: Any) -> dict[str, float]:
        raise HsrposeError("validation failed on purpose")

    monkeypatch.setattr(engine, "validate", failing_validation)
    cfg = small_cfg(coco_mini, val_with_bad_record, tmp_path / "run", f"data.val_ann={val_with_bad_record}",
                    f"data.val_images={coco_mini / 'train2017'}", "eval_interval=1", "train_subset=4")  # fmt: skip
    with pytest.raises(HsrposeError, match="on purpose"):
        engine.train(cfg)
    ck = load_checkpoint(tmp_path / "run" / "last.pth")
    assert (ck["epoch"], ck["step"]) == (1, 2)
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
