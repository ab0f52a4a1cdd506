"""The one reader of COCO detection results files (person boxes), with the reference's rules.

Used by ``hsrpose eval --boxes`` (through :func:`hsrpose.data.coco.load_coco`, mode ``det``)
and by ``hsrpose predict --detector coco:FILE`` (:class:`hsrpose.inference.detectors.CocoResultsDetector`),
so both crop exactly the same boxes.

Rules (HRNet ``lib/dataset/coco.py`` ``COCODataset._load_coco_person_detection_results``):
an entry is used when its ``category_id`` is the person category (1) and its ``score`` is
``>= score_thr`` (0.0 in the published YAML); its ``bbox`` is kept **as it is**: not clipped
to the image, not dropped for ``w <= 0`` or ``h <= 0``, kept in float64. A box that runs past
the image edge keeps its centre and size and the warp fills the outside with zeros.

A file that is not a results file (not a JSON list, a record that is not an object or lacks
``image_id``/``bbox``/``score``) raises :class:`hsrpose.errors.DataError` naming the record; a
record with values no crop can come from (a ``bbox`` that is not 4 finite numbers, a
non-finite score, a non-integer image id) is skipped, counted and named in the report.
No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hsrpose.data.coco import LoadReport
from hsrpose.errors import DataError
from hsrpose.utils.io import read_json

__all__ = ["Detection", "DetectionFile", "read_detections", "parse_detections"]

@dataclass(frozen=True)
class Detection:
    """One used entry of a detection results file.

    Attributes:
        index: 0-based position of the entry in the file (detections have no id).
        image_id: COCO image id.
        box_xywh: (4,) float64 image px, exactly as in the file.
        score: detector score.
    """

    index: int
    image_id: int
    box_xywh: np.ndarray
    score: float


@dataclass
class DetectionFile:
    """The used detections; ``report`` counts what was left out (``skipped``: bad records, ``filtered``: rules)."""

    source: str
    detections: list[Detection]
    report: LoadReport

    def by_image(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """image id -> (boxes (N,4) float64 xywh, scores (N,) float64), in file order."""
        groups: dict[int, list[Detection]] = {}
        for d in self.detections:
            groups.setdefault(d.image_id, []).append(d)
        return {
            i: (np.stack([d.box_xywh for d in ds]).astype(np.float64), np.array([d.score for d in ds], dtype=np.float64))
            for i, ds in groups.items()
        }


def read_detections(
    det_file: str | Path, category_id: int = 1, score_thr: float = 0.0, report: LoadReport | None = None
) -> DetectionFile:
    """Read a COCO detection results file (JSON list of ``{image_id, category_id, bbox, score}``).

    ``report``: where skipped and filtered records are counted (a new one by default).
    """
    data = read_json(det_file)
    return parse_detections(data, str(det_file), category_id, score_thr, report)


def parse_detections(
    data: Any, source: str = "<in-memory results>", category_id: int = 1, score_thr: float = 0.0, report: LoadReport | None = None
) -> DetectionFile:
    """The rules of :func:`read_detections` on already-parsed JSON (a list of entries)."""
    if not isinstance(data, list):
        raise DataError(f"{source}: a detection results file is a JSON list, got {type(data).__name__}")
    out = DetectionFile(source=source, detections=[], report=report if report is not None else LoadReport(source=source))
    rep = out.report
    for i, rec in enumerate(data):
        # Not a results file at all: an error naming the record (as load_coco does for annotations).
        if not isinstance(rec, Mapping):
            raise DataError(f"{source}: detections[{i}] is a {type(rec).__name__}, expected an object")
        missing = [k for k in ("image_id", "bbox", "score") if k not in rec]
        if missing:
            raise DataError(f"{source}: detections[{i}] lacks field(s) {missing}")
        # An entry without category_id is taken as a person box (files of person-only detectors).
        if rec.get("category_id", category_id) != category_id:
            rep.filtered["other category"] += 1
            continue
        score = rec["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            rep.skip("bad score", f"detection [{i}]: score {score!r} is not a finite number")
            continue
        if score < score_thr:
            rep.filtered["below score threshold"] += 1
            continue
        image_id = rec["image_id"]
        if isinstance(image_id, bool) or not isinstance(image_id, (int, float)) or not float(image_id).is_integer():
            rep.skip("bad image id", f"detection [{i}]: image_id {image_id!r} is not an integer")
            continue
        try:
            box = np.asarray(rec["bbox"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            box = np.zeros(0)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            rep.skip("bad box", f"detection [{i}] (image {image_id}): bbox {rec['bbox']!r} is not 4 finite numbers")
            continue
        out.detections.append(Detection(i, int(image_id), box, float(score)))
    return out
