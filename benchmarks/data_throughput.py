"""Training-data throughput: samples/s of the CPU pipeline by number of DataLoader workers.

    python benchmarks/data_throughput.py --ann ANN.json --images DIR [--workers 0,1,2] [--samples 512]

First a per-stage breakdown in the main process (mean ms per sample): read +
decode (``read_image_bgr``), augmentation draw + affine warp + normalisation,
Gaussian targets (``HeatmapCodec.encode``). Then samples/s through
``build_loader`` (training augmentation, batch 32) for each worker count, counted
after the first batch so that worker start-up is reported separately.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


from hsrpose.codec import HeatmapCodec
from hsrpose.data.coco import load_coco
from hsrpose.data.config import AugmentConfig
from hsrpose.data.dataset import TopDownDataset
from hsrpose.data.geometry import warp_crop
from hsrpose.data.imageio import read_image_bgr
from hsrpose.data.loader import build_loader, set_loader_epoch
from hsrpose.data.transforms import crop_matrix, keypoints_to_crop, to_input_array


def stage_breakdown(ds: TopDownDataset, n: int) -> dict[str, float]:
    """Mean seconds per sample of each stage, run in this process (no workers)."""
    t = {"read+decode": 0.0, "augment+warp+normalise": 0.0, "targets": 0.0}
    for k in range(n):
        i = k % len(ds)
        inst = ds.instances[i]
        t0 = time.perf_counter()
        image = read_image_bgr(ds.image_dir / inst.file_name, inst.image_hw)
        t1 = time.perf_counter()
        params = ds.crop_params(i)
        m = crop_matrix(params, image.shape[1], ds.input_hw)
        to_input_array(warp_crop(image, m, ds.input_hw))
        t2 = time.perf_counter()
        kp = keypoints_to_crop(inst.keypoints, m, params.flip, ds.keypoint_info.flip_index)
        ds.codec.encode(kp[:, :2], kp[:, 2])
        t3 = time.perf_counter()
        t["read+decode"] += t1 - t0
        t["augment+warp+normalise"] += t2 - t1
        t["targets"] += t3 - t2
    return {k: v / n for k, v in t.items()}


def loader_rate(ds: TopDownDataset, workers: int, samples: int, batch: int) -> tuple[float, float]:
    """(samples/s after the first batch, seconds to the first batch)."""
    loader = build_loader(ds, batch_size=batch, shuffle=True, num_workers=workers, seed=0)
    seen, epoch = 0, 0
    t_start = time.perf_counter()
    t_first = None
    counted = 0
    while seen < samples + batch:
        set_loader_epoch(loader, epoch)
        for b in loader:
            seen += len(b["index"])
            if t_first is None:
                t_first = time.perf_counter()
            else:
                counted += len(b["index"])
            if seen >= samples + batch:
                break
        epoch += 1
    t_end = time.perf_counter()
    assert t_first is not None
    return counted / max(t_end - t_first, 1e-9), t_first - t_start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ann", required=True, help="COCO keypoint annotation file")
    ap.add_argument("--images", required=True, help="image folder")
    ap.add_argument("--input-size", default="256x192", help="crop HxW (default 256x192)")
    ap.add_argument("--workers", default="0,1,2", help="comma-separated worker counts (default 0,1,2)")
    ap.add_argument("--samples", type=int, default=512, help="samples timed per worker count (default 512)")
    ap.add_argument("--batch", type=int, default=32, help="batch size (default 32, the paper's)")
    ap.add_argument("--stage-samples", type=int, default=128, help="samples for the per-stage breakdown")
    ap.add_argument("--half-body", action="store_true", help="enable half-body augmentation")
    args = ap.parse_args(argv)

    h, w = (int(v) for v in args.input_size.lower().split("x"))
    codec = HeatmapCodec((h, w), (h // 4, w // 4))
    res = load_coco(args.ann, mode="train")
    ds = TopDownDataset(res.instances, args.images, (h, w), codec, AugmentConfig(half_body=args.half_body), res.keypoint_info)
    print(f"# {len(ds)} instances, input {h}x{w}, batch {args.batch}, cpu count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f} (a shared machine: numbers are contended)")  # fmt: skip
    stages = stage_breakdown(ds, args.stage_samples)
    total = sum(stages.values())
    print("stage                     ms/sample   share")
    for name, sec in stages.items():
        print(f"{name:<25} {sec * 1e3:9.2f}   {sec / total:5.1%}")
    print(f"{'total (one process)':<25} {total * 1e3:9.2f}   -> {1 / total:.0f} samples/s")
    print("workers   samples/s   first batch (s)")
    for nw in (int(v) for v in args.workers.split(",")):
        rate, first = loader_rate(ds, nw, args.samples, args.batch)
        print(f"{nw:>7}   {rate:9.1f}   {first:15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
