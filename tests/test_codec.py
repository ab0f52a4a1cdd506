"""HeatmapCodec: reference Gaussian targets, decoding, DARK, numpy/torch parity, flip-back."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from hsrpose.codec import HeatmapCodec
from hsrpose.data.keypoints import COCO_KEYPOINTS

INPUT_HW = (256, 192)
HEATMAP_HW = (64, 48)


def _random_keypoints(rng: np.random.Generator, k: int = 17, margin: float = 16.0) -> np.ndarray:
    x = rng.uniform(margin, INPUT_HW[1] - margin, k)
    y = rng.uniform(margin, INPUT_HW[0] - margin, k)
    return np.stack([x, y], axis=1)


def test_encode_reference_gaussian() -> None:
    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW, sigma=2.0)
    kp = np.array([[41.0, 81.9], [0.0, 0.0]])  # mu = int(41/4 + .5) = 10, int(81.9/4 + .5) = 20
    hm, w = codec.encode(kp, np.array([2, 0]))
    assert hm.shape == (2, 64, 48) and hm.dtype == np.float32 and w.dtype == np.float32
    assert w.tolist() == [1.0, 0.0]
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (20, 10)
    assert hm[0, 20, 10] == pytest.approx(1.0)
    assert hm[0, 20, 11] == pytest.approx(np.exp(-1 / 8), rel=1e-6)
    assert hm[0, 20, 16] == pytest.approx(np.exp(-36 / 8), rel=1e-6)  # edge of the 13x13 window
    assert hm[0, 20, 17] == 0.0 and hm[0, 27, 10] == 0.0  # outside the window: exactly zero
    assert not hm[1].any()


def test_encode_edges_follow_reference() -> None:
    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW)
    # x=-5: int(-1.25 + .5) = int(-0.75) = 0 (truncation toward zero, as the reference).
    # x=-34: mu=-8, window [-14, -1] misses the map -> weight 0.  x=-20: mu=-4 -> partly inside.
    # x=-30: mu=-7, br = 0 is not < 0, so the reference keeps weight 1 with an all-zero map.
    kp = np.array([[-5.0, 100.0], [-34.0, 100.0], [-20.0, 100.0], [np.nan, 3.0], [100.0, 300.0], [-30.0, 100.0]])
    hm, w = codec.encode(kp, np.ones(6))
    assert w.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert not hm[5].any()
    assert hm[0, 25].argmax() == 0 and hm[0, 25, 0] == pytest.approx(1.0)
    assert hm[2, 25, 0] == pytest.approx(np.exp(-16 / 8), rel=1e-6)
    assert not hm[1].any() and not hm[3].any() and not hm[4].any()


@pytest.mark.parametrize("dark", [False, True])
def test_round_trip(dark: bool) -> None:
    rng = np.random.default_rng(0)
    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW, dark=dark)
    kp = _random_keypoints(rng)
    hm, w = codec.encode(kp, np.ones(17))
    coords, scores = codec.decode(hm[None])
    assert coords.shape == (1, 17, 2) and scores.shape == (1, 17)
    err = np.abs(coords[0] - kp)
    if dark:
        assert err.max() < 0.25  # sub-pixel Gaussian + Taylor step: within 1/16 heatmap px
    else:
        # Integer-centred Gaussian: decode recovers the rounded centre (symmetric neighbours, no shift).
        expected = np.floor(kp / 4 + 0.5) * 4
        np.testing.assert_allclose(coords[0], expected, atol=1e-6)
        assert err.max() <= 2.0
    # score = heatmap maximum: 1 at an integer centre, >= exp(-(0.5^2 + 0.5^2) / 8) off-grid
    assert np.all(scores[0] <= 1.0 + 1e-6) and np.all(scores[0] >= np.exp(-0.5 / 8) - 1e-6)
    if not dark:
        np.testing.assert_allclose(scores[0], 1.0, atol=1e-6)


def test_decode_quarter_offset_and_edges() -> None:
    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW)
    hm = np.zeros((1, 3, 64, 48), np.float32)
    hm[0, 0, 20, 10] = 1.0
    hm[0, 0, 20, 11] = 0.5  # right neighbour higher -> +0.25 in x
    hm[0, 0, 19, 10] = 0.2  # upper neighbour higher -> -0.25 in y
    hm[0, 1, 20, 1] = 0.7  # next to the border: the reference moves neither axis
    hm[0, 1, 20, 2] = 0.3
    hm[0, 1, 21, 1] = 0.3
    hm[0, 2] = -1.0  # maximum <= 0 -> (0, 0) like the reference
    coords, scores = codec.decode(hm)
    np.testing.assert_allclose(coords[0, 0], [(10 + 0.25) * 4, (20 - 0.25) * 4])
    np.testing.assert_allclose(coords[0, 1], [4.0, 20 * 4])  # the example: x = 4.0, not 5.0
    np.testing.assert_allclose(coords[0, 2], [0.0, 0.0])
    np.testing.assert_allclose(scores[0], [1.0, 0.7, -1.0])


def _hrnet_get_final_preds_hm(hm: np.ndarray) -> np.ndarray:
    """Transcription of HRNet ``lib/core/inference.py`` ``get_max_preds`` + the
    post-processing loop of ``get_final_preds`` (leoxiaobin/deep-high-resolution-net.pytorch),
    in heatmap px, before ``transform_preds``."""
    b, k, h, w = hm.shape
    flat = hm.reshape(b, k, -1)
    idx = np.argmax(flat, 2).reshape(b, k, 1)
    maxvals = np.amax(flat, 2).reshape(b, k, 1)
    preds = np.tile(idx, (1, 1, 2)).astype(np.float32)
    preds[:, :, 0] = preds[:, :, 0] % w
    preds[:, :, 1] = np.floor(preds[:, :, 1] / w)
    preds *= np.tile(np.greater(maxvals, 0.0), (1, 1, 2)).astype(np.float32)
    for n in range(b):
        for p in range(k):
            m = hm[n][p]
            px = int(np.floor(preds[n][p][0] + 0.5))
            py = int(np.floor(preds[n][p][1] + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = np.array([m[py][px + 1] - m[py][px - 1], m[py + 1][px] - m[py - 1][px]])
                preds[n][p] += np.sign(diff) * 0.25
    return preds


@pytest.mark.parametrize("path", ["numpy", "torch"])
def test_decode_border_rule_matches_hrnet(path: str) -> None:
    """Peaks on every border row and column (and one in from it) decode as HRNet's get_final_preds."""
    h, w = HEATMAP_HW
    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW)
    rng = np.random.default_rng(13)
    positions = [(y, x) for y in (0, 1, 2, h - 3, h - 2, h - 1) for x in range(w)]
    positions += [(y, x) for x in (0, 1, 2, w - 3, w - 2, w - 1) for y in range(h)]
    positions += [(int(rng.integers(0, h)), int(rng.integers(0, w))) for _ in range(200)]
    hm = rng.uniform(0.0, 0.5, (len(positions), 1, h, w)).astype(np.float32)
    for i, (y, x) in enumerate(positions):
        hm[i, 0, y, x] = 1.0
    ref = _hrnet_get_final_preds_hm(hm) * np.array([4.0, 4.0], np.float32)  # heatmap px -> crop px (stride 4)
    coords, scores = codec.decode(torch.from_numpy(hm) if path == "torch" else hm)
    coords = coords.numpy() if path == "torch" else coords
    np.testing.assert_array_equal(coords, ref)
    np.testing.assert_array_equal(np.asarray(scores), 1.0)


