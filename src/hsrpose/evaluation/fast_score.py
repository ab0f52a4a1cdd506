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
  missing scores (Infinity is read as a missing score), and one pass over the raw bytes
  (:mod:`~hsrpose.evaluation.results_scan`, in a child process while hotcoco parses:
  :class:`ResultsScan`) checks that every entry has a ``keypoints`` array of exactly 3K
  numbers, which hotcoco does not (it scores a short, long, empty or missing array
  without a word).

Whenever one of these checks is not passed cleanly the caller falls back to the full
Python validator, which gives the precise one-line message naming the entry and field
(or scores the file if it was good after all, only slower).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hsrpose.evaluation import results_scan
from hsrpose.evaluation.results_scan import Verdict, scan_results_file
from hsrpose.utils.cache import cache_dir

__all__ = ["cached_gt_check", "store_gt_check", "ResultsScan", "load_results_hotcoco"]

GT_CHECK_FORMAT = 2  # bump when the rules of validate_gt (or this file's layout) change


def _cache_file(gt_path: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """``(where the verdict on gt_path is kept, its key)``; None when caching is off or the file is missing.

    Same directory and switch as the annotation cache (``HSRPOSE_CACHE_DIR``, ``off`` disables).
    The key (format, absolute path, size, mtime) is stored in the file and compared on reading,
    so the short CRC-32 file name may collide without harm (and no hashlib import, 3 ms, is paid)."""
    d = cache_dir()
    if d is None:
        return None
    try:
        st = os.stat(gt_path)
    except OSError:
        return None
    key = json.dumps([GT_CHECK_FORMAT, str(Path(gt_path).resolve()), st.st_size, st.st_mtime_ns])
    return d / f"gtcheck-{zlib.crc32(key.encode()):08x}.json", key


def cached_gt_check(gt_path: str | os.PathLike[str]) -> dict[int, int] | None:
    """Keypoint counts ``{category id: K}`` of a ground-truth file already validated clean, else None.

    A hit means: the file has not changed since :func:`load_gt` skipped none of its records,
    and every one of its categories has keypoints."""
    where = _cache_file(gt_path)
    if where is None or not where[0].is_file():
        return None
    try:
        meta = json.loads(where[0].read_text(encoding="utf-8"))
        if meta["key"] != where[1]:
            return None  # another file (or version) whose key has the same CRC
        return {int(c): int(k) for c, k in meta["keypoint_counts"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # a broken cache entry only costs speed


def store_gt_check(gt_path: str | os.PathLike[str], keypoint_counts: Mapping[int, int]) -> None:
    """Remember that ``gt_path`` validated clean (call only then); failures only cost speed."""
    from hsrpose.utils.io import atomic_write_json

    where = _cache_file(gt_path)
    if where is None:
        return
    path, key = where
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"key": key, "keypoint_counts": {str(c): int(k) for c, k in keypoint_counts.items()}})
    except OSError:
        pass


class ResultsScan:
    """:func:`~hsrpose.evaluation.results_scan.scan_results_file` on a results file, run in a child
    Python process while hotcoco parses the same file in this one.

    A thread would not overlap: hotcoco holds the GIL while it loads a file. The child runs
    :mod:`hsrpose.evaluation.results_scan` as a script with ``python -I -S`` (standard library
    only, about 10 ms to start) and prints its verdict as one JSON line. Files under
    ``CHILD_MIN_BYTES`` are scanned here, which is quicker than starting a process. Use as a
    context manager (the child is killed and reaped on any exit); when no child can be started
    or it fails, :meth:`result` scans in this process instead.
    """

    CHILD_MIN_BYTES = 8 << 20  # about 8 ms of scanning, roughly the cost of starting the child

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._proc: subprocess.Popen[bytes] | None = None
        self._verdict: Verdict = None
        self._done = False
        script = Path(results_scan.__file__)
        try:
            big = self.path.stat().st_size >= self.CHILD_MIN_BYTES
        except OSError:
            big = False
        if big and sys.executable and script.is_file():
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(script), str(self.path)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            except OSError:
                self._proc = None

    def __enter__(self) -> ResultsScan:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def result(self) -> Verdict:
        """The verdict of :func:`scan_results_file` (waits for the child)."""
        if not self._done:
            from_child = self._wait_child()
            self._verdict = from_child[0] if from_child is not None else scan_results_file(self.path)
            self._done = True
        return self._verdict

    def _wait_child(self) -> tuple[Verdict] | None:
        """``(verdict,)`` printed by the child; None when there is no child or it failed."""
        if self._proc is None:
            return None
        out, _ = self._proc.communicate()
        if self._proc.returncode != 0:
            return None
        try:
            verdict = json.loads(out)
        except ValueError:
            return None
        if verdict is None:
            return (None,)
        if isinstance(verdict, list) and len(verdict) == 2 and all(type(v) is int for v in verdict):
            return ((verdict[0], verdict[1]),)
        return None

    def ok(self, n: int, k: int) -> bool:
        """True when the file is proven to hold ``n`` entries of ``3k`` keypoint numbers each."""
        return n > 0 and self.result() == (n, 3 * k)


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


def load_results_hotcoco(coco_gt: Any, scan: ResultsScan, k: int) -> Any | None:
    """hotcoco's result set read from ``scan.path`` (``k`` keypoints per entry), or None when any
    cheap check is not passed (the caller then runs the full Python validator for the precise message)."""
    with _quiet_stderr():
        try:
            coco_dt = coco_gt.loadRes(str(scan.path))
        except Exception:  # hotcoco refused the file: the full validator says why
            return None
        if coco_dt.load_warnings:
            return None
        health = coco_gt.healthcheck(coco_dt)
    if health.get("errors") or health.get("warnings"):
        return None  # unknown image or category ids, missing or infinite scores, ...
    if not scan.ok(len(coco_dt.getAnnIds()), k):
        return None
    return coco_dt
