"""MPII single-person annotations -> top-down :class:`~hsrpose.data.coco.Instance` records.

Two layouts:

* HRNet's (leoxiaobin/deep-high-resolution-net.pytorch ``lib/dataset/mpii.py`` ``_get_db``):
  ``annot/{train,valid}.json``, a list of ``{"image", "center", "scale", "joints" (16x2),
  "joints_vis" (16)}`` with 1-based (MATLAB) pixels and ``scale`` in 200-px units; the
  PCKh ground truth with head boxes is the sibling ``annot/gt_valid.mat``.
* The official release ``mpii_human_pose_v1_u12_1.mat`` (``RELEASE.annolist(i).annorect(r)``
  with ``objpos``, ``scale``, head box ``x1 y1 x2 y2`` and ``annopoints.point(j)`` ``id x y
  is_visible``; ``RELEASE.img_train``), read with scipy. Only training images
  (``img_train == 1``) carry joints; every annotated person of them is loaded.

The 200-px center/scale convention stops here (:func:`hrnet_center_scale`): HRNet
moves the center down by ``15 * scale`` and enlarges the scale by 1.25 "to avoid cropping
limbs", then subtracts 1 for 0-based pixels. Its crop is the square of side
``200 * 1.25 * scale`` around that center. hsrpose crops a box enlarged by the data
config's ``box_padding`` (1.25), so the instance box is the square of side ``200 * scale``
around the adjusted center: the same crop, in pixels (tests/test_data_mpii.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hsrpose.data.coco import CocoInstances, Instance, LoadReport
from hsrpose.data.keypoints import MPII_KEYPOINTS
from hsrpose.errors import DataError
from hsrpose.evaluation.pckh import MpiiGroundTruth, load_gt_mat
from hsrpose.utils.io import read_json

__all__ = [
    "PIXEL_STD",
    "MpiiRecord",
    "hrnet_center_scale",
    "person_box",
    "read_mpii_records",
    "load_mpii",
    "load_mpii_ground_truth",
]

NUM_JOINTS = 16
PIXEL_STD = 200.0
"""MPII/HRNet ``scale`` unit: 200 px."""


@dataclass(frozen=True)
class MpiiRecord:
    """One annotated person as the file gives it (still 1-based, 200-px units).

    ``joints`` (16, 2) and ``labelled`` (16,) bool, ``visible`` (16,) bool (``is_visible`` /
    ``joints_vis``); ``headbox`` (2, 2) ``[[x1, y1], [x2, y2]]`` or None (HRNet json has none).
    """

    index: int
    image: str
    center: np.ndarray
    scale: float
    joints: np.ndarray
    labelled: np.ndarray
    visible: np.ndarray
    headbox: np.ndarray | None


def hrnet_center_scale(center: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """HRNet ``_get_db``: file center (1-based px) and scale -> (0-based crop center px, crop scale).

    Transcribed: ``if c[0] != -1: c[1] += 15 * s; s *= 1.25``; then ``c -= 1``. The crop is the
    square of side ``200 * crop_scale`` px around the returned center.
    """
    c = np.asarray(center, dtype=np.float64).reshape(2).copy()
    s = float(scale)
    if c[0] != -1:
        c[1] = c[1] + 15 * s
        s = s * 1.25
    return c - 1, s


def person_box(center: np.ndarray, scale: float, padding: float = 1.25) -> np.ndarray:
    """COCO ``xywh`` box (0-based px) whose ``padding``-enlarged square is HRNet's crop."""
    c, s = hrnet_center_scale(center, scale)
    side = PIXEL_STD * s / padding
    return np.array([c[0] - side / 2, c[1] - side / 2, side, side], dtype=np.float64)


# ---------------------------------------------------------------------------- reading


