"""Time every COCO keypoint scorer on the same >= 100k keypoint detections, in one run.

The data are built from coco-mini: its images are replicated under new image ids
(with matching ground truth), and every image gets ``--dets-per-image`` results:
each ground-truth person perturbed with Gaussian noise (score U(0.4, 1)), jittered
duplicates (U(0.1, 0.9)) and false detections with random keypoints (U(0, 0.6)).

Every scorer runs as a fresh process, one after the other, on the same two files
(so every time includes Python start-up, reading the JSON and building the index):
plain pycocotools (the reference, its README's usage), ``hsrpose score`` with each
backend, and plain hotcoco and faster-coco-eval when installed. Printed: wall and
CPU seconds, the ratio against pycocotools, and whether the ten numbers equal
pycocotools' exactly (printed with 17 decimals, the most ``hsrpose score --digits``
takes; the tests compare the doubles themselves).

``hsrpose score`` with hotcoco runs twice: first with an empty cache (its ground-truth
check is made and cached, keyed by the file's path, size and mtime), then as every later
run on the same ground truth does (hotcoco reads both files itself, the results are
checked without building a Python object per entry: ``hsrpose.evaluation.fast_score``).

Each command runs ``--repeat`` times, round-robin (the first-run row with its cache emptied
before each time); the table gives the median wall and CPU seconds (CPU: user + system of
the process and its children, which includes the child process that checks the results file).

    PYTHONPATH=src python benchmarks/eval_speed.py            # 100,800 detections on 5,040 images
    PYTHONPATH=src python benchmarks/eval_speed.py --copies 5 # quick check
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METRICS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

# Each script prints "STAT name value" with 17 decimals, like ``hsrpose score --digits 17``.
_PRINT = """
names = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
for n, v in zip(names, ev.stats):
    print("STAT", n, f"{float(v):.17f}")
