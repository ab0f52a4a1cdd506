"""The training checkpoint: one dict, written atomically, read back for ``--resume``.

Layout (``format == "hsrpose-checkpoint"``; see docs/architecture.md)::

    format, hsrpose_version, preset, model_kwargs, num_keypoints, input_hw,
    heatmap_hw, keypoint_info        -> what load_pose_model needs to rebuild the net
    model                            -> state dict (no DDP "module." / compile "_orig_mod." prefix)
    optimizer, scheduler, scaler     -> state dicts (scaler None without fp16)
    ema                              -> EMA model state dict or None
    epoch                            -> epochs fully done (resume starts at this epoch index)
    epoch_step                       -> optimizer steps done inside ``epoch`` (0 at epoch ends)
    step                             -> optimizer steps done in total
    epoch_stats                      -> running sums of the current epoch (loss, samples; bad samples per rank)
    rng                              -> per-rank RNG states (python, numpy, torch, cuda)
    config                           -> resolved TrainConfig as a plain dict
    best_ap, best_epoch              -> best validation AP so far (-1.0 before any validation)

Test hook: ``HSRPOSE_TEST_KILL_IN_CHECKPOINT=N`` makes the process SIGKILL
itself during its N-th checkpoint write, after the temporary file is complete
but before the rename -- exactly the window an atomic write must survive.
"""

from __future__ import annotations

import os
import random
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hsrpose import __version__
from hsrpose.errors import CheckpointError, HsrposeError
from hsrpose.overrides import config_to_dict
from hsrpose.utils.io import atomic_save

__all__ = [
    "CHECKPOINT_FORMAT",
    "LAST_NAME",
    "BEST_NAME",
    "capture_rng_state",
    "restore_rng_state",
    "save_checkpoint",
    "load_checkpoint",
    "refuse_existing_run",
    "remove_stale_temp_files",
    "unwrap_model",
    "cpu_state_dict",
    "make_checkpoint",
    "ResumePoint",
    "restore_training_state",
]

CHECKPOINT_FORMAT = "hsrpose-checkpoint"
LAST_NAME = "last.pth"
BEST_NAME = "best.pth"
KILL_ENV = "HSRPOSE_TEST_KILL_IN_CHECKPOINT"

_writes_done = 0  # counts checkpoint writes in this process, for the kill test hook


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG this process uses: python ``random``, numpy, torch CPU and all CUDA devices.

    Only tuples, ints, floats, strings and tensors, so the checkpoint loads with
    ``torch.load(weights_only=True)`` (numpy's key array is stored as an int64 tensor).
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"bit_generator": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},  # fmt: skip
        "torch": torch.get_rng_state(),
    }
    state["cuda"] = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["bit_generator"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        # A run resumed on fewer/more GPUs restores what it can.
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        for i, s in enumerate(cuda_states):
            torch.cuda.set_rng_state(s, i)


def _maybe_kill_for_test(tmp: Path) -> None:
    """SIGKILL ourselves after the temp file is written, before the rename (test hook)."""
    target = os.environ.get(KILL_ENV)
    if target and _writes_done == int(target):
        os.kill(os.getpid(), signal.SIGKILL)


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> None:
    """Write ``ckpt`` atomically: a kill at any moment leaves the previous file intact."""
    global _writes_done
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError("save_checkpoint: the dict lacks format='hsrpose-checkpoint'")
    _writes_done += 1

    def writer(tmp: Path) -> None:
        torch.save(ckpt, tmp)
        _maybe_kill_for_test(tmp)

    atomic_save(path, writer)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_checkpoint`.

    Read with ``weights_only=True``: the dict holds only tensors and plain Python
    values, so loading it never runs code from the file.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated file, not a torch file, ...
        raise CheckpointError(f"{p}: cannot read checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        fmt = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{p}: not an hsrpose training checkpoint (format={fmt!r}); --resume needs the run's {LAST_NAME}")
    for key in ("model", "optimizer", "scheduler", "epoch", "step", "config"):
        if key not in ckpt:
            raise CheckpointError(f"{p}: checkpoint lacks '{key}'")
    return ckpt


def refuse_existing_run(run_dir: Path) -> None:
    """A new run must not overwrite one that already has checkpoints."""
    found = [n for n in (LAST_NAME, BEST_NAME) if (run_dir / n).exists()]
    if found:
        raise HsrposeError(
            f"{run_dir} already holds a run ({', '.join(found)}); pass --resume to continue it, "
            f"or choose another directory with --out / output_dir=..."
        )


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete ``.last.pth.*.tmp`` files left by a writer killed before its rename."""
    removed = []
    for name in (LAST_NAME, BEST_NAME):
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


# ----------------------------------------------------------------------------- the training checkpoint dict


def cpu_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the unwrapped model's state dict (what ``model`` holds in a checkpoint)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap_model(model).state_dict().items()}


def make_checkpoint(
    *,
    cfg: Any,
    meta: dict[str, Any],
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    ema: torch.nn.Module | None,
    epoch: int,
    epoch_step: int,
    step: int,
    epoch_stats: dict[str, Any],
    rng: list[dict[str, Any]],
    best_ap: float,
    best_epoch: int,
) -> dict[str, Any]:
    """The checkpoint dict of the layout above; ``cfg`` is the run's TrainConfig, ``meta`` the model description."""
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


@dataclass
class ResumePoint:
    """Where a run continues: counters, best result so far and the current epoch's running sums."""

    epoch: int = 0  # epochs fully done
    epoch_step: int = 0  # steps done inside ``epoch``
    step: int = 0
    best_ap: float = -1.0
    best_epoch: int = 0
    epoch_stats: dict[str, float] = field(default_factory=lambda: {"loss_sum": 0.0, "samples": 0.0, "bad": 0.0})


def restore_training_state(
    ckpt: dict[str, Any],
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    ema: torch.nn.Module | None,
    world: int,
    rank: int,
) -> ResumePoint:
    """Load every state of ``ckpt`` into the training objects, restore this rank's RNGs, return the counters."""
    unwrap_model(model).load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler") and scaler.is_enabled():
        scaler.load_state_dict(ckpt["scaler"])
    if ema is not None and ckpt.get("ema") is not None:
        ema.load_state_dict(ckpt["ema"])
    point = ResumePoint(int(ckpt["epoch"]), int(ckpt.get("epoch_step", 0)), int(ckpt["step"]),
                        float(ckpt.get("best_ap", -1.0)), int(ckpt.get("best_epoch", 0)))  # fmt: skip
    saved_stats = dict(ckpt.get("epoch_stats") or {})
    per_rank_bad = saved_stats.pop("bad_per_rank", None)
    point.epoch_stats.update(saved_stats)
    if per_rank_bad is not None and len(per_rank_bad) == world:
        point.epoch_stats["bad"] = float(per_rank_bad[rank])  # bad-sample counts are per rank
    rngs = ckpt.get("rng") or []
    if rngs:
        restore_rng_state(rngs[rank] if len(rngs) == world else rngs[0])
    return point
