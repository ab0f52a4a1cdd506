"""Exact resume: runs SIGKILLed mid-epoch and mid-checkpoint-write end bitwise equal to an uninterrupted run.

Every run is a subprocess (``hsrpose train``) with the same thread count, in
deterministic mode on CPU. The schedule: 8 instances, batch 2 -> 4 steps per
epoch, 2 epochs = 8 steps; ``checkpoint_interval=2`` writes ``last.pth`` at
steps 2, 4 (epoch end), 6 and 8 (end).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hsrpose.engine.checkpoint import load_checkpoint
from hsrpose.engine.logging import read_metrics
from conftest import write_coco_subset





def run_train(run_dir: Path, ann: Path, images: Path, resume: bool = False, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "hsrpose.cli", "train"]
    if resume:
        args += ["--resume", "--out", str(run_dir)]
    else:
        args += [
            "hsrnet_tiny_128x96", "--ann", str(ann), "--images", str(images), "--out", str(run_dir),
            "data.num_workers=0", "optim.batch_size=2", "optim.epochs=2", "train_subset=8",
            "optim.lr=1e-3", "optim.milestones=[1]", "checkpoint_interval=2", "log_interval=1",
            "deterministic=true", "progress=false", "tensorboard=false",
            # augmentation on: the per-sample draws must also be reproduced after a resume
            "augment.enabled=true",
        ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)


def train_records(run_dir: Path) -> list[tuple]:
    """(kind, epoch, step, loss) of the log: identical runs log identical losses."""
    return [(r["kind"], r["epoch"], r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


@pytest.fixture(scope="module")
def setup(coco_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("resume")
    ann = write_coco_subset(coco_mini, tmp / "ann.json", 6)
    ref = tmp / "reference"
    p = run_train(ref, ann, coco_mini / "train2017")
    assert p.returncode == 0, p.stderr
    return {"ann": ann, "images": coco_mini / "train2017", "ref": load_checkpoint(ref / "last.pth"), "ref_dir": ref, "tmp": tmp}


def assert_same_as_reference(setup: dict, run_dir: Path) -> None:
    ck, ref = load_checkpoint(run_dir / "last.pth"), setup["ref"]
    assert (ck["epoch"], ck["step"]) == (ref["epoch"], ref["step"]) == (2, 8)
    assert ck["model"].keys() == ref["model"].keys()
    for k in ref["model"]:
        assert torch.equal(ck["model"][k], ref["model"][k]), k  # bitwise
    for s_ck, s_ref in zip(ck["optimizer"]["state"].values(), ref["optimizer"]["state"].values()):
        assert torch.equal(s_ck["exp_avg_sq"], s_ref["exp_avg_sq"])
    assert ck["scheduler"]["last_epoch"] == ref["scheduler"]["last_epoch"]
    assert train_records(run_dir) == train_records(setup["ref_dir"])


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(setup: dict) -> None:
    run = setup["tmp"] / "killed_mid_epoch"
    p = run_train(run, setup["ann"], setup["images"], env_extra={"HSRPOSE_TEST_KILL_AT_STEP": "7"})
    assert p.returncode == -signal.SIGKILL, p.stderr
    ck = load_checkpoint(run / "last.pth")
    assert (ck["epoch"], ck["epoch_step"], ck["step"]) == (1, 2, 6)  # mid-epoch 2
    p = run_train(run, setup["ann"], setup["images"], resume=True)
    assert p.returncode == 0, p.stderr
    assert_same_as_reference(setup, run)


def test_sigkill_while_writing_checkpoint_then_resume_is_bitwise_identical(setup: dict) -> None:
    run = setup["tmp"] / "killed_in_write"
    # The 3rd write (step 6) dies after its temporary file is complete, before the rename.
    p = run_train(run, setup["ann"], setup["images"], env_extra={"HSRPOSE_TEST_KILL_IN_CHECKPOINT": "3"})
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert list(run.glob(".last.pth.*.tmp")), "the killed writer should have left its temporary file"
    ck = load_checkpoint(run / "last.pth")  # the previous checkpoint, intact
    assert (ck["epoch"], ck["epoch_step"], ck["step"]) == (1, 0, 4)
    p = run_train(run, setup["ann"], setup["images"], resume=True)
    assert p.returncode == 0, p.stderr
    assert not list(run.glob(".last.pth.*.tmp"))
    assert_same_as_reference(setup, run)
