"""Training and inference throughput on one device, and model-FLOP utilisation (issues 9 and 18).

Usage (one H100/H200; ``benchmarks/gpu_suite.sh`` runs the full set):
    python benchmarks/gpu_throughput.py --configs "bf16,channels_last;bf16,channels_last,compile"
    python benchmarks/gpu_throughput.py --configs "bf16,channels_last,fused_adam,tf32,batch=256" --json-out r.json --md-out r.md
CPU smoke test (the numbers mean nothing there):
    python benchmarks/gpu_throughput.py --device cpu --configs fp32 --steps 2 --batch 2

The training step is :class:`hsrpose.engine.step.TrainStep`, built as ``hsrpose train`` builds
it (``build_optimizer``, ``compile_model``, GradScaler, the paper's Adam): the benchmark times
the step training runs. Losses stay on the device and are synced every ``--log-interval``
steps (``TrainConfig.log_interval``), as training does. Each ``--configs`` entry is one set of
engine options, by name (``hsrpose.engine.step.SpeedOptions``): ``fp32``/``bf16``/``fp16``,
``channels_last``, ``fused_adam``, ``tf32``, ``compile``, ``cuda_graphs``, and ``batch=N`` (the
default batch is the paper's 32). Every (model, config) pair is its own set of rows:
  train step    samples/s of the step on random tensors already on the device;
  pipeline      samples/s of the step fed from JPEG files on disk by DataLoader workers and the
                GPU data path (hsrpose.data.gpu), JPEG decode in the workers (OpenCV) and/or on
                the GPU (nvJPEG) (``--decode``);
  inference     crops/s of a bf16 forward (no flip test) with the config's memory format/compile.

MFU = achieved FLOP/s / a reference FLOP/s, against two references, both reported:
  * the bf16 dense matmul rate measured on this device (an 8192^3 matmul), and
  * the card's spec peak (bf16 dense, no sparsity: H100 SXM and H200 989 TFLOP/s; ``--spec-tflops``).
FLOPs per sample come from ``hsrpose.models.costs.model_cost`` (conv/linear/matmul, 2 per MAC):
forward for inference, 3 x forward for a training sample.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, RandomSampler

from hsrpose.codec import HeatmapCodec
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.engine.config import OptimConfig, TrainConfig
from hsrpose.engine.step import SpeedOptions, TrainStep, apply_backend_options, build_optimizer, compile_model
from hsrpose.engine.train import joints_mse_loss
from hsrpose.models import create_model, get_preset
from hsrpose.models.costs import model_cost

DEFAULT_MODELS = ("hsr_msnet59_256x192", "hsrnet59_256x192", "simplebaseline_res50_256x192")
DEFAULT_CONFIGS = "bf16,channels_last;bf16,channels_last,compile"
REPO = Path(__file__).resolve().parents[1]
COCO_TRAIN_INSTANCES = 149_813  # COCO train2017 person instances used for training (HRNet/SimpleBaseline)
EPOCHS = 140
# bf16 dense tensor-core peak (no structured sparsity), TFLOP/s, from the vendor data sheets.
SPEC_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("A100", 312.0))


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
    """Measured bf16 dense matmul rate (n x n @ n x n), FLOP/s."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    timed(lambda: a @ b, 3, device)
    secs = timed(lambda: a @ b, iters, device)
    return 2.0 * n**3 * iters / secs


def spec_peak_flops(device_name: str) -> float | None:
    """The card's bf16 dense spec peak (FLOP/s) by name; None when unknown (e.g. CPU)."""
    for key, tflops in SPEC_BF16_TFLOPS:
        if key in device_name:
            return tflops * 1e12
    return None


@dataclass(frozen=True)
class Config:
    """One row set: engine options by name, and the batch."""

    text: str
    speed: SpeedOptions
    batch: int

    @property
    def label(self) -> str:
        return f"{self.speed.label()} batch {self.batch}"


