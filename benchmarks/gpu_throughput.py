"""Training and inference throughput on one device, and model-FLOP utilisation (issue 9).

Usage (H100, the numbers the issue asks for; default data = coco-mini):
    python benchmarks/gpu_throughput.py --compile
    python benchmarks/gpu_throughput.py --images DIR --ann FILE --compile --json-out out.json
CPU smoke test (the numbers mean nothing there):
    python benchmarks/gpu_throughput.py --device cpu --steps 2 --batch 2

For each model (default: hsr_msnet59_256x192, hsrnet59_256x192,
simplebaseline_res50_256x192) it measures, after ``--warmup`` untimed steps:
  (i)   train step alone: samples/s of forward + weighted MSE + backward + Adam on
        random tensors already on the device;
  (ii)  full pipeline: samples/s of the same step fed from JPEG files on disk by
        DataLoader workers (read bytes, sample augmentation) and the GPU data path
        (hsrpose.data.gpu: decode, affine crops, flip, normalisation, targets);
  (iii) inference: crops/s of a bf16 forward (no flip test);
and the model-FLOP utilisation (MFU) of each: achieved FLOP/s / the bf16 matmul
FLOP/s measured on the same device. FLOPs per sample come from
torch.utils.flop_counter (conv/linear/matmul only; 2 FLOPs per MAC): forward for
inference, forward + backward for training. The data path alone (no model) is
also timed, as the ceiling the pipeline can reach.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.flop_counter import FlopCounterMode

from hsrpose.codec import HeatmapCodec
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.engine.train import joints_mse_loss
from hsrpose.models import create_model, get_preset

DEFAULT_MODELS = ("hsr_msnet59_256x192", "hsrnet59_256x192", "simplebaseline_res50_256x192")
REPO = Path(__file__).resolve().parents[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], n: int, device: torch.device) -> float:
    """Seconds for ``n`` calls of ``fn`` (device work included)."""
    sync(device)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return time.perf_counter() - t


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def matmul_flops_per_s(device: torch.device, n: int, iters: int) -> float:
    """Measured bf16 dense matmul rate (n x n @ n x n), FLOP/s: the hardware ceiling used for MFU."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    timed(lambda: a @ b, 3, device)
    secs = timed(lambda: a @ b, iters, device)
    return 2.0 * n**3 * iters / secs


def count_flops(model: torch.nn.Module, input_hw: tuple[int, int], device: torch.device, train: bool) -> float:
    """FLOPs per sample (batch 2, divided by 2) of a forward (+ loss + backward when ``train``)."""
    x = torch.randn(2, 3, *input_hw, device=device)
    was_training = model.training
    model.train(train)
    with FlopCounterMode(display=False) as fc:
        if train:
            out = model(x)
            joints_mse_loss(out, torch.zeros_like(out), torch.ones(out.shape[:2], device=device)).backward()
        else:
            with torch.no_grad():
                model(x)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return fc.get_total_flops() / 2.0


@dataclass
class Options:
    device: torch.device
    batch: int
    infer_batch: int
    steps: int
    warmup: int
    bf16: bool
    channels_last: bool
    compile: bool
    cuda_graphs: bool
    fused_adam: bool
    workers: int
    decode: str
    images: Path
    ann: Path

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.bf16 else None

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


@dataclass
class Row:
    model: str
    params_m: float
    gmacs: float
    train_flops: float = 0.0
    infer_flops: float = 0.0
    results: dict[str, float] = field(default_factory=dict)


def build(name: str, opt: Options) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]:
    """Model on the device (memory format applied), its compiled wrapper (or itself), and Adam."""
    model = create_model(name).to(opt.device).to(memory_format=opt.memory_format)
    run = model
    if opt.compile:
        run = torch.compile(model, mode="reduce-overhead" if opt.cuda_graphs else None)
    fused = opt.fused_adam and opt.device.type == "cuda"
    optim = torch.optim.Adam(model.parameters(), lr=1e-4, fused=fused if fused else None)
    return model, run, optim


def make_step(run: torch.nn.Module, optim: torch.optim.Optimizer, opt: Options) -> Callable[..., torch.Tensor]:
    """The training step as engine/train.py runs it: autocast forward, fp32 loss, backward, Adam."""
    dev_type = opt.device.type

    def step(images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=dev_type, dtype=opt.amp_dtype or torch.float32, enabled=opt.bf16):
            out = run(images)
        loss = joints_mse_loss(out.float(), targets, weights)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return loss.detach()

    return step


class Trainer:
    """One model, its (compiled) wrapper, Adam and the step, built once for (i) and (ii): one compile."""

    def __init__(self, name: str, opt: Options) -> None:
        self.preset = get_preset(name)
        self.model, self.run, self.optim = build(name, opt)
        self.model.train()
        self.step = make_step(self.run, self.optim, opt)


