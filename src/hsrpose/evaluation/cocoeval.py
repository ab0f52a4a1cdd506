"""COCO keypoint scoring: the ten COCOeval numbers from ground truth and results.

pycocotools' ``COCOeval(iouType="keypoints")`` is the reference. The default
backend is hotcoco (MIT licence; a Rust reimplementation of pycocotools'
COCO/COCOeval, same API and ``params.kpt_oks_sigmas``). It was chosen on evidence:
its ten numbers were bit-identical to pycocotools on every case of
``tests/test_cocoeval.py`` (noise, drops, duplicates, false detections, ties, crowd
regions, images without ground truth, custom sigmas, empty results) and on random
sets of up to 100,800 detections, tied scores included (``benchmarks/scorer_parity.py``),
and it is the fastest (``benchmarks/eval_speed.py``, 100,800 detections on 2 cores,
median wall seconds: pycocotools 13.81, hotcoco alone 0.49, faster-coco-eval 6.81,
``hsrpose score`` 0.63 (21.9x) once its ground-truth check is cached, 1.07 on the first run).
With two paths, hotcoco reads both files itself (:mod:`hsrpose.evaluation.fast_score`:
cheap checks, no Python object per result, the byte check of the results in a child
process); whatever those checks do not pass takes the full path below (Python reads and
checks every entry), which names the bad entry. faster-coco-eval, the previous default,
gave the same numbers but is 14x slower than hotcoco; it is no longer used. Pass ``backend="pycocotools"``
(``hsrpose score --backend pycocotools``) for the reference.

Ground truth goes through :func:`load_gt` first: records with bad values are
skipped with one warning each (rules shared with data loading,
:func:`hsrpose.data.coco.check_annotation`), so no scorer ever sees them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hsrpose.errors import DataError, HsrposeError
from hsrpose.evaluation.results import keypoint_categories, load_results, validate_results
from hsrpose.utils.io import read_json

if TYPE_CHECKING:
    from hsrpose.data.coco import LoadReport

# hsrpose.data.coco (the record rules) is imported where it is used: ``hsrpose score`` on a
# ground truth already checked never needs it, and importing it costs 15 ms per run.

log = logging.getLogger(__name__)

__all__ = [
    "METRIC_NAMES",
    "BACKENDS",
    "DEFAULT_BACKEND",
    "load_gt",
    "validate_gt",
    "score_results",
    "format_metrics",
    "print_metrics",
    "validate_results",
]

# Order of COCOeval.stats for iouType="keypoints".
METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
BACKENDS: tuple[str, ...] = ("hotcoco", "pycocotools")
DEFAULT_BACKEND: Literal["hotcoco", "pycocotools"] = "hotcoco"

# Fields COCOeval reads from every ground-truth annotation of a keypoint category.
_SCORED_FIELDS: tuple[str, ...] = ("keypoints", "bbox", "area", "iscrowd", "num_keypoints")

GroundTruth = str | os.PathLike[str] | Mapping[str, Any] | Any  # path, dataset dict or a COCO object
Results = str | os.PathLike[str] | Sequence[Mapping[str, Any]]


def load_gt(gt: GroundTruth, use_area: bool = True, shown: Collection[str] = ()) -> dict[str, Any]:
    """Ground truth as a validated COCO dataset dict (``images``, ``annotations``, ``categories``).

    ``gt`` is a JSON path, a dataset dict, or a pycocotools / hotcoco ``COCO`` object (its
    ``.dataset`` is used). Annotations with bad values are left out, with one warning
    each (:func:`validate_gt`); a malformed file raises :class:`DataError` (JSON line and
    column, or the record index). ``use_area=False``: the scorer derives the area from the
    box (CrowdPose), so the ``area`` field is not required. ``shown``: warning messages the user
    has already read for this file (the data loader's, :attr:`LoadReport.logged`): not repeated.
    """
    return _load_gt_report(gt, use_area, shown)[0]


def _load_gt_report(gt: GroundTruth, use_area: bool = True, shown: Collection[str] = ()) -> tuple[dict[str, Any], LoadReport]:
    """:func:`load_gt` and its :class:`LoadReport` (the warning is logged here)."""
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
    if not isinstance(data, dict):
        raise DataError(f"{source}: top level must be a JSON object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{source}: not a COCO annotation file (no '{key}' list)")
    if not keypoint_categories(data):
        raise DataError(f"{source}: no category has a 'keypoints' field (not a keypoint annotation file)")
    data, report = validate_gt(data, source, use_area=use_area, shown=shown)
    if report.num_skipped:
        log.warning("%s", report.summary())
    return data, report


def validate_gt(
    dataset: Mapping[str, Any], source: str = "ground truth", use_area: bool = True, shown: Collection[str] = ()
) -> tuple[dict[str, Any], LoadReport]:
    """``(dataset without its bad annotations, LoadReport)``.

    The record rules of data loading (:func:`hsrpose.data.coco.check_annotation`: unknown
    category, orphan image id, keypoints of the wrong length or not finite, bad box), plus
    what COCOeval reads from a keypoint annotation: the fields ``keypoints``, ``bbox``,
    ``area``, ``iscrowd``, ``num_keypoints`` and a finite ``area >= 0``. Each skipped record
    is logged once (WARNING, annotation id and field; not when its message is in ``shown``).
    The dataset is not modified.
    ``use_area=False`` (CrowdPose, whose scorer takes the area from the box) skips the area checks.
    """
    from hsrpose.data.coco import BadRecord, LoadReport, check_annotation, keypoint_counts

    image_ids: set[int] = set()
    for i, im in enumerate(dataset["images"]):
        if not isinstance(im, dict) or "id" not in im:
            raise DataError(f"{source}: images[{i}] is not an object with an 'id'")
        image_ids.add(im["id"])
    counts = keypoint_counts(dataset["categories"], source)
    report = LoadReport(source=source, shown=frozenset(shown))
    kept: list[Any] = []
    for i, rec in enumerate(dataset["annotations"]):
        try:
            checked = check_annotation(rec, i, source, image_ids, counts)
            if counts[rec["category_id"]]:
                _check_scored_fields(rec, checked.ann_id, i, use_area)
        except BadRecord as e:
            report.skip(e.reason, str(e))
            continue
        kept.append(rec)
    report.kept = len(kept)
    return {**dataset, "annotations": kept}, report


def _check_scored_fields(rec: Mapping[str, Any], ann_id: int, index: int, use_area: bool = True) -> None:
    from hsrpose.data.coco import BadRecord

    tag = f"annotation id {ann_id} (annotations[{index}])"
    missing = [k for k in _SCORED_FIELDS if rec.get(k) is None and (use_area or k != "area")]
    if missing:
        raise BadRecord("missing field", f"{tag}: no {', '.join(repr(k) for k in missing)} (COCOeval reads it)")
    if not use_area:
        return
    area = rec["area"]
    if isinstance(area, bool) or not isinstance(area, (int, float)) or not math.isfinite(area) or area < 0:
        raise BadRecord("bad area", f"{tag}: area {area!r} is not a finite number >= 0")


def _resolve_sigmas(gt: Mapping[str, Any], sigmas: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    """OKS sigmas to set on COCOeval.params, or None to keep the library's COCO-17 values."""
    return _sigmas_for_counts(keypoint_categories(gt), sigmas)


def _sigmas_for_counts(counts: Mapping[int, int], sigmas: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    """:func:`_resolve_sigmas` from the keypoint counts ``{category id: K}`` of the ground truth."""
    ks = set(counts.values())
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
        backend: "hotcoco" (the default, same numbers) or "pycocotools" (the reference).
        validate: reject malformed entries (see :mod:`hsrpose.evaluation.results`) first.
    """
    if backend not in BACKENDS:
        raise HsrposeError(f"unknown scoring backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "hotcoco" and validate and isinstance(gt, (str, os.PathLike)) and isinstance(results, (str, os.PathLike)):
        metrics, loaded = _score_hotcoco_files(gt, results, sigmas)
        if metrics is not None:
            return metrics
        dataset = loaded if loaded is not None else load_gt(gt)  # the full checks, for the precise message
    else:
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
    if backend == "hotcoco":
        return _score_hotcoco(dataset, entries, kpt_sigmas)  # copies into Rust, modifies nothing
    # pycocotools' loadRes/evaluate write 'area', 'bbox', 'id' into the result entries and 'ignore'
    # into the ground-truth annotations: work on shallow copies so the caller's objects stay as they were.
    entries = [dict(r) for r in entries]
    dataset = {**dataset, "annotations": [dict(a) for a in dataset["annotations"]]}
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _build_coco(COCO, dataset)
        if entries:
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


def _score_hotcoco_files(
    gt: str | os.PathLike[str], results: str | os.PathLike[str], sigmas: Sequence[float] | np.ndarray | None
) -> tuple[dict[str, float] | None, dict[str, Any] | None]:
    """``(metrics, None)`` from hotcoco reading both files itself (:mod:`hsrpose.evaluation.fast_score`),
    or ``(None, dataset or None)`` when a cheap check is not passed: the caller then takes the
    full path (``dataset``: the ground truth already loaded and validated here, None: not loaded).

    The ground truth is validated with the full rules once; while the file is unchanged and was
    clean, hotcoco reads it directly. Same numbers as :func:`_score_hotcoco` (same library, same data).
    """
    import hotcoco

    from hsrpose.evaluation import fast_score

    counts = fast_score.cached_gt_check(gt)
    dataset: dict[str, Any] | None = None
    if counts is None:
        dataset, report = _load_gt_report(gt)
        counts = keypoint_categories(dataset)
        if report.num_skipped or len(counts) != len(dataset["categories"]):
            return None, dataset  # bad records (warned above) or categories without keypoints
        fast_score.store_gt_check(gt, counts)
    kpt_sigmas = _sigmas_for_counts(counts, sigmas)
    # The raw-byte check of the results runs in a child process while hotcoco reads both files here.
    with fast_score.ResultsScan(results) as scan:
        try:
            coco_gt = hotcoco.COCO(dataset if dataset is not None else str(gt))
        except Exception:  # hotcoco refused a file our checks passed: the full path decides
            return None, dataset
        coco_dt = fast_score.load_results_hotcoco(coco_gt, scan, next(iter(counts.values())))
    if coco_dt is None:
        return None, dataset
    return _evaluate_hotcoco(coco_gt, coco_dt, kpt_sigmas), None


def _score_hotcoco(dataset: dict[str, Any], entries: list[dict[str, Any]], kpt_sigmas: np.ndarray | None) -> dict[str, float]:
    """The ten numbers from hotcoco's COCOeval (pycocotools' API in Rust; ``summary_lines``
    fills ``stats`` without printing, the Rust side writes nothing to stdout)."""
    import hotcoco

    coco_gt = hotcoco.COCO(dataset)
    coco_dt = coco_gt.loadRes(entries)  # an empty list gives an empty result set (scores 0)
    return _evaluate_hotcoco(coco_gt, coco_dt, kpt_sigmas)


def _evaluate_hotcoco(coco_gt: Any, coco_dt: Any, kpt_sigmas: np.ndarray | None) -> dict[str, float]:
    """The ten numbers of hotcoco's COCOeval over two hotcoco COCO objects."""
    import hotcoco

    ev = hotcoco.COCOeval(coco_gt, coco_dt, "keypoints")
    if kpt_sigmas is not None:
        ev.params.kpt_oks_sigmas = [float(v) for v in kpt_sigmas]
    ev.evaluate()
    ev.accumulate()
    ev.summary_lines()
    stats = np.asarray(ev.stats, dtype=np.float64)[: len(METRIC_NAMES)]
    return {name: float(v) for name, v in zip(METRIC_NAMES, stats)}


def format_metrics(metrics: Mapping[str, float], digits: int = 6) -> str:
    """``NAME value`` lines in :data:`METRIC_NAMES` order (easy to parse from scripts)."""
    return "\n".join(f"{name} {metrics[name]:.{digits}f}" for name in METRIC_NAMES)


def print_metrics(metrics: Mapping[str, float], digits: int = 6) -> None:
    print(format_metrics(metrics, digits), flush=True)
