"""Parity matrix of the COCO keypoint scorers: every backend x every case, against pycocotools.

Cases: every result set of ``tests/test_cocoeval.py`` (imported from there, so the two
cannot drift: noise levels, drops, duplicates, false detections, ties, crowd regions,
images without ground truth, integer keypoints, detectron2-style entries with a
``bbox``, custom sigmas on COCO and on a 5-keypoint set, empty results) and the
replicated coco-mini sets of ``benchmarks/eval_speed.py`` up to 100k detections, each
also with its scores rounded to one decimal (massive ties).

Backends: pycocotools used as its README shows (the reference), ``score_results``
with each hsrpose backend (hotcoco, pycocotools) on the entries in memory, ``score_results``
on two files as ``hsrpose score`` runs it (hotcoco reads both files), and faster-coco-eval's
``COCOeval_faster`` used the same way (no longer an hsrpose dependency; skipped
when not installed). A cell says ``identical`` (all ten numbers bit-equal) or
lists the metrics that differ with both values and the difference.

    PYTHONPATH=src python benchmarks/scorer_parity.py                 # up to 100,800 detections
    PYTHONPATH=src python benchmarks/scorer_parity.py --sizes 5      # quick: small random set only
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "benchmarks")]

from eval_speed import build, find_coco_mini  # noqa: E402
from test_cocoeval import ANN, CASES, FACE_SIGMAS, face_case, make_results, pycocotools_reference  # noqa: E402

from hsrpose.evaluation.cocoeval import BACKENDS, METRIC_NAMES, score_results  # noqa: E402

Scorer = Callable[[Path, list[dict[str, Any]], "np.ndarray | None"], dict[str, float]]


def faster_coco_eval_score(gt_path: Path, results: list[dict[str, Any]], sigmas: np.ndarray | None) -> dict[str, float]:
    """faster-coco-eval as a drop-in COCOeval (its README's usage)."""
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        if results:
            coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": coco_gt.dataset["images"], "categories": coco_gt.dataset["categories"], "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval_faster(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(METRIC_NAMES, (float(s) for s in ev.stats)))


def reference(gt_path: Path, results: list[dict[str, Any]], sigmas: np.ndarray | None) -> dict[str, float]:
    if not results:  # pycocotools' loadRes cannot take an empty list; hsrpose's pycocotools path handles it
        return score_results(gt_path, results, sigmas=sigmas, backend="pycocotools")
    return pycocotools_reference(gt_path, results, sigmas)


def score_files(gt_path: Path, results: list[dict[str, Any]], sigmas: np.ndarray | None) -> dict[str, float]:
    """``hsrpose score``'s path: the results written to a file, both files read by hotcoco
    (``hsrpose.evaluation.fast_score``; results over 8 MB are checked in a child process). Run
    twice: the ground-truth check made and cached, then cached; both must give the same numbers."""
    res_path = gt_path.parent / "results.json"
    res_path.write_text(json.dumps(results))
    first = score_results(gt_path, res_path, sigmas=sigmas)
    second = score_results(gt_path, res_path, sigmas=sigmas)
    if first != second:
        raise AssertionError(f"fast path: first {first} != cached {second}")
    return second


def scorers() -> dict[str, Scorer]:
    out: dict[str, Scorer] = {
        f"hsrpose {b}": (lambda b: lambda g, r, s: score_results(g, r, sigmas=s, backend=b))(b) for b in BACKENDS
    }
    out["hsrpose score (files)"] = score_files
    try:
        import faster_coco_eval  # noqa: F401

        out["faster-coco-eval"] = faster_coco_eval_score
    except ImportError:
        pass
    return out


def compare(ref: dict[str, float], got: dict[str, float]) -> str:
    diffs = [f"{n} {ref[n]!r} vs {got[n]!r} ({got[n] - ref[n]:+.1e})" for n in METRIC_NAMES if ref[n] != got[n]]
    return "identical" if not diffs else "; ".join(diffs)


def build_cases(gt: dict[str, Any], work: Path, sizes: list[int]) -> list[tuple[str, Path, list[dict[str, Any]], np.ndarray | None]]:
    gt_path = work / "gt.json"
    gt_path.write_text(json.dumps(gt))
    cases = [(name, gt_path, make_results(gt, **kw), None) for name, kw in CASES.items()]
    base = make_results(gt, noise=0.03, dup=0.3, extra=20, seed=12)
    cases.append(("integer_keypoints", gt_path, [dict(r, keypoints=[int(round(v)) for v in r["keypoints"]]) for r in base], None))
    rng = np.random.default_rng(0)
    cases.append(("entries_with_bbox", gt_path, [dict(r, bbox=[float(v) for v in rng.uniform(10, 200, 4)]) for r in base], None))
    cases.append(("sigmas_0.05_x17", gt_path, make_results(gt, noise=0.04, seed=9), np.full(17, 0.05)))
    # The 5-keypoint face set of test_custom_keypoint_set_with_sigmas, with its own sigmas.
    face_path, face_res = face_case(gt, work)
    cases.append(("custom_5_keypoints_sigmas", face_path, face_res, FACE_SIGMAS))
    cases.append(("empty_results", gt_path, [], None))
    for copies in sizes:
        big_gt, big_res = build(gt, copies, 20, seed=copies)
        p = work / f"gt_x{copies}.json"
        p.write_text(json.dumps(big_gt))
        cases.append((f"random_{len(big_res)}_dets", p, big_res, None))
        # The same with scores rounded to one decimal: thousands of exact ties per score value.
        tied = [dict(r, score=round(r["score"], 1)) for r in big_res]
        cases.append((f"random_{len(big_res)}_dets_tied_scores", p, tied, None))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[5, 21, 63], help="coco-mini replicas of the random sets (63 -> 100,800 detections)")
    args = ap.parse_args()
    gt = json.loads((find_coco_mini() / ANN).read_text())
    names = list(scorers())
    rows: list[tuple[str, list[str]]] = []
    with tempfile.TemporaryDirectory(prefix="hsrpose_parity_") as tmp:
        os.environ["HSRPOSE_CACHE_DIR"] = str(Path(tmp) / "cache")  # never the user's cache
        for case, gt_path, results, sigmas in build_cases(gt, Path(tmp), args.sizes):
            t0 = time.perf_counter()
            ref = reference(gt_path, results, sigmas)
            cells = [compare(ref, fn(gt_path, results, sigmas)) for fn in scorers().values()]
            rows.append((case, cells))
            print(f"# {case}: {len(results)} detections, AP {ref['AP']:.4f}, {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print("| case | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for case, cells in rows:
        print(f"| {case} | " + " | ".join(cells) + " |")
    n_diff = {n: sum(c[i] != "identical" for _, c in rows) for i, n in enumerate(names)}
    print("\ncases not identical to pycocotools: " + ", ".join(f"{n} {k}/{len(rows)}" for n, k in n_diff.items()))


if __name__ == "__main__":
    main()
