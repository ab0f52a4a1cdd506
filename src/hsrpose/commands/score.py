"""``hsrpose score``: score a COCO keypoint results file and print the ten COCOeval numbers.

Output: one ``NAME value`` line per metric (AP, AP50, AP75, APm, APl, AR, AR50,
AR75, ARm, ARl) on stdout, nothing else, so scripts can parse it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hsrpose.errors import HsrposeError

HELP = "score a COCO keypoint results file against ground truth"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hsrpose.utils.argtypes import int_range

    parser.add_argument("--gt", required=True, help="ground-truth COCO keypoint annotation JSON")
    parser.add_argument("--results", required=True, help="COCO keypoint results JSON (list of entries)")
    parser.add_argument(
        "--sigmas",
        default=None,
        help="OKS sigmas of a custom keypoint set: comma-separated numbers, or a JSON file holding a list "
        "(default: COCO's 17 sigmas)",
    )
    parser.add_argument(
        "--backend",
        choices=("hotcoco", "pycocotools"),
        default=None,
        help="hotcoco (default; pycocotools' numbers to the last bit, faster), pycocotools = the reference",
    )
    parser.add_argument("--digits", type=int_range(0, 17), default=6, help="decimals printed per number (default 6)")


def parse_sigmas(text: str | None) -> list[float] | None:
    """``"0.1,0.2"`` or a path to a JSON list -> list of floats."""
    if text is None:
        return None
    p = Path(text)
    if p.is_file():
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise HsrposeError(f"--sigmas {p}: not valid JSON ({e})") from None
        if not isinstance(data, list):
            raise HsrposeError(f"--sigmas {p}: expected a JSON list of numbers")
        items = data
    else:
        items = [s for s in text.replace(" ", ",").split(",") if s]
    try:
        return [float(s) for s in items]
    except (TypeError, ValueError):
        raise HsrposeError(f"--sigmas: expected numbers or a JSON file with a list of numbers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from hsrpose.evaluation.cocoeval import DEFAULT_BACKEND, format_metrics, score_results

    metrics = score_results(
        args.gt, args.results, sigmas=parse_sigmas(args.sigmas), backend=args.backend or DEFAULT_BACKEND
    )
    print(format_metrics(metrics, digits=args.digits), flush=True)
    return 0
