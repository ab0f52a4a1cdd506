#!/usr/bin/env bash
# The GPU figures in one command (issue 18): on a fresh GPU machine, under 8 minutes, it leaves
# gpu_suite.json and gpu_suite.md (one Markdown table) in OUT_DIR.
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]        # default: $OUT if set, else benchmarks/results
#
# It measures, through hsrpose.engine.step.TrainStep (the step `hsrpose train` runs):
#   1. HSR-MSNet-59, HSRNet-59, ResNet-50 at 256x192, bf16 + channels_last, batch 32 (training's):
#      train step, full pipeline from JPEG files (worker/OpenCV decode and nvJPEG), inference bf16;
#   2. the same with torch.compile (train step, nvJPEG pipeline, inference);
#   3. HSR-MSNet-59 with the remaining engine options on: fused Adam, TF32, batch 256, then CUDA graphs;
# with MFU against the measured bf16 matmul rate and against the card's spec peak, and the
# 140-epoch COCO time that each pipeline rate gives. Each part has its own time limit, and the
# results are written after every row, so a slow compile costs its own rows only.
#
# With no CUDA device it runs a reduced CPU mode (the same script end to end, on the two tiny
# 128x96 presets: fp32 + channels_last, batch 2, two timed steps, worker decode, no compile) to
# prove that it runs; its numbers say nothing about a GPU.
#
# Prerequisites are checked first: python with torch, torchvision, numpy, cv2 (opencv), yaml, tqdm
# and the coco-mini images. The GPU machine reaches no package registry: a missing package is
# installed from wheels in .whl/ (pip --no-index) when that folder holds them, else the suite stops
# before measuring anything, naming what is missing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT_DIR="${1:-${OUT:-$REPO/benchmarks/results}}"
PY="${PYTHON:-python3}"
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
COCO_MINI="${HSRPOSE_COCO_MINI:-$REPO/../shared/data/coco-mini}"
mkdir -p "$OUT_DIR"
JSON="$OUT_DIR/gpu_suite.json"
MD="$OUT_DIR/gpu_suite.md"
rm -f "$JSON" "$MD"
T0=$(date +%s)

# ---- 1. prerequisites (seconds; nothing is measured before they pass)
check_modules() {
  "$PY" - <<'EOF'
import importlib
missing = []
for mod, pkg in [("torch", "torch"), ("torchvision", "torchvision"), ("numpy", "numpy"),
                 ("cv2", "opencv-python-headless"), ("yaml", "pyyaml"), ("tqdm", "tqdm")]:
    try:
        importlib.import_module(mod)
    except Exception:
        missing.append(pkg)
print(" ".join(missing))
EOF
}
missing="$(check_modules)"
if [ -n "$missing" ] && [ -d "$REPO/.whl" ]; then
  echo "installing from .whl/: $missing"
  "$PY" -m pip install --no-index --find-links "$REPO/.whl" $missing || true
  missing="$(check_modules)"
fi
if [ -n "$missing" ]; then
  echo "error: missing Python packages: $missing (put their wheels in .whl/ and carry it; no registry here)" >&2
  exit 2
fi
"$PY" -c "import hsrpose.engine.step, hsrpose.engine.train, hsrpose.data.gpu" || { echo "error: hsrpose does not import" >&2; exit 2; }
for p in "$COCO_MINI/train2017" "$COCO_MINI/annotations/person_keypoints_train2017.json"; do
  [ -e "$p" ] || { echo "error: $p not found (set HSRPOSE_COCO_MINI)" >&2; exit 2; }
done
export HSRPOSE_COCO_MINI="$COCO_MINI"
HAS_CUDA="$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')"
"$PY" -c 'import torch, torchvision; print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"))'

MODELS="hsr_msnet59_256x192,hsrnet59_256x192,simplebaseline_res50_256x192"
bench() {  # bench LIMIT_SECONDS ARGS...: one gpu_throughput run appending to the suite's results
  local limit="$1"; shift
  echo "== gpu_throughput.py $* (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$PY" benchmarks/gpu_throughput.py --json-out "$JSON" --md-out "$MD" --append "$@" \
    || echo "warning: this part stopped early (status $?); its finished rows are kept"
}

# ---- 2. the measurements
if [ "$HAS_CUDA" = "1" ]; then
  bench 130 --models "$MODELS" --configs "bf16,channels_last" --decode worker,device --steps 30
  bench 180 --models "$MODELS" --configs "bf16,channels_last,compile" --decode device --steps 30
  bench 75 --models hsr_msnet59_256x192 --configs "bf16,channels_last,fused_adam,tf32,batch=256" --decode device --steps 20 --infer-batch 1024
  bench 50 --models hsr_msnet59_256x192 --configs "bf16,channels_last,fused_adam,tf32,compile,cuda_graphs,batch=256" --skip pipeline --steps 20 --infer-batch 1024
else
  echo "no CUDA device: reduced CPU mode (proves the suite runs; the numbers say nothing about a GPU)"
  bench 240 --device cpu --models hsr_msnet_tiny_128x96,hsrnet_tiny_128x96 --configs "fp32,channels_last" --decode worker \
    --batch 2 --infer-batch 2 --steps 2 --warmup 1 --workers 1
fi

[ -s "$MD" ] || { echo "error: no results were written" >&2; exit 1; }
echo
cat "$MD"
echo "results: $JSON $MD ($(( $(date +%s) - T0 )) s)"
