"""Params and MACs of the MPII presets (256x256 input, 64x64 heatmaps, 16 joints), next to the
256x192 COCO rows of the same networks.

    PYTHONPATH=src .venv/bin/python benchmarks/mpii_preset_costs.py

MACs: torch.utils.flop_counter on the meta device, batch 1 (hsrpose.models.costs.model_cost).
"""

from __future__ import annotations

from hsrpose.models import get_preset
from hsrpose.models.costs import model_cost

PAIRS = (
    ("simplebaseline_res50_256x256", "simplebaseline_res50_256x192"),
    ("hsrnet59_256x256", "hsrnet59_256x192"),
    ("hsr_msnet59_256x256", "hsr_msnet59_256x192"),
)


def main() -> None:
    print("| preset | backbone | input | heatmap | joints | params (M) | GMACs | COCO row 256x192, 17 joints: params (M) / GMACs |")
    print("|---|---|---|---|---|---|---|---|")
    for name, coco in PAIRS:
        p, c, b = get_preset(name), model_cost(name, num_keypoints=16), model_cost(coco, num_keypoints=17)
        print(
            f"| {name} | {p.backbone} | {p.input_hw[0]}x{p.input_hw[1]} | {c.heatmap_hw[0]}x{c.heatmap_hw[1]} | 16 "
            f"| {c.params / 1e6:.3f} | {c.gmacs:.3f} | {b.params / 1e6:.3f} / {b.gmacs:.3f} |"
        )


if __name__ == "__main__":
    main()
