"""TopDownDataset, image reading and the deterministic DataLoader, on real coco-mini images."""

from __future__ import annotations

import io
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from hsrpose.codec import HeatmapCodec
from hsrpose.data.coco import Instance, load_coco
from hsrpose.data.config import AugmentConfig
from hsrpose.data.dataset import TopDownDataset
from hsrpose.data.geometry import apply_affine
from hsrpose.data.imageio import ImageReadError, read_image_bgr
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.data.loader import build_loader, set_loader_epoch
from hsrpose.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_input_array

SMALL_HW = (128, 96)
SMALL_HM = (32, 24)
IMAGE = "000000535506.jpg"  # 480x640 (w x h), one person with 15 labelled keypoints


@pytest.fixture(scope="module")
def instances(coco_mini: Path) -> list[Instance]:
    return load_coco(coco_mini / "annotations" / "person_keypoints_train2017.json").instances


def _dataset(coco_mini: Path, instances: list[Instance], augment: AugmentConfig | None, hw=SMALL_HW, hm=SMALL_HM) -> TopDownDataset:
    return TopDownDataset(instances, coco_mini / "train2017", hw, HeatmapCodec(hw, hm), augment, COCO_KEYPOINTS, seed=0)


# ------------------------------------------------------------------ image reading
def test_read_png_variants_as_8bit_bgr(tmp_path: Path, coco_mini: Path) -> None:
    bgr = cv2.imread(str(coco_mini / "train2017" / IMAGE))[:64, :48]
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    rgba = np.dstack([bgr, np.full(bgr.shape[:2], 77, np.uint8)])
    cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    cv2.imwrite(str(tmp_path / "deep.png"), bgr.astype(np.uint16) * 257)  # 16-bit
    out = read_image_bgr(tmp_path / "gray.png")
    assert out.dtype == np.uint8 and out.shape == (64, 48, 3)
    np.testing.assert_array_equal(out, np.dstack([gray] * 3))
    np.testing.assert_array_equal(read_image_bgr(tmp_path / "rgba.png"), bgr)  # alpha dropped
    deep = read_image_bgr(tmp_path / "deep.png")
    assert deep.dtype == np.uint8 and deep.shape == (64, 48, 3)
    np.testing.assert_array_equal(deep, bgr)  # v*257 >> 8 == v


# What a viewer shows for each EXIF orientation tag (TIFF 6.0 / EXIF 2.3, tag 0x0112), from the stored pixels.
_DISPLAYED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirror horizontally
    3: lambda a: a[::-1, ::-1],  # rotate 180
    4: lambda a: a[::-1],  # mirror vertically
    5: lambda a: a.transpose(1, 0, 2),  # transpose
    6: lambda a: np.rot90(a, -1),  # rotate 90 clockwise
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # transverse
    8: lambda a: np.rot90(a, 1),  # rotate 90 counter-clockwise
}


def _jpeg_with_orientation(tmp_path: Path, coco_mini: Path, tag: int) -> tuple[Path, np.ndarray]:
    rgb = cv2.imread(str(coco_mini / "train2017" / IMAGE))[:80, :60, ::-1]
    exif = Image.Exif()
    exif[0x0112] = tag
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    path = tmp_path / f"orientation{tag}.jpg"
    path.write_bytes(buf.getvalue())
    raw = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)  # the stored pixels
    return path, raw