def parse_config(text: str, default_batch: int) -> Config:
    """``"bf16,channels_last,compile,batch=256"`` -> :class:`Config` (unknown names fail here)."""
    kw: dict[str, Any] = {}
    batch = default_batch
    for tok in (t.strip() for t in text.split(",") if t.strip()):
        if tok in ("fp32", "bf16", "fp16"):
            kw["amp"] = "none" if tok == "fp32" else tok
        elif tok in ("channels_last", "fused_adam", "tf32", "compile", "cuda_graphs"):
            kw[tok] = True
        elif tok.startswith("batch="):
            batch = int(tok.split("=", 1)[1])
        else:
            raise SystemExit(f"error: unknown engine option {tok!r} in --configs {text!r}")
    return Config(text, SpeedOptions(**kw), batch)


@dataclass
class Options:
    device: torch.device
    steps: int
    warmup: int
    log_interval: int
    workers: int
    decodes: tuple[str, ...]
    images: Path
    ann: Path


@dataclass
class Row:
    model: str
    config: str
    batch: int
    part: str  # "train step" | "pipeline (worker decode)" | "pipeline (nvJPEG)" | "inference bf16"
    rate: float  # samples (crops) per second
    flops_per_sample: float
    mfu_measured: float
    mfu_spec: float | None
    coco_140_epochs_h: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """The engine's training step for one model and config, with training's loss syncing."""

    def __init__(self, name: str, cfg: Config, opt: Options) -> None:
        speed = cfg.speed
        apply_backend_options(speed, opt.device)
        self.preset = get_preset(name)
        self.memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
        model = create_model(name).to(opt.device).to(memory_format=self.memory_format)
        model.train()
        optimizer = build_optimizer(OptimConfig(), model, fused=speed.fused_adam)  # the paper's Adam, lr 1e-4
        scaler = torch.amp.GradScaler(opt.device.type, enabled=speed.amp == "fp16")
        self.step = TrainStep(model, compile_model(model, speed), optimizer, joints_mse_loss, amp=speed.amp, scaler=scaler,
                              cuda_graphs=speed.cuda_graphs)
        self.log_interval = opt.log_interval
        self.pending: list[torch.Tensor] = []

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> None:
        self.pending.append(self.step(images, targets, weights))
        if len(self.pending) >= self.log_interval:
            self.flush()

    def flush(self) -> None:
        """The host sync training does at a log interval (one transfer of the pending losses)."""
        if self.pending:
            torch.stack(self.pending).tolist()
            self.pending.clear()


def bench_train_step(trainer: Trainer, cfg: Config, opt: Options) -> float:
    """samples/s of the step alone, on random tensors already on the device."""
    b, p = cfg.batch, trainer.preset
    images = torch.randn(b, 3, *p.input_hw, device=opt.device).contiguous(memory_format=trainer.memory_format)
    targets = torch.rand(b, 17, *p.heatmap_hw, device=opt.device)
    weights = torch.ones(b, 17, device=opt.device)
    timed(lambda: trainer(images, targets, weights), opt.warmup, opt.device)
    trainer.flush()
    secs = timed(lambda: trainer(images, targets, weights), opt.steps, opt.device)
    trainer.flush()
    return b * opt.steps / secs


