"""COCO-sized annotations in memory: load time, resident memory, per-worker copy-on-write growth (issue 18).

Usage:
    OMP_NUM_THREADS=1 python benchmarks/data_scale.py                 # builds the file once, then measures
    python benchmarks/data_scale.py --copies 1800 --workers 2 --out /tmp/hsrpose_data_scale/coco_scale.json

1. Builds (once; reused when present with the expected annotation count) a COCO train2017-sized
   keypoint file by replicating coco-mini: ``--copies`` copies (1800 -> 144,000 image entries,
   309,600 annotations, about 347 MB), each copy with fresh image and annotation ids; file
   names are the coco-mini ones, the index access below never opens an image.
2. Loads it with ``hsrpose.data.coco.load_coco(mode="train")`` (what ``hsrpose train`` does) and
   wraps it in ``TopDownDataset``; prints the load time and the process's resident memory
   (RSS) before and after (the difference is what the instances hold, after ``gc.collect``).
   Twice, each in a fresh process sharing an empty annotation cache (``HSRPOSE_CACHE_DIR``):
   ``parse`` (the first load of the file) and ``cached`` (every later one).
3. In the ``cached`` process, starts a DataLoader with ``--workers`` forked workers, records each worker's unique memory
   (USS, psutil: pages only that process holds, i.e. copies made by copy-on-write), runs one
   epoch of index access (every worker takes its share of ``dataset.instances[i]`` and
   ``dataset.crop_params(i)``, no image decoding), then records USS again and prints the growth.

Timings are wall-clock on whatever else the machine is running; memory figures are not.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import psutil
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

REPO = Path(__file__).resolve().parents[1]
COCO_MINI = Path(os.environ.get("HSRPOSE_COCO_MINI", REPO.parent / "shared" / "data" / "coco-mini"))
PROBE = "uss"


def build_file(src: Path, out: Path, copies: int) -> None:
    """Write ``copies`` replicas of ``src``'s images and annotations (ids offset per copy) to ``out``."""
    d = json.loads(src.read_text())
    img_step = max(int(i["id"]) for i in d["images"]) + 1
    ann_step = max(int(a["id"]) for a in d["annotations"]) + 1
    images, anns = [], []
    for c in range(copies):
        for im in d["images"]:
            images.append({**im, "id": int(im["id"]) + c * img_step})
        for a in d["annotations"]:
            anns.append({**a, "id": int(a["id"]) + c * ann_step, "image_id": int(a["image_id"]) + c * img_step})
    out.parent.mkdir(parents=True, exist_ok=True)
    from hsrpose.utils.io import atomic_write_text

    atomic_write_text(out, json.dumps({**d, "images": images, "annotations": anns}))


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