def bench_train_step(trainer: Trainer, opt: Options) -> float:
    """(i) samples/s of the step alone, on random tensors already on the device."""
    b, p = opt.batch, trainer.preset
    images = torch.randn(b, 3, *p.input_hw, device=opt.device).contiguous(memory_format=opt.memory_format)
    targets = torch.rand(b, 17, *p.heatmap_hw, device=opt.device)
    weights = torch.ones(b, 17, device=opt.device)
    timed(lambda: trainer.step(images, targets, weights), opt.warmup, opt.device)
    secs = timed(lambda: trainer.step(images, targets, weights), opt.steps, opt.device)
    return b * opt.steps / secs


def make_loader(name: str, opt: Options, n_batches: int) -> tuple[DataLoader, Any]:
    """DataLoader of cheap CPU samples (file bytes + augmentation affine) and the device batch builder."""
    from hsrpose.data.coco import load_coco_instances
    from hsrpose.data.config import AugmentConfig
    from hsrpose.data.dataset import TopDownDataset
    from hsrpose.data.gpu import GpuBatchBuilder, GpuSampleDataset, collate_gpu_samples, gpu_decode_available

    preset = get_preset(name)
    codec = HeatmapCodec(preset.input_hw, preset.heatmap_hw, sigma=2.0)
    instances = load_coco_instances(opt.ann)
    base = TopDownDataset(instances, opt.images, preset.input_hw, codec, AugmentConfig(), COCO_KEYPOINTS)
    decode = opt.decode
    if decode == "auto":
        decode = "device" if gpu_decode_available() and opt.device.type == "cuda" else "worker"
    ds = GpuSampleDataset(base, decode=decode)
    # Sampling with replacement: as many batches as asked for, whatever the size of the set.
    sampler = RandomSampler(ds, replacement=True, num_samples=opt.batch * n_batches)
    loader = DataLoader(
        ds, batch_size=opt.batch, sampler=sampler, num_workers=opt.workers, collate_fn=collate_gpu_samples,
        pin_memory=opt.device.type == "cuda", drop_last=True, prefetch_factor=4 if opt.workers > 0 else None,
    )  # fmt: skip
    builder = GpuBatchBuilder(codec, COCO_KEYPOINTS.flip_index, device=opt.device, channels_last=opt.channels_last)
    return loader, builder


def bench_loader(loader: DataLoader, opt: Options, consume: Callable[[Any], Any]) -> float:
    """samples/s of ``consume(batch)`` over the loader, after ``opt.warmup`` untimed batches."""
    it = iter(loader)
    for _ in range(opt.warmup):
        consume(next(it))
    sync(opt.device)
    t = time.perf_counter()
    n = 0
    for batch in it:
        consume(batch)
        n += len(batch["M"])
    sync(opt.device)
    return n / (time.perf_counter() - t)


def bench_pipeline(trainer: Trainer, opt: Options) -> float:
    """(ii) samples/s of the step fed from JPEG files through the workers and the GPU data path."""
    loader, builder = make_loader(trainer.preset.name, opt, opt.warmup + opt.steps)

    def consume(batch: Any) -> None:
        gb = builder(batch)
        trainer.step(gb.images, gb.targets, gb.target_weight)

    return bench_loader(loader, opt, consume)


def bench_data_only(name: str, opt: Options) -> float:
    loader, builder = make_loader(name, opt, opt.warmup + opt.steps)
    return bench_loader(loader, opt, builder)


def bench_inference(name: str, opt: Options) -> float:
    preset = get_preset(name)
    model = create_model(name).to(opt.device).to(memory_format=opt.memory_format).eval()
    run = torch.compile(model, mode="reduce-overhead" if opt.cuda_graphs else None) if opt.compile else model
    x = torch.randn(opt.infer_batch, 3, *preset.input_hw, device=opt.device).contiguous(memory_format=opt.memory_format)

    def fwd() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device_type=opt.device.type, dtype=torch.bfloat16):
            return run(x)

    timed(fwd, opt.warmup, opt.device)
    return opt.infer_batch * opt.steps / timed(fwd, opt.steps, opt.device)


def default_data() -> tuple[Path, Path]:
    root = Path(os.environ.get("HSRPOSE_COCO_MINI", REPO.parent / "shared" / "data" / "coco-mini"))
    return root / "train2017", root / "annotations" / "person_keypoints_train2017.json"