"""

PYCOCOTOOLS_SCRIPT = r"""
import sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt = COCO(sys.argv[1])
dt = gt.loadRes(sys.argv[2])
ev = COCOeval(gt, dt, "keypoints")
ev.evaluate()
ev.accumulate()
ev.summarize()
""" + _PRINT

HOTCOCO_SCRIPT = r"""
import json, sys
import hotcoco
gt = hotcoco.COCO(sys.argv[1])
dt = gt.loadRes(sys.argv[2])  # parsed in Rust, as hotcoco is meant to be used
ev = hotcoco.COCOeval(gt, dt, "keypoints")
ev.evaluate()
ev.accumulate()
ev.summarize()
""" + _PRINT

FASTER_COCO_EVAL_SCRIPT = r"""
import sys
from faster_coco_eval import COCO, COCOeval_faster
gt = COCO(sys.argv[1])
dt = gt.loadRes(sys.argv[2])
ev = COCOeval_faster(gt, dt, "keypoints")
ev.evaluate()
ev.accumulate()
ev.summarize()
""" + _PRINT


def find_coco_mini() -> Path:
    env = os.environ.get("HSRPOSE_COCO_MINI")
    for root in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data" / "coco-mini"]:
        if (root / "annotations" / "person_keypoints_train2017.json").is_file():
            return root
    sys.exit("coco-mini not found: set HSRPOSE_COCO_MINI")


def build(gt: dict, copies: int, dets_per_image: int, seed: int) -> tuple[dict, list[dict]]:
    """Replicated ground truth and results (image ids id + c * offset)."""
    rng = np.random.default_rng(seed)
    offset = 10 ** (len(str(max(im["id"] for im in gt["images"]))) + 1)
    anns_by_image: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        anns_by_image.setdefault(a["image_id"], []).append(a)
    images, annotations, results = [], [], []
    next_ann = 1
    for c in range(copies):
        for im in gt["images"]:
            new_id = im["id"] + c * offset
            images.append({**im, "id": new_id})
            persons = []
            for a in anns_by_image.get(im["id"], []):
                annotations.append({**a, "id": next_ann, "image_id": new_id})
                next_ann += 1
                if not a.get("iscrowd", 0) and a["num_keypoints"] > 0:
                    persons.append(a)
            dets = []
            for a in persons:  # one noisy copy of every person, noise of varying size
                k = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
                k[:, :2] += rng.normal(0, rng.uniform(0.01, 0.15) * math.sqrt(a["area"]), (len(k), 2))
                dets.append((k, rng.uniform(0.4, 1.0)))
            while len(dets) < dets_per_image:
                if persons and rng.random() < 0.5:  # duplicate with jitter
                    a = persons[int(rng.integers(len(persons)))]
                    k = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
                    k[:, :2] += rng.normal(0, 0.1 * math.sqrt(a["area"]) + 2.0, (len(k), 2))
                    score = rng.uniform(0.1, 0.9)
                else:  # false detection
                    k = np.stack(
                        [rng.uniform(0, im["width"], 17), rng.uniform(0, im["height"], 17), np.zeros(17)], axis=1
                    )
                    score = rng.uniform(0.0, 0.6)
                dets.append((k, score))
            for k, score in dets:
                k[:, 2] = rng.random(len(k))
                results.append(
                    {"image_id": new_id, "category_id": 1, "keypoints": k.ravel().tolist(), "score": float(score)}
                )
    return {**gt, "images": images, "annotations": annotations}, results


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds user+sys of the child, stdout). CPU time is the steadier
    number on a shared machine; wall time is what a user waits."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=63, help="replicas of the 80 coco-mini images (63 -> 5040 images)")
    ap.add_argument("--dets-per-image", type=int, default=20, help="results per image (COCOeval keeps 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where to write the two JSON files (default: a temp folder)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per command; the table shows medians")
    args = ap.parse_args()

    src = json.loads((find_coco_mini() / "annotations" / "person_keypoints_train2017.json").read_text())
    gt, results = build(src, args.copies, args.dets_per_image, args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="hsrpose_eval_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    gt_path, res_path = work / "gt.json", work / "results.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    n_gt = sum(1 for a in gt["annotations"] if not a.get("iscrowd", 0) and a["num_keypoints"] > 0)
    print(f"images {len(gt['images'])}, ground-truth persons with keypoints {n_gt}, detections {len(results)}")

    # Bytecode for hsrpose's modules, as pip writes it for an installed package (pycocotools, hotcoco
    # and numpy have theirs): a source checkout run with PYTHONDONTWRITEBYTECODE would otherwise
    # compile them again in every timed process.
    import hsrpose

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(hsrpose.__file__).parent)], check=True)
    files = [str(gt_path), str(res_path)]
    score = [sys.executable, "-m", "hsrpose.cli", "score", "--gt", files[0], "--results", files[1], "--digits", "17"]
    runs: list[tuple[str, list[str]]] = [("pycocotools", [sys.executable, "-c", PYCOCOTOOLS_SCRIPT, *files])]
    runs.append(("hsrpose score --backend pycocotools", [*score, "--backend", "pycocotools"]))
    # A cache of our own, empty at first: the first hotcoco run checks the ground truth and caches
    # the verdict, the second is every later run on the same ground-truth file.
    os.environ["HSRPOSE_CACHE_DIR"] = str(work / "cache")
    first_run = "hsrpose score (hotcoco, first run on this ground truth)"
    runs.append((first_run, [*score, "--backend", "hotcoco"]))
    runs.append(("hsrpose score (hotcoco, ground-truth check cached)", [*score, "--backend", "hotcoco"]))
    for name, module, script in (("hotcoco", "hotcoco", HOTCOCO_SCRIPT), ("faster-coco-eval", "faster_coco_eval", FASTER_COCO_EVAL_SCRIPT)):
        if importlib.util.find_spec(module) is not None:
            runs.append((f"{name} (plain)", [sys.executable, "-c", script, *files]))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min) on {os.cpu_count()} CPUs")
    timings: dict[str, tuple[float, float]] = {}
    numbers: dict[str, dict[str, str]] = {}
    walls: dict[str, list[float]] = {name: [] for name, _ in runs}
    cpus: dict[str, list[float]] = {name: [] for name, _ in runs}
    # Round-robin: every round runs each command once, so a slow spell of a shared machine
    # weighs on all rows alike rather than on one.
    for r in range(args.repeat):
        for name, cmd in runs:
            if name == first_run:
                shutil.rmtree(work / "cache", ignore_errors=True)
            wall, cpu, out = timed(cmd)
            walls[name].append(wall)
            cpus[name].append(cpu)
            got = {f[-2]: f[-1] for f in (line.split() for line in out.splitlines()) if len(f) >= 2 and f[-2] in METRICS}
            if numbers.setdefault(name, got) != got:
                sys.exit(f"{name}: numbers differ between repeats")
            print(f"# round {r + 1}, {name}: wall {wall:.2f} s, CPU {cpu:.2f} s", file=sys.stderr, flush=True)
    for name, _ in runs:
        timings[name] = (float(np.median(walls[name])), float(np.median(cpus[name])))

    ref_wall, ref_cpu = timings["pycocotools"]
    ref = numbers["pycocotools"]
    print(f"| scorer (median of {args.repeat} runs) | wall s | CPU s | vs pycocotools (wall) | vs pycocotools (CPU) | ten numbers = pycocotools |")
    print("|---|---|---|---|---|---|")
    all_same = True
    for name, (wall, cpu) in timings.items():
        same = len(ref) == 10 and numbers[name] == ref
        all_same &= same
        diff = "" if same else " (" + ", ".join(f"{n} {numbers[name].get(n)} vs {ref[n]}" for n in METRICS if numbers[name].get(n) != ref[n]) + ")"
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {ref_wall / wall:.1f}x | {ref_cpu / cpu:.1f}x | {same}{diff} |")
    print("\n" + "\n".join(f"{n:5s} {ref[n]}" for n in METRICS))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    if not all_same:
        sys.exit(1)

if __name__ == "__main__":
    main()
