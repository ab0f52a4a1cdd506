"""Person instances as flat numpy columns, shared by DataLoader workers without copies; a load cache.

A list of :class:`~hsrpose.data.coco.Instance` objects for COCO train2017 (150k persons)
is millions of small Python objects. Forked DataLoader workers share them copy-on-write,
but every access writes the objects' reference counts (and every garbage collection
their GC headers), so each worker ends up with its own copy of the pages it touched.
:class:`InstanceStore` keeps the same data in a handful of numpy arrays (and the file
names in one byte buffer, as detectron2's ``DatasetFromList(serialize=True)`` does):
reading an item touches only the arrays' headers, never their data pages, and builds a
fresh :class:`Instance` (with its own small arrays) on the fly.

The cache: parsing a 350 MB annotation file with the standard JSON parser takes tens of
seconds. :func:`load_cached` / :func:`save_cached` keep the loaded columns, the load report
and the keypoint set in one ``.npz`` under ``$HSRPOSE_CACHE_DIR`` (default
``~/.cache/hsrpose/annotations``), keyed by the file's absolute path, size and
modification time and by the load options; files smaller than ``CACHE_MIN_BYTES`` are not
cached (parsing them is fast). ``HSRPOSE_CACHE_DIR=off`` disables the cache.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence, overload

import numpy as np

from hsrpose.utils.cache import cache_dir

if TYPE_CHECKING:
    from hsrpose.data.coco import CocoInstances, Instance

__all__ = ["InstanceStore", "load_cached", "save_cached", "release_freed_memory", "CACHE_MIN_BYTES"]

CACHE_MIN_BYTES = 16 * 2**20
CACHE_FORMAT = 1  # bump when the cached columns or their meaning change
_COLUMNS = ("image_id", "ann_id", "box_xywh", "keypoints", "score", "area", "image_hw", "name_index", "name_offsets", "name_bytes")


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class InstanceStore(Sequence["Instance"]):
    """Instances as columns; ``store[i]`` is an :class:`Instance`, ``store[a:b]`` a store.

    Columns (N instances, K keypoints, U unique file names):
        image_id, ann_id: int64 (N,); box_xywh: float64 (N, 4) image px; keypoints: float64
        (N, K, 3) image px + visibility; score, area: float64 (N,); image_hw: int64 (N, 2),
        ``-1`` where the image entry had no size; name_index: int64 (N,) into the names;
        name_offsets: int64 (U + 1,) byte offsets into name_bytes (uint8, UTF-8 file names).
    """

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        missing = [c for c in _COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"InstanceStore: missing columns {missing}")
        self.columns = {c: _readonly(np.asarray(columns[c])) for c in _COLUMNS}
        n = len(self.columns["image_id"])
        if any(len(self.columns[c]) != n for c in ("ann_id", "box_xywh", "keypoints", "score", "area", "image_hw", "name_index")):
            raise ValueError("InstanceStore: columns of different lengths")

    @classmethod
    def from_instances(cls, instances: Sequence["Instance"], num_keypoints: int | None = None) -> "InstanceStore":
        """Columns of ``instances`` (``num_keypoints`` fixes K when the list is empty)."""
        if isinstance(instances, InstanceStore):
            return instances
        n = len(instances)
        k = num_keypoints if num_keypoints is not None else (len(instances[0].keypoints) if n else 0)
        names: dict[str, int] = {}
        name_index = np.empty(n, dtype=np.int64)
        for i, inst in enumerate(instances):
            name_index[i] = names.setdefault(inst.file_name, len(names))
        encoded = [s.encode("utf-8") for s in names]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        cols = {
            "image_id": np.fromiter((i.image_id for i in instances), dtype=np.int64, count=n),
            "ann_id": np.fromiter((i.ann_id for i in instances), dtype=np.int64, count=n),
            "box_xywh": np.array([i.box_xywh for i in instances], dtype=np.float64).reshape(n, 4),
            "keypoints": np.array([i.keypoints for i in instances], dtype=np.float64).reshape(n, k, 3),
            "score": np.fromiter((i.score for i in instances), dtype=np.float64, count=n),
            "area": np.fromiter((i.area for i in instances), dtype=np.float64, count=n),
            "image_hw": np.array([i.image_hw if i.image_hw is not None else (-1, -1) for i in instances], dtype=np.int64).reshape(n, 2),
            "name_index": name_index,
            "name_offsets": offsets,
            "name_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(),
        }
        return cls(cols)

    def __len__(self) -> int:
        return len(self.columns["image_id"])

    @overload
    def __getitem__(self, index: int) -> "Instance": ...

    @overload
    def __getitem__(self, index: slice) -> "InstanceStore": ...

    def __getitem__(self, index: int | slice) -> "Instance | InstanceStore":
        from hsrpose.data.coco import Instance

        c = self.columns
        if isinstance(index, slice):
            sub = {k: v[index] for k, v in c.items() if k not in ("name_offsets", "name_bytes")}
            return InstanceStore({**sub, "name_offsets": c["name_offsets"], "name_bytes": c["name_bytes"]})
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"instance index {index} out of range for {n} instances")
        j = int(c["name_index"][i])
        start, stop = int(c["name_offsets"][j]), int(c["name_offsets"][j + 1])
        h, w = (int(v) for v in c["image_hw"][i])
        return Instance(
            image_id=int(c["image_id"][i]),
            ann_id=int(c["ann_id"][i]),
            file_name=c["name_bytes"][start:stop].tobytes().decode("utf-8"),
            box_xywh=c["box_xywh"][i].copy(),  # own copies: a caller may modify them
            keypoints=c["keypoints"][i].copy(),
            score=float(c["score"][i]),
            area=float(c["area"][i]),
            image_hw=None if h < 0 else (h, w),
        )

    def __iter__(self) -> Iterator["Instance"]:
        for i in range(len(self)):
            yield self[i]

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.columns.values())

    def __repr__(self) -> str:
        return f"InstanceStore({len(self)} instances, {self.nbytes / 2**20:.1f} MiB)"


# ----------------------------------------------------------------------------- cache


def _cache_file(ann_file: str | os.PathLike[str], options: dict[str, Any]) -> Path | None:
    """The cache file of ``ann_file`` loaded with ``options``; None when caching does not apply."""
    d = cache_dir()
    try:
        st = os.stat(ann_file)
    except OSError:
        return None
    if d is None or st.st_size < int(os.environ.get("HSRPOSE_CACHE_MIN_BYTES", CACHE_MIN_BYTES)):
        return None
    key = json.dumps([CACHE_FORMAT, str(Path(ann_file).resolve()), st.st_size, st.st_mtime_ns, options], sort_keys=True, default=str)
    return d / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".npz")


def load_cached(ann_file: str | os.PathLike[str], options: dict[str, Any]) -> "CocoInstances | None":
    """The cached load of ``ann_file`` with ``options`` (None: no cache, or a stale/unreadable one)."""
    from hsrpose.data.coco import CocoInstances, LoadReport
    from hsrpose.data.keypoints import KeypointInfo

    path = _cache_file(ann_file, options)
    if path is None or not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            columns = {c: z[c] for c in _COLUMNS}
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError):
        return None  # a broken cache is only a slower load
    r = meta["report"]
    report = LoadReport(source=r["source"], skipped=Counter(r["skipped"]), filtered=Counter(r["filtered"]),
                        examples=r["examples"], kept=r["kept"])  # fmt: skip
    return CocoInstances(InstanceStore(columns), KeypointInfo.from_dict(meta["keypoint_info"]), report, meta["category_id"])


def save_cached(ann_file: str | os.PathLike[str], options: dict[str, Any], loaded: "CocoInstances") -> None:
    """Write ``loaded`` (instances as an :class:`InstanceStore`) to the cache; failures only cost speed."""
    from hsrpose.utils.io import atomic_save

    path = _cache_file(ann_file, options)
    if path is None or not isinstance(loaded.instances, InstanceStore):
        return
    rep = loaded.report
    meta = {
        "report": {"source": rep.source, "skipped": dict(rep.skipped), "filtered": dict(rep.filtered),
                   "examples": rep.examples, "kept": rep.kept},  # fmt: skip
        "keypoint_info": loaded.keypoint_info.to_dict(),
        "category_id": loaded.category_id,
    }
    arrays = {**loaded.instances.columns, "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(path, write)
    except OSError:
        pass  # read-only home, full disk: the next load parses again


def release_freed_memory() -> None:
    """Give the heap pages freed by a big parse back to the OS (glibc ``malloc_trim``; no-op elsewhere).

    Without it the resident size after loading stays at the parse's peak: the JSON objects are
    freed, but glibc keeps their pages for reuse.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim(0)
    except OSError:
        pass
