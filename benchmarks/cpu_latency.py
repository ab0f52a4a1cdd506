"""CPU latency per crop: PyTorch eager vs onnxruntime, batch 1 and batch 8, same thread count.

    .venv/bin/python benchmarks/cpu_latency.py                      # the three paper models at 256x192
    .venv/bin/python benchmarks/cpu_latency.py --runs 20 --threads 4 --json out.json

For each preset: build the model (random weights: latency does not depend on the
values), export it to ONNX (hsrpose.export, fixed 256x192 input, dynamic batch),
then time ``model(x)`` under ``torch.inference_mode()`` and
``OnnxRuntimeBackend(x)`` on the same float32 input. Each measurement is the
median of ``--runs`` timed calls after ``--warmup`` untimed ones; ms per crop =
median / batch. Threads: ``torch.set_num_threads`` and onnxruntime's
``intra_op_num_threads`` both set to ``--threads`` (inter-op 1 for both).
Ratio = torch / onnxruntime (> 1: onnxruntime is faster).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

DEFAULT_PRESETS = ["simplebaseline_res50_256x192", "hsrnet59_256x192", "hsr_msnet59_256x192"]


def median_seconds(fn: Callable[[], object], warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    import onnxruntime as ort
    import torch

    from hsrpose.data.keypoints import COCO_KEYPOINTS
    from hsrpose.export import DEFAULT_OPSET, export_onnx
    from hsrpose.inference.onnx_backend import OnnxRuntimeBackend
    from hsrpose.models import create_model, get_preset

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    print(
        f"# torch {torch.__version__}, onnxruntime {ort.__version__}, opset {DEFAULT_OPSET}, "
        f"{args.threads} threads each, warmup {args.warmup}, median of {args.runs} runs, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    # Other processes on the machine inflate both columns (torch's OpenMP threads suffer most).
    print(f"# load average at start: {os.getloadavg()[0]:.1f}")
    print(f"{'preset':<30} {'batch':>5} {'torch ms/crop':>14} {'ort ms/crop':>12} {'torch/ort':>9}")
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets:
            preset = get_preset(name)
            torch.manual_seed(0)
            model = create_model(name).eval()
            path = Path(tmp) / f"{name}.onnx"
            export_onnx(
                model, path, preset=name, input_hw=preset.input_hw, heatmap_hw=preset.heatmap_hw,
                keypoint_info=COCO_KEYPOINTS,
            )  # fmt: skip
            backend = OnnxRuntimeBackend(path, intra_op_threads=args.threads)
            for batch in args.batch_sizes:
                x = rng.standard_normal((batch, 3, *preset.input_hw)).astype(np.float32)
                xt = torch.from_numpy(x)

                def run_torch() -> object:
                    with torch.inference_mode():
                        return model(xt)

                t_torch = median_seconds(run_torch, args.warmup, args.runs) / batch * 1e3
                t_ort = median_seconds(lambda: backend(x), args.warmup, args.runs) / batch * 1e3
                row = {
                    "preset": name,
                    "input_hw": list(preset.input_hw),
                    "batch": batch,
                    "torch_ms_per_crop": round(t_torch, 2),
                    "ort_ms_per_crop": round(t_ort, 2),
                    "ratio_torch_over_ort": round(t_torch / t_ort, 3),
                }
                rows.append(row)
                print(f"{name:<30} {batch:>5} {t_torch:>14.1f} {t_ort:>12.1f} {t_torch / t_ort:>9.2f}", flush=True)
            del backend, model
    print(f"# load average at end: {os.getloadavg()[0]:.1f}")
    if args.json is not None:
        from hsrpose.utils.io import atomic_write_json

        summary = {"threads": args.threads, "runs": args.runs, "warmup": args.warmup, "rows": rows}
        atomic_write_json(args.json, summary, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
