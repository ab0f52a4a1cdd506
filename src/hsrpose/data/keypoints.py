"""Keypoint sets as data: names, left/right flip pairs, skeleton and OKS sigmas.

COCO-17 is built in. Custom sets come from a dataset's ``categories`` entry
(names, 1-based skeleton) plus flip pairs and sigmas given by the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["KeypointInfo", "COCO_KEYPOINTS", "MPII_KEYPOINTS", "CROWDPOSE_KEYPOINTS", "KNOWN_KEYPOINT_SETS"]


@dataclass(frozen=True)
class KeypointInfo:
    """Metadata of a keypoint set.

    Attributes:
        names: keypoint names in channel order, length K.
        flip_pairs: 0-based (left, right) index pairs swapped by a horizontal flip.
        skeleton: 0-based (a, b) index pairs joined when drawing.
        sigmas: per-keypoint OKS sigmas, length K (COCO's values are already /10).
    """

    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]

    def __post_init__(self) -> None:
        k = len(self.names)
        if k == 0:
            raise ValueError("KeypointInfo: 'names' is empty")
        if len(self.sigmas) != k:
            raise ValueError(f"KeypointInfo: {len(self.sigmas)} sigmas for {k} keypoints")
        if any(not (s > 0) for s in self.sigmas):
            raise ValueError("KeypointInfo: every sigma must be > 0")
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            for i in (a, b):
                if not 0 <= i < k:
                    raise ValueError(f"KeypointInfo: flip pair index {i} out of range 0..{k - 1}")
                if i in seen:
                    raise ValueError(f"KeypointInfo: keypoint {i} appears in two flip pairs")
                seen.add(i)
        for a, b in self.skeleton:
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"KeypointInfo: skeleton edge ({a}, {b}) out of range 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def flip_index(self) -> list[int]:
        """Channel permutation of a horizontal flip: ``flipped[:, i] = x[:, flip_index[i]]``."""
        idx = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            idx[a], idx[b] = b, a
        return idx

    @property
    def sigmas_array(self) -> np.ndarray:
        return np.asarray(self.sigmas, dtype=np.float64)

    @property
    def left_ids(self) -> list[int]:
        return [a for a, _ in self.flip_pairs]

    @property
    def right_ids(self) -> list[int]:
        return [b for _, b in self.flip_pairs]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored in checkpoints and ONNX metadata."""
        return {
            "names": list(self.names),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(e) for e in self.skeleton],
            "sigmas": list(self.sigmas),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "KeypointInfo":
        missing = [k for k in ("names", "flip_pairs", "skeleton", "sigmas") if k not in d]
        if missing:
            raise ValueError(f"KeypointInfo: missing field(s) {missing}")
        return cls(
            names=tuple(str(n) for n in d["names"]),
            flip_pairs=tuple((int(a), int(b)) for a, b in d["flip_pairs"]),
            skeleton=tuple((int(a), int(b)) for a, b in d["skeleton"]),
            sigmas=tuple(float(s) for s in d["sigmas"]),
        )

    @classmethod
    def from_coco_category(
        cls,
        category: Mapping[str, Any],
        flip_pairs: Sequence[Sequence[int]] | None = None,
        sigmas: Sequence[float] | None = None,
        fallback_sigmas: Sequence[float] | None = None,
    ) -> "KeypointInfo":
        """Build from a COCO ``categories`` entry (``keypoints`` names, 1-based ``skeleton``).

        Sigmas and flip pairs: the arguments when given, else the category's own ``sigmas`` /
        ``flip_pairs`` fields (a custom set may carry them), else those of a known set whose
        names equal the category's (COCO person, CrowdPose, MPII: :data:`KNOWN_KEYPOINT_SETS`),
        else ``fallback_sigmas`` (e.g. those stored in the weights); a custom set with none of
        these is an error. Flip pairs default to none.
        """
        if "keypoints" not in category:
            raise ValueError(f"category {category.get('name', '?')!r} has no 'keypoints' field")
        names = tuple(str(n) for n in category["keypoints"])
        skeleton = tuple((int(a) - 1, int(b) - 1) for a, b in category.get("skeleton", []))
        flip_pairs = category.get("flip_pairs") if flip_pairs is None else flip_pairs
        sigmas = category.get("sigmas") if sigmas is None else sigmas
        known = next((info for info in KNOWN_KEYPOINT_SETS.values() if info.names == names), None)
        if known is not None:
            flip_pairs = known.flip_pairs if flip_pairs is None else flip_pairs
            sigmas = known.sigmas if sigmas is None else sigmas
            if any(not (0 <= i < len(names)) for edge in skeleton for i in edge):
                skeleton = known.skeleton  # e.g. COCO's 17-joint skeleton left in a CrowdPose category
        sigmas = fallback_sigmas if sigmas is None else sigmas
        if sigmas is None:
            raise ValueError(
                f"category {category.get('name', '?')!r}: custom keypoint set of {len(names)} keypoints needs "
                "OKS sigmas: add a 'sigmas' list to the category, or give them as a setting "
                "(train: data.oks_sigmas=[...], eval: oks_sigmas=[...])"
            )
        return cls(
            names=names,
            flip_pairs=tuple((int(a), int(b)) for a, b in (flip_pairs or ())),
            skeleton=skeleton,
            sigmas=tuple(float(s) for s in sigmas),
        )


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# COCO's person category skeleton (1-based in the annotation file), here 0-based.
_COCO_SKELETON_1BASED = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7),
    (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip

# pycocotools' COCOeval.kpt_oks_sigmas
_COCO_SIGMAS = tuple(
    s / 10.0
    for s in (0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89)
)

COCO_KEYPOINTS = KeypointInfo(
    names=_COCO_NAMES,
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=tuple((a - 1, b - 1) for a, b in _COCO_SKELETON_1BASED),
    sigmas=_COCO_SIGMAS,
)

# MPII single person, 16 joints in the order of the annotation's joint ids (HRNet
# lib/dataset/mpii.py and the official release): 0 r_ankle .. 15 l_wrist.
_MPII_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)  # fmt: skip

