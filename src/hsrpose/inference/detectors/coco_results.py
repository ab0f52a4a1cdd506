"""Person boxes from a COCO detection results file (the published evaluation path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from hsrpose.errors import HsrposeError
from hsrpose.inference.detectors.base import empty_detections

__all__ = ["CocoResultsDetector"]


class CocoResultsDetector:
    """Person boxes from a COCO detection results file (list of ``{image_id, category_id, bbox, score}``).

    The image is found by ``image_key``: a COCO image id (int), or a file name
    looked up in ``file_names`` (a mapping file name -> image id, e.g. from the
    annotation file's ``images``), or else a file name whose stem is the id
    (``000000391895.jpg`` -> 391895, COCO's naming). Only ``category_id == 1``
    (person) entries with ``score >= score_thr`` are used; the protocol keeps
    every box (``score_thr=0.0``). The file is read by :func:`hsrpose.data.detections.read_detections`,
    the reader of ``hsrpose eval --boxes``: boxes come back exactly as in the file (float64, not
    clipped, ``w``/``h`` <= 0 kept), so ``eval`` and ``predict`` crop the same pixels.
    """

    def __init__(
        self,
        results: str | Path | Iterable[Mapping[str, Any]],
        file_names: Mapping[str, int] | None = None,
        score_thr: float = 0.0,
        category_id: int = 1,
    ) -> None:
        from hsrpose.data.detections import parse_detections, read_detections

        # The reader ``hsrpose eval --boxes`` uses: same entries, boxes as they are (float64).
        if isinstance(results, (str, Path)):
            det = read_detections(results, category_id=category_id, score_thr=score_thr)
        else:
            det = parse_detections(list(results), category_id=category_id, score_thr=score_thr)
        self.score_thr = float(score_thr)
        self.source = det.source
        self.num_skipped = det.report.num_skipped
        self._by_image = det.by_image()
        self._file_names = dict(file_names or {})

    @property
    def image_ids(self) -> list[int]:
        return sorted(self._by_image)

    def resolve(self, image_key: str | int | None) -> int:
        """Image id of ``image_key`` (id, file name or path)."""
        if image_key is None:
            raise HsrposeError("coco detector: needs the image id or file name (image_key) of each image")
        if isinstance(image_key, (int, np.integer)):
            return int(image_key)
        name = Path(str(image_key)).name
        if name in self._file_names:
            return int(self._file_names[name])
        stem = Path(name).stem
        if stem.isdigit():
            return int(stem)
        raise HsrposeError(f"coco detector: cannot map image {image_key!r} to an image id (give the annotation file's names)")

    def __call__(self, image_bgr: np.ndarray, image_key: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
        entry = self._by_image.get(self.resolve(image_key))
        if entry is None:
            return empty_detections()
        # Not clipped: the reference crops a file's boxes as they are (see hsrpose.data.detections).
        return entry[0].copy(), entry[1].copy()
