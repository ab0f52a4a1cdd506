"""``TrainConfig``: everything a training run reads, with the paper's recipe as defaults.

Every field can be set from the command line as a dotted ``key=value``
override (``optim.lr=1e-3``, ``amp=bf16``); the resolved config is saved as
``config.yaml`` in the run directory and inside every checkpoint.

Defaults follow protocol.md (the paper's Section 4.2): Adam, lr 1e-4, global
batch 32, 140 epochs, lr x0.1 at epochs 90 and 120, no weight decay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hsrpose.data.config import AugmentConfig, DataConfig
from hsrpose.engine.eval_config import EvalConfig
from hsrpose.overrides import ConfigError, bounded

__all__ = ["OptimConfig", "TrainConfig", "parse_model_kwargs"]


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule.

    Attributes:
        optimizer: ``adam`` (paper), ``adamw`` or ``sgd`` (momentum ``momentum``).
        lr: initial learning rate (paper 1e-4; SimpleBaseline used 1e-3).
        weight_decay: explicit, 0 by default: the official HRNet code passes none to Adam,
            and a reimplementation that added it lost most of its accuracy (protocol.md).
        momentum: SGD only.
        batch_size: **global** batch (summed over all DDP ranks); must divide by the world size.
            The paper trains with 32 on one GPU; keeping the global batch fixed keeps the recipe
            the same whatever the number of GPUs.
        epochs: total epochs.
        milestones: epochs after which lr is multiplied by ``gamma`` (MultiStepLR, stepped per epoch).
        gamma: lr factor at each milestone.
        grad_clip: max global L2 norm of the gradients; 0 disables clipping (paper: none).
    """

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = bounded(1e-4, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    momentum: float = bounded(0.9, ge=0, le=1)
    batch_size: int = bounded(32, ge=1)
    epochs: int = bounded(140, ge=1)
    milestones: tuple[int, ...] = bounded((90, 120), ge=1)
    gamma: float = bounded(0.1, gt=0)
    grad_clip: float = bounded(0.0, ge=0)


@dataclass
class TrainConfig:
    """A training run.

    Attributes:
        preset: model preset name (``hsrpose models`` lists them).
        model_kwargs: extra builder arguments for ``create_model`` as a YAML/JSON mapping string,
            e.g. ``"{width: 16}"`` (a string so that it survives ``key=value`` overrides and YAML).
        pretrained: weights file loaded into the model before training; missing and
            unexpected keys are printed. '' = none, with a warning from ``hsrpose train``
            (the paper starts from ImageNet/DetNet weights); 'none' = from scratch on purpose.
        data: dataset locations and loader settings (hsrpose.data.config.DataConfig).
        augment: training augmentation (hsrpose.data.config.AugmentConfig).
        optim: optimizer and schedule.
        eval: the evaluation protocol of periodic validation (flip test, OKS-NMS, ...); boxes
            come from ``data.val_det_file`` ('' = ground-truth boxes).
        amp: autocast dtype: ``none`` (fp32), ``bf16`` or ``fp16`` (fp16 uses a GradScaler).
        channels_last: NHWC memory format for model and inputs (faster convs with AMP on GPUs).
        compile: wrap the model in ``torch.compile``.
        cuda_graphs: with ``compile``: ``mode="reduce-overhead"`` (CUDA graphs).
        fused_adam: the fused (single-kernel) Adam/AdamW on CUDA.
        tf32: TF32 for fp32 matmuls and convolutions on CUDA (off = off for cuBLAS and cuDNN).
        sync_bn: convert BatchNorm to SyncBatchNorm under DDP (GPU only in PyTorch).
        freeze_bn: keep every BatchNorm in eval mode (running statistics fixed, affine trained).
        ema: keep an exponential moving average of the weights; validation and best.pth use it.
        ema_decay: EMA decay per optimizer step.
        eval_interval: validate every N epochs and after the last epoch; 0 = never.
        checkpoint_interval: also write ``last.pth`` every N optimizer steps inside an epoch
            (0 = only at epoch ends); a resumed run continues mid-epoch from it.
        log_interval: write a ``train`` metrics record every N optimizer steps.
        nan_check_interval: losses stay on the device between host syncs (at log intervals and
            every N steps); a NaN/inf loss stops the run at the next sync, within N steps.
        train_subset: train on the first N instances only (overfit checks, smoke tests); 0 = all.
        seed: seeds model init, data order and augmentation.
        deterministic: ``torch.use_deterministic_algorithms(True)`` (bitwise reproducible on CPU;
            slower on GPU and needs CUBLAS_WORKSPACE_CONFIG there).
        output_dir: run directory ('' = ``runs/<preset>``).
        device: ``auto`` (this rank's GPU if there is one, else CPU), ``cpu``, ``cuda``, ``cuda:1``.
        progress: show a tqdm progress bar on rank 0.
        tensorboard: also log to TensorBoard when it is installed.
    """

    preset: str = "hsrnet59_256x192"
    model_kwargs: str = "{}"
    pretrained: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    fused_adam: bool = False
    tf32: bool = False
    sync_bn: bool = False
    freeze_bn: bool = False
    ema: bool = False
    ema_decay: float = bounded(0.9998, ge=0, le=1)
    eval_interval: int = bounded(10, ge=0)
    checkpoint_interval: int = bounded(0, ge=0)
    log_interval: int = bounded(20, ge=1)
    nan_check_interval: int = bounded(20, ge=1)
    train_subset: int = bounded(0, ge=0)
    seed: int = bounded(0, ge=0)
    deterministic: bool = False
    output_dir: str = ""
    device: str = "auto"
    progress: bool = True
    tensorboard: bool = True

    def run_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.preset


def parse_model_kwargs(text: str) -> dict[str, Any]:
    """``"{width: 16}"`` -> ``{"width": 16}``; raises ConfigError naming ``model_kwargs``."""
    if not text or not text.strip():
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"model_kwargs: not a YAML mapping: {text!r} ({e})") from e
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"model_kwargs: expected a mapping like '{{width: 16}}', got {text!r}")
    return value
