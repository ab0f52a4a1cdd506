"""COCO-format keypoint annotations -> top-down person instances.

Three sources of instances (all return :class:`Instance`):

* ``mode="train"``: ground truth with the protocol's training filters (SimpleBaseline/HRNet
  ``_load_coco_keypoint_annotation_kernal``): the keypoint category, ``iscrowd == 0``,
  ``area > 0``, at least one labelled keypoint, box clipped to the image (reference
  convention ``x2 = min(W - 1, x1 + max(0, w - 1))``) and of positive size.
* ``mode="gt"``: the same ground-truth instances used as evaluation boxes (score 1).
* ``mode="det"``: boxes of a COCO detection results file (category of the keypoint
  category, ``score >= score_thr``; 0.0 by default per protocol.md), keypoints zero,
  read by :func:`hsrpose.data.detections.read_detections` (boxes as they are, as in HRNet).

Problems are split in two: a file that is not a COCO keypoint file at all (not JSON,
missing top-level lists, records that are not objects or lack required fields)
raises :class:`hsrpose.errors.DataError` naming the file and the record / JSON
line and column; a record with bad values (NaN or negative box, keypoint list of
the wrong length, image id without an image entry) is skipped and counted in the
:class:`LoadReport`, with the annotation id, so one bad record never stops a run.

The instances come back as an :class:`~hsrpose.data.instance_store.InstanceStore` (flat numpy
columns that DataLoader workers share without copies); large ground-truth files are cached
(see that module).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Container, Literal, Mapping, Sequence

import numpy as np

from hsrpose.data.instance_store import InstanceStore, load_cached, release_freed_memory, save_cached
from hsrpose.data.keypoints import KeypointInfo
from hsrpose.errors import DataError
from hsrpose.utils.io import read_json

__all__ = [
    "Instance",
    "LoadReport",
    "CocoInstances",
    "BadRecord",
    "CheckedAnnotation",
    "check_annotation",
    "keypoint_counts",
    "load_coco",
    "load_coco_instances",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instance:
    """One person crop to train on or evaluate.

    Attributes:
        image_id: COCO image id.
        ann_id: annotation id (ground truth) or the 0-based index of the entry in the
            detection results file (detections have no id).
        file_name: image path relative to the image folder (``images[].file_name``).
        box_xywh: (4,) float64 image px (clipped for training instances).
        keypoints: (K, 3) float64 ``(x, y, v)`` image px; zeros for detections.
        score: box score (1.0 for ground truth).
        area: annotation area (segmentation area for ground truth, w*h for detections).
        image_hw: ``(height, width)`` from the image entry, used to check the decoded image.
    """

    image_id: int
    ann_id: int
    file_name: str
    box_xywh: np.ndarray
    keypoints: np.ndarray
    score: float
    area: float
    image_hw: tuple[int, int] | None = None


@dataclass
class LoadReport:
    """What loading skipped and why.

    ``skipped`` counts records with bad values (each also logged, with the annotation id);
    ``filtered`` counts records left out by the protocol's filters (crowd, no keypoints,
    other category, below the score threshold): normal, not errors.

    ``shown``: messages the user has already read for this file, from another check with the
    same rules (``hsrpose eval`` loads the instances, then scores against the same file):
    such records are counted, not logged a second time. ``logged``: what this report logged.
    """

    source: str = ""
    skipped: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    kept: int = 0
    shown: frozenset[str] = frozenset()
    logged: list[str] = field(default_factory=list)

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(message)
        if message not in self.shown:
            log.warning("%s: skipped %s", self.source, message)
            self.logged.append(message)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        parts = [f"{self.source}: {self.kept} instances"]
        if self.skipped:
            parts.append("skipped bad records: " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))
        if self.filtered:
            parts.append("filtered: " + ", ".join(f"{k} {v}" for k, v in sorted(self.filtered.items())))
        return "; ".join(parts)


@dataclass
class CocoInstances:
    """Result of :func:`load_coco`: the instances, the keypoint set and the load report."""

    instances: Sequence[Instance]  # an InstanceStore from load_coco
    keypoint_info: KeypointInfo
    report: LoadReport
    category_id: int


def _require_list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    if key not in d:
        raise DataError(f"{where}: missing top-level '{key}' list (not a COCO keypoint annotation file?)")
    v = d[key]
    if not isinstance(v, list):
        raise DataError(f"{where}: top-level '{key}' must be a list, got {type(v).__name__}")
    return v


def _record(rec: Any, kind: str, index: int, required: Sequence[str], where: str) -> Mapping[str, Any]:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: {kind}[{index}] is a {type(rec).__name__}, expected an object")
    missing = [k for k in required if k not in rec]
    if missing:
        ident = f" (id {rec['id']})" if "id" in rec else ""
        raise DataError(f"{where}: {kind}[{index}]{ident} lacks field(s) {missing}")
    return rec


def _as_int(value: Any, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise DataError(f"{where}: {what} must be an integer, got {value!r}")
    return int(value)


def _box(value: Any) -> np.ndarray | None:
    """4 finite numbers with non-negative extent, else None."""
    try:
        b = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if b.shape != (4,) or not np.all(np.isfinite(b)) or b[2] < 0 or b[3] < 0:
        return None
    return b


def _pick_category(categories: list[Any], category_id: int | None, where: str) -> Mapping[str, Any]:
    cats = [_record(c, "categories", i, ("id",), where) for i, c in enumerate(categories)]
    if category_id is not None:
        hit = [c for c in cats if c["id"] == category_id]
        if not hit:
            raise DataError(f"{where}: no category with id {category_id} (have {[c['id'] for c in cats]})")
        cat = hit[0]
    else:
        with_kpts = [c for c in cats if c.get("keypoints")]
        if len(with_kpts) != 1:
            raise DataError(
                f"{where}: {len(with_kpts)} categories have 'keypoints'; name the one to use (data.category_id)"
            )
        cat = with_kpts[0]
    if not isinstance(cat.get("keypoints"), list) or not cat["keypoints"]:
        raise DataError(f"{where}: category {cat['id']} has no 'keypoints' list")
    return cat


def load_coco(
    ann_file: str | Path,
    mode: Literal["train", "gt", "det"] = "train",
    det_file: str | Path | None = None,
    score_thr: float = 0.0,
    category_id: int | None = None,
    flip_pairs: Sequence[Sequence[int]] | None = None,
    oks_sigmas: Sequence[float] | None = None,
    fallback_oks_sigmas: Sequence[float] | None = None,
) -> CocoInstances:
    """Load instances, the keypoint set (from the category entry) and a :class:`LoadReport`.

    Args:
        ann_file: COCO keypoint annotation file (images, annotations, categories).
        mode: ``train`` / ``gt`` (ground-truth boxes, protocol filters) or ``det`` (boxes of ``det_file``).
        det_file: COCO detection results (list of ``{image_id, category_id, bbox, score}``) for ``det``.
        score_thr: ``det`` only: keep boxes with ``score >= score_thr``.
        category_id: the keypoint category; None = the only category that has ``keypoints``.
        flip_pairs, oks_sigmas: for a custom keypoint set (default: the category's ``flip_pairs`` /
            ``sigmas`` fields; COCO person gets COCO's).
        fallback_oks_sigmas: sigmas used when neither ``oks_sigmas`` nor the category give any
            (e.g. those stored in the weights being evaluated).
    Raises:
        DataError: the file (or det file) is malformed; the message gives the location.
    """
    where = str(ann_file)
    options = {"mode": mode, "category_id": category_id, "flip_pairs": flip_pairs, "oks_sigmas": oks_sigmas,
               "fallback_oks_sigmas": fallback_oks_sigmas}  # fmt: skip
    cached = load_cached(ann_file, options) if mode in ("train", "gt") else None
    if cached is not None:
        return cached
    data = read_json(ann_file)
    if not isinstance(data, dict):
        raise DataError(f"{where}: top level must be a JSON object, got {type(data).__name__}")
    images = _require_list(data, "images", where)
    categories = _require_list(data, "categories", where)
    cat = _pick_category(categories, category_id, where)
    try:
        kinfo = KeypointInfo.from_coco_category(cat, flip_pairs=flip_pairs, sigmas=oks_sigmas, fallback_sigmas=fallback_oks_sigmas)
    except ValueError as e:
        raise DataError(f"{where}: category {cat['id']}: {e}") from None
    cat_id = _as_int(cat["id"], "category id", where)
    num_k = kinfo.num_keypoints

    image_by_id: dict[int, tuple[str, tuple[int, int] | None]] = {}
    for i, rec in enumerate(images):
        r = _record(rec, "images", i, ("id", "file_name"), where)
        iid = _as_int(r["id"], f"images[{i}].id", where)
        hw = None
        if "height" in r and "width" in r:
            hw = (_as_int(r["height"], f"images[{i}].height", where), _as_int(r["width"], f"images[{i}].width", where))
        image_by_id[iid] = (str(r["file_name"]), hw)

    if mode == "det":
        if det_file is None:
            raise DataError("mode 'det' needs a detection results file (det_file)")
        report = LoadReport(source=str(det_file))
        instances = _load_detections(det_file, image_by_id, cat_id, num_k, score_thr, report)
    elif mode in ("train", "gt"):
        report = LoadReport(source=where)
        anns = _require_list(data, "annotations", where)
        counts = keypoint_counts(categories, where)
        instances = _load_ground_truth(anns, image_by_id, counts, cat_id, report, where)
    else:
        raise ValueError(f"load_coco: mode must be 'train', 'gt' or 'det', got {mode!r}")
    report.kept = len(instances)
    result = CocoInstances(InstanceStore.from_instances(instances, num_k), kinfo, report, cat_id)
    data = images = categories = anns = instances = None  # type: ignore[assignment]  # drop the parsed JSON
    release_freed_memory()  # the parsed JSON is garbage now: return its pages to the OS
    if mode in ("train", "gt"):
        save_cached(ann_file, options, result)
    return result


class BadRecord(ValueError):
    """An annotation with a bad value: skipped and counted under ``reason``, never fatal."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CheckedAnnotation:
    """The values of an annotation that passed :func:`check_annotation`.

    keypoints: (K, 3) float64 image px, None when the record has no ``keypoints``;
    box_xywh: (4,) float64 image px, finite, w, h >= 0 (not clipped).
    """

    ann_id: int
    keypoints: np.ndarray | None
    box_xywh: np.ndarray


def keypoint_counts(categories: list[Any], where: str) -> dict[int, int]:
    """Category id -> number of keypoints (0 for a category without a ``keypoints`` list)."""
    out: dict[int, int] = {}
    for i, rec in enumerate(categories):
        c = _record(rec, "categories", i, ("id",), where)
        kps = c.get("keypoints")
        out[_as_int(c["id"], f"categories[{i}].id", where)] = len(kps) if isinstance(kps, list) else 0
    return out


def check_annotation(
    rec: Any, index: int, where: str, image_ids: Container[int], num_keypoints: Mapping[int, int]
) -> CheckedAnnotation:
    """The record rules every reader of ground-truth annotations shares (loading and scoring).

    Args:
        rec: ``annotations[index]`` of the file ``where``.
        image_ids: ids of the ``images`` entries.
        num_keypoints: category id -> keypoints per instance (:func:`keypoint_counts`).
    Raises:
        DataError: not an object, or no ``id`` / ``image_id`` / ``category_id`` (a malformed file).
        BadRecord: unknown category, orphan image id, keypoints of the wrong length or not
            finite, box not 4 finite numbers with w, h >= 0 (message names the annotation id and field).
    """
    r = _record(rec, "annotations", index, ("id", "image_id", "category_id"), where)
    ann_id = _as_int(r["id"], f"annotations[{index}].id", where)
    tag = f"annotation id {ann_id} (annotations[{index}])"
    cat = r["category_id"]
    if not _known(cat, num_keypoints):
        raise BadRecord("unknown category", f"{tag}: category_id {cat!r} has no entry in 'categories'")
    if not _known(r["image_id"], image_ids):
        raise BadRecord("unknown image id", f"{tag}: image_id {r['image_id']!r} has no entry in 'images'")
    kp = None
    num_k = num_keypoints[cat]
    if r.get("keypoints") is not None and num_k > 0:
        try:
            kp = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise BadRecord("bad keypoints", f"{tag}: keypoints are not all numbers") from None
        if kp.shape[0] != 3 * num_k:
            raise BadRecord("bad keypoints", f"{tag}: keypoints has {kp.shape[0]} values, expected {3 * num_k} ({num_k} x 3)")
        if not np.all(np.isfinite(kp)):
            raise BadRecord("bad keypoints", f"{tag}: keypoints has non-finite values (NaN or inf)")
        kp = kp.reshape(-1, 3)
    box = _box(r.get("bbox"))
    if box is None:
        raise BadRecord("bad box", f"{tag}: bbox {r.get('bbox')!r} is not 4 finite numbers with w, h >= 0")
    return CheckedAnnotation(ann_id, kp, box)


def _load_ground_truth(
    anns: list[Any],
    image_by_id: Mapping[int, tuple[str, tuple[int, int] | None]],
    num_keypoints: Mapping[int, int],
    cat_id: int,
    report: LoadReport,
    where: str,
) -> list[Instance]:
    out: list[Instance] = []
    for i, rec in enumerate(anns):
        try:
            checked = check_annotation(rec, i, where, image_by_id, num_keypoints)
        except BadRecord as e:
            report.skip(e.reason, str(e))
            continue
        r = rec  # an object with id, image_id and category_id (checked)
        if r["category_id"] != cat_id:
            report.filtered["other category"] += 1
            continue
        if r.get("iscrowd", 0):
            report.filtered["crowd"] += 1
            continue
        kp = checked.keypoints
        if kp is None:
            report.filtered["no keypoints"] += 1
            continue
        if not np.any(kp[:, 2] > 0):
            report.filtered["no labelled keypoint"] += 1
            continue
        image_id = r["image_id"]
        file_name, hw = image_by_id[image_id]
        box = checked.box_xywh
        area = r.get("area", box[2] * box[3])
        if not isinstance(area, (int, float)) or not math.isfinite(area) or area <= 0:
            report.filtered["zero area"] += 1
            continue
        box = _clip_box(box, hw)
        if box is None:
            report.filtered["box outside image or empty"] += 1
            continue
        kp[kp[:, 2] > 0, 2] = np.minimum(kp[kp[:, 2] > 0, 2], 2)
        out.append(Instance(int(image_id), checked.ann_id, file_name, box, kp, 1.0, float(area), hw))
    return out


def _known(image_id: Any, image_by_id: Container[int]) -> bool:
    """An integer-valued id (not a bool, not a string) present in ``image_by_id``."""
    return isinstance(image_id, (int, float)) and not isinstance(image_id, bool) and image_id in image_by_id


def _clip_box(box: np.ndarray, hw: tuple[int, int] | None) -> np.ndarray | None:
    """Reference clipping (``x2 = min(W-1, x1 + max(0, w-1))``); None when the result is empty."""
    x, y, w, h = box
    if hw is None:
        x1, y1, x2, y2 = max(0.0, x), max(0.0, y), max(0.0, x) + max(0.0, w - 1), max(0.0, y) + max(0.0, h - 1)
    else:
        height, width = hw
        x1, y1 = max(0.0, x), max(0.0, y)
        x2 = min(width - 1.0, x1 + max(0.0, w - 1))
        y2 = min(height - 1.0, y1 + max(0.0, h - 1))
    # protocol.md: "box clipped to the image and of positive size".
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def _load_detections(
    det_file: str | Path,
    image_by_id: Mapping[int, tuple[str, tuple[int, int] | None]],
    cat_id: int,
    num_k: int,
    score_thr: float,
    report: LoadReport,
) -> list[Instance]:
    # The one detection reader (reference rules: boxes as they are, w/h <= 0 kept); it imports
    # LoadReport from here, hence the import in the function.
    from hsrpose.data.detections import read_detections

    det = read_detections(det_file, category_id=cat_id, score_thr=score_thr, report=report)
    out: list[Instance] = []
    for d in det.detections:
        if d.image_id not in image_by_id:
            report.skip("unknown image id", f"detection [{d.index}]: image id {d.image_id!r} has no entry in 'images'")
            continue
        file_name, hw = image_by_id[d.image_id]
        kp = np.zeros((num_k, 3), dtype=np.float64)
        box = d.box_xywh
        out.append(Instance(d.image_id, d.index, file_name, box, kp, d.score, float(box[2] * box[3]), hw))
    return out


def load_coco_instances(
    ann_file: str | Path,
    mode: Literal["train", "gt", "det"] = "train",
    det_file: str | Path | None = None,
    score_thr: float = 0.0,
    category_id: int | None = None,
    flip_pairs: Sequence[Sequence[int]] | None = None,
    oks_sigmas: Sequence[float] | None = None,
) -> Sequence[Instance]:
    """The instances of :func:`load_coco` only; the report's summary is logged (INFO, WARNING if records were skipped)."""
    res = load_coco(ann_file, mode, det_file, score_thr, category_id, flip_pairs, oks_sigmas)
    log.log(logging.WARNING if res.report.num_skipped else logging.INFO, "%s", res.report.summary())
    return res.instances
