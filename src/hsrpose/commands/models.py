"""``hsrpose models``: every model preset with its paper row, params, GMACs and heatmap size."""

from __future__ import annotations

import argparse
import json

HELP = "list every model preset (paper row, params, GMACs, heatmap size)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects instead of a table")
    parser.add_argument("names", nargs="*", metavar="PRESET", help="only these presets (default: all)")


def rows(names: list[str] | None = None) -> list[dict[str, object]]:
    """One dict per preset: name, paper_row, backbone, head, params, gmacs, input_size, heatmap_size, description."""
    from hsrpose.models import get_preset, list_presets
    from hsrpose.models.costs import model_cost

    out: list[dict[str, object]] = []
    for name in names or list_presets():
        p = get_preset(name)
        cost = model_cost(name)
        out.append(
            {
                "name": p.name,
                "paper_row": p.paper_row,
                "backbone": p.backbone,
                "num_deconv": p.num_deconv,
                "deconv_kernel": p.deconv_kernel,
                "params": cost.params,
                "gmacs": round(cost.gmacs, 6),
                "input_size": list(p.input_hw),
                "heatmap_size": list(cost.heatmap_hw),
                "description": p.description,
            }
        )
    return out


def format_table(table: list[dict[str, object]]) -> str:
    header = ("preset", "paper row", "backbone", "head", "params (M)", "GMACs", "input", "heatmap")
    lines = [header]
    for r in table:
        ih, iw = r["input_size"]  # type: ignore[misc]
        hh, hw = r["heatmap_size"]  # type: ignore[misc]
        lines.append(
            (
                str(r["name"]),
                str(r["paper_row"]),
                str(r["backbone"]),
                f"{r['num_deconv']} deconv k{r['deconv_kernel']}",
                f"{int(r['params']) / 1e6:.3f}",  # type: ignore[call-overload]
                f"{float(r['gmacs']):.3f}",  # type: ignore[arg-type]
                f"{ih}x{iw}",
                f"{hh}x{hw}",
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    text.append("")
    text.append("GMACs: multiply-accumulates (1e9) of one image at the preset's input size, counted with")
    text.append("torch.utils.flop_counter (total / 2). FLOPs = 2 x MACs. The HRNet/SimpleBaseline papers'")
    text.append("'GFLOPs' (8.9 for ResNet-50) are a different count and are not comparable.")
    return "\n".join(text)


def run(args: argparse.Namespace) -> int:
    table = rows(list(args.names) or None)
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print(format_table(table))
    return 0
