"""Training losses: SimpleBaseline's heatmap MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["joints_mse_loss"]


def joints_mse_loss(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """SimpleBaseline's JointsMSELoss: ``0.5 * mean_k MSE(pred_k * w_k, target_k * w_k)``.

    Args:
        pred, target: heatmaps ``(B, K, h, w)``.
        target_weight: ``(B, K)`` (0 for unlabelled joints), or ``(B, K, 1)``.
    The per-joint MSE averages over batch and pixels, so the whole thing is the mean over
    ``(B, K, h, w)`` of the weighted squared error, times 0.5.
    """
    w = target_weight.reshape(target_weight.shape[0], target_weight.shape[1], 1, 1).to(pred.dtype)
    return 0.5 * F.mse_loss(pred * w, target.to(pred.dtype) * w)
