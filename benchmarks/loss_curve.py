"""The per-step training loss curve on coco-mini, to compare two versions of the engine bit for bit.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/loss_curve.py            # this tree
    OMP_NUM_THREADS=1 PYTHONPATH=/other/tree/src python benchmarks/loss_curve.py  # another version

Runs ``hsrpose train`` (subprocess, the ``hsrpose`` that PYTHONPATH selects) on all 86 usable
coco-mini persons: hsrnet_tiny_128x96, batch 8, 3 epochs, augmentation on, deterministic,
``log_interval=1`` so every step's loss is logged (give ``log_interval=20`` to compare with the
loss synced only at log intervals: the epoch losses must not change). Prints every
``train`` and ``epoch`` record's loss (``repr`` floats: exact) and a SHA-256 of the list, so two
runs compare with one line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COCO_MINI = Path(os.environ.get("HSRPOSE_COCO_MINI", REPO.parent / "shared" / "data" / "coco-mini"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides for hsrpose train")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [
            sys.executable, "-m", "hsrpose.cli", "train", "hsrnet_tiny_128x96",
            "--ann", str(COCO_MINI / "annotations" / "person_keypoints_train2017.json"),
            "--images", str(COCO_MINI / "train2017"), "--out", str(run),
            "data.num_workers=0", f"optim.batch_size={args.batch}", f"optim.epochs={args.epochs}",
            "optim.lr=1e-3", "log_interval=1", "eval_interval=0", "deterministic=true", "augment.enabled=true",
            "progress=false", "tensorboard=false", *args.overrides,
        ]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr, file=sys.stderr)
            return p.returncode
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve = [(r["kind"], r["epoch"], r["step"], r["loss"]) for r in records if r.get("kind") in ("train", "epoch")]
    for kind, epoch, step, loss in curve:
        print(f"{kind:5s} epoch {epoch} step {step:3d} loss {loss!r}")
    digest = hashlib.sha256(repr(curve).encode()).hexdigest()[:16]
    print(f"SUMMARY records={len(curve)} sha256[:16]={digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
