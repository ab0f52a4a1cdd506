"""One dataset switch for every command: ``coco``, ``mpii`` or ``crowdpose`` (or ``auto``).

Each dataset ends in the same :class:`~hsrpose.data.coco.CocoInstances` (pixel boxes,
``(K, 3)`` keypoints, a :class:`KeypointInfo`), so cropping, training, inference and
post-processing are one path; only loading and the final score differ:

| dataset | files | keypoints | score |
|---|---|---|---|
| coco | COCO keypoint JSON | from the category (COCO-17) | COCO OKS AP (ten numbers) |
| crowdpose | COCO-format JSON with ``images[].crowdIndex`` | CrowdPose-14 (names, flip pairs, sigmas) | CrowdPose AP, AP(E/M/H) |
| mpii | HRNet ``annot/*.json`` (+ ``gt_*.mat``) or the official ``.mat`` | MPII-16 | PCKh table |

``auto`` reads it from the file: a ``.mat`` or a JSON list is MPII; a JSON object is
CrowdPose when its keypoint category is the CrowdPose set, else COCO.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from hsrpose.data.coco import CocoInstances, load_coco
from hsrpose.data.keypoints import CROWDPOSE_KEYPOINTS, KNOWN_KEYPOINT_SETS
from hsrpose.errors import DataError, HsrposeError

__all__ = [
    "DATASETS",
    "DATASET_CHOICES",
    "DATA_ROOT_LAYOUTS",
    "data_root_files",
    "file_layout",
    "load_dataset",
    "ground_truth",
    "main_metric",
    "SCORING_NOTES",
    "format_dataset_metrics",
]

DATASETS: tuple[str, ...] = tuple(KNOWN_KEYPOINT_SETS)  # coco, mpii, crowdpose
DATASET_CHOICES: tuple[str, ...] = ("auto",) + DATASETS


# --data-root layouts: (train annotations, train images, val annotations, val images).
DATA_ROOT_LAYOUTS: dict[str, tuple[str, str, str, str]] = {
    "coco": ("annotations/person_keypoints_train2017.json", "train2017", "annotations/person_keypoints_val2017.json", "val2017"),
    "mpii": ("annot/train.json", "images", "annot/valid.json", "images"),  # HRNet's data/mpii
    "crowdpose": ("json/crowdpose_trainval.json", "images", "json/crowdpose_test.json", "images"),  # the release
}


def data_root_files(root: str | Path, dataset: str = "auto") -> tuple[str, dict[str, Path]]:
    """``(dataset, {"train_ann", "train_images", "val_ann", "val_images"})`` of a ``--data-root``.

    ``auto`` picks the layout whose training or validation annotation file exists (COCO when
    none does, so the error names COCO's files as before).
    """
    r = Path(root)
    if dataset == "auto":
        found = [d for d, lay in DATA_ROOT_LAYOUTS.items() if (r / lay[0]).is_file() or (r / lay[2]).is_file()]
        dataset = found[0] if found else "coco"
    if dataset not in DATA_ROOT_LAYOUTS:
        raise HsrposeError(f"unknown dataset {dataset!r}; choose one of {list(DATASET_CHOICES)}")
    lay = DATA_ROOT_LAYOUTS[dataset]
    keys = ("train_ann", "train_images", "val_ann", "val_images")
    return dataset, {k: r / v for k, v in zip(keys, lay)}


def file_layout(ann_file: str | Path) -> Literal["mpii", "coco-format"]:
    """``mpii`` for a ``.mat`` file or a JSON list (HRNet layout), else ``coco-format`` (reads one byte)."""
    p = Path(ann_file)
    if p.suffix.lower() == ".mat":
        return "mpii"
    try:
        with open(p, "rb") as f:
            head = f.read(4096).lstrip()
    except OSError as e:
        raise DataError(f"{p}: cannot read the annotation file ({e.strerror or e})") from None
    return "mpii" if head[:1] == b"[" else "coco-format"


def load_dataset(
    dataset: str,
    ann_file: str | Path,
    mode: Literal["train", "gt", "det"] = "train",
    det_file: str | Path | None = None,
    score_thr: float = 0.0,
    category_id: int | None = None,
    flip_pairs: Sequence[Sequence[int]] | None = None,
    oks_sigmas: Sequence[float] | None = None,
    box_padding: float = 1.25,
    fallback_oks_sigmas: Sequence[float] | None = None,
) -> tuple[str, CocoInstances]:
    """``(dataset name, instances)`` of ``ann_file``; ``dataset`` is a name of :data:`DATASET_CHOICES`.

    An explicit name must fit the file (an MPII file named ``coco`` is an error, and so is a
    CrowdPose set of keypoints named ``coco``), so a wrong switch fails at once, naming the file.
    """
    if dataset not in DATASET_CHOICES:
        raise HsrposeError(f"unknown dataset {dataset!r}; choose one of {list(DATASET_CHOICES)}")
    layout = file_layout(ann_file)
    if layout == "mpii":
        if dataset not in ("auto", "mpii"):
            raise DataError(f"{ann_file}: an MPII annotation file (HRNet json list or .mat), not {dataset}")
        if mode == "det":
            raise HsrposeError("MPII is evaluated on its annotated people (center/scale): use ground-truth boxes, not a detection file")
        from hsrpose.data.mpii import load_mpii

        return "mpii", load_mpii(ann_file, mode=mode, box_padding=box_padding)
    if dataset == "mpii":
        raise DataError(f"{ann_file}: a COCO-format JSON object, not an MPII file (HRNet json list or official .mat)")
    loaded = load_coco(ann_file, mode, det_file, score_thr, category_id, flip_pairs, oks_sigmas, fallback_oks_sigmas)
    found = "crowdpose" if loaded.keypoint_info.names == CROWDPOSE_KEYPOINTS.names else "coco"
    if dataset == "auto":
        return found, loaded
    if dataset == "crowdpose" and found != "crowdpose":
        raise DataError(f"{ann_file}: its keypoints are not the 14 CrowdPose joints ({len(loaded.keypoint_info.names)} keypoints)")
    return dataset, loaded


def ground_truth(
    dataset: str, ann_file: str | Path, gt_file: str | Path | None = None, shown: Collection[str] = ()
) -> Any:
    """What :func:`hsrpose.engine.evaluate.evaluate` scores against: COCO ground truth checked once
    (:func:`hsrpose.evaluation.cocoeval.load_gt`), or a dataset scorer.

    ``gt_file``: MPII only, HRNet's ``gt_<split>.mat`` when it is not next to the json.
    ``shown``: the bad-record warnings :func:`load_dataset` already printed for ``ann_file``
    (its ``report.logged``): the scorer's check of the same file, with the same rules, counts
    those records without printing them again.
    """
    if dataset == "coco":
        from hsrpose.evaluation.cocoeval import load_gt

        return load_gt(ann_file, shown=shown)
    if dataset == "crowdpose":
        from hsrpose.evaluation.scorers import CrowdPoseScorer

        return CrowdPoseScorer(str(ann_file), shown=frozenset(shown))
    if dataset == "mpii":
        from hsrpose.data.mpii import load_mpii_ground_truth
        from hsrpose.evaluation.scorers import MpiiScorer

        return MpiiScorer(load_mpii_ground_truth(ann_file, gt_file))
    raise HsrposeError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")


SCORING_NOTES: dict[str, str] = {
    "mpii": "MPII: one prediction per annotated person (no rescoring, no NMS); PCKh as HRNet's mpii.py evaluate",
    "crowdpose": "CrowdPose: rescoring + OKS-NMS with the CrowdPose sigmas; AP as xtcocotools keypoints_crowd (pycocotools)",
}
"""What ``hsrpose eval`` says about the scoring of a non-COCO dataset."""


def main_metric(metrics: Mapping[str, float]) -> tuple[str, float]:
    """The number that picks the best checkpoint: ``AP`` (COCO, CrowdPose) or PCKh ``Mean`` (MPII)."""
    if "AP" in metrics:
        return "AP", float(metrics["AP"])
    if "Mean" in metrics:
        return "PCKh", float(metrics["Mean"])
    return "AP", -1.0


def format_dataset_metrics(metrics: Mapping[str, float], digits: int = 6) -> str:
    """``NAME value`` lines in the metrics' order (COCO's ten, CrowdPose's nine, the PCKh table)."""
    return "\n".join(f"{name} {value:.{digits}f}" for name, value in metrics.items())
