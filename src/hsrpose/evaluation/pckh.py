"""MPII PCKh: the percentage of joints within a fraction of the head size, as HRNet reports it.

The numbers are those of ``lib/dataset/mpii.py`` ``MPIIDataset.evaluate`` in
leoxiaobin/deep-high-resolution-net.pytorch (itself the MPII evaluation toolkit's
rule), checked against a transcription of that function in tests/test_pckh.py:

- head size = ``0.6 * ||headbox corner 2 - corner 1||`` (``SC_BIAS = 0.6``, the head box of
  ``headboxes_src``); a joint is correct when ``||pred - gt|| / head size <= threshold``;
- only joints that are not ``jnt_missing`` count; per-joint PCKh is ``100 * correct / labelled``;
- ``Mean`` drops pelvis and thorax (joints 6 and 7) and weights the other joints by their
  number of labelled instances;
- ``Mean@0.1`` is the reference's ``pckAll[11]``: row 11 of ``np.arange(0, 0.51, 0.01)``, i.e.
  the threshold 0.11, not 0.10. Kept as is so the number is comparable with published tables.

Coordinates are 0-based image pixels on both sides (the reference adds 1 to its
predictions to meet the 1-based ``.mat`` ground truth; the loaders subtract 1 from
the ground truth instead, which moves no distance).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hsrpose.errors import DataError

__all__ = [
    "SC_BIAS",
    "PCKH_TABLE",
    "MPII_MAT_JOINT_NAMES",
    "MpiiGroundTruth",
    "PckhResult",
    "pckh",
    "load_gt_mat",
    "format_pckh",
]

SC_BIAS = 0.6
"""Head size = SC_BIAS x head-box diagonal (MPII toolkit / HRNet)."""

# Short joint names of the gt_{split}.mat ``dataset_joints`` field, in MPII joint-id order.
MPII_MAT_JOINT_NAMES: tuple[str, ...] = (
    "rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri",
)  # fmt: skip

# The printed table: name -> joint ids averaged (MPII joint ids, see data.keypoints.MPII_KEYPOINTS).
PCKH_TABLE: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Head", (9,)),
    ("Shoulder", (13, 12)),
    ("Elbow", (14, 11)),
    ("Wrist", (15, 10)),
    ("Hip", (3, 2)),
    ("Knee", (4, 1)),
    ("Ankle", (5, 0)),
)
_DROPPED = (6, 7)  # pelvis, thorax: left out of the means (reference: PCKh.mask[6:8] = True)
_RANGE = np.arange(0, 0.5 + 0.01, 0.01)  # the reference's threshold range; row 11 = "Mean@0.1"


@dataclass(frozen=True)
class MpiiGroundTruth:
    """What PCKh needs of N single-person records, in the order of the predictions.

    Attributes:
        joints: (N, 16, 2) float64 0-based image px.
        visible: (N, 16) bool, True where the joint is labelled (``1 - jnt_missing``).
        headboxes: (N, 2, 2) float64 0-based image px, ``[[x1, y1], [x2, y2]]``.
    """

    joints: np.ndarray
    visible: np.ndarray
    headboxes: np.ndarray

    def __post_init__(self) -> None:
        n = self.joints.shape[0]
        if self.joints.shape != (n, 16, 2) or self.visible.shape != (n, 16) or self.headboxes.shape != (n, 2, 2):
            raise ValueError(
                f"MpiiGroundTruth: shapes joints {self.joints.shape}, visible {self.visible.shape}, "
                f"headboxes {self.headboxes.shape}; expected (N,16,2), (N,16), (N,2,2)"
            )

    def __len__(self) -> int:
        return int(self.joints.shape[0])


@dataclass(frozen=True)
class PckhResult:
    """PCKh in percent.

    ``per_joint``: (16,) at threshold 0.5; ``per_joint_01``: (16,) at the reference's "0.1"
    row (0.11); ``table``: Head .. Ankle, Mean, Mean@0.1 (see :data:`PCKH_TABLE`).
    """

    per_joint: np.ndarray
    per_joint_01: np.ndarray
    table: dict[str, float]


def pckh(pred: np.ndarray, gt: MpiiGroundTruth, threshold: float = 0.5) -> PckhResult:
    """PCKh of predictions ``pred`` (N, 16, 2+) 0-based image px against ``gt`` (same order).

    A NaN prediction (e.g. a record whose image could not be read) counts as wrong.
    """
    pred = np.asarray(pred, dtype=np.float64)[..., :2]
    if pred.shape != gt.joints.shape:
        raise ValueError(f"pckh: predictions {pred.shape} do not match the ground truth {gt.joints.shape}")
    visible = gt.visible.astype(np.float64)  # (N, 16)
    err = np.linalg.norm(pred - gt.joints, axis=2)  # (N, 16)
    head = SC_BIAS * np.linalg.norm(gt.headboxes[:, 1] - gt.headboxes[:, 0], axis=1)  # (N,)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = err / head[:, None] * visible
        count = visible.sum(axis=0)  # (16,) labelled instances per joint

        def pck_at(thr: float) -> np.ndarray:
            return 100.0 * ((scaled <= thr) * visible).sum(axis=0) / count

        per_joint = pck_at(threshold)
        per_joint_01 = pck_at(_RANGE[11])
    kept = np.ones(16, bool)
    kept[list(_DROPPED)] = False
    ratio = count / count[kept].sum()
    table = {name: float(np.mean(per_joint[list(ids)])) for name, ids in PCKH_TABLE}
    # Sum over all 16 entries with the dropped ones as 0, as the reference's masked arrays do:
    # the same summation order, so the same last bit.
    table["Mean"] = float(np.sum(np.where(kept, per_joint * ratio, 0.0)))
    table["Mean@0.1"] = float(np.sum(np.where(kept, per_joint_01 * ratio, 0.0)))
    return PckhResult(per_joint, per_joint_01, table)


def format_pckh(table: dict[str, float]) -> str:
    """The HRNet table: a header line and a value line, both starting with ``|``."""
    names = [n for n, _ in PCKH_TABLE] + ["Mean", "Mean@0.1"]
    head = "| " + " | ".join(names) + " |"
    vals = "| " + " | ".join(f"{table[n]:.3f}".rjust(len(n)) for n in names) + " |"
    return head + "\n" + vals


def _mat_names(value: Any) -> list[str]:
    """``dataset_joints`` as loadmat gives it ((1,16) of (1,) str arrays, or squeezed) -> names."""
    arr = np.asarray(value, dtype=object).ravel()
    return [str(np.asarray(v).ravel()[0]) if np.asarray(v).size else "" for v in arr]


def load_gt_mat(path: str | Path) -> MpiiGroundTruth:
    """Read HRNet's ``annot/gt_{valid,test}.mat`` (fields ``dataset_joints`` (1,16),
    ``jnt_missing`` (16,N), ``pos_gt_src`` (16,2,N) and ``headboxes_src`` (2,2,N), 1-based px).

    Raises:
        DataError: not a MATLAB file, a field missing or of the wrong shape (naming it).
    """
    from scipy.io import loadmat

    where = str(path)
    try:
        d = loadmat(where)
    except Exception as e:  # scipy raises ValueError / MatReadError / OSError for non-.mat input
        raise DataError(f"{where}: not a readable MATLAB .mat file ({e})") from None
    missing = [k for k in ("dataset_joints", "jnt_missing", "pos_gt_src", "headboxes_src") if k not in d]
    if missing:
        raise DataError(f"{where}: lacks field(s) {missing} (expected HRNet's gt_valid.mat layout)")
    names = _mat_names(d["dataset_joints"])
    if sorted(names) != sorted(MPII_MAT_JOINT_NAMES):
        raise DataError(f"{where}: dataset_joints {names} are not the 16 MPII joints {list(MPII_MAT_JOINT_NAMES)}")
    order = [names.index(n) for n in MPII_MAT_JOINT_NAMES]  # the file's column of each MPII joint id
    missing_ = np.asarray(d["jnt_missing"])
    pos = np.asarray(d["pos_gt_src"], dtype=np.float64)
    heads = np.asarray(d["headboxes_src"], dtype=np.float64)
    n = pos.shape[-1] if pos.ndim == 3 else -1
    if pos.shape != (16, 2, n) or missing_.shape != (16, n) or heads.shape != (2, 2, n):
        raise DataError(
            f"{where}: shapes pos_gt_src {pos.shape}, jnt_missing {missing_.shape}, headboxes_src {heads.shape}; "
            "expected (16,2,N), (16,N), (2,2,N)"
        )
    joints = np.transpose(pos, (2, 0, 1))[:, order] - 1.0  # (N,16,2), 1-based -> 0-based px
    visible = (1 - np.transpose(missing_, (1, 0))[:, order]).astype(bool)
    headboxes = np.transpose(heads, (2, 0, 1)) - 1.0  # (N, corner, xy)
    return MpiiGroundTruth(joints, visible, headboxes)
