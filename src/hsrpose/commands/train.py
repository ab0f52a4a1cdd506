"""``hsrpose train PRESET --data-root DIR [key=value ...]``: the paper's recipe by default.

Examples::

    hsrpose train hsrnet59_256x192 --data-root data/coco --pretrained detnet59.pth
    hsrpose train hsrnet_tiny_128x96 --data-root coco-mini optim.lr=1e-3 optim.epochs=20 amp=bf16
    torchrun --nproc_per_node 4 -m hsrpose.cli train hsr_msnet59_256x192 --data-root data/coco
    hsrpose train hsrnet59_256x192 --out runs/hsrnet59_256x192 --resume

``--data-root`` expects the COCO layout (``annotations/person_keypoints_{train,val}2017.json``,
``train2017/``, ``val2017/``); ``--ann``/``--images``/``--val-ann``/``--val-images`` override
single paths. Any TrainConfig field is a ``key=value`` override (``hsrpose train PRESET --keys``
lists them). With ``--resume`` the run's saved config is used and overrides apply on top
(e.g. ``optim.epochs=200`` to extend a run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hsrpose.data.datasets import DATASET_CHOICES, data_root_files
from hsrpose.errors import HsrposeError

HELP = "train a preset on a COCO-format keypoint dataset"

# One line, printed when a new run starts from random weights without saying so.
NO_PRETRAINED_WARNING = (
    "warning: no --pretrained weights: training from random initialisation, which costs many AP "
    "(the paper starts from ImageNet/DetNet backbone weights); pass --pretrained FILE (e.g. torchvision "
    "resnet50-*.pth, DetNet detnet59.pth), or pretrained=none to train from scratch on purpose"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # ``key=value`` overrides may follow options (``--data-root X optim.lr=1e-3``); plain
    # parse_args takes positionals only from the first group and rejects the rest.
    parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign]
    parser.add_argument("preset", nargs="?", default=None, help="model preset (see 'hsrpose models')")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=1e-3 amp=bf16")
    parser.add_argument("--data-root", default=None, help="COCO-layout folder (annotations/, train2017/, val2017/); "
                        "or HRNet's MPII (annot/, images/) or CrowdPose's (json/, images/)")  # fmt: skip
    parser.add_argument("--dataset", choices=DATASET_CHOICES, default=None, help="coco, mpii or crowdpose (default: from the files)")
    parser.add_argument("--ann", default=None, help="training annotation JSON (overrides --data-root's)")
    parser.add_argument("--images", default=None, help="training image folder (overrides --data-root's)")
    parser.add_argument("--val-ann", default=None, help="validation annotation JSON ('' disables validation)")
    parser.add_argument("--val-images", default=None, help="validation image folder")
    parser.add_argument("--val-det", default=None, help="person detections (COCO results JSON) for validation; default GT boxes")
    parser.add_argument("--out", default=None, help="run directory (default runs/PRESET)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pth")
    parser.add_argument("--pretrained", default=None, help="initial weights (torchvision/DetNet/pose_resnet/hsrpose file)")
    parser.add_argument("--config", default=None, help="YAML config to start from (e.g. a run's config.yaml)")
    parser.add_argument("--keys", action="store_true", help="print every config key with its default and exit")


def _data_paths(args: argparse.Namespace) -> list[str]:
    """``--data-root`` and the single-path flags as ``data.*`` overrides (later ones win)."""
    out: list[str] = []
    dataset = getattr(args, "dataset", None)
    if dataset:
        out.append(f"data.dataset={dataset}")
    if args.data_root:
        root = Path(args.data_root)
        if not root.is_dir():
            raise HsrposeError(f"--data-root {root}: no such folder")
        _, files = data_root_files(root, dataset or "auto")  # COCO, HRNet's MPII or CrowdPose layout
        out += [f"data.train_ann={files['train_ann']}", f"data.train_images={files['train_images']}"]
        if files["val_ann"].is_file():
            out += [f"data.val_ann={files['val_ann']}", f"data.val_images={files['val_images']}"]
    for flag, key in (("ann", "train_ann"), ("images", "train_images"), ("val_ann", "val_ann"), ("val_images", "val_images"), ("val_det", "val_det_file")):
        value = getattr(args, flag)
        if value is not None:
            out.append(f"data.{key}={value}")
    return out


def run(args: argparse.Namespace) -> int:
    from hsrpose.overrides import apply_overrides, config_from_dict, config_to_dict, flat_keys, load_config
    from hsrpose.engine.checkpoint import LAST_NAME, load_checkpoint
    from hsrpose.engine.config import TrainConfig
    from hsrpose.data.datasets import main_metric
    from hsrpose.engine.train import train
    from hsrpose.utils.argtypes import check_device
    from hsrpose.utils.paths import check_output_dir

    if args.keys:
        flat = {}

        def walk(d: dict, prefix: str = "") -> None:
            for k, v in d.items():
                if isinstance(v, dict):
                    walk(v, f"{prefix}{k}.")
                else:
                    flat[f"{prefix}{k}"] = v

        walk(config_to_dict(TrainConfig()))
        import json

        for k in flat_keys(TrainConfig()):  # values as they would be typed back (YAML/JSON)
            v = flat[k]
            print(f"{k}={v if isinstance(v, str) else json.dumps(v)}")
        return 0
    # A positional that looks like an override is one (``hsrpose train --resume --out X optim.epochs=5``).
    overrides = list(args.overrides)
    preset = args.preset
    if preset is not None and "=" in preset:
        overrides.insert(0, preset)
        preset = None

    if args.resume:
        run_dir = Path(args.out) if args.out else (Path("runs") / preset if preset else None)
        if run_dir is None:
            raise HsrposeError("--resume needs --out RUN_DIR (or the PRESET of a run in runs/PRESET)")
        ckpt = load_checkpoint(run_dir / LAST_NAME)
        cfg = config_from_dict(TrainConfig, ckpt["config"])
        if preset is not None and preset != cfg.preset:
            raise HsrposeError(f"{run_dir / LAST_NAME} is a run of {cfg.preset!r}, not {preset!r}")
        cfg = apply_overrides(cfg, _data_paths(args) + overrides + [f"output_dir={run_dir}"])
        if args.pretrained:
            print("--pretrained is ignored with --resume (the checkpoint holds the weights)", file=sys.stderr)
    else:
        base = load_config(TrainConfig, args.config) if args.config else TrainConfig()
        if preset is None and not args.config:
            raise HsrposeError("give a model PRESET (see 'hsrpose models')")
        extra = [f"preset={preset}"] if preset else []
        if args.out:
            extra.append(f"output_dir={args.out}")
        if args.pretrained:
            extra.append(f"pretrained={args.pretrained}")
        cfg = apply_overrides(base, extra + _data_paths(args) + overrides)
        if not cfg.data.train_ann:
            raise HsrposeError("no training data: pass --data-root DIR (COCO layout) or --ann FILE --images DIR")

    # Before any work: a run directory that cannot be made, a device that is not there
    # (errors come before the warning below, so a failing command prints one line).
    check_output_dir(cfg.run_dir(), "--out" if args.out else "output_dir")
    check_device(cfg.device, "device")
    if not args.resume and not cfg.pretrained:
        print(NO_PRETRAINED_WARNING, file=sys.stderr)
    result = train(cfg, resume=args.resume)
    if result.best_ap >= 0:
        metric = main_metric(result.final_metrics)[0]  # AP, or PCKh for MPII
        print(f"best {metric} {result.best_ap:.4f} (epoch {result.best_epoch}); run in {result.run_dir}")
    else:
        print(f"done: {result.steps} steps; run in {result.run_dir} (no validation set)")
    return 0
