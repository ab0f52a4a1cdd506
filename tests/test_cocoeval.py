"""COCO keypoint scoring: `hsrpose score` against plain pycocotools on coco-mini, result validation."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hsrpose.cli import main
from hsrpose.errors import HsrposeError, ResultsError
from hsrpose.evaluation.cocoeval import METRIC_NAMES, format_metrics, score_results
from hsrpose.evaluation.results import validate_results

ANN = Path("annotations") / "person_keypoints_train2017.json"


@pytest.fixture(scope="module")
def gt_path(coco_mini: Path) -> Path:
    return coco_mini / ANN


@pytest.fixture(scope="module")
def gt(gt_path: Path) -> dict[str, Any]:
    return json.loads(gt_path.read_text())


def make_results(
    gt: dict[str, Any],
    noise: float = 0.0,
    drop: float = 0.0,
    dup: float = 0.0,
    extra: int = 0,
    seed: int = 0,
    constant_score: float | None = None,
    on_crowd: int = 0,
    on_empty: int = 0,
) -> list[dict[str, Any]]:
    """Results derived from the ground truth.

    noise: std of Gaussian noise on x, y as a fraction of sqrt(area); drop: probability of
    leaving an instance out; dup: probability of adding a jittered duplicate; extra: number
    of false detections with random keypoints on random images; on_crowd: detections with
    random keypoints inside crowd regions (COCOeval ignores the matches); on_empty: false
    detections on images without ground truth; constant_score: every score equal (ties).
    """
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for a in gt["annotations"]:
        if a.get("iscrowd", 0) or a["num_keypoints"] == 0:
            continue
        if rng.random() < drop:
            continue
        k = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        k[:, :2] += rng.normal(0.0, noise * math.sqrt(a["area"]) + 1e-9, (len(k), 2))
        k[:, 2] = rng.random(len(k))
        score = constant_score if constant_score is not None else float(rng.random())
        out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k.ravel().tolist(), "score": score})
        if rng.random() < dup:
            k2 = k.copy()
            k2[:, :2] += rng.normal(0.0, 3.0, (len(k), 2))
            out.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k2.ravel().tolist(), "score": float(rng.random())})
    for _ in range(extra):
        im = gt["images"][int(rng.integers(len(gt["images"])))]
        k = np.stack([rng.uniform(0, im["width"], 17), rng.uniform(0, im["height"], 17), rng.random(17)], axis=1)
        out.append({"image_id": im["id"], "category_id": 1, "keypoints": k.ravel().tolist(), "score": float(rng.random())})
    crowds = [a for a in gt["annotations"] if a.get("iscrowd", 0)]
    for _ in range(on_crowd if crowds else 0):
        c = crowds[int(rng.integers(len(crowds)))]
        x, y, w, h = c["bbox"]
        k = np.stack([rng.uniform(x, x + w, 17), rng.uniform(y, y + h, 17), rng.random(17)], axis=1)
        score = constant_score if constant_score is not None else float(rng.random())
        out.append({"image_id": c["image_id"], "category_id": 1, "keypoints": k.ravel().tolist(), "score": score})
    with_gt = {a["image_id"] for a in gt["annotations"]}
    empty = [im for im in gt["images"] if im["id"] not in with_gt]
    for _ in range(on_empty if empty else 0):
        im = empty[int(rng.integers(len(empty)))]
        k = np.stack([rng.uniform(0, im["width"], 17), rng.uniform(0, im["height"], 17), rng.random(17)], axis=1)
        out.append({"image_id": im["id"], "category_id": 1, "keypoints": k.ravel().tolist(), "score": float(rng.random())})
    return out


def pycocotools_reference(gt_path: Path, results: list[dict[str, Any]], sigmas: np.ndarray | None = None) -> dict[str, float]:
    """The ten numbers straight from pycocotools, used the way its README shows."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(METRIC_NAMES, (float(s) for s in ev.stats)))


CASES = {
    "gt_as_predictions": dict(constant_score=1.0),
    "noise_0.01": dict(noise=0.01, seed=1),
    "noise_0.05": dict(noise=0.05, seed=2),
    "noise_0.15": dict(noise=0.15, seed=3),
    "dropped": dict(noise=0.03, drop=0.3, seed=4),
    "duplicated": dict(noise=0.03, dup=0.5, seed=5),
    "extra_false": dict(noise=0.03, extra=200, seed=6),
    "all_at_once": dict(noise=0.05, drop=0.2, dup=0.3, extra=80, seed=7),
    "ties": dict(noise=0.05, dup=0.4, extra=40, constant_score=0.5, seed=8),
    "crowd_regions": dict(noise=0.03, on_crowd=8, seed=9),
    "images_without_gt": dict(noise=0.03, on_empty=100, seed=10),
}


