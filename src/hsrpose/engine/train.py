"""The training loop: the paper's recipe, AMP, DDP through torchrun, exact resume.

Read :func:`train` top to bottom: set up the process group, the run directory,
data, model, optimizer; optionally restore a checkpoint; then loop over epochs
and steps; validate; write ``last.pth`` / ``best.pth``. There are no hooks or
callbacks on purpose (torchvision references / nanoGPT style). The pieces it calls
live one job per module: ``train_data`` (datasets, batches, validation), ``step``
(one optimizer step), ``losses``, ``checkpoint`` (the checkpoint dict, save/restore).

Reproducibility: the data order is a function of ``(seed, epoch)`` (the
sampler, data/loader.py), every sample's augmentation a function of ``(seed, epoch, index)``
(TopDownDataset draws from its own per-sample generator), and the checkpoint
holds every RNG state, so a run resumed from ``last.pth`` -- at an epoch end or, with ``checkpoint_interval``,
in the middle of an epoch -- takes exactly the steps an uninterrupted run takes
(bitwise identical parameters on CPU with ``deterministic=true``).

Test hook: ``HSRPOSE_TEST_KILL_AT_STEP=N`` SIGKILLs the process right after
optimizer step N (a crash in the middle of an epoch, for the resume tests).
"""

from __future__ import annotations

import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hsrpose.data.datasets import main_metric
from hsrpose.decode_settings import DecodeSettings
from hsrpose.engine import distributed as du
from hsrpose.engine.checkpoint import (
    BEST_NAME,
    LAST_NAME,
    ResumePoint,
    capture_rng_state,
    cpu_state_dict,
    load_checkpoint,
    make_checkpoint,
    refuse_existing_run,
    remove_stale_temp_files,
    restore_training_state,
    save_checkpoint,
)
from hsrpose.engine.config import TrainConfig, parse_model_kwargs
from hsrpose.engine.logging import MetricsLogger, plot_curves, read_metrics
from hsrpose.engine.losses import joints_mse_loss
from hsrpose.engine.step import SpeedOptions, TrainStep, apply_backend_options, build_optimizer, compile_model
from hsrpose.engine.train_data import TrainBatches, build_data, validate
from hsrpose.errors import HsrposeError
from hsrpose.overrides import save_config, validate_ranges

# joints_mse_loss is re-exported: ``from hsrpose.engine.train import joints_mse_loss`` predates engine/losses.py.
__all__ = ["TrainConfig", "TrainResult", "NonFiniteLossError", "joints_mse_loss", "train"]

KILL_AT_STEP_ENV = "HSRPOSE_TEST_KILL_AT_STEP"


class NonFiniteLossError(HsrposeError):
    """The loss became NaN or infinite; the message gives the step. Checkpoints are left as they were."""


@dataclass
class TrainResult:
    """What a finished run produced (rank 0 has the full history; other ranks an empty one)."""

    run_dir: Path
    best_ap: float  # -1.0 if the run never validated
    best_epoch: int  # 1-based epoch of best_ap, 0 if none
    final_metrics: dict[str, float]  # last validation's metrics ({} if none)
    epochs: int
    steps: int
    last_checkpoint: Path
    best_checkpoint: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)  # records of metrics.jsonl (epoch + val)


# ----------------------------------------------------------------------------- small helpers


