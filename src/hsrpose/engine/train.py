"""The training loop: the paper's recipe, AMP, DDP through torchrun, exact resume.

Read :func:`train` top to bottom: set up the process group, the run directory,
data, model, optimizer; optionally restore a checkpoint; then loop over epochs
and steps; validate; write ``last.pth`` / ``best.pth``. There are no hooks or
callbacks on purpose (torchvision references / nanoGPT style).

Reproducibility: the data order is a function of ``(seed, epoch)`` (the
sampler), every sample's augmentation a function of ``(seed, epoch, index)``
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
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hsrpose import __version__
from hsrpose.config import config_to_dict, save_config, validate_ranges
from hsrpose.decode_settings import DecodeSettings
from hsrpose.data.datasets import main_metric
from hsrpose.engine import distributed as du
from hsrpose.engine.checkpoint import (
    BEST_NAME,
    CHECKPOINT_FORMAT,
    LAST_NAME,
    capture_rng_state,
    load_checkpoint,
    refuse_existing_run,
    remove_stale_temp_files,
    restore_rng_state,
    save_checkpoint,
    unwrap_model,
)
from hsrpose.engine.config import TrainConfig, parse_model_kwargs
from hsrpose.engine.logging import MetricsLogger, plot_curves, read_metrics
from hsrpose.engine.step import SpeedOptions, TrainStep, apply_backend_options, build_optimizer, compile_model
from hsrpose.errors import HsrposeError

__all__ = ["TrainConfig", "TrainResult", "NonFiniteLossError", "joints_mse_loss", "train", "ResumableSampler"]

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


# ----------------------------------------------------------------------------- loss


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


# ----------------------------------------------------------------------------- data order


class ResumableSampler(DistributedSampler):
    """DistributedSampler (shuffle by ``seed + epoch``) that can start ``skip`` samples into the epoch.

    Yields ``(epoch, index)`` as TopDownDataset expects (the epoch selects the augmentation
    draws even in a worker holding an old copy of the dataset). With one process it is a
    seeded shuffle, the same permutation as ``build_loader``'s. ``set_skip`` applies to the
    epoch a resumed run re-enters; ``set_epoch`` clears it.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.skip = 0

    def set_skip(self, skip: int) -> None:
        self.skip = skip

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        return iter([(epoch, int(i)) for i in list(super().__iter__())[self.skip :]])

    def __len__(self) -> int:
        return self.num_samples - self.skip


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


def _make_checkpoint(
    *,
    cfg: TrainConfig,
    meta: dict[str, Any],
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    ema: nn.Module | None,
    epoch: int,
    epoch_step: int,
    step: int,
    epoch_stats: dict[str, Any],
    rng: list[dict[str, Any]],
    best_ap: float,
    best_epoch: int,
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "hsrpose_version": __version__,
        **meta,
        "model": model_state,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "ema": ema.state_dict() if ema is not None else None,
        "epoch": epoch,
        "epoch_step": epoch_step,
        "step": step,
        "epoch_stats": dict(epoch_stats),
        "rng": rng,
        "config": config_to_dict(cfg),
        "best_ap": best_ap,
        "best_epoch": best_epoch,
    }


def _cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap_model(model).state_dict().items()}


# ----------------------------------------------------------------------------- data


@dataclass
class _Data:
    train_set: Any  # TopDownDataset
    val_set: Any  # TopDownDataset or None
    val_gt: Any  # validated COCO ground truth (load_gt) or a dataset scorer (data.datasets.ground_truth)
    keypoint_info: Any  # KeypointInfo
    codec: Any  # HeatmapCodec


def _build_data(cfg: TrainConfig, input_hw: tuple[int, int], heatmap_hw: tuple[int, int]) -> _Data:
    """Training set (GT boxes, protocol.md filters) and validation set (GT or detection boxes)."""
    from hsrpose.codec import HeatmapCodec
    from hsrpose.data.dataset import TopDownDataset
    from hsrpose.data.datasets import ground_truth, load_dataset

    d = cfg.data
    if not d.train_ann:
        raise HsrposeError("data.train_ann is empty: give the training annotation file (or --data-root)")
    codec = HeatmapCodec(input_hw, heatmap_hw, sigma=d.sigma, dark=d.dark)
    kw = {"category_id": d.category_id, "flip_pairs": d.flip_pairs, "oks_sigmas": d.oks_sigmas}
    kw["box_padding"] = d.box_padding
    dataset, loaded = load_dataset(d.dataset, d.train_ann, mode="train", **kw)
    if du.is_main_process():
        print(loaded.report.summary(), file=sys.stderr)
    instances = loaded.instances[: cfg.train_subset] if cfg.train_subset > 0 else loaded.instances
    if not instances:
        raise HsrposeError(f"{d.train_ann}: no training instances with labelled keypoints")
    augment = cfg.augment if cfg.augment.enabled else None
    train_set = TopDownDataset(instances, d.train_images, input_hw, codec, augment=augment,
                               keypoint_info=loaded.keypoint_info, seed=cfg.seed, box_padding=d.box_padding)  # fmt: skip
    val_set = None
    if d.val_ann:
        mode = "det" if d.val_det_file else "gt"
        _, val = load_dataset(dataset, d.val_ann, mode=mode, det_file=d.val_det_file or None, score_thr=cfg.eval.det_score_thr, **kw)
        if du.is_main_process():
            print(val.report.summary() + (" (detection boxes)" if d.val_det_file else " (ground-truth boxes)"), file=sys.stderr)
        val_set = TopDownDataset(val.instances, d.val_images or d.train_images, input_hw, codec, augment=None,
                                 keypoint_info=val.keypoint_info, seed=cfg.seed, box_padding=d.box_padding)  # fmt: skip
    # Scored against ground truth read and checked once (bad records warned about once, not every epoch).
    val_gt = ground_truth(dataset, d.val_ann) if d.val_ann else None
    return _Data(train_set, val_set, val_gt, loaded.keypoint_info, codec)


