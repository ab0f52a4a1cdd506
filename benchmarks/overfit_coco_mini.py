"""Overfit coco-mini: proves that targets, loss, decoding and evaluation agree.

Trains a small preset on the 86 keypoint-annotated persons of coco-mini (80
COCO train2017 images) without augmentation and evaluates on the same images
with ground-truth boxes and the protocol's decoding, rescoring, OKS-NMS and
COCOeval -- without the flip test (see below). Prints the AP after every validation, the first epoch/step where AP
exceeds the target, and the wall time.

    .venv/bin/python benchmarks/overfit_coco_mini.py               # defaults below
    .venv/bin/python benchmarks/overfit_coco_mini.py --epochs 60 --lr 2e-3 eval.flip_test=true

Runs on CPU (a GPU is used when present: device=auto).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def find_coco_mini() -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import find_coco_mini as find  # the tests' lookup: $HSRPOSE_COCO_MINI, ../shared/data/coco-mini

    root = find()
    if root is None:
        raise SystemExit("coco-mini not found: set HSRPOSE_COCO_MINI")
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="hsrnet_tiny_128x96")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eval-interval", type=int, default=10)
    ap.add_argument("--target", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    ap.add_argument("overrides", nargs="*", help="extra TrainConfig key=value overrides")
    args = ap.parse_args()

    from hsrpose.engine.config import TrainConfig
    from hsrpose.engine.train import train
    from hsrpose.overrides import apply_overrides

    root = find_coco_mini()
    ann = root / "annotations" / "person_keypoints_train2017.json"
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="overfit_")) / "run"
    cfg = apply_overrides(
        TrainConfig(),
        [
            f"preset={args.preset}",
            f"data.train_ann={ann}",
            f"data.train_images={root / 'train2017'}",
            f"data.val_ann={ann}",  # the same images: an overfit check, GT boxes
            f"data.val_images={root / 'train2017'}",
            "data.num_workers=0",
            "eval.num_workers=0",
            # No flip test: trained without flip augmentation, the mirrored crops are unseen
            # images, and averaging with them measures generalisation, not the overfit
            # (the same run scores about 0.08 AP less with the flip test).
            "eval.flip_test=false",
            "augment.enabled=false",
            f"optim.lr={args.lr}",
            f"optim.batch_size={args.batch}",
            f"optim.epochs={args.epochs}",
            f"optim.milestones=[{int(args.epochs * 0.8)}]",
            f"eval_interval={args.eval_interval}",
            f"seed={args.seed}",
            f"output_dir={out}",
            "progress=false",
            "tensorboard=false",
            *args.overrides,
        ],
    )
    t0 = time.perf_counter()
    result = train(cfg)
    wall = time.perf_counter() - t0

    print(f"preset {cfg.preset}, coco-mini train (every keypoint-labelled person), no augmentation, Adam lr {cfg.optim.lr}, batch {cfg.optim.batch_size}, "
          f"{cfg.optim.epochs} epochs, lr x0.1 after epoch {cfg.optim.milestones}")  # fmt: skip
    first = None
    for r in result.history:
        if r["kind"] == "val":
            print(f"  epoch {r['epoch']:4d}  step {r['step']:5d}  AP {r['AP']:.4f}  AP50 {r['AP50']:.4f}  AR {r['AR']:.4f}")
            if first is None and r["AP"] > args.target:
                first = r
    print(f"steps {result.steps}, wall {wall:.1f} s ({wall / max(result.steps, 1):.2f} s/step), best AP {result.best_ap:.4f} at epoch {result.best_epoch}")
    if first is not None:
        print(f"AP > {args.target} first at epoch {first['epoch']}, step {first['step']}")
    else:
        print(f"AP never exceeded {args.target}")
    print(f"run directory: {result.run_dir}")
    return 0 if first is not None else 1


if __name__ == "__main__":
    sys.exit(main())
