"""Training throughput of a preset (samples/s) on whatever device exists, from random tensors.

Measures the training step the engine runs -- forward under autocast, the
joints MSE loss, backward, Adam step -- without data loading, so it is the
compute ceiling. Prints samples/s and the time the paper's 140-epoch COCO
schedule (about 150k instances per epoch) would take at that rate.

    .venv/bin/python benchmarks/train_throughput.py --preset hsr_msnet59_256x192 --amp bf16 --channels-last
    .venv/bin/python benchmarks/train_throughput.py --preset hsrnet_tiny_128x96 --batch 8 --steps 5 --device cpu
"""

from __future__ import annotations

import argparse
import sys
import time

COCO_TRAIN_INSTANCES = 149_813  # person instances with keypoints in train2017 (protocol.md: ~150k)
EPOCHS = 140


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="hsr_msnet59_256x192")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30, help="timed steps (after the warm-up)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--amp", choices=("none", "bf16", "fp16"), default="bf16")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    import torch

    from hsrpose.engine.train import joints_mse_loss
    from hsrpose.models import create_model, get_preset

    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else ("cpu" if args.device == "auto" else args.device))
    preset = get_preset(args.preset)
    h, w = preset.input_hw
    hh, hw = preset.heatmap_hw
    mf = torch.channels_last if args.channels_last else torch.contiguous_format
    model = create_model(args.preset).to(device=device, memory_format=mf).train()
    step_model = torch.compile(model) if args.compile else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(args.batch, 3, h, w, generator=g).to(device).contiguous(memory_format=mf)
    target = torch.rand(args.batch, 17, hh, hw, generator=g).to(device)
    weight = torch.ones(args.batch, 17, device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = step_model(x)
        loss = joints_mse_loss(out.float(), target, weight)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    dt = time.perf_counter() - t0
    sps = args.batch * args.steps / dt
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}")
    print(f"preset {args.preset} {h}x{w}, batch {args.batch}, amp {args.amp}, channels_last {args.channels_last}, compile {args.compile}")
    print(f"{sps:.1f} samples/s ({dt / args.steps * 1000:.1f} ms/step over {args.steps} steps)")
    total_h = EPOCHS * COCO_TRAIN_INSTANCES / sps / 3600
    print(f"140 epochs x {COCO_TRAIN_INSTANCES} instances at this rate: {total_h:.1f} h (compute only, no data loading)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
