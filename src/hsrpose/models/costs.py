"""Model costs: parameter count and multiply-accumulates, as model-spec.md defines them.

MACs are ``torch.utils.flop_counter.FlopCounterMode``'s total / 2 for one image
(Conv2d, ConvTranspose2d, Linear; a transposed conv costs C_in*C_out*k*k*H_in*W_in).
The model is built and run on the ``meta`` device: no memory, no arithmetic,
a fraction of a second even for the 152-layer models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ModelCost", "model_cost"]


@dataclass(frozen=True)
class ModelCost:
    """Costs of one preset at one input size: params (all trainable), macs (batch 1), output heatmap (h, w)."""

    params: int
    macs: int
    input_hw: tuple[int, int]
    heatmap_hw: tuple[int, int]

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def flops(self) -> int:
        """FLOPs of one forward pass (2 per MAC): what MFU of inference counts."""
        return 2 * self.macs

    @property
    def train_flops(self) -> int:
        """FLOPs of one training sample: forward + backward = 3 x forward (the backward computes the
        gradients of both inputs and weights, 2 x forward; the usual MFU convention, as in PaLM)."""
        return 3 * self.flops


def model_cost(name: str, input_hw: tuple[int, int] | None = None, num_keypoints: int = 17, **kwargs: Any) -> ModelCost:
    """Count params and MACs of preset ``name`` at ``input_hw`` (default: the preset's input size)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hsrpose.models.registry import create_model, get_preset

    hw = input_hw or get_preset(name).input_hw
    with torch.device("meta"):
        model = create_model(name, num_keypoints=num_keypoints, **kwargs)
        x = torch.empty(1, 3, hw[0], hw[1])
        with FlopCounterMode(display=False) as counter:
            y = model(x)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelCost(params=params, macs=counter.get_total_flops() // 2, input_hw=(hw[0], hw[1]),
                     heatmap_hw=(int(y.shape[-2]), int(y.shape[-1])))  # fmt: skip