@pytest.mark.parametrize("dark", [False, True])
def test_decode_numpy_equals_torch(dark: bool) -> None:
    rng = np.random.default_rng(1)
    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW, dark=dark)
    maps = []
    for _ in range(3):
        hm, _ = codec.encode(_random_keypoints(rng, margin=-8), np.ones(17))
        maps.append(hm * rng.uniform(0.2, 1.0, (17, 1, 1)) + rng.normal(0, 0.03, hm.shape))
    batch = np.stack(maps).astype(np.float32)
    batch[0, 0] = 0.0  # flat channel: first index, score 0
    c_np, s_np = codec.decode(batch)
    c_t, s_t = codec.decode(torch.from_numpy(batch))
    assert isinstance(c_t, torch.Tensor) and c_t.dtype == torch.float32
    np.testing.assert_array_equal(s_np, s_t.numpy())
    if dark:  # float32 blur in OpenCV vs torch conv: equal to far below a pixel
        np.testing.assert_allclose(c_np, c_t.numpy(), atol=1e-3)
    else:
        np.testing.assert_array_equal(c_np, c_t.numpy())


def test_flip_back_matches_encoding_the_flipped_sample() -> None:
    """Encode-then-flip_back equals flip-then-encode for the reference training flip.

    The reference flips the image (x -> W_img - 1 - x) and mirrors the box center, which
    mirrors crop coordinates about W/2: x -> W - x (see test_data_dataset for the crop).
    """
    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW)
    rng = np.random.default_rng(2)
    flip_index = COCO_KEYPOINTS.flip_index
    for _ in range(5):
        kp = _random_keypoints(rng)
        # 0 <= mu <= 40: the Gaussian never reaches column 47 (whose flip lands on the kept
        # column 0), and no negative x (int() truncates toward zero there, breaking symmetry).
        kp[:, 0] = rng.uniform(0, 160, 17)
        vis = rng.integers(0, 3, 17)
        hm, w = codec.encode(kp, vis)
        flipped = np.stack([INPUT_HW[1] - kp[:, 0], kp[:, 1]], axis=1)[flip_index]
        hm_f, w_f = codec.encode(flipped, vis[flip_index])
        back = codec.flip_back(hm[None], flip_index)[0]
        np.testing.assert_array_equal(w_f, w[flip_index])
        np.testing.assert_allclose(back, hm_f, atol=1e-7)