@pytest.mark.parametrize("tag", sorted(_DISPLAYED))
def test_exif_orientation_dataset_ignores_predict_honours(tmp_path: Path, coco_mini: Path, tag: int) -> None:
    """Dataset reads = the reference's ``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION``
    (HRNet ``lib/dataset/JointsDataset.py`` ``__getitem__``); ``predict`` shows user photos as displayed."""
    path, raw = _jpeg_with_orientation(tmp_path, coco_mini, tag)
    assert raw.shape == (80, 60, 3)
    # dataset setting (the default), with and without the annotation file's size
    np.testing.assert_array_equal(read_image_bgr(path), raw)
    np.testing.assert_array_equal(read_image_bgr(path, expected_hw=(80, 60)), raw)
    if tag >= 5:  # a 90-degree tag no longer switches to the displayed grid to fit the annotation
        with pytest.raises(ImageReadError, match="as stored .EXIF orientation ignored"):
            read_image_bgr(path, expected_hw=(60, 80))
    # the GPU data path's CPU decoder reads the same stored pixels
    from hsrpose.data.gpu_decode import decode_jpegs

    (dec,) = decode_jpegs([torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)], torch.device("cpu"), False)
    np.testing.assert_array_equal(dec.permute(1, 2, 0).numpy()[:, :, ::-1], raw)
    # predict setting: the displayed image
    np.testing.assert_array_equal(read_image_bgr(path, exif_orientation=True), _DISPLAYED[tag](raw))


def test_dataset_crop_uses_stored_pixels_for_180_degree_tag(tmp_path: Path, coco_mini: Path) -> None:
    """Tag 3 (rotate 180) keeps the size: the old reader honoured it; the dataset must not."""
    path, raw = _jpeg_with_orientation(tmp_path, coco_mini, 3)
    inst = Instance(1, 1, path.name, np.array([5.0, 10.0, 40.0, 60.0]), np.zeros((17, 3)), 1.0, 2400.0, (80, 60))
    ds = TopDownDataset([inst], tmp_path, SMALL_HW, HeatmapCodec(SMALL_HW, SMALL_HM), None, COCO_KEYPOINTS)
    item = ds[0]
    assert item["valid"]
    from hsrpose.data.geometry import warp_crop
    from hsrpose.data.transforms import crop_matrix

    m = crop_matrix(ds.crop_params(0), 60, SMALL_HW)
    np.testing.assert_array_equal(item["image"].numpy(), to_input_array(warp_crop(raw, m, SMALL_HW))[0])


def test_read_bad_files(tmp_path: Path, coco_mini: Path) -> None:
    with pytest.raises(ImageReadError, match="not found"):
        read_image_bgr(tmp_path / "nope.jpg")
    data = (coco_mini / "train2017" / IMAGE).read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError, match="trunc.jpg: truncated JPEG"):
        read_image_bgr(tmp_path / "trunc.jpg")
    (tmp_path / "garbage.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ImageReadError, match="not a decodable image"):
        read_image_bgr(tmp_path / "garbage.jpg")
    sof = data.find(b"\xff\xc0")  # damaged frame header, intact start and end markers
    (tmp_path / "corrupt.jpg").write_bytes(data[:sof] + b"\x00" * 20 + data[sof + 20 :])
    with pytest.raises(ImageReadError, match="corrupt.jpg: not a decodable image"):
        read_image_bgr(tmp_path / "corrupt.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image_bgr(tmp_path / "empty.png")


def test_input_normalisation_numpy_equals_torch() -> None:
    crops = np.random.default_rng(0).integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    a = to_input_array(crops)
    b = to_input_array(torch.from_numpy(crops))
    assert a.shape == (2, 3, 8, 6) and a.dtype == np.float32 and b.dtype == torch.float32
    np.testing.assert_array_equal(a, b.numpy())  # one function, the same float32 expressions
    # the GPU data path's call: RGB float crops, channels first (numpy and torch alike)
    rgb_chw = np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2)).astype(np.float32)
    np.testing.assert_array_equal(to_input_array(rgb_chw, source_order="RGB", channels_first=True), a)
    c = to_input_array(torch.from_numpy(rgb_chw), source_order="RGB", channels_first=True)
    np.testing.assert_array_equal(c.numpy(), a)
    # channel 0 is red = BGR channel 2
    np.testing.assert_allclose(a[0, 0], (crops[0, ..., 2] / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], atol=1e-6)