@pytest.mark.parametrize("case", list(CASES))
def test_score_cli_equals_pycocotools(case: str, gt: dict[str, Any], gt_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = make_results(gt, **CASES[case])
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(results))
    ref = pycocotools_reference(gt_path, results)

    assert main(["score", "--gt", str(gt_path), "--results", str(res_path)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed == format_metrics(ref).splitlines()
    assert [line.split()[0] for line in printed] == list(METRIC_NAMES)
    # The default backend's numbers are bit-identical to the reference, not only when printed.
    assert score_results(gt_path, results) == ref
    assert score_results(gt_path, results, backend="pycocotools") == ref
    if case == "gt_as_predictions":
        assert ref["AP"] == 1.0 and ref["AR"] == 1.0
    if case == "crowd_regions":  # the case does exercise crowd matching: detections on crowds are ignored (few: maxDets 20)
        n = CASES[case]["on_crowd"]
        assert ref == pycocotools_reference(gt_path, results[:-n])
        assert ref != pycocotools_reference(gt_path, [dict(r, image_id=results[0]["image_id"]) for r in results[-n:]] + results[:-n])


def test_noise_lowers_ap(gt: dict[str, Any]) -> None:
    aps = [score_results(gt, make_results(gt, noise=n, seed=11))["AP"] for n in (0.0, 0.02, 0.08, 0.3)]
    assert aps[0] == 1.0
    assert aps == sorted(aps, reverse=True) and aps[-1] < 0.05


FACE_SIGMAS = np.array([0.05, 0.04, 0.04, 0.06, 0.06])


def face_case(gt: dict[str, Any], folder: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The first 5 keypoints (the face) as a custom keypoint set: its ground-truth file in
    ``folder`` and noisy results with duplicates (scored with :data:`FACE_SIGMAS`)."""
    keep = len(FACE_SIGMAS)
    sub = copy.deepcopy(gt)
    sub["categories"][0]["keypoints"] = sub["categories"][0]["keypoints"][:keep]
    sub["categories"][0]["skeleton"] = []
    for a in sub["annotations"]:
        a["keypoints"] = a["keypoints"][: 3 * keep]
        a["num_keypoints"] = sum(1 for v in a["keypoints"][2::3] if v > 0)
    sub_path = folder / "face.json"
    sub_path.write_text(json.dumps(sub))
    results = make_results(sub, noise=0.02, dup=0.2, seed=3)
    for r in results:
        r["keypoints"] = r["keypoints"][: 3 * keep]
    return sub_path, results


def test_custom_keypoint_set_with_sigmas(gt: dict[str, Any], gt_path: Path, tmp_path: Path) -> None:
    """A 5-keypoint set (the face) with its own sigmas, scored the same way by both backends."""
    sub_path, results = face_case(gt, tmp_path)
    sigmas = FACE_SIGMAS
    ref = pycocotools_reference(sub_path, results, sigmas=sigmas)
    assert score_results(sub_path, results, sigmas=sigmas) == ref
    assert score_results(sub_path, results, sigmas=sigmas, backend="pycocotools") == ref
    # Larger sigmas are more tolerant: AP must not drop.
    assert score_results(sub_path, results, sigmas=sigmas * 3)["AP"] >= ref["AP"]
    with pytest.raises(HsrposeError, match="5 keypoints"):
        score_results(sub_path, results)
    with pytest.raises(HsrposeError, match="3 OKS sigmas given for 5"):
        score_results(sub_path, results, sigmas=[0.1, 0.1, 0.1])


def test_score_cli_sigmas_option(gt: dict[str, Any], gt_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = make_results(gt, noise=0.04, seed=9)
    res_path = tmp_path / "r.json"
    res_path.write_text(json.dumps(results))
    sigmas = np.full(17, 0.05)
    ref = pycocotools_reference(gt_path, results, sigmas=sigmas)
    assert main(["score", "--gt", str(gt_path), "--results", str(res_path), "--sigmas", ",".join(["0.05"] * 17)]) == 0
    assert capsys.readouterr().out.strip() == format_metrics(ref)


def test_empty_results_score_zero(gt: dict[str, Any]) -> None:
    m = score_results(gt, [])
    assert m["AP"] == 0.0 and m["AR"] == 0.0
    assert score_results(gt, [], backend="pycocotools") == m


def test_inputs_not_modified(gt: dict[str, Any]) -> None:
    results = make_results(gt, noise=0.02, seed=1)
    before_r, before_g = copy.deepcopy(results), copy.deepcopy(gt)
    score_results(gt, results)
    score_results(gt, results, backend="pycocotools")
    assert results == before_r and gt == before_g


def _bad(results: list[dict[str, Any]], i: int, **change: Any) -> list[dict[str, Any]]:
    out = copy.deepcopy(results)
    for key, value in change.items():
        if value is _DROP:
            del out[i][key]
        else:
            out[i][key] = value
    return out


_DROP = object()


@pytest.mark.parametrize(
    "change, reason",
    [
        (dict(keypoints=[1.0] * 50), "keypoints has 50 numbers, expected 51"),
        (dict(image_id=987654321), "unknown image_id 987654321"),
        (dict(score=float("nan")), "score nan is not a finite number"),
        (dict(score=_DROP), "missing 'score'"),
        (dict(category_id=2), "category_id 2 is not a keypoint category"),
        (dict(image_id="12"), "image_id '12' is not an integer"),
        (dict(keypoints=[1.0] * 20 + [float("nan")] + [1.0] * 30), r"keypoints\[20\] is nan"),
        (dict(keypoints=[1.0] * 10 + ["x"] + [1.0] * 40), r"keypoints\[10\] = 'x' is not a number"),
    ],
)
def test_malformed_entry_rejected_with_index(change: dict[str, Any], reason: str, gt: dict[str, Any]) -> None:
    results = make_results(gt, noise=0.01, seed=2)
    bad = _bad(results, 7, **change)
    with pytest.raises(ResultsError, match=f"entry 7: {reason}"):
        score_results(gt, bad)


def test_malformed_file_cli_message(gt: dict[str, Any], gt_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = _bad(make_results(gt, seed=2), 3, keypoints=[0.0] * 3)
    res_path = tmp_path / "bad.json"
    res_path.write_text(json.dumps(results))
    assert main(["score", "--gt", str(gt_path), "--results", str(res_path)]) == 1
    err = capsys.readouterr().err
    assert str(res_path) in err and "entry 3" in err and "expected 51" in err
    res_path.write_text('{"not": "a list"}')
    assert main(["score", "--gt", str(gt_path), "--results", str(res_path)]) == 1
    assert "JSON list" in capsys.readouterr().err


def test_validate_accepts_good_results(gt: dict[str, Any]) -> None:
    results = make_results(gt, noise=0.01, extra=5, seed=2)
    validate_results(results, {im["id"] for im in gt["images"]}, {1: 17})


def test_results_read_like_load_res(gt: dict[str, Any], gt_path: Path) -> None:
    """Integer keypoints, and entries carrying a 'bbox' (detectron2 style: loadRes then takes the box area)."""
    results = make_results(gt, noise=0.03, dup=0.3, extra=20, seed=12)
    ints = [dict(r, keypoints=[int(round(v)) for v in r["keypoints"]]) for r in results]
    assert score_results(gt_path, ints) == pycocotools_reference(gt_path, ints)
    rng = np.random.default_rng(0)
    boxed = [dict(r, bbox=[float(v) for v in rng.uniform(10, 200, 4)]) for r in results]
    ref = pycocotools_reference(gt_path, boxed)
    assert score_results(gt_path, boxed) == ref
    assert ref != pycocotools_reference(gt_path, results)  # the box area really was used


# ------------------------------------------------------------------ the fast path (hotcoco reads the files)


@pytest.fixture(autouse=True)
def fast_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every test starts with an empty ground-truth check cache of its own (never the user's); returns its dir."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("HSRPOSE_CACHE_DIR", str(cache))
    return cache


def _forbid_python_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the full Python path fail loudly, to prove a call did not take it."""
    import hsrpose.evaluation.cocoeval as ce

    def boom(*_: Any, **__: Any) -> Any:
        raise AssertionError("the results file went through the Python reader")

    monkeypatch.setattr(ce, "load_results", boom)
    monkeypatch.setattr(ce, "load_gt", boom)


@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_equals_pycocotools(
    case: str, gt: dict[str, Any], gt_path: Path, tmp_path: Path, fast_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both files read by hotcoco (first run: ground truth checked and cached; then cached): the ten
    numbers are bit-identical to pycocotools' on every case of the parity matrix."""
    results = make_results(gt, **CASES[case])
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(results))
    ref = pycocotools_reference(gt_path, results)
    assert score_results(gt_path, res_path) == ref  # first run: the ground truth is checked and cached
    assert list(fast_only.glob("gtcheck-*.json"))
    _forbid_python_results(monkeypatch)
    assert score_results(gt_path, res_path) == ref  # hotcoco reads both files
    if case == "all_at_once":  # a writer with another field order and a box per entry: same numbers
        rng = np.random.default_rng(0)
        other = [{"score": r["score"], "bbox": [float(v) for v in rng.uniform(10, 200, 4)], "keypoints": r["keypoints"],
                  "category_id": 1, "image_id": r["image_id"]} for r in results]  # fmt: skip
        res_path.write_text(json.dumps(other, indent=1))
        assert score_results(gt_path, res_path) == pycocotools_reference(gt_path, other)


def test_fast_path_custom_sigmas_and_integer_keypoints(gt: dict[str, Any], gt_path: Path, tmp_path: Path, fast_only: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = make_results(gt, noise=0.03, dup=0.3, extra=20, seed=12)
    ints = [dict(r, keypoints=[int(round(v)) for v in r["keypoints"]]) for r in results]
    res_path = tmp_path / "ints.json"
    res_path.write_text(json.dumps(ints))
    sigmas = np.linspace(0.03, 0.1, 17)
    score_results(gt_path, res_path)  # caches the ground-truth check
    _forbid_python_results(monkeypatch)
    assert score_results(gt_path, res_path) == pycocotools_reference(gt_path, ints)
    assert score_results(gt_path, res_path, sigmas=sigmas) == pycocotools_reference(gt_path, ints, sigmas=sigmas)


_NAN = float("nan")
BAD_FILES = {
    "wrong_keypoint_count": lambda r: _bad(r, 7, keypoints=[1.0] * 50),
    "one_keypoint_too_many": lambda r: _bad(r, 7, keypoints=[1.0] * 52),
    "nan_keypoint": lambda r: _bad(r, 7, keypoints=[1.0] * 20 + [_NAN] + [1.0] * 30),
    "infinite_keypoint": lambda r: _bad(r, 7, keypoints=[1.0] * 20 + [float("inf")] + [1.0] * 30),
    "string_keypoint": lambda r: _bad(r, 7, keypoints=[1.0] * 10 + ["x"] + [1.0] * 40),
    "no_keypoints": lambda r: _bad(r, 7, keypoints=_DROP),
    "null_keypoints": lambda r: _bad(r, 7, keypoints=None),
    "nan_score": lambda r: _bad(r, 7, score=_NAN),
    "infinite_score": lambda r: _bad(r, 7, score=float("inf")),
    "no_score": lambda r: _bad(r, 7, score=_DROP),
    "unknown_image_id": lambda r: _bad(r, 7, image_id=987654321),
    "string_image_id": lambda r: _bad(r, 7, image_id="12"),
    "unknown_category": lambda r: _bad(r, 7, category_id=2),
    "not_an_object": lambda r: r[:7] + [5] + r[8:],
    "not_a_list": lambda r: {"results": r},
}


@pytest.mark.parametrize("case", [*BAD_FILES, "malformed_json"])
def test_bad_results_file_same_one_line_error(
    case: str, gt: dict[str, Any], gt_path: Path, tmp_path: Path, fast_only: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """With the ground-truth check cached (the fast path), a bad results file still gets the one-line
    message of the full Python validator, the same as with ``--backend pycocotools``; nothing else
    is printed (hotcoco's own warnings are silenced)."""
    results = make_results(gt, noise=0.01, seed=2)
    res_path = tmp_path / "bad.json"
    if case == "malformed_json":
        res_path.write_text(json.dumps(results)[:-300])
    else:
        res_path.write_text(json.dumps(BAD_FILES[case](results)))  # NaN and Infinity as Python writes them
    good = tmp_path / "good.json"
    good.write_text(json.dumps(results))
    assert main(["score", "--gt", str(gt_path), "--results", str(good)]) == 0  # caches the ground-truth check
    assert list(fast_only.glob("gtcheck-*.json"))
    capfd.readouterr()
    assert main(["score", "--gt", str(gt_path), "--results", str(res_path)]) == 1
    fast = capfd.readouterr()
    assert main(["score", "--gt", str(gt_path), "--results", str(res_path), "--backend", "pycocotools"]) == 1
    reference = capfd.readouterr()
    assert fast.out == "" and fast.err == reference.err
    assert len(fast.err.strip().splitlines()) == 1 and str(res_path) in fast.err
    if case not in ("not_a_list", "malformed_json"):
        assert "entry 7" in fast.err


def test_changed_ground_truth_is_checked_again(gt: dict[str, Any], tmp_path: Path, fast_only: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The cached verdict is keyed by the file: a ground truth rewritten with a bad record warns again."""
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps(gt))
    results = make_results(gt, noise=0.02, seed=4)
    res_path = tmp_path / "r.json"
    res_path.write_text(json.dumps(results))
    ref = pycocotools_reference(gt_file, results)
    assert score_results(gt_file, res_path) == ref
    bad = copy.deepcopy(gt)
    victim = next(a for a in bad["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"])
    victim["keypoints"] = victim["keypoints"][:50]
    gt_file.write_text(json.dumps(bad))
    caplog.clear()
    with caplog.at_level("WARNING"):
        m = score_results(gt_file, res_path)
    assert f"annotation id {victim['id']}" in caplog.text
    cleaned = copy.deepcopy(bad)
    cleaned["annotations"] = [a for a in cleaned["annotations"] if a["id"] != victim["id"]]
    clean_file = tmp_path / "clean.json"
    clean_file.write_text(json.dumps(cleaned))
    assert m == pycocotools_reference(clean_file, results)


# ------------------------------------------------------------------ the raw-byte check of results files


def _scan_cases(results: list[dict[str, Any]]) -> dict[str, tuple[Any, tuple[int, int] | None]]:
    """name -> (JSON value to write, the verdict scan_results_file must give)."""
    n = len(results)
    reordered = [{"keypoints": r["keypoints"], "score": r["score"], "image_id": r["image_id"], "category_id": 1}
                 for r in results]  # fmt: skip
    boxed_some = [dict(r, bbox=[1.0, 2.0, 3.0, 4.0]) if i % 3 == 0 else r for i, r in enumerate(results)]
    return {
        "uniform": (results, (n, 51)),
        "two_layouts": (boxed_some, (n, 51)),  # not one template: each entry matched on its own
        "other_key_order": (reordered, (n, 51)),
        "ten_keypoints": ([dict(r, keypoints=r["keypoints"][:30]) for r in results], (n, 30)),
        "short_entry": (_bad(results, 7, keypoints=[1.0] * 50), None),
        "long_entry": (_bad(results, n - 1, keypoints=[1.0] * 54), None),
        "empty_keypoints": (_bad(results, 3, keypoints=[]), None),
        "no_keypoints": (_bad(results, 0, keypoints=_DROP), None),
        "null_keypoints": (_bad(results, 5, keypoints=None), None),
        "misspelled_key": ([{("keypoint" if i == 4 and k == "keypoints" else k): v for k, v in r.items()} for i, r in enumerate(results)], None),
        "k_key_instead": ([dict(r, track_id=1) if i == 2 else r for i, r in enumerate(results)], None),
        "string_value": (_bad(results, 2, note="keypoints"), None),
        "nested_object": (_bad(results, 2, extra={"a": 1}), None),
        "object_not_list": ({"results": results}, None),
        "empty_list": ([], None),
    }


def test_scan_results_file_verdicts(gt: dict[str, Any], tmp_path: Path) -> None:
    """The byte check proves exactly 'n entries, each with one keypoints array of L numbers' and
    nothing weaker: every case hotcoco would score silently (short, long, empty, missing, null or
    misspelled keypoints) is 'not proven' (None), so the full validator names the entry."""
    from hsrpose.evaluation.results_scan import scan_results_file

    results = make_results(gt, noise=0.02, dup=0.2, extra=15, seed=3)
    for name, (value, expected) in _scan_cases(results).items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(value, indent=1 if name == "uniform" else None))
        assert scan_results_file(path) == expected, name
    (tmp_path / "blank.json").write_text("  \n")
    assert scan_results_file(tmp_path / "blank.json") is None
    assert scan_results_file(tmp_path / "missing.json") is None


def test_scan_results_file_chunk_boundaries(gt: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading in chunks gives the whole-file verdict at every chunk size, wherever a chunk cuts a
    "keypoints" key (sizes from the key's length up), leading blank lines included."""
    import hsrpose.evaluation.results_scan as fs

    results = make_results(gt, noise=0.02, seed=5)[:6]
    path = tmp_path / "r.json"
    path.write_text("\n" * 13 + json.dumps(results))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_bad(results, 4, keypoints=[1.0] * 48)))
    for size in range(len(fs._KEY), 3 * len(fs._KEY) + 2):
        monkeypatch.setattr(fs, "_CHUNK", size)
        assert fs.scan_results_file(path) == (6, 51), size
        assert fs.scan_results_file(bad) is None, size


def test_results_scan_child_process(gt: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big files are scanned by a child process with the same verdicts; when the child cannot
    start or fails, the scan runs in this process and the verdict is the same."""
    import sys

    from hsrpose.evaluation.fast_score import ResultsScan

    monkeypatch.setattr(ResultsScan, "CHILD_MIN_BYTES", 0)
    results = make_results(gt, noise=0.02, seed=6)
    for name, (value, expected) in _scan_cases(results).items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(value))
        with ResultsScan(path) as scan:
            assert scan._proc is not None  # a child really ran
            assert scan.result() == expected, name
        assert scan._proc.returncode == 0
    path = tmp_path / "uniform.json"
    for broken in (str(tmp_path / "no-such-python"), "/bin/false"):
        monkeypatch.setattr(sys, "executable", broken)
        with ResultsScan(path) as scan:
            assert scan.result() == (len(results), 51), broken
            assert scan.ok(len(results), 17) and not scan.ok(len(results) + 1, 17) and not scan.ok(len(results), 10)


def test_results_scan_child_reaped_on_error(gt: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaving the context early (an exception while hotcoco loads) kills and reaps the child."""
    from hsrpose.evaluation.fast_score import ResultsScan

    monkeypatch.setattr(ResultsScan, "CHILD_MIN_BYTES", 0)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(make_results(gt, seed=7)))
    with pytest.raises(RuntimeError), ResultsScan(path) as scan:
        raise RuntimeError("hotcoco refused the ground truth")
    assert scan._proc is not None and scan._proc.returncode is not None


def test_fast_path_with_child_scan(gt: dict[str, Any], gt_path: Path, tmp_path: Path, fast_only: Path,
                                   monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Scoring with the check in a child process (as for files over 8 MB): pycocotools' numbers for a
    good file, and the full validator's one-line message for a file with one short keypoints array."""
    from hsrpose.evaluation.fast_score import ResultsScan

    monkeypatch.setattr(ResultsScan, "CHILD_MIN_BYTES", 0)
    results = make_results(gt, noise=0.04, dup=0.3, extra=30, seed=8)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(results))
    bad.write_text(json.dumps(_bad(results, 11, keypoints=[2.0] * 48)))
    ref = pycocotools_reference(gt_path, results)
    assert score_results(gt_path, good) == ref  # caches the ground-truth check
    capfd.readouterr()
    assert main(["score", "--gt", str(gt_path), "--results", str(bad)]) == 1
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "entry 11" in err and "48" in err
    _forbid_python_results(monkeypatch)
    assert score_results(gt_path, good) == ref


def test_ground_truth_verdict_cache_checks_its_key(gt_path: Path, tmp_path: Path, fast_only: Path) -> None:
    """The cached verdict is used only when the key stored in it (path, size, mtime, format) is this
    file's: an entry written for another file under the same name, or a broken one, is ignored."""
    from hsrpose.evaluation import fast_score

    gt_file = tmp_path / "gt.json"
    gt_file.write_bytes(gt_path.read_bytes())
    assert fast_score.cached_gt_check(gt_file) is None
    fast_score.store_gt_check(gt_file, {1: 17})
    assert fast_score.cached_gt_check(gt_file) == {1: 17}
    (entry,) = fast_only.glob("gtcheck-*.json")
    meta = json.loads(entry.read_text())
    entry.write_text(json.dumps({**meta, "key": meta["key"].replace("gt.json", "other.json")}))
    assert fast_score.cached_gt_check(gt_file) is None
    entry.write_text("{not json")
    assert fast_score.cached_gt_check(gt_file) is None
