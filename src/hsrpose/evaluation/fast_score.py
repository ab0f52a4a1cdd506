"""The fast path of ``hsrpose score``: hotcoco reads both files itself (Rust), checks stay cheap.

Reading a 110 MB results file into Python objects and checking every entry cost
more than hotcoco's whole evaluation. Here no Python object is built per result:

* **Ground truth**: validated once with the full rules (:func:`~hsrpose.evaluation.cocoeval.load_gt`);
  when nothing had to be skipped, that verdict is cached, keyed by the file's absolute
  path, size and mtime (like :mod:`hsrpose.data.instance_store`), and hotcoco reads the
  file itself on the next run. A file with bad records is never cached: it takes the
  full path every time, so its warnings are printed every time.
* **Results**: hotcoco parses the file. Its parser refuses what Python's validator
  refuses about types (non-numbers, bools, NaN or non-integer ids, non-objects,
  malformed JSON), its ``healthcheck`` reports unknown image or category ids and
  missing scores (Infinity is read as a missing score), and one pass over the raw
  bytes (:class:`LayoutScan`, in a thread while hotcoco parses) checks that every entry has a ``keypoints``
  array of exactly 3K numbers.

Whenever one of these checks is not passed cleanly the caller falls back to the full
Python validator, which gives the precise one-line message naming the entry and field
(or scores the file if it was good after all, only slower).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["cached_gt_check", "store_gt_check", "LayoutScan", "load_results_hotcoco"]

GT_CHECK_FORMAT = 1  # bump when the rules of validate_gt change


def _cache_file(gt_path: str | os.PathLike[str]) -> Path | None:
    """Where the verdict on ``gt_path`` is kept; None when caching is off or the file is missing.

    Same directory and switch as the annotation cache (``HSRPOSE_CACHE_DIR``, ``off`` disables)."""
    v = os.environ.get("HSRPOSE_CACHE_DIR", "")
    if v.lower() in ("off", "0", "none"):
        return None
    d = Path(v) if v else Path.home() / ".cache" / "hsrpose" / "annotations"
    try:
        st = os.stat(gt_path)
    except OSError:
        return None
    key = json.dumps([GT_CHECK_FORMAT, str(Path(gt_path).resolve()), st.st_size, st.st_mtime_ns])
    return d / ("gtcheck-" + hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def cached_gt_check(gt_path: str | os.PathLike[str]) -> dict[int, int] | None:
    """Keypoint counts ``{category id: K}`` of a ground-truth file already validated clean, else None.

    A hit means: the file has not changed since :func:`load_gt` skipped none of its records,
    and every one of its categories has keypoints."""
    path = _cache_file(gt_path)
    if path is None or not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return {int(c): int(k) for c, k in meta["keypoint_counts"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # a broken cache entry only costs speed


def store_gt_check(gt_path: str | os.PathLike[str], keypoint_counts: Mapping[int, int]) -> None:
    """Remember that ``gt_path`` validated clean (call only then); failures only cost speed."""
    from hsrpose.utils.io import atomic_write_json

    path = _cache_file(gt_path)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"keypoint_counts": {str(c): int(k) for c, k in keypoint_counts.items()}})
    except OSError:
        pass


# Of the raw bytes only the structure is kept: brackets, braces, commas, quotes and the
# letter k. Numbers, null, true and false contain none of these, so they vanish; a string
# becomes its quotes around its k's ("keypoints" -> "k", "image_id" -> "").
_DELETE = bytes(c for c in range(256) if c not in b'[]{},"k')


def _entry_pattern(k: int) -> bytes:
    """One reduced entry: keys without a k holding a non-string scalar or a flat array (``bbox``),
    and exactly one key with a single k (``keypoints``, proven by counting below) holding an
    array of ``3k`` numbers."""
    field = rb'""(?:\[,*\])?'
    return rb'\{(?:%s,)*"k"\[,{%d}\](?:,%s)*\}' % (field, 3 * k - 1, field)


class LayoutScan:
    """The raw-byte check of a results file, run in a thread while hotcoco parses the same file
    (hotcoco's parser releases the GIL: the two overlap in wall time, CPU time adds up).

    ``ok(n, k)`` after :meth:`join`: True when the file is a JSON list of ``n`` objects, each with
    one ``keypoints`` array of exactly ``3k`` numbers and otherwise only non-string scalars or flat
    arrays (``bbox``). False means "not proven", not "bad": the caller runs the full validator.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.reduced: bytes | None = None  # structure only (see _DELETE); None: unreadable, or not a list
        self.keypoint_keys = -1  # occurrences of the string "keypoints" in the file
        self._thread = threading.Thread(target=self._run, name="hsrpose-results-scan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            raw = self.path.read_bytes()
        except OSError:
            return
        if raw.lstrip()[:1] != b"[":
            return  # hotcoco reads an object as an empty result set: the full validator says why
        self.keypoint_keys = raw.count(b'"keypoints"')
        self.reduced = raw.translate(None, _DELETE)

    def join(self) -> None:
        self._thread.join()

    def ok(self, n: int, k: int) -> bool:
        reduced = self.reduced
        # Every entry has exactly one key with a single k, and "keypoints" occurs n times in the
        # file, so that key is "keypoints" in every entry (a string value would break the pattern).
        if reduced is None or n == 0 or self.keypoint_keys != n:
            return False
        first = reduced.find(b"}")
        template = reduced[1 : first + 1]
        if first < 0 or not re.fullmatch(_entry_pattern(k), template):
            return False
        # Fast: every entry reduced the same way (one writer wrote the file); else match each one.
        if reduced == b"[" + b",".join([template] * n) + b"]":
            return True
        e = _entry_pattern(k)
        return re.fullmatch(rb"\[" + e + rb"(?:," + e + rb")*\]", reduced) is not None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (hotcoco's Rust side writes its load warnings there); the
    caller reports any problem itself, in one line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_results_hotcoco(coco_gt: Any, scan: LayoutScan, k: int) -> Any | None:
    """hotcoco's result set read from ``scan.path`` (``k`` keypoints per entry), or None when any
    cheap check is not passed (the caller then runs the full Python validator for the precise message)."""
    try:
        with _quiet_stderr():
            try:
                coco_dt = coco_gt.loadRes(str(scan.path))
            except Exception:  # hotcoco refused the file: the full validator says why
                return None
            if coco_dt.load_warnings:
                return None
            health = coco_gt.healthcheck(coco_dt)
    finally:
        scan.join()
    if health.get("errors") or health.get("warnings"):
        return None  # unknown image or category ids, missing or infinite scores, ...
    if not scan.ok(len(coco_dt.getAnnIds()), k):
        return None
    return coco_dt
