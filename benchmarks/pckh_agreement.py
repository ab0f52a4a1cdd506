"""Largest difference between hsrpose's PCKh and HRNet's ``MPIIDataset.evaluate`` (transcribed in
tests/test_pckh.py) over random predictions, on a ``gt_valid.mat`` written from coco-mini people.

    PYTHONPATH=src .venv/bin/python benchmarks/pckh_agreement.py --seeds 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import find_coco_mini  # noqa: E402
from dataset_files import mpii_people, write_hrnet_mpii  # noqa: E402
from test_pckh import max_difference_to_reference  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=200, help="random prediction sets")
    args = ap.parse_args()
    root = find_coco_mini()
    if root is None:
        raise SystemExit("coco-mini not found: set HSRPOSE_COCO_MINI")
    people = mpii_people(root / "annotations" / "person_keypoints_train2017.json")
    annot = Path(tempfile.mkdtemp(prefix="pckh_")) / "annot"
    write_hrnet_mpii(people, annot, "valid")
    worst = max_difference_to_reference(annot / "gt_valid.mat", people, range(args.seeds))
    print(f"{len(people)} people x 16 joints, {args.seeds} random prediction sets, 9 table entries each")
    print(f"max |hsrpose - HRNet evaluate| = {worst!r} (PCKh points)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
