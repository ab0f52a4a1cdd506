"""``hsrpose <verb>``: one module per verb under :mod:`hsrpose.commands`.

Each verb module defines ``HELP: str``, ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their verb runs, so
``hsrpose score`` never pays for importing torch models it does not use.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from typing import Sequence

from hsrpose.config import ConfigError
from hsrpose.errors import HsrposeError

# verb -> one-line help. The module is hsrpose.commands.<verb> (a "-" in the verb is "_" in the module name).
VERBS: dict[str, str] = {
    "demo": "generate a synthetic dataset, train, evaluate and draw a small model in minutes on CPU",
    "models": "list every model preset (paper row, params, GMACs, heatmap size)",
    "synth": "write a synthetic multi-person keypoint dataset in COCO format",
    "browse": "draw augmented training samples with keypoints and heatmaps",
    "train": "train a preset on a COCO-format keypoint dataset",
    "eval": "evaluate weights on COCO with the published top-down protocol",
    "score": "score a COCO keypoint results file against ground truth",
    "predict": "run pose estimation on images, folders or videos",
    "export": "export weights to ONNX",
    "import-onnx": "write a copy of a foreign top-down ONNX model with hsrpose's metadata",
}


def _load(verb: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"hsrpose.commands.{verb.replace('-', '_')}")


def main(argv: Sequence[str] | None = None) -> int:
    # OpenMP threads that spin while waiting for work make torch threads plus data workers
    # on a small or busy CPU many times slower (measured: 3.6-11 s vs 0.2-0.8 s per tiny
    # training step on 2 shared cores); sleeping waiters cost little. This only takes effect
    # before torch is imported, which is why it sits here and not in the verbs. A value the
    # user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="hsrpose", description="Top-down multi-person 2D human pose estimation (SimpleBaseline, HSRNet, HSR-MSNet).")
    from hsrpose import __version__

    parser.add_argument("--version", action="version", version=f"hsrpose {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, text in VERBS.items():
        sub.add_parser(verb, help=text, add_help=False)

    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        parser.parse_args(argv)
    verb = argv[0]
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, list(VERBS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"hsrpose: unknown command '{verb}'.{hint} Run 'hsrpose --help' for the list.", file=sys.stderr)
        return 2
    module = _load(verb)
    vp = argparse.ArgumentParser(prog=f"hsrpose {verb}", description=VERBS[verb])
    module.add_arguments(vp)
    args = vp.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except (HsrposeError, ConfigError) as e:
        print(f"hsrpose {verb}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hsrpose {verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
