"""COCO keypoint scoring: the ten COCOeval numbers from ground truth and results.

pycocotools' ``COCOeval(iouType="keypoints")`` is the reference. The "fast"
backend is faster-coco-eval's ``COCOeval_faster`` (C++ matching and
accumulation, the same Python OKS code) with results indexed by a vectorised
equivalent of ``loadRes``. It is the default because its ten numbers were
bit-identical to pycocotools on every result set with continuous scores that we
tried (tests/test_cocoeval.py; benchmarks/eval_speed.py at 100k detections) and
it is about twice as fast end to end (CPU time of ``hsrpose score`` vs a plain
pycocotools script at 100k detections, JSON reading included). Caveat, measured: in one of twelve test sets where
*all* scores were exactly equal, one number differed by 2e-16 (last bit; not
traced further, presumably tie order or summation order), far below any printed digit. Pass
``backend="pycocotools"`` (``hsrpose score --backend pycocotools``) for the reference.

Both libraries print progress to stdout; we silence them and return the numbers
(print them with :func:`format_metrics`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hsrpose.errors import DataError, HsrposeError
from hsrpose.evaluation.results import keypoint_categories, load_results, validate_results
from hsrpose.utils.io import read_json

__all__ = [
    "METRIC_NAMES",
    "BACKENDS",
    "DEFAULT_BACKEND",
    "load_gt",
    "score_results",
    "format_metrics",
    "print_metrics",
    "validate_results",
]

# Order of COCOeval.stats for iouType="keypoints".
METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
BACKENDS: tuple[str, ...] = ("fast", "pycocotools")
DEFAULT_BACKEND: Literal["fast", "pycocotools"] = "fast"

GroundTruth = str | os.PathLike[str] | Mapping[str, Any] | Any  # path, dataset dict or a COCO object
Results = str | os.PathLike[str] | Sequence[Mapping[str, Any]]


def load_gt(gt: GroundTruth) -> dict[str, Any]:
    """Ground truth as a COCO dataset dict (``images``, ``annotations``, ``categories``).

    ``gt`` is a JSON path, a dataset dict, or a pycocotools / faster-coco-eval ``COCO``
    object (its ``.dataset`` is used).
    """
    if isinstance(gt, (str, os.PathLike)):
        p = Path(gt)
        data = read_json(p)
        source = str(p)
    elif isinstance(gt, Mapping):
        data, source = dict(gt), "ground truth"
    elif hasattr(gt, "dataset") and isinstance(gt.dataset, Mapping):
        data, source = dict(gt.dataset), "ground truth"
    else:
        raise TypeError(f"ground truth must be a path, a dict or a COCO object, got {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{source}: not a COCO annotation file (no '{key}' list)")
    if not keypoint_categories(data):
        raise DataError(f"{source}: no category has a 'keypoints' field (not a keypoint annotation file)")
    return data


def _resolve_sigmas(gt: Mapping[str, Any], sigmas: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    """OKS sigmas to set on COCOeval.params, or None to keep the library's COCO-17 values."""
    ks = set(keypoint_categories(gt).values())
    if len(ks) != 1:
        raise DataError(f"ground truth: keypoint categories have different keypoint counts {sorted(ks)}")
    k = ks.pop()
    if sigmas is None:
        if k != 17:
            raise HsrposeError(f"ground truth has {k} keypoints per instance: give their {k} OKS sigmas (--sigmas)")
        return None
    arr = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if arr.size != k:
        raise HsrposeError(f"{arr.size} OKS sigmas given for {k} keypoints")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise HsrposeError(f"OKS sigmas must be positive numbers, got {arr.tolist()}")
    return arr