def _set_determinism(cfg: TrainConfig) -> None:
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.deterministic:
        # cuBLAS needs this to be deterministic; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _set_train_mode(model: nn.Module, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def _params_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# ----------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Train ``cfg.preset`` as configured; with ``resume`` continue ``<run_dir>/last.pth`` exactly.

    Works the same under ``torchrun`` (one process per device, DDP) and as a plain
    process. Raises :class:`HsrposeError` for user errors (existing run without
    ``resume``, missing data) and :class:`NonFiniteLossError` when the loss diverges.
    """
    validate_ranges(cfg)  # configs built in code skip apply_overrides, which checks them too
    created_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    info = du.init_distributed(cfg.device)
    try:
        return _train(cfg, resume, info)
    finally:
        if created_group:
            du.cleanup_distributed()


def _train(cfg: TrainConfig, resume: bool, info: du.DistInfo) -> TrainResult:
    from hsrpose.models import create_model, get_preset

    device = info.device
    run_dir = cfg.run_dir()
    world = info.world_size

    # ---- run directory: refuse to overwrite, or load the checkpoint to resume
    ckpt: dict[str, Any] | None = None
    if resume:
        ckpt = load_checkpoint(run_dir / LAST_NAME, map_location="cpu")
    else:
        refuse_existing_run(run_dir)
    du.barrier()  # every rank has checked before rank 0 creates anything
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(run_dir)
        save_config(cfg, run_dir / "config.yaml")

    _set_determinism(cfg)
    speed = SpeedOptions.from_config(cfg)
    apply_backend_options(speed, device)
    o = cfg.optim
    if cfg.nan_check_interval < 1:
        raise HsrposeError(f"nan_check_interval must be >= 1, got {cfg.nan_check_interval}")
    if o.batch_size % world:
        raise HsrposeError(f"optim.batch_size={o.batch_size} (global) does not divide by the {world} processes")
    per_rank_batch = o.batch_size // world

    # ---- data
    preset = get_preset(cfg.preset)
    data = build_data(cfg, preset.input_hw, preset.heatmap_hw)
    batches = TrainBatches(cfg, data, per_rank_batch, world, device)
    steps_per_epoch = batches.steps_per_epoch

    # ---- model, optimizer, schedule, AMP, EMA
    model_kwargs = parse_model_kwargs(cfg.model_kwargs)
    model = create_model(cfg.preset, num_keypoints=data.keypoint_info.num_keypoints, **model_kwargs)
    if cfg.pretrained and cfg.pretrained.lower() != "none" and ckpt is None:  # 'none' = from scratch on purpose
        from hsrpose.models.weights import load_weights

        report = load_weights(model, cfg.pretrained)
        if info.is_main:
            print(f"pretrained {cfg.pretrained}: {len(report.missing)} missing, {len(report.unexpected)} unexpected keys", file=sys.stderr)
    if cfg.sync_bn and world > 1:
        if device.type == "cpu":
            raise HsrposeError("sync_bn=true needs GPUs (PyTorch's SyncBatchNorm has no CPU kernel); use freeze_bn=true or sync_bn=false")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)

    optimizer = build_optimizer(o, model, fused=speed.fused_adam)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(o.milestones), gamma=o.gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")  # bf16 has fp32's range: no scaling
    ema: torch.optim.swa_utils.AveragedModel | None = None
    if cfg.ema:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
        )

    meta = {
        "preset": cfg.preset,
        "model_kwargs": model_kwargs,
        "num_keypoints": data.keypoint_info.num_keypoints,
        "input_hw": list(preset.input_hw),
        "heatmap_hw": list(preset.heatmap_hw),
        "keypoint_info": data.keypoint_info.to_dict(),
        # how validation decoded: eval/predict/export on this checkpoint decode the same way
        "decode": DecodeSettings(
            sigma=cfg.data.sigma, decoder="dark" if cfg.data.dark else "standard", box_padding=cfg.data.box_padding,
            aspect_wh=preset.input_hw[1] / preset.input_hw[0], flip_shift=cfg.eval.shift_heatmap,
        ).to_dict(),
    }

    # ---- resume state
    point = ResumePoint()
    if ckpt is not None:
        point = restore_training_state(ckpt, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, ema=ema,
                                       world=world, rank=info.rank)  # fmt: skip
        if info.is_main:
            print(f"resumed {run_dir / LAST_NAME}: epoch {point.epoch} step {point.step} (+{point.epoch_step} in epoch)", file=sys.stderr)
    start_epoch, epoch_step, step = point.epoch, point.epoch_step, point.step
    best_ap, best_epoch, epoch_stats = point.best_ap, point.best_epoch, point.epoch_stats

    # ---- wrappers: DDP (gradient all-reduce), torch.compile
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    train_model = compile_model(train_model, speed)
    train_step = TrainStep(model, train_model, optimizer, joints_mse_loss, amp=cfg.amp, scaler=scaler, ema=ema, grad_clip=o.grad_clip,
                           cuda_graphs=speed.cuda_graphs)

    logger = MetricsLogger(run_dir, enabled=info.is_main, tensorboard=cfg.tensorboard, resume_step=step if ckpt is not None else None)
    if ckpt is not None:
        logger.truncate_after(step)  # drop what a killed run logged after its last checkpoint

    # Losses stay on the device until a sync: at log intervals, every ``nan_check_interval``
    # steps and before every checkpoint. One all-reduce of the stacked values gives each step
    # the same mean over ranks the per-step sync gave, added up in the same order.
    pending: list[torch.Tensor] = []  # this rank's losses of the steps since the last sync
    last_loss = {"value": math.nan}

    def sync_losses(epoch: int) -> None:
        """Host-sync the pending losses: add them to the epoch sum; stop on the first non-finite one."""
        if not pending:
            return
        values = du.all_reduce_mean(torch.stack(pending)).tolist()  # every rank sees the same values
        first = step - len(values) + 1
        pending.clear()
        for i, value in enumerate(values):
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"loss is {value} at step {first + i} (epoch {epoch + 1}; steps {first}-{step} were checked together, "
                    f"nan_check_interval={cfg.nan_check_interval}); stopped without writing weights, "
                    f"the last good checkpoint is {run_dir / LAST_NAME}. Try a lower optim.lr, optim.grad_clip, or amp=bf16 instead of fp16."
                )
            epoch_stats["loss_sum"] += value * per_rank_batch * world
        last_loss["value"] = values[-1]

    def write_checkpoint(name: str, epoch_done: int, model_state: dict[str, torch.Tensor] | None = None) -> None:
        """Gather every rank's RNG state (a collective), then rank 0 writes ``name`` atomically."""
        sync_losses(epoch_done)  # a checkpoint never holds weights trained on an unchecked loss
        if not _params_finite(model):
            raise NonFiniteLossError(f"parameters became non-finite by step {step}; kept the last good checkpoint")
        gathered = du.all_gather_object((capture_rng_state(), epoch_stats["bad"]))
        rng = [g[0] for g in gathered]
        stats = {**epoch_stats, "bad_per_rank": [g[1] for g in gathered]}  # bad-sample counts are per rank
        if info.is_main:
            ck = make_checkpoint(
                cfg=cfg, meta=meta, model_state=model_state if model_state is not None else cpu_state_dict(model),
                optimizer=optimizer, scheduler=scheduler, scaler=scaler, ema=ema, epoch=epoch_done,
                epoch_step=epoch_step, step=step, epoch_stats=stats, rng=rng, best_ap=best_ap,
                best_epoch=best_epoch,
            )
            save_checkpoint(ck, run_dir / name)

    kill_at_step = int(os.environ.get(KILL_AT_STEP_ENV, "0") or 0)
    final_metrics: dict[str, float] = {}
    for epoch in range(start_epoch, o.epochs):
        batches.set_epoch(epoch, skip_samples=epoch_step * per_rank_batch)  # re-enter a checkpointed epoch where it stopped
        if not epoch_step:
            epoch_stats = {"loss_sum": 0.0, "samples": 0.0, "bad": 0.0}
        _set_train_mode(train_model, cfg.freeze_bn)
        bar = None
        if info.is_main and cfg.progress:
            from hsrpose.utils.progress import progress  # a bar on a terminal, lines in logs

            bar = progress(total=steps_per_epoch, initial=epoch_step, desc=f"epoch {epoch + 1}/{o.epochs}", leave=False, dynamic_ncols=True)
        t_log, n_log = time.perf_counter(), 0
        t_epoch = time.perf_counter()

        for images, target, target_weight, bad in batches:
            pending.append(train_step(images, target, target_weight))

            step += 1
            epoch_step += 1
            epoch_stats["samples"] += per_rank_batch * world
            epoch_stats["bad"] += bad  # this rank's count; summed over ranks at the epoch end
            n_log += per_rank_batch * world

            log_now = step % cfg.log_interval == 0 or epoch_step == steps_per_epoch
            if log_now or step % cfg.nan_check_interval == 0:
                try:
                    sync_losses(epoch)
                except NonFiniteLossError:
                    if bar is not None:
                        bar.close()
                    raise
            if log_now:
                loss_value = last_loss["value"]
                dt = time.perf_counter() - t_log
                rate = n_log / dt if dt > 0 else 0.0
                logger.log("train", epoch + 1, step, {"loss": loss_value, "lr": _current_lr(optimizer), "samples_per_s": rate})
                t_log, n_log = time.perf_counter(), 0
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_value:.3e}", lr=f"{_current_lr(optimizer):.1e}", sps=f"{rate:.1f}")
            if bar is not None:
                bar.update(1)
            if cfg.checkpoint_interval and step % cfg.checkpoint_interval == 0 and epoch_step < steps_per_epoch:
                write_checkpoint(LAST_NAME, epoch)  # mid-epoch: ``epoch`` not yet done, epoch_step > 0
            if kill_at_step and step == kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)  # test hook: a crash in the middle of an epoch

        if bar is not None:
            bar.close()
        scheduler.step()
        epoch_step = 0
        bad_total = int(du.all_reduce_sum(torch.tensor(float(epoch_stats["bad"]))).item())
        epoch_time = time.perf_counter() - t_epoch
        epoch_loss = epoch_stats["loss_sum"] / max(epoch_stats["samples"], 1.0)
        logger.log(
            "epoch", epoch + 1, step,
            {"loss": epoch_loss, "lr": _current_lr(optimizer), "bad_samples": bad_total, "time_s": epoch_time},
        )
        if info.is_main:
            if bad_total:
                print(f"epoch {epoch + 1}: {bad_total} bad samples skipped (see the data warnings above)", file=sys.stderr)
            print(f"epoch {epoch + 1}/{o.epochs}  step {step}  loss {epoch_loss:.4e}  lr {_current_lr(optimizer):.1e}  {epoch_time:.1f}s", file=sys.stderr)

        # ---- validation (EMA weights when enabled) and checkpoints
        improved = False
        last_epoch = epoch + 1 == o.epochs
        if data.val_set is not None and cfg.eval_interval > 0 and ((epoch + 1) % cfg.eval_interval == 0 or last_epoch):
            # Written before validation too, so a validation that fails cannot lose the epoch; the
            # write after it records the new best AP and the RNG state a resumed run continues from.
            write_checkpoint(LAST_NAME, epoch + 1)
            eval_model = ema.module if ema is not None else model
            eval_model.eval()
            final_metrics = validate(eval_model, data, cfg, device)
            _set_train_mode(model, cfg.freeze_bn)
            metric_name, ap = main_metric(final_metrics)  # AP, or PCKh Mean for MPII
            logger.log("val", epoch + 1, step, final_metrics)
            if info.is_main and metric_name == "AP":
                print(f"epoch {epoch + 1}: AP {ap:.4f}  AP50 {final_metrics.get('AP50', float('nan')):.4f}", file=sys.stderr)
            elif info.is_main:
                print(f"epoch {epoch + 1}: PCKh@0.5 {ap:.2f}  Mean@0.1 {final_metrics.get('Mean@0.1', float('nan')):.2f}", file=sys.stderr)
            if ap > best_ap:
                best_ap, best_epoch, improved = ap, epoch + 1, True
        write_checkpoint(LAST_NAME, epoch + 1)
        if improved:
            best_state = cpu_state_dict(ema.module) if ema is not None else None
            write_checkpoint(BEST_NAME, epoch + 1, model_state=best_state)

    # ---- wrap up
    history: list[dict[str, Any]] = []
    if info.is_main:
        logger.close()
        plot_curves(run_dir / "metrics.jsonl", run_dir / "curves.png")
        history = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("kind") in ("epoch", "val")]
    else:
        logger.close()
    du.barrier()
    best_path = run_dir / BEST_NAME
    return TrainResult(
        run_dir=run_dir,
        best_ap=best_ap,
        best_epoch=best_epoch,
        final_metrics=final_metrics,
        epochs=o.epochs,
        steps=step,
        last_checkpoint=run_dir / LAST_NAME,
        best_checkpoint=best_path if best_path.exists() else None,
        history=history,
    )
