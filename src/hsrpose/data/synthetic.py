"""A synthetic multi-person keypoint dataset in COCO format, drawn with OpenCV.

Each image holds a few articulated stick figures with the COCO-17 skeleton
(torso, head with eyes, ears and nose, two-segment arms and legs) in sampled
poses and sizes, overlapping one another and partly hidden by occluders or cut
by the image border, on a noise, gradient or clutter background.

Left/right, the property that flip pairs must learn, is carried by geometry as
in photographs: every figure faces the viewer (its face is drawn), so the
person's left side is on the image's right when upright. This stays true under
the horizontal-flip augmentation of training (which swaps the labels), whereas a
fixed colour-per-side code would be contradicted by every flipped sample. Each
figure still paints its left and right limbs in two distinct hues (chosen per
figure) so a viewer - and the network - can follow a limb through a crossing.

The scene model and its sampling live in :mod:`hsrpose.data.synthetic_figures`, the
drawing and the visibility flags in :mod:`hsrpose.data.synthetic_render`; this module
puts images together and writes the dataset.

Everything is deterministic per seed: image ``i`` of seed ``s`` is drawn from
``numpy.random.default_rng([s, i])`` alone, so it does not depend on how many
images are generated. This module imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from hsrpose.data.keypoints import COCO_KEYPOINTS, KeypointInfo
from hsrpose.data.synthetic_figures import _sample_background, _sample_occluder, sample_figure
from hsrpose.data.synthetic_render import _MAX_FIGURES, render_scene
from hsrpose.utils.io import atomic_write_bytes, atomic_write_json

__all__ = [
    "SynthConfig",
    "generate_image",
    "generate_dataset",
    "ANNOTATION_FILE",
    "IMAGE_DIR",
]

ANNOTATION_FILE = "annotations/person_keypoints.json"
IMAGE_DIR = "images"


@dataclass(frozen=True)
class SynthConfig:
    """What the generator samples from.

    Attributes:
        image_hw: (height, width) of every image in pixels.
        people: inclusive (min, max) number of figures per image.
        height_frac: range of a figure's standing height as a fraction of the image height.
        occluder_prob: probability that an image gets occluders (1-2, each placed over a figure).
        jpeg_quality: quality of the written JPEG files.
    """

    image_hw: tuple[int, int] = (240, 320)
    people: tuple[int, int] = (1, 4)
    height_frac: tuple[float, float] = (0.4, 0.95)
    occluder_prob: float = 0.35
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        h, w = self.image_hw
        if h < 32 or w < 32:
            raise ValueError(f"SynthConfig.image_hw {self.image_hw}: both sides must be >= 32 pixels")
        lo, hi = self.people
        if not 1 <= lo <= hi <= _MAX_FIGURES:
            raise ValueError(f"SynthConfig.people {self.people}: need 1 <= min <= max <= {_MAX_FIGURES}")
        a, b = self.height_frac
        if not 0 < a <= b:
            raise ValueError(f"SynthConfig.height_frac {self.height_frac}: need 0 < min <= max")


def generate_image(seed: int, index: int, cfg: SynthConfig = SynthConfig()) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Image ``index`` of dataset ``seed``: (H, W, 3) uint8 BGR and its per-figure records (see :func:`render_scene`).

    Figures with no keypoint inside the image are dropped.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    h, w = cfg.image_hw
    bg = _sample_background(rng, (h, w))
    n = int(rng.integers(cfg.people[0], cfg.people[1] + 1))
    figures = []
    for _ in range(n):
        hb = rng.uniform(*cfg.height_frac) * h
        # Pelvis roughly in the middle band; some figures get cut by the border.
        pelvis = (rng.uniform(0.05, 0.95) * w, rng.uniform(0.35, 0.75) * h + rng.normal(0, 0.08) * h)
        figures.append(sample_figure(rng, pelvis, hb))
    occluders = []
    if figures and rng.random() < cfg.occluder_prob:
        for _ in range(int(rng.integers(1, 3))):
            fig = figures[int(rng.integers(len(figures)))]
            joint = fig.keypoints[int(rng.integers(len(fig.keypoints)))]
            occluders.append(_sample_occluder(rng, joint, 0.35 * np.ptp(fig.keypoints[:, 1]) + 8))
    img, records = render_scene(bg, figures, occluders)
    return img, [r for r in records if r["num_keypoints"] > 0]


def _coco_categories(info: KeypointInfo) -> list[dict[str, Any]]:
    return [{
        "id": 1, "name": "person", "supercategory": "person",
        "keypoints": list(info.names),
        "skeleton": [[a + 1, b + 1] for a, b in info.skeleton],  # COCO files are 1-based
    }]  # fmt: skip


def generate_dataset(
    out_dir: str | Path,
    num_images: int,
    seed: int = 0,
    cfg: SynthConfig = SynthConfig(),
    progress: bool = False,
) -> Path:
    """Write ``out_dir/images/*.jpg`` and ``out_dir/annotations/person_keypoints.json``.

    Returns the annotation file's path. Image ids are 1..N, annotation ids 1..M.
    """
    if num_images < 1:
        raise ValueError(f"generate_dataset: num_images must be >= 1, got {num_images}")
    out = Path(out_dir)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    h, w = cfg.image_hw
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    indices: Iterable[int] = range(num_images)
    if progress:
        from hsrpose.utils.progress import progress  # a bar on a terminal, lines in logs

        indices = progress(indices, desc=f"synth {out.name}", unit="img")
    for i in indices:
        img, records = generate_image(seed, i, cfg)
        file_name = f"{i:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(cfg.jpeg_quality)])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode {file_name}")
        atomic_write_bytes(out / IMAGE_DIR / file_name, buf.tobytes())
        image_id = i + 1
        images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for r in records:
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 1,
                "keypoints": [round(float(v), 2) for v in r["keypoints"].reshape(-1)],
                "num_keypoints": r["num_keypoints"],
                "bbox": r["bbox"],
                "area": r["area"],
                "iscrowd": 0,
            })  # fmt: skip
    ann = {
        "info": {"description": "hsrpose synthetic multi-person keypoints", "seed": int(seed), "image_hw": [h, w]},
        "images": images,
        "annotations": annotations,
        "categories": _coco_categories(COCO_KEYPOINTS),
    }
    ann_file = out / ANNOTATION_FILE
    atomic_write_json(ann_file, ann)
    return ann_file
