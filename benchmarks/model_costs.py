"""Print every preset's params and GMACs next to model-spec.md's expected costs.

    .venv/bin/python benchmarks/model_costs.py

MACs: torch.utils.flop_counter.FlopCounterMode total / 2, batch 1, on the meta
device (see hsrpose.models.costs). Acceptance: params within 0.1%, GMACs within 1%.
"""

from __future__ import annotations

import time

from hsrpose.models import get_preset, list_presets
from hsrpose.models.costs import model_cost

# model-spec.md "Expected costs": params (M), GMACs.
SPEC: dict[str, tuple[float, float]] = {
    "simplebaseline_res50_256x192": (34.000, 5.426),
    "simplebaseline_res101_256x192": (52.992, 9.063),
    "simplebaseline_res152_256x192": (68.635, 12.699),
    "simplebaseline_res50_256x192_k2": (26.135, 4.369),
    "simplebaseline_res50_256x192_k3": (29.412, 4.810),
    "simplebaseline_res50_384x288": (34.000, 12.209),
    "hsrnet59_256x192": (22.596, 6.521),
    "hsrnet110_256x192": (41.588, 10.158),
    "hsrnet161_256x192": (57.232, 13.794),
    "hsrnet59_256x192_k2": (18.664, 5.313),
    "hsrnet59_256x192_k3": (20.302, 5.816),
    "hsrnet59_384x288": (22.596, 14.672),
    "hsr_msnet59_256x192": (20.728, 6.012),
    "hsr_msnet59_384x288": (20.728, 13.527),
}


def main() -> None:
    t0 = time.perf_counter()
    print(f"{'preset':34s} {'row':12s} {'params M':>9s} {'spec':>8s} {'dev %':>7s} {'GMACs':>8s} {'spec':>8s} {'dev %':>7s} {'heatmap':>8s}")
    worst_p = worst_m = 0.0
    for name in list_presets():
        p, c = get_preset(name), model_cost(name)
        sp, sm = SPEC.get(name, (float("nan"), float("nan")))
        dp = 100 * (c.params / 1e6 - sp) / sp
        dm = 100 * (c.gmacs - sm) / sm
        if name in SPEC:
            worst_p, worst_m = max(worst_p, abs(dp)), max(worst_m, abs(dm))
        hm = f"{c.heatmap_hw[0]}x{c.heatmap_hw[1]}"
        print(f"{name:34s} {p.paper_row:12s} {c.params / 1e6:9.3f} {sp:8.3f} {dp:7.3f} {c.gmacs:8.3f} {sm:8.3f} {dm:7.3f} {hm:>8s}")
    print(f"worst deviation from spec: params {worst_p:.4f}% (limit 0.1%), GMACs {worst_m:.4f}% (limit 1%)")
    print(f"counted in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
