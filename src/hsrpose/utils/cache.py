"""Where hsrpose keeps what it derives from annotation files (the instance cache of
:mod:`hsrpose.data.instance_store`, the ground-truth verdicts of :mod:`hsrpose.evaluation.fast_score`).

``$HSRPOSE_CACHE_DIR`` (``off``, ``0`` or ``none`` disables caching), else
``~/.cache/hsrpose/annotations``. Standard library only: ``hsrpose score`` imports it on every run.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path | None:
    """The cache folder, or None when caching is switched off."""
    v = os.environ.get("HSRPOSE_CACHE_DIR", "")
    if v.lower() in ("off", "0", "none"):
        return None
    return Path(v) if v else Path.home() / ".cache" / "hsrpose" / "annotations"