# ------------------------------------------------------------------ samples
def test_eval_item_geometry(coco_mini: Path, instances: list[Instance]) -> None:
    ds = _dataset(coco_mini, instances, None, (256, 192), (64, 48))
    i = next(k for k, inst in enumerate(instances) if inst.file_name == IMAGE)
    item = ds[i]
    assert item["valid"] and item["image"].shape == (3, 256, 192) and item["target"].shape == (17, 64, 48)
    inst = instances[i]
    lab = inst.keypoints[:, 2] > 0
    # M_inv maps crop keypoints back onto the annotation
    back = apply_affine(item["keypoints_crop"][:, :2].numpy().astype(np.float64), item["M_inv"].numpy())
    np.testing.assert_allclose(back[lab], inst.keypoints[lab, :2], atol=1e-3)
    np.testing.assert_array_equal(item["target_weight"].numpy(), lab.astype(np.float32))
    # the target peaks where the keypoint is
    for k in np.flatnonzero(lab):
        y, x = np.unravel_index(item["target"][k].argmax().item(), (64, 48))
        assert abs(x * 4 - item["keypoints_crop"][k, 0]) <= 2 and abs(y * 4 - item["keypoints_crop"][k, 1]) <= 2
    # and the image is the normalised crop (not black)
    assert item["image"].std() > 0.3


def test_flip_then_encode_equals_encode_then_flip(coco_mini: Path, instances: list[Instance]) -> None:
    """The dataset's flip sample == the unflipped sample mirrored by codec.flip_back (with its shift)."""
    plain = AugmentConfig(scale_factor=0.0, rotation_prob=0.0, flip=False)
    flip = replace(plain, flip=True, flip_prob=1.0)
    hw, hm = (256, 192), (64, 48)
    ds_plain = _dataset(coco_mini, instances, plain, hw, hm)
    ds_flip = _dataset(coco_mini, instances, flip, hw, hm)
    fi = COCO_KEYPOINTS.flip_index
    for i in range(0, len(instances), 9):
        a, b = ds_plain[i], ds_flip[i]
        assert b["flipped"] and not a["flipped"]
        # crop px mirror about W/2: x -> W - x, with left/right swapped
        ka, kb = a["keypoints_crop"].numpy(), b["keypoints_crop"].numpy()
        lab = ka[fi, 2] > 0
        np.testing.assert_allclose(kb[lab, 0], 192 - ka[fi][lab, 0], atol=1e-3)
        np.testing.assert_allclose(kb[lab, 1], ka[fi][lab, 1], atol=1e-3)
        # image: flipped crop column x == plain crop column W - x (one-pixel offset of the reference)
        diff = (b["image"][..., 1:] - a["image"].flip(-1)[..., :-1]).abs()
        assert diff.mean() < 0.01
        # targets: encode(flipped sample) == flip_back(encode(sample)) wherever the kept column 0
        # and the non-symmetric int() truncation of negative positions are not involved
        back = HeatmapCodec.flip_back(a["target"][None], fi)[0]
        mu = np.floor(ka[:, 0] / 4 + 0.5)
        ok = (a["target_weight"].numpy()[fi] > 0) & (ka[fi, 0] >= 0) & (mu[fi] <= 40)
        assert np.array_equal(b["target_weight"].numpy()[ok], a["target_weight"].numpy()[fi][ok])
        torch.testing.assert_close(b["target"][ok], back[ok], atol=1e-6, rtol=0)


