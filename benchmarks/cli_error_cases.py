"""Issue 15: run every user-mistake case through the CLI and print a Markdown table
(command, exit code, the stderr line). The same cases are asserted in tests/test_cli_errors.py.

    PYTHONPATH=src python benchmarks/cli_error_cases.py [COCO_MINI_DIR]

Needs coco-mini (default ../shared/data/coco-mini) and Linux (/proc, /dev/full). Each case is a
fresh process, so the run takes a few minutes on a small CPU.
"""
import os, subprocess, sys, tempfile
from pathlib import Path

import hsrpose
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.models import create_model
from hsrpose.models.weights import save_pose_model

REPO = Path(__file__).resolve().parents[1]
C = sys.argv[1] if len(sys.argv) > 1 else str(REPO.parent / "shared" / "data" / "coco-mini")
T = "hsrnet_tiny_128x96"
work = Path(tempfile.mkdtemp(prefix="hsrpose-cli-cases-"))
os.chdir(work)
Path("some_file").write_text("x\n")
Path("adir").mkdir()
Path("r.json").write_text("[]")
save_pose_model(create_model(T), work / "w.pth", T, COCO_KEYPOINTS)
Path("truncated.pth").write_bytes((work / "w.pth").read_bytes()[:100_000])
env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(hsrpose.__file__).resolve().parents[1]))
sub = {"ANN": f"{C}/annotations/person_keypoints_train2017.json", "IMGS": f"{C}/train2017", "W": str(work / "w.pth"), "COCO": C}
sub["IMG"] = str(sorted(Path(sub["IMGS"]).iterdir())[0])
cases = [
 ("", f"predict IMG --weights W --out some_file"),
 ("", f"train {T} --data-root COCO --out some_file"),
 ("", f"predict IMG --weights W --out /proc/x"),
 ("", f"eval {T} --weights W --ann ANN --images IMGS --gt-boxes --out /proc/x.json"),
 ("", f"export --weights W --out /proc/x.onnx"),
 ("", f"export --weights W --out some_file/m.onnx"),
 ("", f"eval {T} --weights W --ann ANN --images IMGS --gt-boxes --out adir"),
 ("", f"train {T} --data-root COCO --out run optim.batch_size=0"),
 ("", f"train {T} --data-root COCO --out run augment.flip_prob=1.5"),
 ("", f"eval {T} --weights W --ann ANN --images IMGS --gt-boxes --out r.json oks_nms_thr=2"),
 ("", f"predict IMG --weights W --out o --batch-size 0"),
 ("sys.modules['onnx'] = None", f"export --weights W --out m.onnx"),
 ("sys.modules['onnxruntime'] = None", f"export --weights W --out m.onnx"),
 ("", f"predict IMG --weights truncated.pth --out o"),
 ("", f"predict IMG --weights W --out o --device gpu0"),
 ("", f"train {T} --data-root COCO --out run device=gpu"),
 ("", f"eval {T} --weights W --ann ANN --images IMGS --gt-boxes --out r.json --device cuda:3"),
 ("", f"train {T} --config nope.yaml --data-root COCO --out run"),
 ("", f"predict IMG --weights W --out o --ann nope.json"),
 ("", f"browse --ann ANN --images IMGS --out some_file --num 1"),
 ("", f"browse --ann ANN --images IMGS --out /proc/x --num 1"),
 ("", f"browse --ann ANN --images IMGS --out b --sigma 0"),
 ("", f"synth --out some_file/data --images 1"),
 ("", f"synth --out /proc/x --images 1"),
 ("", f"synth --out s --images 1 --max-people 0"),
 ("", f"demo --quick --out d --preset hsrnet_tiyn"),
 ("", f"demo --quick --out d --device nodev"),
 ("", f"demo --quick --out d --lr -1"),
 ("", f"demo --quick --out /proc/x"),
 ("", f"score --gt ANN --results r.json --digits -3"),
 ("import hsrpose.commands.models as m\nm.run = lambda a: 1 / 0", "models"),
]
print("| command | exit | stderr (last line) |\n|---|---|---|")
for prelude, cmd in cases:
    args = [sub.get(a, a) for a in cmd.split()]
    if prelude:
        argv = [sys.executable, "-c", f"import sys\n{prelude}\nfrom hsrpose.cli import main\nsys.exit(main())", *args]
    else:
        argv = [sys.executable, "-m", "hsrpose.cli", *args]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    lines = [l for l in r.stderr.splitlines() if l.startswith("hsrpose ")]
    shown = ("(" + prelude.splitlines()[-1] + ") " if prelude else "") + "hsrpose " + cmd
    print(f"| `{shown}` | {r.returncode} | {lines[-1] if lines else r.stderr.strip()[-150:]} |".replace("\n", " "), flush=True)
for shown, argv, kw in [
    ("hsrpose models --json hsrnet_tiny_128x96 | (closed at once)", None, None),
    ("hsrpose models --json hsrnet_tiny_128x96 > /dev/full", None, None),
]:
    if "closed" in shown:
        p = subprocess.Popen([sys.executable, "-m", "hsrpose.cli", "models", "--json", T], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdout.close(); err = p.stderr.read(); rc = p.wait()
    else:
        with open("/dev/full", "w") as f:
            r = subprocess.run([sys.executable, "-m", "hsrpose.cli", "models", "--json", T], env=env, stdout=f, stderr=subprocess.PIPE, text=True)
        err, rc = r.stderr, r.returncode
    print(f"| `{shown}` | {rc} | {err.strip() or '(nothing)'} |", flush=True)

import shutil

os.chdir(REPO)
shutil.rmtree(work, ignore_errors=True)
