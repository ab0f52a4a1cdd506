"""Short training runs on each non-COCO format: the loss falls and the dataset's metric rises.

There is no MPII or CrowdPose data here: the files are written from coco-mini people in each
exact layout (tests/dataset_files.py; COCO-17 mapped to MPII-16 / CrowdPose-14) and a small
preset overfits a few of them, validated on the same people (a pipeline check, not accuracy):

- ``mpii-json``: HRNet's ``annot/valid.json`` + ``gt_valid.mat``, PCKh@0.5 (``Mean``);
- ``mpii-mat``: the official release ``.mat`` (head boxes inside), PCKh@0.5;
- ``crowdpose``: CrowdPose JSON (``crowdIndex``), CrowdPose AP.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/other_datasets_train.py
    PYTHONPATH=src .venv/bin/python benchmarks/other_datasets_train.py --formats crowdpose --epochs 60

CPU by default (device=auto takes a GPU when present). No augmentation and no flip test
(mirrored crops would be unseen images), as in benchmarks/overfit_coco_mini.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import find_coco_mini  # noqa: E402  (the tests' lookup: $HSRPOSE_COCO_MINI, ../shared/data/coco-mini)
from dataset_files import mpii_people, write_crowdpose, write_hrnet_mpii, write_official_mpii  # noqa: E402


def make_files(root: Path, work: Path, persons: int) -> dict[str, Path]:
    coco_ann = root / "annotations" / "person_keypoints_train2017.json"
    people = mpii_people(coco_ann)[:persons]
    crowd = write_crowdpose(coco_ann, work / "crowdpose.json")
    d = json.loads(crowd.read_text())
    # the first labelled medium and hard images (crowdIndex >= 0.2 / >= 0.8), then easy ones
    labelled = {a["image_id"] for a in d["annotations"] if a["num_keypoints"] >= 6 and not a["iscrowd"]}
    ims = [im for im in d["images"] if im["id"] in labelled]
    medium = [im["id"] for im in ims if 0.2 <= im["crowdIndex"] < 0.8][:1]
    hard = [im["id"] for im in ims if im["crowdIndex"] >= 0.8][:1]
    easy = [im["id"] for im in ims if im["crowdIndex"] < 0.2]
    keep = set(medium + hard + easy[: max(1, persons // 3 - 2)])
    d["images"] = [im for im in d["images"] if im["id"] in keep]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in keep]
    crowd.write_text(json.dumps(d))
    return {
        "mpii-json": write_hrnet_mpii(people, work / "mpii" / "annot", "valid"),
        "mpii-mat": write_official_mpii(people, work / "mpii_human_pose_v1_u12_1.mat"),
        "crowdpose": crowd,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--formats", nargs="+", default=["mpii-json", "mpii-mat", "crowdpose"])
    ap.add_argument("--preset", default="hsrnet_tiny_128x96")
    ap.add_argument("--persons", type=int, default=12, help="MPII people (CrowdPose: images = a third of it)")
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--eval-interval", type=int, default=20)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=6)
    args = ap.parse_args()

    from hsrpose.data.datasets import main_metric
    from hsrpose.engine.config import TrainConfig
    from hsrpose.engine.train import train
    from hsrpose.overrides import apply_overrides

    root = find_coco_mini()
    if root is None:
        raise SystemExit("coco-mini not found: set HSRPOSE_COCO_MINI")
    work = Path(tempfile.mkdtemp(prefix="other_datasets_"))
    files = make_files(root, work, args.persons)
    images = root / "train2017"
    for fmt in args.formats:
        ann = files[fmt]
        cfg = apply_overrides(TrainConfig(), [
            f"preset={args.preset}", f"data.train_ann={ann}", f"data.train_images={images}",
            f"data.val_ann={ann}", f"data.val_images={images}", f"output_dir={work / ('run_' + fmt)}",
            "augment.enabled=false", "eval.flip_test=false", f"optim.lr={args.lr}", f"optim.batch_size={args.batch}",
            f"optim.epochs={args.epochs}", "optim.milestones=[]", f"eval_interval={args.eval_interval}",
            "data.num_workers=0", "eval.num_workers=0", "progress=false", "tensorboard=false", "log_interval=1000",
        ])  # fmt: skip
        t0 = time.perf_counter()
        result = train(cfg)
        seconds = time.perf_counter() - t0
        losses = {r["epoch"]: r["loss"] for r in result.history if r["kind"] == "epoch"}
        print(f"\n== {fmt}: {ann.name}, preset {args.preset}, {len(result.history)} records, {seconds:.0f} s")
        print(f"epoch 1 loss {losses[1]:.3e}")
        for r in result.history:
            if r["kind"] == "val":
                name, value = main_metric(r)
                extra = f"Mean@0.1 {r['Mean@0.1']:.2f}" if name == "PCKh" else f"AP50 {r['AP50']:.3f}  AP(E/M/H) {r['AP(E)']:.3f} {r['AP(M)']:.3f} {r['AP(H)']:.3f}"
                print(f"epoch {r['epoch']:3d} loss {losses[r['epoch']]:.3e}  {name} {value:.3f}  {extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
