"""CPU latency of the top-down pipeline with HSR-MSNet-59 at 256x192 (random weights: timing only).

Usage:
    python benchmarks/pose_latency.py [--preset hsr_msnet59_256x192] [--repeats 5] [--threads N]

Prints, as the median over ``--repeats`` runs after one warm-up, wall time and the
process's CPU time (steadier on a shared machine):
- the network alone on one crop (batch 1, no flip);
- one whole image (a 640x480 frame) with 1 and with 5 people, flip test off and on:
  crop + normalise + network (the 5 crops in one batch) + decode + inverse affine +
  rescoring + OKS-NMS. The person detector is EXCLUDED (boxes are given); the
  detectors' own times are printed by benchmarks/detector_recall.py.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np


def median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall seconds, process CPU seconds) of ``fn`` after one warm-up call.

    On a shared machine the wall time grows with the other processes' load; the CPU
    time (all threads of this process) much less so, which makes it the steadier number.
    """
    fn()  # warm-up (allocations, oneDNN kernel selection)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def fmt(t: tuple[float, float]) -> str:
    return f"{t[0] * 1000:.1f} ms wall, {t[1] * 1000:.1f} ms CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="hsr_msnet59_256x192")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = ap.parse_args()

    import torch

    from hsrpose.data.keypoints import COCO_KEYPOINTS
    from hsrpose.inference.backends import TorchBackend
    from hsrpose.inference.pipeline import PoseEstimator
    from hsrpose.models import create_model, get_preset

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    preset = get_preset(args.preset)
    model = create_model(args.preset).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    backend = TorchBackend(model, COCO_KEYPOINTS, preset.input_hw)
    print(f"{args.preset}: {params:.1f}M params, input {preset.input_hw}, torch {torch.__version__}, {torch.get_num_threads()} threads")

    crop = np.random.default_rng(0).standard_normal((1, 3, *preset.input_hw)).astype(np.float32)
    t = median_seconds(lambda: backend(crop), args.repeats)
    print(f"network, 1 crop (batch 1, no flip): {fmt(t)}")

    image = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    people = np.array([[20 + 120 * i, 60, 100, 300] for i in range(5)], np.float32)
    for flip in (False, True):
        est = PoseEstimator(backend, detector=None, flip_test=flip, batch_size=32)
        for n in (1, 5):
            t = median_seconds(lambda: est(image, boxes=people[:n]), args.repeats)
            print(f"image 640x480, {n} person{'s' if n > 1 else ''}, flip test {'on' if flip else 'off'} (detector excluded): {fmt(t)}")


if __name__ == "__main__":
    main()
