"""Write MPII and CrowdPose files in their exact layouts, made from a COCO keypoint file (coco-mini).

There is no MPII or CrowdPose data here. These writers map COCO-17 people to the other
joint sets (test data only: MPII's pelvis/thorax/neck/head-top and CrowdPose's head/neck
are made from COCO's joints) and write:

- HRNet's MPII layout: ``annot/<split>.json`` (1-based ``center``, ``scale`` in 200-px units
  before HRNet's ``+15 * scale`` / ``* 1.25`` adjustment, 1-based ``joints``, ``joints_vis``)
  and ``annot/gt_<split>.mat`` (``dataset_joints``, ``jnt_missing``, ``pos_gt_src``, ``headboxes_src``);
- the official MPII release ``.mat`` (``RELEASE.annolist(i).image.name / annorect(r)`` with
  ``x1 y1 x2 y2``, ``scale``, ``objpos``, ``annopoints.point(j)``; ``RELEASE.img_train``);
- CrowdPose's COCO-format JSON (14 keypoints, ``images[].crowdIndex``, ``num_keypoints``).

Used by tests/test_data_mpii.py, tests/test_crowdpose.py and benchmarks/other_datasets_train.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

MPII_MAT_JOINT_NAMES = (
    "rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri",
)  # fmt: skip
# MPII joint id -> COCO index, or None for the joints made from several COCO joints.
_MPII_FROM_COCO = (16, 14, 12, 11, 13, 15, None, None, None, None, 10, 8, 6, 5, 7, 9)
_CROWDPOSE_FROM_COCO = (5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)  # + head, neck
CROWDPOSE_NAMES = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
)  # fmt: skip


def mpii_person(kp17: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """COCO (17,3) keypoints -> MPII ``joints (16,2)``, ``labelled (16,)``, head box (2,2), 0-based px;
    None unless nose and both shoulders are labelled (the head is made from them)."""
    lab = kp17[:, 2] > 0
    if not (lab[0] and lab[5] and lab[6]):
        return None
    joints, labelled = np.zeros((16, 2)), np.zeros(16, bool)
    for j, c in enumerate(_MPII_FROM_COCO):
        if c is not None and lab[c]:
            joints[j], labelled[j] = kp17[c, :2], True
    thorax = (kp17[5, :2] + kp17[6, :2]) / 2
    neck = (thorax + kp17[0, :2]) / 2
    top = kp17[0, :2] + (kp17[0, :2] - neck)
    joints[7], joints[8], joints[9] = thorax, neck, top
    labelled[7:10] = True
    if lab[11] and lab[12]:
        joints[6], labelled[6] = (kp17[11, :2] + kp17[12, :2]) / 2, True
    half = max(4.0, 0.5 * float(np.linalg.norm(top - neck)))
    mid = (top + neck) / 2
    head = np.array([mid - half, mid + half])
    return joints, labelled, head


def mpii_people(coco_ann: Path, min_joints: int = 6) -> list[dict[str, Any]]:
    """MPII people of a COCO file: ``image``, 0-based ``box`` xywh, ``joints``, ``labelled``, ``head``."""
    d = json.loads(Path(coco_ann).read_text())
    names = {im["id"]: im["file_name"] for im in d["images"]}
    out = []
    for a in d["annotations"]:
        if a.get("iscrowd") or a["num_keypoints"] < min_joints:
            continue
        p = mpii_person(np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3))
        if p is not None:
            out.append({"image": names[a["image_id"]], "box": np.asarray(a["bbox"], float), "joints": p[0], "labelled": p[1], "head": p[2]})
    return out


def file_center_scale(box: np.ndarray) -> tuple[list[float], float]:
    """The 1-based file ``center`` and ``scale`` whose HRNet adjustment crops around ``box`` (0-based xywh)."""
    x, y, w, h = box
    scale = max(w, h) / 200.0
    return [x + w / 2 + 1, y + h / 2 + 1 - 15 * scale], scale


def write_hrnet_mpii(people: list[dict[str, Any]], annot_dir: Path, split: str = "valid") -> Path:
    """``annot_dir/<split>.json`` and ``annot_dir/gt_<split>.mat`` (HRNet's layout); returns the json path."""
    from scipy.io import savemat

    annot_dir.mkdir(parents=True, exist_ok=True)
    recs = []
    for p in people:
        center, scale = file_center_scale(p["box"])
        joints = np.where(p["labelled"][:, None], p["joints"] + 1, -1.0)  # unlabelled: -1 as in the release
        recs.append({"image": p["image"], "center": center, "scale": scale, "joints": joints.tolist(),
                     "joints_vis": p["labelled"].astype(int).tolist()})  # fmt: skip
    path = annot_dir / f"{split}.json"
    path.write_text(json.dumps(recs))
    n = len(people)
    pos = np.zeros((16, 2, n))
    missing = np.zeros((16, n))
    heads = np.zeros((2, 2, n))
    for i, p in enumerate(people):
        pos[:, :, i] = p["joints"] + 1
        missing[:, i] = ~p["labelled"]
        heads[:, :, i] = p["head"] + 1
    names = np.empty((1, 16), dtype=object)
    names[0, :] = list(MPII_MAT_JOINT_NAMES)
    savemat(annot_dir / f"gt_{split}.mat", {"dataset_joints": names, "jnt_missing": missing, "pos_gt_src": pos, "headboxes_src": heads})
    return path


def _struct_array(records: list[dict[str, Any]], fields: tuple[str, ...]) -> np.ndarray:
    """A MATLAB 1xN struct array (what the official release holds) for scipy.io.savemat."""
    arr = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, r in enumerate(records):
        for f in fields:
            arr[0, i][f] = r.get(f, np.zeros((0, 0)))  # a missing value is MATLAB's []
    return arr


def write_official_mpii(people: list[dict[str, Any]], path: Path, drop_head_of: int | None = None) -> Path:
    """The release's ``RELEASE`` struct with one training image per distinct image name
    (persons in ``people`` order) and one test image without annotations."""
    from scipy.io import savemat

    by_image: dict[str, list[dict[str, Any]]] = {}
    for k, p in enumerate(people):
        center, scale = file_center_scale(p["box"])
        pts = [{"id": j, "x": float(p["joints"][j, 0] + 1), "y": float(p["joints"][j, 1] + 1), "is_visible": 1}
               for j in range(16) if p["labelled"][j]]  # fmt: skip
        head = p["head"] + 1
        rect = {"scale": scale, "objpos": {"x": center[0], "y": center[1]},
                "annopoints": {"point": _struct_array(pts, ("x", "y", "id", "is_visible"))}}  # fmt: skip
        if k != drop_head_of:
            rect.update(x1=head[0, 0], y1=head[0, 1], x2=head[1, 0], y2=head[1, 1])
        by_image.setdefault(p["image"], []).append(rect)
    annolist = [{"image": {"name": name}, "annorect": _struct_array(rects, ("x1", "y1", "x2", "y2", "scale", "objpos", "annopoints"))}
                for name, rects in by_image.items()]  # fmt: skip
    annolist.append({"image": {"name": "test_only.jpg"}, "annorect": np.zeros((0, 0))})
    img_train = np.array([[1] * (len(annolist) - 1) + [0]])
    release = {"annolist": _struct_array(annolist, ("image", "annorect")), "img_train": img_train}
    savemat(path, {"RELEASE": release})
    return path


def mpii_order_of_official(people: list[dict[str, Any]]) -> list[int]:
    """Indices into ``people`` in the order :func:`write_official_mpii` stores them (grouped by image)."""
    order: dict[str, list[int]] = {}
    for k, p in enumerate(people):
        order.setdefault(p["image"], []).append(k)
    return [k for ks in order.values() for k in ks]


def crowd_index(boxes: list[np.ndarray], kps: list[np.ndarray]) -> float:
    """CrowdPose's crowd index of an image: mean over people of (other people's labelled joints
    inside the person's box) / (own labelled joints)."""
    ratios = []
    for i, (b, k) in enumerate(zip(boxes, kps)):
        own = int((k[:, 2] > 0).sum())
        if own == 0:
            continue
        others = 0
        for j, kj in enumerate(kps):
            if j == i:
                continue
            lab = kj[kj[:, 2] > 0]
            inside = (lab[:, 0] >= b[0]) & (lab[:, 0] <= b[0] + b[2]) & (lab[:, 1] >= b[1]) & (lab[:, 1] <= b[1] + b[3])
            others += int(inside.sum())
        ratios.append(others / own)
    return float(np.mean(ratios)) if ratios else 0.0


def write_crowdpose(coco_ann: Path, out: Path, crowd_index_override: dict[int, float] | None = None) -> Path:
    """CrowdPose-format JSON from a COCO keypoint file (14 joints: COCO's limbs + head (nose) + neck)."""
    d = json.loads(Path(coco_ann).read_text())
    anns = []
    per_image: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for a in d["annotations"]:
        k = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
        kp = np.zeros((14, 3))
        kp[:12] = k[list(_CROWDPOSE_FROM_COCO)]
        kp[12] = k[0]
        if k[5, 2] > 0 and k[6, 2] > 0:
            kp[13] = [(k[5, 0] + k[6, 0]) / 2, (k[5, 1] + k[6, 1]) / 2, min(k[5, 2], k[6, 2])]
        n = int((kp[:, 2] > 0).sum())
        anns.append({"id": a["id"], "image_id": a["image_id"], "category_id": 1, "iscrowd": a["iscrowd"],
                     "bbox": a["bbox"], "keypoints": kp.reshape(-1).tolist(), "num_keypoints": n})  # fmt: skip
        if not a["iscrowd"]:
            boxes, kps = per_image.setdefault(a["image_id"], ([], []))
            boxes.append(np.asarray(a["bbox"], float))
            kps.append(kp)
    images = []
    for im in d["images"]:
        boxes, kps = per_image.get(im["id"], ([], []))
        ci = crowd_index(boxes, kps)
        if crowd_index_override and im["id"] in crowd_index_override:
            ci = crowd_index_override[im["id"]]
        images.append({**im, "crowdIndex": round(ci, 2)})
    cat = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(CROWDPOSE_NAMES),
           # COCO's 17-joint skeleton, as some CrowdPose files carry it (edges past joint 14)
           "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                        [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]}  # fmt: skip
    out.write_text(json.dumps({"images": images, "annotations": anns, "categories": [cat]}))
    return out