def test_bad_images_give_invalid_samples(tmp_path: Path, coco_mini: Path, instances: list[Instance], caplog) -> None:
    src = coco_mini / "train2017" / IMAGE
    good = next(inst for inst in instances if inst.file_name == IMAGE)
    data = src.read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all" * 100)
    shutil.copy(src, tmp_path / IMAGE)
    gray = cv2.cvtColor(cv2.imread(str(src)), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    rgba16 = np.dstack([cv2.imread(str(src))] + [np.full(gray.shape, 255, np.uint8)]).astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "rgba16.png"), rgba16)
    items = [
        replace(good, file_name="missing.jpg", ann_id=101),
        replace(good, file_name="trunc.jpg", ann_id=102),
        replace(good, file_name="junk.jpg", ann_id=103),
        replace(good, ann_id=104, box_xywh=np.array([10.0, 10.0, 0.0, 0.0])),  # degenerate crop
        replace(good, ann_id=105, image_hw=(100, 100)),  # image does not match its entry
        replace(good, file_name="gray.png", ann_id=106),
        replace(good, file_name="rgba16.png", ann_id=107),
        replace(good, ann_id=108),
    ]
    ds = TopDownDataset(items, tmp_path, SMALL_HW, HeatmapCodec(SMALL_HW, SMALL_HM), AugmentConfig(), COCO_KEYPOINTS)
    with caplog.at_level(logging.WARNING, logger="hsrpose.data.dataset"):
        batch = next(iter(build_loader(ds, batch_size=8, shuffle=False, num_workers=0)))
    assert batch["valid"].tolist() == [False] * 5 + [True] * 3
    assert batch["target_weight"][:5].abs().sum() == 0 and batch["image"][:5].abs().sum() == 0
    assert batch["target_weight"][5:].sum() > 0
    for k, name in enumerate(["missing.jpg", "trunc.jpg", "junk.jpg", IMAGE, IMAGE]):
        assert name in batch["error"][k] and f"annotation id {101 + k}" in batch["error"][k]
        assert any(name in r.getMessage() and f"annotation id {101 + k}" in r.getMessage() for r in caplog.records)
    assert int((~batch["valid"]).sum()) == 5  # what the training loop counts per epoch
    # the grayscale PNG sample has three equal channels before normalisation
    img = batch["image"][5] * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    torch.testing.assert_close(img[0], img[1], atol=1e-5, rtol=0)


# ------------------------------------------------------------------ loader determinism
def _epoch_batches(loader) -> list[dict[str, torch.Tensor]]:  # type: ignore[no-untyped-def]
    return [{k: v for k, v in b.items() if isinstance(v, torch.Tensor)} for b in loader]


def _assert_same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), k


def test_loader_is_deterministic_across_workers(coco_mini: Path, instances: list[Instance]) -> None:
    subset = instances[:12]
    aug = AugmentConfig(half_body=True)
    ds = _dataset(coco_mini, subset, aug)
    l0 = build_loader(ds, batch_size=4, shuffle=True, num_workers=0, seed=7)
    set_loader_epoch(l0, 3)
    ref = _epoch_batches(l0)
    _assert_same(ref, _epoch_batches(l0))  # same epoch again
    l2 = build_loader(_dataset(coco_mini, subset, aug), batch_size=4, shuffle=True, num_workers=2, seed=7)
    set_loader_epoch(l2, 3)
    _assert_same(ref, _epoch_batches(l2))  # 2 workers: identical samples
    set_loader_epoch(l0, 4)
    other = _epoch_batches(l0)
    assert not torch.equal(torch.cat([b["index"] for b in ref]), torch.cat([b["index"] for b in other]))
    # per-sample draws depend on (seed, epoch, index) only, not on the batch they are in
    by_index = {int(i): r for b in other for i, r in zip(b["index"], b["rotation"])}
    ds.set_epoch(4)
    assert all(ds.crop_params(i).rotation == pytest.approx(float(r)) for i, r in by_index.items())
    l_seed = build_loader(_dataset(coco_mini, subset, aug), batch_size=4, shuffle=True, num_workers=0, seed=8)
    set_loader_epoch(l_seed, 3)
    assert not torch.equal(torch.cat([b["rotation"] for b in ref]), torch.cat([b["rotation"] for b in _epoch_batches(l_seed)]))