def make_loader(name: str, cfg: Config, opt: Options, decode: str, n_batches: int) -> tuple[DataLoader, Any]:
    """DataLoader of cheap CPU samples (file bytes + augmentation affine) and the device batch builder."""
    from hsrpose.data.coco import load_coco_instances
    from hsrpose.data.config import AugmentConfig
    from hsrpose.data.dataset import TopDownDataset
    from hsrpose.data.gpu import GpuBatchBuilder, GpuSampleDataset, collate_gpu_samples

    preset = get_preset(name)
    codec = HeatmapCodec(preset.input_hw, preset.heatmap_hw, sigma=2.0)
    base = TopDownDataset(load_coco_instances(opt.ann), opt.images, preset.input_hw, codec, AugmentConfig(), COCO_KEYPOINTS)
    ds = GpuSampleDataset(base, decode=decode)
    # Sampling with replacement: as many batches as asked for, whatever the size of the set.
    sampler = RandomSampler(ds, replacement=True, num_samples=cfg.batch * n_batches)
    loader = DataLoader(
        ds, batch_size=cfg.batch, sampler=sampler, num_workers=opt.workers, collate_fn=collate_gpu_samples,
        pin_memory=opt.device.type == "cuda", drop_last=True, prefetch_factor=4 if opt.workers > 0 else None,
    )  # fmt: skip
    builder = GpuBatchBuilder(codec, COCO_KEYPOINTS.flip_index, device=opt.device, channels_last=cfg.speed.channels_last)
    return loader, builder


def bench_loader(loader: DataLoader, opt: Options, consume: Callable[[Any], Any], done: Callable[[], None]) -> float:
    """samples/s of ``consume(batch)`` over the loader, after ``opt.warmup`` untimed batches."""
    it = iter(loader)
    for _ in range(opt.warmup):
        consume(next(it))
    done()
    sync(opt.device)
    t = time.perf_counter()
    n = 0
    for batch in it:
        consume(batch)
        n += len(batch["M"])
    done()
    sync(opt.device)
    return n / (time.perf_counter() - t)


def bench_pipeline(trainer: Trainer, name: str, cfg: Config, opt: Options, decode: str) -> float:
    """samples/s of the step fed from JPEG files through the workers and the GPU data path."""
    loader, builder = make_loader(name, cfg, opt, decode, opt.warmup + opt.steps)

    def consume(batch: Any) -> None:
        gb = builder(batch)
        trainer(gb.images, gb.targets, gb.target_weight)

    return bench_loader(loader, opt, consume, trainer.flush)


def bench_inference(name: str, cfg: Config, opt: Options, batch: int) -> float:
    """crops/s of a bf16 forward with the config's memory format and compile options."""
    preset = get_preset(name)
    fmt = torch.channels_last if cfg.speed.channels_last else torch.contiguous_format
    model = create_model(name).to(opt.device).to(memory_format=fmt).eval()
    run = compile_model(model, cfg.speed)
    x = torch.randn(batch, 3, *preset.input_hw, device=opt.device).contiguous(memory_format=fmt)

    def fwd() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(device_type=opt.device.type, dtype=torch.bfloat16):
            return run(x)

    timed(fwd, opt.warmup, opt.device)
    return batch * opt.steps / timed(fwd, opt.steps, opt.device)


def default_data() -> tuple[Path, Path]:
    root = Path(os.environ.get("HSRPOSE_COCO_MINI", REPO.parent / "shared" / "data" / "coco-mini"))
    return root / "train2017", root / "annotations" / "person_keypoints_train2017.json"