MPII_KEYPOINTS = KeypointInfo(
    names=_MPII_NAMES,
    # HRNet's flip_pairs [[0, 5], [1, 4], [2, 3], [10, 15], [11, 14], [12, 13]], written (left, right).
    flip_pairs=((5, 0), (4, 1), (3, 2), (15, 10), (14, 11), (13, 12)),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (8, 12), (12, 11), (11, 10), (8, 13), (13, 14), (14, 15),
    ),  # fmt: skip
    # MPII has no OKS; these are mmpose's mpii dataset-info sigmas (used for OKS-NMS only,
    # PCKh does not read them).
    sigmas=(
        0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026,
        0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072, 0.062,
    ),  # fmt: skip
)

# CrowdPose, 14 joints in its annotation order (the dataset's category entry).
_CROWDPOSE_NAMES = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
)  # fmt: skip

CROWDPOSE_KEYPOINTS = KeypointInfo(
    names=_CROWDPOSE_NAMES,
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    skeleton=(
        (12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7), (6, 7),
        (6, 8), (8, 10), (7, 9), (9, 11),
    ),  # fmt: skip
    # The CrowdPose evaluation's sigmas (crowdposetools / xtcocotools keypoints_crowd):
    # COCO's limb values, .79 for head and neck.
    sigmas=tuple(
        s / 10.0 for s in (0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79)
    ),
)

KNOWN_KEYPOINT_SETS: dict[str, KeypointInfo] = {
    "coco": COCO_KEYPOINTS,
    "mpii": MPII_KEYPOINTS,
    "crowdpose": CROWDPOSE_KEYPOINTS,
}
"""Keypoint set of each dataset name of ``--dataset``."""