def _build_coco(coco_cls: type, dataset: dict[str, Any]) -> Any:
    """A COCO object over ``dataset`` without re-reading any file."""
    coco = coco_cls()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def _load_keypoint_results(coco_cls: type, coco_gt: Any, entries: list[dict[str, Any]]) -> Any:
    """``coco_gt.loadRes(entries)`` for keypoint results, with the per-entry min/max vectorised.

    loadRes spends most of its time in four ``np.min``/``np.max`` calls per entry; this gives the
    same ``area``, ``bbox`` and ``id`` fields (exact: min, max, minus and times are correctly
    rounded whatever the order) in one pass. Entries that loadRes would read differently
    (its branch is chosen by the first entry: ``caption``, ``bbox``, ``segmentation`` come
    before ``keypoints``) or keypoint lists of unequal length go through loadRes itself.
    """
    first = entries[0]
    if any(k in first for k in ("caption", "segmentation")) or ("bbox" in first and first["bbox"] != []):
        return coco_gt.loadRes(entries)
    try:
        kp = np.asarray([r["keypoints"] for r in entries])
    except ValueError:  # ragged
        return coco_gt.loadRes(entries)
    if kp.ndim != 2 or kp.dtype.kind not in "if":
        return coco_gt.loadRes(entries)
    x, y = kp[:, 0::3], kp[:, 1::3]
    x0, x1, y0, y1 = x.min(axis=1), x.max(axis=1), y.min(axis=1), y.max(axis=1)
    w, h = x1 - x0, y1 - y0
    area = w * h
    for i, r in enumerate(entries):
        r["area"] = area[i]
        r["id"] = i + 1
        r["bbox"] = [x0[i], y0[i], w[i], h[i]]
    res = coco_cls()
    res.dataset["images"] = list(coco_gt.dataset["images"])
    res.dataset["categories"] = copy.deepcopy(coco_gt.dataset["categories"])
    res.dataset["annotations"] = entries
    res.createIndex()
    return res


def score_results(
    gt: GroundTruth,
    results: Results,
    sigmas: Sequence[float] | np.ndarray | None = None,
    backend: str = DEFAULT_BACKEND,
    validate: bool = True,
) -> dict[str, float]:
    """The ten COCOeval keypoint numbers (keys :data:`METRIC_NAMES`, values in [0, 1], -1 if undefined).

    Args:
        gt: ground truth (JSON path, dataset dict or COCO object).
        results: COCO keypoint results (JSON path or list of entries, keypoints in image px).
            The entries are copied: the caller's dicts are not modified.
        sigmas: per-keypoint OKS sigmas; required unless the set has 17 keypoints (COCO's).
        backend: "fast" (faster-coco-eval) or "pycocotools" (the reference).
        validate: reject malformed entries (see :mod:`hsrpose.evaluation.results`) first.
    """
    if backend not in BACKENDS:
        raise HsrposeError(f"unknown scoring backend {backend!r}; choose one of {list(BACKENDS)}")
    dataset = load_gt(gt)
    kpt_sigmas = _resolve_sigmas(dataset, sigmas)
    if isinstance(results, (str, os.PathLike)):
        source = str(results)
        entries = load_results(results)
    else:
        source = "results"
        entries = list(results)
    if validate:
        validate_results(entries, {int(im["id"]) for im in dataset["images"]}, keypoint_categories(dataset), source)
    # loadRes/evaluate write 'area', 'bbox', 'id' into the result entries and 'ignore' into the
    # ground-truth annotations: work on shallow copies so the caller's objects stay as they were.
    entries = [dict(r) for r in entries]
    dataset = {**dataset, "annotations": [dict(a) for a in dataset["annotations"]]}

    if backend == "fast":
        from faster_coco_eval import COCO, COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _build_coco(COCO, dataset)
        if entries and backend == "fast":
            coco_dt = _load_keypoint_results(COCO, coco_gt, entries)
        elif entries:
            coco_dt = coco_gt.loadRes(entries)  # the reference, untouched
        else:
            # pycocotools' loadRes cannot take an empty list; no detections scores 0.
            coco_dt = _build_coco(
                COCO, {"images": dataset["images"], "categories": dataset["categories"], "annotations": []}
            )
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        if kpt_sigmas is not None:
            ev.params.kpt_oks_sigmas = kpt_sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = np.asarray(ev.stats, dtype=np.float64)[: len(METRIC_NAMES)]
    return {name: float(v) for name, v in zip(METRIC_NAMES, stats)}


def format_metrics(metrics: Mapping[str, float], digits: int = 6) -> str:
    """``NAME value`` lines in :data:`METRIC_NAMES` order (easy to parse from scripts)."""
    return "\n".join(f"{name} {metrics[name]:.{digits}f}" for name in METRIC_NAMES)


def print_metrics(metrics: Mapping[str, float], digits: int = 6) -> None:
    print(format_metrics(metrics, digits), flush=True)
