"""Heatmap backends: normalised crops in, heatmaps out, both numpy.

``backend(images float32 (B,3,H,W)) -> heatmaps float32 (B,K,h,w)`` with the
attributes ``input_hw``, ``heatmap_hw`` and ``keypoint_info`` (see
docs/architecture.md). :class:`TorchBackend` runs a torch model; the
onnxruntime one lives in :mod:`hsrpose.inference.onnx_backend`. torch is imported
inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from hsrpose.data.keypoints import KeypointInfo
from hsrpose.decode_settings import DecodeSettings

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

__all__ = ["HeatmapBackend", "TorchBackend"]


@runtime_checkable
class HeatmapBackend(Protocol):
    input_hw: tuple[int, int]
    heatmap_hw: tuple[int, int]
    keypoint_info: KeypointInfo

    def __call__(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        ...


class TorchBackend:
    """A torch pose model as a numpy -> numpy heatmap function.

    Args:
        model: ``(B,3,H,W) -> (B,K,h,w)``; put in eval mode here.
        keypoint_info: the model's keypoint set (K must match its output channels).
        input_hw: crop size the model was trained for, e.g. ``(256, 192)``.
        heatmap_hw: its heatmap size (default ``input_hw // 4``).
        device: where the model runs; inputs are moved there and results back to CPU.
        preset: name of the model preset, for messages only.
        decode_settings: the decode settings the weights store (protocol defaults if None);
            ``decode_note`` says when a file stored none.
    """

    def __init__(
        self,
        model: "nn.Module",
        keypoint_info: KeypointInfo,
        input_hw: tuple[int, int],
        heatmap_hw: tuple[int, int] | None = None,
        device: Any = "cpu",
        preset: str = "",
        decode_settings: DecodeSettings | None = None,
        decode_note: str | None = None,
    ) -> None:
        import torch

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.keypoint_info = keypoint_info
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.heatmap_hw = (
            (int(heatmap_hw[0]), int(heatmap_hw[1])) if heatmap_hw is not None else (self.input_hw[0] // 4, self.input_hw[1] // 4)
        )
        self.preset = preset
        self.decode_settings = decode_settings if decode_settings is not None else DecodeSettings()
        self.decode_note = decode_note

    @classmethod
    def from_weights(cls, path: str | Path, device: Any = "cpu") -> "TorchBackend":
        """Load an hsrpose weights file or training checkpoint (``load_pose_model``)."""
        from hsrpose.models.weights import load_pose_model

        model, meta = load_pose_model(path, device=str(device))
        return cls(
            model, meta.keypoint_info, meta.input_hw, meta.heatmap_hw, device=device, preset=meta.preset,
            decode_settings=meta.decode, decode_note=meta.decode_note,
        )  # fmt: skip

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """(B,3,H,W) float32 normalised crops -> (B,K,h,w) float32 heatmaps (numpy, CPU)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            y = self.model(x)
        return y.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"TorchBackend({self.preset or type(self.model).__name__}, input_hw={self.input_hw}, device={self.device})"