def _finite(value: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if a.shape != shape or not np.all(np.isfinite(a)):
        return None
    return a


def _read_json_records(path: Path, report: LoadReport) -> list[MpiiRecord | None]:
    where = str(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{where}: an HRNet MPII annotation file is a JSON list of records, got {type(data).__name__}")
    out: list[MpiiRecord | None] = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataError(f"{where}: record [{i}] is a {type(rec).__name__}, expected an object")
        missing = [k for k in ("image", "center", "scale") if k not in rec]
        if missing:
            raise DataError(f"{where}: record [{i}] lacks field(s) {missing}")
        tag = f"record [{i}] ({rec['image']})"
        center = _finite(rec["center"], (2,))
        scale = _finite(rec["scale"], ())
        if center is None or scale is None or scale <= 0 or center[0] == -1:
            report.skip("bad center/scale", f"{tag}: center {rec['center']!r}, scale {rec['scale']!r}")
            out.append(None)
            continue
        raw = rec.get("joints")
        if raw is None:  # the test split: boxes only
            joints, labelled = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS, bool)
        else:
            joints = _finite(raw, (NUM_JOINTS, 2))
            vis = _finite(rec.get("joints_vis"), (NUM_JOINTS,))
            if joints is None or vis is None:
                n = len(raw) if isinstance(raw, list) else "?"
                report.skip("bad joints", f"{tag}: joints/joints_vis are not {NUM_JOINTS}x2 / {NUM_JOINTS} numbers (got {n} joints)")
                out.append(None)
                continue
            labelled = vis > 0
        out.append(MpiiRecord(i, str(rec["image"]), center, float(scale), joints, labelled, labelled.copy(), None))
    return out


def _items(x: Any) -> list[Any]:
    """A loadmat (squeeze_me) value as a list: struct -> [struct], array -> its elements."""
    if isinstance(x, np.ndarray):
        return list(x.ravel())
    return [] if x is None else [x]


def _field(obj: Any, name: str) -> Any:
    v = getattr(obj, name, None)
    if isinstance(v, np.ndarray) and v.size == 0:
        return None
    return v


def _number(v: Any) -> float | None:
    try:
        a = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return float(a[0]) if a.size == 1 and np.isfinite(a[0]) else None


def _read_mat_records(path: Path, report: LoadReport) -> list[MpiiRecord | None]:
    from scipy.io import loadmat

    where = str(path)
    try:
        d = loadmat(where, struct_as_record=False, squeeze_me=True)
    except Exception as e:  # scipy raises ValueError / MatReadError / OSError for non-.mat input
        raise DataError(f"{where}: not a readable MATLAB .mat file ({e})") from None
    release = d.get("RELEASE")
    if release is None or not hasattr(release, "annolist") or not hasattr(release, "img_train"):
        raise DataError(f"{where}: no RELEASE struct with 'annolist' and 'img_train' (not the official MPII .mat)")
    annolist = _items(release.annolist)
    img_train = np.asarray(release.img_train).ravel()
    if img_train.shape[0] != len(annolist):
        raise DataError(f"{where}: RELEASE.img_train has {img_train.shape[0]} entries, annolist {len(annolist)}")
    out: list[MpiiRecord | None] = []
    for i, ann in enumerate(annolist):
        if not img_train[i]:
            continue
        image = _field(ann, "image")
        name = _field(image, "name") if image is not None else None
        if name is None:
            raise DataError(f"{where}: annolist({i + 1}) has no image.name")
        for r, rect in enumerate(_items(_field(ann, "annorect"))):
            tag = f"annolist({i + 1}).annorect({r + 1}) ({name})"
            points = _field(rect, "annopoints")
            pts = _items(_field(points, "point")) if points is not None else []
            if not pts:
                report.filtered["no joints"] += 1
                continue
            objpos, scale = _field(rect, "objpos"), _number(_field(rect, "scale"))
            ox = _number(_field(objpos, "x")) if objpos is not None else None
            oy = _number(_field(objpos, "y")) if objpos is not None else None
            if ox is None or oy is None or scale is None or scale <= 0:
                report.skip("bad center/scale", f"{tag}: no objpos/scale")
                out.append(None)
                continue
            corners = [_number(_field(rect, k)) for k in ("x1", "y1", "x2", "y2")]
            if any(c is None for c in corners):
                report.skip("missing head box", f"{tag}: no head box x1 y1 x2 y2")
                out.append(None)
                continue
            joints = np.zeros((NUM_JOINTS, 2))
            labelled = np.zeros(NUM_JOINTS, bool)
            visible = np.zeros(NUM_JOINTS, bool)
            bad = ""
            for p in pts:
                jid, x, y = _number(_field(p, "id")), _number(_field(p, "x")), _number(_field(p, "y"))
                if jid is None or x is None or y is None or not (0 <= jid < NUM_JOINTS) or not float(jid).is_integer():
                    bad = f"point id {_field(p, 'id')!r} x {_field(p, 'x')!r} y {_field(p, 'y')!r}"
                    break
                j = int(jid)
                joints[j], labelled[j] = (x, y), True
                v = _field(p, "is_visible")
                visible[j] = bool(_number(v)) if _number(v) is not None else True
            if bad:
                report.skip("bad joints", f"{tag}: {bad} (ids are 0..{NUM_JOINTS - 1})")
                out.append(None)
                continue
            head = np.array(corners, dtype=np.float64).reshape(2, 2)
            out.append(MpiiRecord(len(out), str(name), np.array([ox, oy]), scale, joints, labelled, visible, head))
    return out


def read_mpii_records(path: str | Path, report: LoadReport | None = None) -> list[MpiiRecord | None]:
    """Every person record of an HRNet json or official .mat file, in file order (None = bad record,
    counted in ``report``). Raises :class:`DataError` for a file of the wrong structure."""
    p = Path(path)
    report = report if report is not None else LoadReport(source=str(p))
    if p.suffix.lower() == ".mat":
        return _read_mat_records(p, report)
    return _read_json_records(p, report)


# ---------------------------------------------------------------------------- instances


def load_mpii(
    ann_file: str | Path,
    mode: Literal["train", "gt"] = "train",
    box_padding: float = 1.25,
) -> CocoInstances:
    """Instances of an MPII file (HRNet json or official .mat), image px, COCO visibility.

    ``train`` keeps records with a labelled joint; ``gt`` keeps every readable record (PCKh
    counts the others as misses). ``ann_id`` is the record's position in the file, the
    order of :func:`load_mpii_ground_truth`. ``box_padding`` must be the crop padding of the
    dataset (the box is HRNet's crop divided by it).
    """
    report = LoadReport(source=str(ann_file))
    records = read_mpii_records(ann_file, report)
    image_ids: dict[str, int] = {}
    instances: list[Instance] = []
    for idx, rec in enumerate(records):
        if rec is None:
            continue
        if mode == "train" and not rec.labelled.any():
            report.filtered["no labelled keypoint"] += 1
            continue
        kp = np.zeros((NUM_JOINTS, 3))
        kp[:, :2] = np.where(rec.labelled[:, None], rec.joints - 1.0, 0.0)  # 1-based -> 0-based px
        kp[:, 2] = np.where(rec.labelled, np.where(rec.visible, 2.0, 1.0), 0.0)
        box = person_box(rec.center, rec.scale, box_padding)
        iid = image_ids.setdefault(rec.image, len(image_ids) + 1)
        instances.append(Instance(iid, idx, rec.image, box, kp, 1.0, float(box[2] * box[3]), None))
    report.kept = len(instances)
    return CocoInstances(instances, MPII_KEYPOINTS, report, category_id=1)


def load_mpii_ground_truth(ann_file: str | Path, gt_file: str | Path | None = None) -> MpiiGroundTruth:
    """PCKh ground truth in record order.

    The official .mat holds head boxes itself. For HRNet's json, the head boxes are in
    ``gt_file`` or, by default, the sibling ``gt_<stem>.mat`` (``annot/gt_valid.mat``); its
    record count must match the json.
    """
    p = Path(ann_file)
    if gt_file is None and p.suffix.lower() != ".mat":
        gt_file = p.with_name(f"gt_{p.stem}.mat")
        if not gt_file.is_file():
            raise DataError(f"{p}: PCKh needs the head boxes of {gt_file.name} next to it (HRNet's annot/ layout)")
    if gt_file is not None:
        gt = load_gt_mat(gt_file)
        n = len(read_mpii_records(p, LoadReport(source=str(p)))) if p.suffix.lower() != ".mat" else len(gt)
        if n != len(gt):
            raise DataError(f"{gt_file}: {len(gt)} records, {p} has {n}: not the ground truth of that split")
        return gt
    records = read_mpii_records(p, LoadReport(source=str(p)))
    n = len(records)
    joints, visible, heads = np.zeros((n, NUM_JOINTS, 2)), np.zeros((n, NUM_JOINTS), bool), np.zeros((n, 2, 2))
    for i, rec in enumerate(records):
        if rec is None:  # unreadable record: no labelled joint, so it does not count
            heads[i] = [[0, 0], [1, 1]]
            continue
        joints[i], visible[i] = rec.joints - 1.0, rec.labelled
        heads[i] = rec.headbox - 1.0 if rec.headbox is not None else [[0, 0], [1, 1]]
    return MpiiGroundTruth(joints, visible, heads)
