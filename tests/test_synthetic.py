"""The synthetic dataset: deterministic per seed, valid COCO, visibility flags true to the drawing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.data.synthetic import ANNOTATION_FILE, IMAGE_DIR, SynthConfig, generate_dataset, generate_image
from hsrpose.data.synthetic_figures import Figure, Occluder, sample_figure
from hsrpose.data.synthetic_render import render_scene

SMALL = SynthConfig(image_hw=(96, 128))


def _figure(pelvis: tuple[float, float], height: float, seed: int = 0) -> Figure:
    return sample_figure(np.random.default_rng(seed), pelvis, height)


def _plain(hw: tuple[int, int] = (120, 160)) -> np.ndarray:
    return np.full((*hw, 3), 128, dtype=np.uint8)


def test_same_seed_same_files_other_seed_differs(tmp_path: Path) -> None:
    a = generate_dataset(tmp_path / "a", 4, seed=3, cfg=SMALL)
    b = generate_dataset(tmp_path / "b", 4, seed=3, cfg=SMALL)
    c = generate_dataset(tmp_path / "c", 4, seed=4, cfg=SMALL)
    assert a.read_bytes() == b.read_bytes()
    for name in sorted(p.name for p in (tmp_path / "a" / IMAGE_DIR).iterdir()):
        assert (tmp_path / "a" / IMAGE_DIR / name).read_bytes() == (tmp_path / "b" / IMAGE_DIR / name).read_bytes()
    assert json.loads(a.read_text())["annotations"] != json.loads(c.read_text())["annotations"]


def test_image_does_not_depend_on_dataset_size() -> None:
    img, recs = generate_image(7, 2, SMALL)
    img2, recs2 = generate_image(7, 2, SMALL)
    assert np.array_equal(img, img2)
    assert [r["bbox"] for r in recs] == [r["bbox"] for r in recs2]


def test_loads_with_pycocotools_and_hsrpose(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    ann = generate_dataset(tmp_path / "d", 6, seed=0, cfg=SMALL)
    assert ann == tmp_path / "d" / ANNOTATION_FILE
    coco = COCO(str(ann))
    assert len(coco.getImgIds()) == 6
    cat = coco.loadCats([1])[0]
    assert tuple(cat["keypoints"]) == COCO_KEYPOINTS.names
    assert [tuple(e) for e in cat["skeleton"]] == [(a + 1, b + 1) for a, b in COCO_KEYPOINTS.skeleton]
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns, "no figure was generated"
    for a in anns:
        assert a["category_id"] == 1 and a["iscrowd"] == 0
        kp = np.asarray(a["keypoints"]).reshape(17, 3)
        assert a["num_keypoints"] == int((kp[:, 2] > 0).sum()) > 0
        assert set(np.unique(kp[:, 2])) <= {0.0, 1.0, 2.0}
        assert a["area"] > 0 and a["bbox"][2] > 0 and a["bbox"][3] > 0
        img = coco.imgs[a["image_id"]]
        assert (tmp_path / "d" / IMAGE_DIR / img["file_name"]).is_file()

    from hsrpose.data.coco import load_coco_instances

    instances = load_coco_instances(ann)
    assert len(instances) == len(anns)
    assert all(inst.keypoints.shape == (17, 3) for inst in instances)


def test_box_contains_the_labelled_keypoints() -> None:
    for i in range(6):
        img, recs = generate_image(11, i, SMALL)
        h, w = img.shape[:2]
        for r in recs:
            x, y, bw, bh = r["bbox"]
            assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
            kp = r["keypoints"][r["keypoints"][:, 2] > 0]
            assert np.all(kp[:, 0] >= x - 0.5) and np.all(kp[:, 0] <= x + bw + 0.5)
            assert np.all(kp[:, 1] >= y - 0.5) and np.all(kp[:, 1] <= y + bh + 0.5)


def test_unoccluded_figure_is_fully_visible() -> None:
    fig = _figure((80, 70), 70, seed=1)
    _, (rec,) = render_scene(_plain(), [fig])
    assert np.all(rec["keypoints"][:, 2] == 2)
    assert np.allclose(rec["keypoints"][:, :2], fig.keypoints)


def test_occluder_over_a_joint_makes_it_v1() -> None:
    fig = _figure((80, 70), 70, seed=2)
    wrist = fig.keypoints[9]  # left_wrist
    occ = Occluder("rect", np.stack([wrist - 3, wrist + 3]), (0, 0, 255))
    image, (rec,) = render_scene(_plain(), [fig], [occ])
    assert rec["keypoints"][9, 2] == 1
    # Joints far from the occluder stay visible, and the occluder is in the picture.
    far = np.linalg.norm(fig.keypoints - wrist, axis=1) > 10
    assert np.all(rec["keypoints"][far, 2] == 2)
    x, y = np.round(wrist).astype(int)
    assert tuple(image[y, x]) == (0, 0, 255)


def test_later_figure_covers_earlier_one() -> None:
    back = _figure((80, 70), 70, seed=3)
    front = _figure((80, 70), 70, seed=3)  # same pose drawn on top: every joint of `back` is covered
    _, (rec_back, rec_front) = render_scene(_plain(), [back, front])
    assert np.all(rec_back["keypoints"][:, 2] == 1)
    assert np.all(rec_front["keypoints"][:, 2] == 2)


def test_joint_outside_the_image_is_v0_at_origin() -> None:
    # Pelvis near the bottom edge: the legs leave the image.
    fig = _figure((80, 112), 80, seed=4)
    _, (rec,) = render_scene(_plain(), [fig])
    outside = (fig.keypoints[:, 1] >= 119.5) | (fig.keypoints[:, 0] < -0.5) | (fig.keypoints[:, 0] >= 159.5)
    assert outside.any(), "test figure should stick out of the image"
    assert np.all(rec["keypoints"][outside] == 0)
    assert np.all(rec["keypoints"][~outside, 2] > 0)
    assert rec["num_keypoints"] == int((~outside).sum())


def test_left_side_is_on_the_image_right_for_an_upright_figure() -> None:
    # Front-facing figures: the person's left shoulder/hip lie to the image right of the
    # right ones whenever the torso is roughly upright (the flip-consistent left/right cue).
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(50):
        fig = sample_figure(rng, (100, 100), 100)
        neck = (fig.keypoints[5] + fig.keypoints[6]) / 2
        pelvis = (fig.keypoints[11] + fig.keypoints[12]) / 2
        up = neck - pelvis
        if up[1] < -0.9 * np.linalg.norm(up):  # within ~25 deg of vertical
            checked += 1
            assert fig.keypoints[5, 0] > fig.keypoints[6, 0]
            assert fig.keypoints[11, 0] > fig.keypoints[12, 0]
    assert checked > 10


def test_synth_command_writes_dataset(tmp_path: Path) -> None:
    from hsrpose.cli import main

    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--images", "3", "--seed", "5", "--size", "96x128", "--quiet"]) == 0
    data = json.loads((out / ANNOTATION_FILE).read_text())
    assert [im["file_name"] for im in data["images"]] == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert data["images"][0]["height"] == 96 and data["images"][0]["width"] == 128
    assert main(["synth", "--out", str(out), "--images", "0"]) == 1