def main(argv: list[str] | None = None) -> int:
    images, ann = default_data()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated presets")
    ap.add_argument("--batch", type=int, default=256, help="training batch")
    ap.add_argument("--infer-batch", type=int, default=None, help="inference batch (default 4x --batch)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10 on GPU, 1 on CPU)")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="train in fp32 (inference stays bf16)")
    ap.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (train and inference)")
    ap.add_argument("--cuda-graphs", action="store_true", help="with --compile: mode='reduce-overhead' (CUDA graphs)")
    ap.add_argument("--no-fused-adam", dest="fused_adam", action="store_false", help="fused Adam is used on CUDA by default")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPU cores - 2, at least 1)")
    ap.add_argument("--decode", choices=["auto", "device", "worker"], default="auto",
                    help="JPEG decode on the GPU (torchvision nvJPEG) or with OpenCV in the workers")  # fmt: skip
    ap.add_argument("--images", type=Path, default=images, help="COCO image folder (default coco-mini)")
    ap.add_argument("--ann", type=Path, default=ann, help="COCO person keypoints annotation file")
    ap.add_argument("--matmul-n", type=int, default=None, help="size of the bf16 matmul probe (default 8192 GPU, 512 CPU)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: train,pipeline,data,infer")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    opt = Options(
        device=device, batch=args.batch, infer_batch=args.infer_batch or 4 * args.batch, steps=args.steps,
        warmup=args.warmup if args.warmup is not None else (10 if on_gpu else 1), bf16=args.bf16,
        channels_last=args.channels_last, compile=args.compile, cuda_graphs=args.cuda_graphs,
        fused_adam=args.fused_adam, workers=args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) - 2),
        decode=args.decode, images=args.images, ann=args.ann,
    )  # fmt: skip
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        get_preset(n)  # unknown names fail here, before minutes of measuring
    if "pipeline" not in skip or "data" not in skip:
        for p in (opt.images, opt.ann):
            if not p.exists():
                print(f"error: {p} not found (give --images and --ann, or --skip pipeline,data)", file=sys.stderr)
                return 2

    dev_name = torch.cuda.get_device_name(device) if on_gpu else "CPU"
    print(f"device: {dev_name}; torch {torch.__version__}; batch {opt.batch} (inference {opt.infer_batch}); "
          f"steps {opt.steps} (+{opt.warmup} warm-up); bf16={opt.bf16} channels_last={opt.channels_last} "
          f"compile={opt.compile} cuda_graphs={opt.cuda_graphs} fused_adam={opt.fused_adam and on_gpu} "
          f"workers={opt.workers} decode={opt.decode}", flush=True)  # fmt: skip
    if not on_gpu:
        print("NOTE: CPU run: a smoke test of the script; these numbers say nothing about GPU throughput.", flush=True)
    peak = matmul_flops_per_s(device, args.matmul_n or (8192 if on_gpu else 512), 50 if on_gpu else 3)
    print(f"measured bf16 matmul rate: {peak / 1e12:.3g} TFLOP/s", flush=True)

    rows: list[Row] = []
    data_rate = float("nan")
    for name in names:
        preset = get_preset(name)
        model = create_model(name).to(device)
        row = Row(name, sum(p.numel() for p in model.parameters()) / 1e6, 0.0)
        row.infer_flops = count_flops(model, preset.input_hw, device, train=False)
        row.train_flops = count_flops(model, preset.input_hw, device, train=True)
        row.gmacs = row.infer_flops / 2e9
        del model
        trainer = Trainer(name, opt) if not {"train", "pipeline"} <= skip else None
        parts: list[tuple[str, Callable[[], float], float]] = [
            ("train", lambda: bench_train_step(trainer, opt), row.train_flops),
            ("pipeline", lambda: bench_pipeline(trainer, opt), row.train_flops),
            ("infer", lambda: bench_inference(name, opt), row.infer_flops),
        ]
        for part, fn, flops in parts:
            if part in skip:
                continue
            rate = fn()
            row.results[part] = rate
            row.results[f"{part}_mfu"] = rate * flops / peak
            print(f"{name}: {part} {fmt_rate(rate)} samples/s, MFU {100 * rate * flops / peak:.1f}%", flush=True)
        del trainer
        if on_gpu:
            torch.cuda.empty_cache()
        if "data" not in skip and math.isnan(data_rate):
            data_rate = bench_data_only(name, opt)
            print(f"data path alone (workers + GPU batch builder, {preset.input_hw[0]}x{preset.input_hw[1]}): "
                  f"{fmt_rate(data_rate)} samples/s", flush=True)  # fmt: skip
        rows.append(row)

    def cell(row: Row, key: str, fmt: str = "") -> str:
        v = row.results.get(key)
        return "-" if v is None else (fmt.format(v) if fmt else fmt_rate(v))

    print()
    print(f"device: {dev_name}; bf16 matmul {peak / 1e12:.3g} TFLOP/s; batch {opt.batch}, inference batch {opt.infer_batch}")
    print("| model | params (M) | GMACs | train step (samples/s) | MFU | full pipeline (samples/s) | MFU | inference bf16 (crops/s) | MFU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.model} | {r.params_m:.3f} | {r.gmacs:.3f} | {cell(r, 'train')} | {cell(r, 'train_mfu', '{:.1%}')} "
              f"| {cell(r, 'pipeline')} | {cell(r, 'pipeline_mfu', '{:.1%}')} | {cell(r, 'infer')} "
              f"| {cell(r, 'infer_mfu', '{:.1%}')} |")  # fmt: skip
    if not math.isnan(data_rate):
        print(f"data path alone: {fmt_rate(data_rate)} samples/s")
    if args.json_out is not None:
        from hsrpose.utils.io import atomic_write_json

        atomic_write_json(args.json_out, {
            "device": dev_name, "torch": torch.__version__, "matmul_bf16_flops_per_s": peak,
            "options": {k: str(v) for k, v in vars(opt).items()}, "data_path_samples_per_s": data_rate,
            "models": [vars(r) for r in rows],
        })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