def test_flip_back_numpy_torch_and_inverse() -> None:
    rng = np.random.default_rng(3)
    x = rng.random((2, 17, 64, 48)).astype(np.float32)
    fi = COCO_KEYPOINTS.flip_index
    a = HeatmapCodec.flip_back(x, fi)
    b = HeatmapCodec.flip_back(torch.from_numpy(x), fi)
    np.testing.assert_array_equal(a, b.numpy())
    # without the shift, flipping back twice is the identity
    np.testing.assert_array_equal(HeatmapCodec.flip_back(HeatmapCodec.flip_back(x, fi, shift=False), fi, shift=False), x)
    # the shift moves content one pixel right and keeps column 0
    np.testing.assert_array_equal(a[..., 1:], HeatmapCodec.flip_back(x, fi, shift=False)[..., :-1])
    np.testing.assert_array_equal(a[..., 0], x[:, fi][..., -1])


def test_codec_and_deployment_data_modules_import_no_torch() -> None:
    code = (
        "import sys, numpy as np; from hsrpose.codec import HeatmapCodec; "
        "import hsrpose.data.transforms, hsrpose.data.imageio, hsrpose.data.coco; "
        "hsrpose.data.transforms.to_input_array(np.zeros((1, 8, 6, 3), np.uint8)); "
        "c = HeatmapCodec((256, 192), (64, 48), dark=True); h, w = c.encode(np.array([[50., 60.]]), np.array([2])); "
        "xy, s = c.decode(h[None]); c.flip_back(h[None], [0]); "
        "assert 'torch' not in sys.modules, 'torch imported'; print(xy.tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        HeatmapCodec(INPUT_HW, (0, 48))
    codec = HeatmapCodec(INPUT_HW, HEATMAP_HW)
    with pytest.raises(ValueError, match="codec expects"):
        codec.decode(np.zeros((1, 17, 32, 24), np.float32))
    with pytest.raises(ValueError, match="visibility"):
        codec.encode(np.zeros((17, 2)), np.ones(16))