def markdown(meta: dict[str, Any], rows: list[Row]) -> str:
    spec = meta["spec_peak_flops_per_s"]
    spec_txt = f"{spec / 1e12:.0f} TFLOP/s bf16 dense spec peak of {meta['device']}" if spec else "no spec peak known for this device"
    lines = [
        f"Device: **{meta['device']}**; torch {meta['torch']}; measured bf16 matmul {meta['matmul_bf16_flops_per_s'] / 1e12:.3g} TFLOP/s; "
        f"(timed steps, warm-up steps): {sorted({(r.extra['steps'], r.extra['warmup']) for r in rows})}; "
        f"losses synced every {meta['log_interval']} steps.",
        "",
        "| model | engine options | measurement | samples/s | FLOPs/sample (G) | MFU vs measured matmul | MFU vs spec peak | 140-epoch COCO (h) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mfu_spec = "-" if r.mfu_spec is None else f"{r.mfu_spec:.1%}"
        coco = "-" if r.coco_140_epochs_h is None else f"{r.coco_140_epochs_h:.1f}"
        lines.append(f"| {r.model} | {r.config} | {r.part} | {fmt_rate(r.rate)} | {r.flops_per_sample / 1e9:.2f} "
                     f"| {r.mfu_measured:.1%} | {mfu_spec} | {coco} |")  # fmt: skip
    goal_rows = [
        ("training HSR-MSNet-59 through the step with the data pipeline", "hsr_msnet59_256x192", "pipeline", 3000.0),
        ("inference crops/s (HSR-MSNet-59, bf16)", "hsr_msnet59_256x192", "inference", 10000.0),
    ]
    lines.append("")
    for what, model, part, goal in goal_rows:
        rates = [r.rate for r in rows if r.model == model and r.part.startswith(part)]
        if rates:
            verdict = "met" if max(rates) >= goal else "NOT met"
            lines.append(f"- Goal {what} >= {goal:,.0f}/s: best {fmt_rate(max(rates))}/s -> {verdict} (on {meta['device']}).")
    lines += [
        "",
        f"MFU vs measured matmul: achieved FLOP/s / the bf16 {meta['matmul_n']}^3 matmul rate measured on this device. "
        f"MFU vs spec peak: achieved FLOP/s / {spec_txt}. FLOPs per sample: hsrpose.models.costs "
        f"(2 per MAC; training = 3 x forward). 140-epoch COCO: {EPOCHS} x {COCO_TRAIN_INSTANCES:,} samples at the pipeline rate.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    images, ann = default_data()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated presets")
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help="';'-separated sets of engine options (see above)")
    ap.add_argument("--batch", type=int, default=TrainConfig().optim.batch_size, help="training batch unless a config says batch=N")
    ap.add_argument("--infer-batch", type=int, default=256, help="inference batch")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10 on GPU, 1 on CPU)")
    ap.add_argument("--log-interval", type=int, default=TrainConfig().log_interval, help="loss host-sync interval, as in training")
    ap.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPU cores - 2, at least 1)")
    ap.add_argument("--decode", default="worker,device",
                    help="pipeline rows: 'worker' (OpenCV in the workers) and/or 'device' (nvJPEG; CUDA only)")  # fmt: skip
    ap.add_argument("--images", type=Path, default=images, help="COCO image folder (default coco-mini)")
    ap.add_argument("--ann", type=Path, default=ann, help="COCO person keypoints annotation file")
    ap.add_argument("--matmul-n", type=int, default=None, help="size of the bf16 matmul probe (default 8192 GPU, 512 CPU)")
    ap.add_argument("--spec-tflops", type=float, default=None, help="bf16 dense spec peak (TFLOP/s) if the card is not known")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: train,pipeline,infer")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the results as JSON")
    ap.add_argument("--md-out", type=Path, default=None, help="also write the Markdown table")
    ap.add_argument("--append", action="store_true", help="keep the rows already in --json-out (several runs, one table)")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cudnn.benchmark = True  # what training does when deterministic=false
    configs = [parse_config(c, args.batch) for c in args.configs.split(";") if c.strip()]
    decodes = tuple(d.strip() for d in args.decode.split(",") if d.strip())
    from hsrpose.data.gpu_decode import gpu_decode_available

    if "device" in decodes and not (on_gpu and gpu_decode_available()):
        print("note: no nvJPEG here (CPU or torchvision without CUDA decode): pipeline rows use worker decode only", flush=True)
        decodes = tuple(d for d in decodes if d != "device") or ("worker",)
    opt = Options(
        device=device, steps=args.steps, warmup=args.warmup if args.warmup is not None else (10 if on_gpu else 1),
        log_interval=args.log_interval, workers=args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) - 2),
        decodes=decodes, images=args.images, ann=args.ann,
    )  # fmt: skip
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        get_preset(n)  # unknown names fail here, before minutes of measuring
    if "pipeline" not in skip:
        for p in (opt.images, opt.ann):
            if not p.exists():
                print(f"error: {p} not found (give --images and --ann, or --skip pipeline)", file=sys.stderr)
                return 2

    dev_name = torch.cuda.get_device_name(device) if on_gpu else "CPU"
    spec = args.spec_tflops * 1e12 if args.spec_tflops else spec_peak_flops(dev_name)
    print(f"device: {dev_name}; torch {torch.__version__}; configs {[c.label for c in configs]}; steps {opt.steps} "
          f"(+{opt.warmup} warm-up); workers {opt.workers}; decode {opt.decodes}", flush=True)  # fmt: skip
    if not on_gpu:
        print("NOTE: CPU run: a smoke test of the script; these numbers say nothing about GPU throughput.", flush=True)
    matmul_n = args.matmul_n or (8192 if on_gpu else 512)
    peak = matmul_flops_per_s(device, matmul_n, 50 if on_gpu else 3)
    print(f"measured bf16 matmul rate: {peak / 1e12:.3g} TFLOP/s; spec peak: "
          f"{f'{spec / 1e12:.0f} TFLOP/s' if spec else 'unknown'}", flush=True)  # fmt: skip

    rows: list[Row] = []
    if args.append and args.json_out is not None and args.json_out.exists():
        rows = [Row(**r) for r in json.loads(args.json_out.read_text())["rows"]]
    meta = {
        "device": dev_name, "torch": torch.__version__, "matmul_bf16_flops_per_s": peak, "spec_peak_flops_per_s": spec,
        "matmul_n": matmul_n, "log_interval": opt.log_interval, "workers": opt.workers,
        "images": str(opt.images), "ann": str(opt.ann),
    }  # fmt: skip

    def write() -> None:
        """Results so far (after every row: a run cut short by a time limit keeps what it measured)."""
        from hsrpose.utils.io import atomic_write_json, atomic_write_text

        if args.json_out is not None:
            atomic_write_json(args.json_out, {**meta, "rows": [asdict(r) for r in rows]}, indent=1)
        if args.md_out is not None:
            atomic_write_text(args.md_out, markdown(meta, rows))

    def add(name: str, cfg: Config, part: str, rate: float, flops: float, coco: bool = False) -> None:
        row = Row(name, cfg.label, cfg.batch, part,
                  rate, flops, rate * flops / peak, rate * flops / spec if spec else None,
                  EPOCHS * COCO_TRAIN_INSTANCES / rate / 3600 if coco else None,
                  {"steps": opt.steps, "warmup": opt.warmup})  # fmt: skip
        rows.append(row)
        write()
        mfu_spec = "-" if row.mfu_spec is None else f"{row.mfu_spec:.1%}"
        print(f"{name} [{row.config}] {part}: {fmt_rate(rate)} samples/s, MFU {row.mfu_measured:.1%} (measured matmul) "
              f"{mfu_spec} (spec)", flush=True)  # fmt: skip

    for name in names:
        cost = model_cost(name)
        for cfg in configs:
            trainer = Trainer(name, cfg, opt) if not {"train", "pipeline"} <= skip else None
            if "train" not in skip:
                add(name, cfg, "train step", bench_train_step(trainer, cfg, opt), cost.train_flops)
            if "pipeline" not in skip:
                for decode in opt.decodes:
                    part = "pipeline (nvJPEG)" if decode == "device" else "pipeline (worker decode)"
                    add(name, cfg, part, bench_pipeline(trainer, name, cfg, opt, decode), cost.train_flops, coco=True)
            del trainer
            if "infer" not in skip:
                icfg = replace(cfg, speed=replace(cfg.speed, amp="bf16"), batch=args.infer_batch)
                add(name, icfg, "inference bf16", bench_inference(name, cfg, opt, args.infer_batch), cost.flops)
            if on_gpu:
                torch.cuda.empty_cache()

    write()
    print()
    print(markdown(meta, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
