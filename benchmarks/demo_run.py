"""Time ``hsrpose demo`` as a newcomer runs it and print its wall time and the ten COCOeval numbers.

    .venv/bin/python benchmarks/demo_run.py [--out DIR] [-- extra demo options]

Issue 8's acceptance: under 10 minutes on a 2-core CPU, AP >= 0.5 on the held-out
synthetic validation set. The script also prints the CPU time of the demo process
and the load average before and after, because a busy machine inflates the wall
time (the demo itself is the same work whatever the load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

METRIC_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="demo output folder (default: a fresh temporary folder)")
    parser.add_argument("demo_args", nargs="*", help="extra options for hsrpose demo (after --)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="hsrpose-demo-bench-")) / "demo"
    hsrpose = Path(sys.executable).with_name("hsrpose")
    cmd = [str(hsrpose) if hsrpose.exists() else "hsrpose", "demo", "--out", str(out), "--force", *args.demo_args]

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(f"demo failed with exit code {proc.returncode}", file=sys.stderr)
        return proc.returncode

    metrics = json.loads((out / "metrics.json").read_text())
    print()
    print(f"command: {' '.join(cmd)}")
    print(f"cpus: {os.cpu_count()}  load average before {load_before[0]:.1f}, after {load_after[0]:.1f} (1 min)")
    print(f"wall time: {wall:.1f} s ({wall / 60:.2f} min)   cpu time (user+sys): {usage.ru_utime + usage.ru_stime:.1f} s")
    print(f"validation ({metrics.get('boxes')} boxes, flip test {metrics.get('flip_test')}):")
    for name in METRIC_NAMES:
        print(f"  {name:<5} {metrics[name]:.4f}")
    print(f"acceptance: wall < 600 s: {wall < 600}   AP >= 0.5: {metrics['AP'] >= 0.5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
