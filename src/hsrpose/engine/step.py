"""The one training step (forward, loss, backward, optimizer, scaler, EMA) and the engine's speed options.

``hsrpose train`` (engine/train.py) and ``benchmarks/gpu_throughput.py`` both build a
:class:`TrainStep` with :func:`build_optimizer` and :func:`compile_model`, so the benchmark
times the step training runs. The faster settings are named options of :class:`SpeedOptions`
(``TrainConfig`` fields of the same names); each is off unless asked for:

* ``fused_adam``: ``torch.optim.Adam/AdamW(fused=True)`` (one kernel for all parameters; CUDA only).
* ``tf32``: TF32 tensor cores for fp32 matmuls and convolutions (cuBLAS and cuDNN). Off means
  off for both, also cuDNN's (PyTorch's default leaves cuDNN TF32 on): a row says what ran.
* ``compile``: ``torch.compile`` of the model (forward and backward).
* ``cuda_graphs``: with ``compile``, ``mode="reduce-overhead"`` (CUDA graphs replay the kernels).

The step returns this rank's loss as a device tensor and never reads it on the host:
the training loop syncs losses in batches (at log intervals and every
``nan_check_interval`` steps), so the GPU is not stalled once per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from hsrpose.errors import HsrposeError

__all__ = ["SpeedOptions", "TrainStep", "apply_backend_options", "build_optimizer", "compile_model", "amp_dtype"]

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SpeedOptions:
    """The engine's speed settings (none changes the arithmetic except ``tf32`` and ``amp``)."""

    amp: str = "none"  # autocast dtype: none (fp32) | bf16 | fp16 (fp16 with a GradScaler)
    channels_last: bool = False
    fused_adam: bool = False
    tf32: bool = False
    compile: bool = False
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if self.amp not in ("none", "bf16", "fp16"):
            raise HsrposeError(f"amp must be none, bf16 or fp16, got {self.amp!r}")
        if self.cuda_graphs and not self.compile:
            raise HsrposeError("cuda_graphs=true needs compile=true (CUDA graphs come from torch.compile mode='reduce-overhead')")

    @classmethod
    def from_config(cls, cfg: Any) -> "SpeedOptions":
        """From a :class:`hsrpose.engine.config.TrainConfig`."""
        return cls(amp=cfg.amp, channels_last=cfg.channels_last, fused_adam=cfg.fused_adam, tf32=cfg.tf32,
                   compile=cfg.compile, cuda_graphs=cfg.cuda_graphs)  # fmt: skip

    def label(self) -> str:
        """Short description of what runs, e.g. ``bf16 channels_last compile``."""
        names = [self.amp if self.amp != "none" else "fp32"]
        names += [n for n in ("channels_last", "fused_adam", "tf32", "compile", "cuda_graphs") if getattr(self, n)]
        return " ".join(names)


def amp_dtype(amp: str) -> torch.dtype | None:
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def apply_backend_options(opts: SpeedOptions, device: torch.device) -> None:
    """Set the process-wide TF32 switches to ``opts.tf32`` (CUDA only; nothing to set on CPU)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = opts.tf32
        torch.backends.cudnn.allow_tf32 = opts.tf32


def build_optimizer(o: Any, model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
    """The optimizer of :class:`hsrpose.engine.config.OptimConfig` ``o`` over the trainable parameters.

    ``fused`` (Adam/AdamW on CUDA parameters only) selects the single-kernel implementation;
    it is ignored for SGD and for parameters off the GPU.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    fuse = fused and o.optimizer in ("adam", "adamw") and all(p.is_cuda for p in params)
    extra = {"fused": True} if fuse else {}
    if o.optimizer == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay, **extra)
    if o.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, **extra)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def compile_model(model: nn.Module, opts: SpeedOptions) -> nn.Module:
    """``torch.compile(model)`` when ``opts.compile`` (``reduce-overhead`` with ``cuda_graphs``), else ``model``."""
    if not opts.compile:
        return model
    return torch.compile(model, mode="reduce-overhead" if opts.cuda_graphs else None)  # type: ignore[return-value]


class TrainStep:
    """One optimizer step on one batch: autocast forward, fp32 loss, (scaled) backward, optional
    gradient clipping, optimizer and scaler step, EMA update.

    Args:
        model: the plain module (its parameters are clipped and averaged into ``ema``).
        run_model: what the forward calls: ``model`` itself, its DDP wrapper and/or its compiled form.
        optimizer: over ``model``'s parameters.
        loss_fn: ``(heatmaps fp32 (B,K,h,w), target (B,K,h,w), target_weight (B,K)) -> scalar``.
        amp: ``none`` | ``bf16`` | ``fp16``.
        scaler: a GradScaler (enabled for fp16 only); None = a disabled one.
        ema: an ``AveragedModel`` updated after every step, or None.
        grad_clip: max global L2 norm of the gradients (0 = no clipping).
        cuda_graphs: ``run_model`` replays CUDA graphs (compile ``reduce-overhead``): each call
            marks a new step, so the graphs may reuse the previous step's output memory.
    """

    def __init__(
        self,
        model: nn.Module,
        run_model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        *,
        amp: str = "none",
        scaler: torch.amp.GradScaler | None = None,
        ema: nn.Module | None = None,
        grad_clip: float = 0.0,
        cuda_graphs: bool = False,
    ) -> None:
        self.model = model
        self.run_model = run_model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.amp_dtype = amp_dtype(amp)
        device_type = next(model.parameters()).device.type
        self.device_type = device_type
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler(device_type, enabled=False)
        self.ema = ema
        self.grad_clip = float(grad_clip)
        self.cuda_graphs = cuda_graphs

    def __call__(self, images: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        """Train on one batch (tensors on the model's device); returns the detached loss (device, this rank)."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device_type=self.device_type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            heatmaps = self.run_model(images)
        loss = self.loss_fn(heatmaps.float(), target, target_weight)  # loss in fp32 whatever the autocast

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.detach()
