"""Training logs: JSON-lines metrics, optional TensorBoard, a PNG of the curves.

Only rank 0 creates a :class:`MetricsLogger` that writes; other ranks get one
with ``enabled=False`` so the loop calls it unconditionally.

``metrics.jsonl`` holds one JSON object per line. Every record has ``kind``
(``"train"`` for step logs, ``"epoch"`` for epoch summaries, ``"val"`` for
validation metrics), ``epoch`` and ``step`` (optimizer steps done so far).
Lines are appended (an atomic rename per line would be quadratic); on resume
:meth:`MetricsLogger.truncate_after` atomically rewrites the file without the
lines a killed run wrote after its last checkpoint, so the log equals the log
of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from hsrpose.utils.io import atomic_save, atomic_write_text

__all__ = ["MetricsLogger", "read_metrics", "plot_curves"]


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` file; a torn last line (killed mid-write) is skipped."""
    records: list[dict[str, Any]] = []
    p = Path(path)
    if not p.is_file():
        return records
    for line in p.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLogger:
    """Append metrics to ``run_dir/metrics.jsonl`` and, if installed, TensorBoard."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True, resume_step: int | None = None) -> None:
        """``resume_step``: the step of the checkpoint a resumed run starts from; TensorBoard
        then hides what the killed run logged after it (``purge_step``)."""
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.path = self.run_dir / "metrics.jsonl"
        self._tb: Any = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra; JSON lines are always written
                SummaryWriter = None  # noqa: N806
            if SummaryWriter is not None:
                purge = None if resume_step is None else resume_step + 1
                self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"), purge_step=purge)

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step`` > ``step`` (written by a run killed after its last checkpoint)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [r for r in read_metrics(self.path) if int(r.get("step", 0)) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def log(self, kind: str, epoch: int, step: int, values: Mapping[str, Any]) -> None:
        """Write one record; numbers also go to TensorBoard as ``kind/name`` at ``step``."""
        if not self.enabled:
            return
        record = {"kind": kind, "epoch": epoch, "step": step, **values}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        if self._tb is not None:
            for name, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self._tb.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None


def plot_curves(metrics_path: str | Path, png_path: str | Path) -> bool:
    """Draw training loss (per step and per epoch) and validation AP to a PNG.

    Returns False (and writes nothing) when there is nothing to draw.
    """
    records = read_metrics(metrics_path)
    train = [r for r in records if r.get("kind") == "train" and "loss" in r]
    epochs = [r for r in records if r.get("kind") == "epoch" and "loss" in r]
    val = [r for r in records if r.get("kind") == "val" and "AP" in r]
    if not train and not epochs and not val:
        return False

    import matplotlib

    matplotlib.use("Agg")  # headless: no display on training machines
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=0.8, alpha=0.6, label="step")
    if epochs:
        ax_loss.plot([r["step"] for r in epochs], [r["loss"] for r in epochs], "o-", label="epoch mean")
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("loss (joints MSE)")
    ax_loss.set_yscale("log")
    ax_loss.grid(True, alpha=0.3)
    ax_loss.legend()
    if val:
        ax_ap.plot([r["epoch"] for r in val], [r["AP"] for r in val], "o-", label="AP")
        if all("AP50" in r for r in val):
            ax_ap.plot([r["epoch"] for r in val], [r["AP50"] for r in val], "s--", label="AP50", alpha=0.7)
        ax_ap.legend()
    else:
        ax_ap.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=ax_ap.transAxes)
    ax_ap.set_xlabel("epoch")
    ax_ap.set_ylabel("COCO keypoint AP")
    ax_ap.grid(True, alpha=0.3)
    fig.tight_layout()
    atomic_save(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return True