class _Access(Dataset):
    """Index access to the real TopDownDataset's instances; a probe key returns the worker's USS."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple) and key[0] == PROBE:
            gc.collect()  # what a long-running worker's collector would have touched anyway
            return (os.getpid(), psutil.Process().memory_full_info().uss)
        inst = self.ds.instances[key]
        p = self.ds.crop_params(key)
        return float(p.center[0]) + float(inst.keypoints[0, 0]) + len(inst.file_name)


class _Toggle(Sampler):
    """Batches of indices for an epoch, or one probe per worker (round-robin: batch i -> worker i)."""

    def __init__(self, n: int, batch: int, workers: int) -> None:
        self.n, self.batch, self.workers, self.probe = n, batch, workers, True

    def __iter__(self) -> Iterator[list[Any]]:
        if self.probe:
            return iter([[(PROBE, w)] for w in range(self.workers)])
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(0)).tolist()
        return iter([perm[i : i + self.batch] for i in range(0, self.n, self.batch)])

    def __len__(self) -> int:
        return self.workers if self.probe else (self.n + self.batch - 1) // self.batch


def _run_phases(args: argparse.Namespace) -> int:
    """Build the file if needed, then measure ``parse`` and ``cached`` in fresh processes."""
    import subprocess
    import tempfile

    src_anns = len(json.loads(args.src.read_text())["annotations"])
    expected = src_anns * args.copies
    stamp = args.out.with_name(args.out.name + ".count")  # annotation count of a finished build
    if not args.out.exists() or not stamp.exists() or stamp.read_text().strip() != str(expected):
        t = time.perf_counter()
        build_file(args.src, args.out, args.copies)
        stamp.write_text(str(expected))
        print(f"built {args.out}: {time.perf_counter() - t:.1f}s", flush=True)
    print(f"file: {args.out} ({args.out.stat().st_size / 1e6:.0f} MB, {expected:,} annotations)", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        for phase in ("parse", "cached"):
            cmd = [sys.executable, __file__, "--phase", phase, "--src", str(args.src), "--copies", str(args.copies),
                   "--out", str(args.out), "--workers", str(args.workers), "--batch", str(args.batch)]  # fmt: skip
            rc = subprocess.run(cmd, env={**os.environ, "HSRPOSE_CACHE_DIR": cache}).returncode
            if rc:
                return rc
    return 0


def _collate(items: list[Any]) -> list[Any]:
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, default=COCO_MINI / "annotations" / "person_keypoints_train2017.json")
    ap.add_argument("--copies", type=int, default=1800, help="replicas of the source file (1800: COCO train2017 size)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/hsrpose_data_scale/person_keypoints_coco_scale.json"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--phase", choices=["parse", "cached"], default=None, help="(internal) one measuring process")
    args = ap.parse_args(argv)
    if args.phase is None:
        return _run_phases(args)

    from hsrpose.codec import HeatmapCodec
    from hsrpose.data.coco import load_coco
    from hsrpose.data.dataset import TopDownDataset

    proc = psutil.Process()
    gc.collect()
    rss0 = proc.memory_info().rss
    t = time.perf_counter()
    loaded = load_coco(args.out, mode="train")
    ds = TopDownDataset(loaded.instances, COCO_MINI / "train2017", (256, 192), HeatmapCodec((256, 192), (64, 48)))
    load_s = time.perf_counter() - t
    del loaded
    gc.collect()
    rss1 = proc.memory_info().rss
    print(f"[{args.phase}] instances: {len(ds):,} usable ({type(ds.instances).__name__})")
    print(f"[{args.phase}] load: {load_s:.1f} s")
    if args.phase == "parse":
        print(f"[parse] resident: {mb(rss0)} before, {mb(rss1)} after load -> instances hold {mb(rss1 - rss0)}", flush=True)
        print(f"SUMMARY parse load_s={load_s:.1f} resident_mb={(rss1 - rss0) / 2**20:.0f}")
        return 0
    print(f"[{args.phase}] resident: {mb(rss0)} before, {mb(rss1)} after load -> instances hold {mb(rss1 - rss0)}")

    sampler = _Toggle(len(ds), args.batch, args.workers)
    loader = DataLoader(_Access(ds), batch_sampler=sampler, num_workers=args.workers, collate_fn=_collate,
                        persistent_workers=True, multiprocessing_context="fork")  # fmt: skip
    before = {pid: uss for b in loader for pid, uss in b}
    sampler.probe = False
    t = time.perf_counter()
    n = sum(len(b) for b in loader)
    epoch_s = time.perf_counter() - t
    sampler.probe = True
    after = {pid: uss for b in loader for pid, uss in b}
    print(f"epoch of index access: {n:,} items, {epoch_s:.1f} s, {args.workers} workers")
    for i, pid in enumerate(sorted(before)):
        print(f"worker {i} (pid {pid}): USS {mb(before[pid])} -> {mb(after[pid])}  (+{mb(after[pid] - before[pid])})")
    growth = max(after[p] - before[p] for p in before)
    print(f"SUMMARY {args.phase} load_s={load_s:.1f} resident_mb={(rss1 - rss0) / 2**20:.0f} max_worker_growth_mb={growth / 2**20:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