def _validate(model: nn.Module, data: _Data, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """The evaluation protocol on the validation set; under DDP each rank predicts a shard,
    rank 0 scores, every rank gets the metrics (hsrpose.engine.evaluate does the gathering)."""
    from hsrpose.engine.evaluate import evaluate

    _, metrics = evaluate(model, data.val_set, data.codec, data.keypoint_info, cfg=cfg.eval, device=device, gt=data.val_gt)
    return {k: float(v) for k, v in metrics.items()}


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
    data = _build_data(cfg, preset.input_hw, preset.heatmap_hw)
    from hsrpose.data.dataset import seed_worker

    train_set = data.train_set
    gpu_builder = None
    collate_fn = None
    if cfg.data.pipeline == "gpu":
        # Workers read bytes and draw the augmentation (the same (seed, epoch, index) draw as
        # the CPU path); decoding, warps and targets run batched on the device.
        from hsrpose.data.gpu import GpuBatchBuilder, GpuSampleDataset, collate_gpu_samples

        train_set = GpuSampleDataset(data.train_set, decode=cfg.data.gpu_decode)
        collate_fn = collate_gpu_samples
        gpu_builder = GpuBatchBuilder(data.codec, data.keypoint_info.flip_index, device=device, channels_last=cfg.channels_last)
    sampler = ResumableSampler(train_set, num_replicas=world, rank=info.rank, seed=cfg.seed, shuffle=True)
    loader = DataLoader(
        train_set,
        batch_size=per_rank_batch,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=cfg.data.num_workers,
        pin_memory=cfg.data.pin_memory and device.type == "cuda",
        drop_last=True,  # equal batches on every step and rank (BatchNorm, DDP equivalence)
        persistent_workers=cfg.data.num_workers > 0,  # the epoch travels with each index
        worker_init_fn=seed_worker,
        # Worker base seeds come from this generator, not the global torch RNG, so creating
        # an iterator (once per epoch, once more on resume) leaves the global state alone.
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    steps_per_epoch = len(sampler) // per_rank_batch
    if steps_per_epoch == 0:
        raise HsrposeError(
            f"{len(train_set)} training instances are fewer than one batch per process ({per_rank_batch}); lower optim.batch_size"
        )

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
    start_epoch, epoch_step, step = 0, 0, 0
    best_ap, best_epoch = -1.0, 0
    epoch_stats = {"loss_sum": 0.0, "samples": 0.0, "bad": 0.0}
    if ckpt is not None:
        unwrap_model(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.load_state_dict(ckpt["ema"])
        start_epoch, epoch_step, step = int(ckpt["epoch"]), int(ckpt.get("epoch_step", 0)), int(ckpt["step"])
        best_ap, best_epoch = float(ckpt.get("best_ap", -1.0)), int(ckpt.get("best_epoch", 0))
        saved_stats = dict(ckpt.get("epoch_stats") or {})
        per_rank_bad = saved_stats.pop("bad_per_rank", None)
        epoch_stats.update(saved_stats)
        if per_rank_bad is not None and len(per_rank_bad) == world:
            epoch_stats["bad"] = float(per_rank_bad[info.rank])
        rngs = ckpt.get("rng") or []
        if rngs:
            restore_rng_state(rngs[info.rank] if len(rngs) == world else rngs[0])
        if info.is_main:
            print(f"resumed {run_dir / LAST_NAME}: epoch {start_epoch} step {step} (+{epoch_step} in epoch)", file=sys.stderr)

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
            ck = _make_checkpoint(
                cfg=cfg, meta=meta, model_state=model_state if model_state is not None else _cpu_state_dict(model),
                optimizer=optimizer, scheduler=scheduler, scaler=scaler, ema=ema, epoch=epoch_done,
                epoch_step=epoch_step, step=step, epoch_stats=stats, rng=rng, best_ap=best_ap,
                best_epoch=best_epoch,
            )
            save_checkpoint(ck, run_dir / name)

    kill_at_step = int(os.environ.get(KILL_AT_STEP_ENV, "0") or 0)
    final_metrics: dict[str, float] = {}
    for epoch in range(start_epoch, o.epochs):
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        if epoch_step:
            sampler.set_skip(epoch_step * per_rank_batch)  # re-enter a checkpointed epoch where it stopped
        else:
            epoch_stats = {"loss_sum": 0.0, "samples": 0.0, "bad": 0.0}
        _set_train_mode(train_model, cfg.freeze_bn)
        bar = None
        if info.is_main and cfg.progress:
            from hsrpose.utils.progress import progress  # a bar on a terminal, lines in logs

            bar = progress(total=steps_per_epoch, initial=epoch_step, desc=f"epoch {epoch + 1}/{o.epochs}", leave=False, dynamic_ncols=True)
        t_log, n_log = time.perf_counter(), 0
        t_epoch = time.perf_counter()

        for batch in loader:
            bad = int((~batch["valid"].bool()).sum()) if "valid" in batch else 0
            if gpu_builder is not None:
                bad_before = gpu_builder.bad_images
                gb = gpu_builder(batch)
                images, target, target_weight = gb.images, gb.targets, gb.target_weight
                bad += gpu_builder.bad_images - bad_before  # images neither nvJPEG nor OpenCV could decode
            else:
                images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=memory_format)
                target = batch["target"].to(device, non_blocking=True)
                target_weight = batch["target_weight"].to(device, non_blocking=True)

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
            final_metrics = _validate(eval_model, data, cfg, device)
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
            best_state = _cpu_state_dict(ema.module) if ema is not None else None
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
