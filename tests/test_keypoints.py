"""Keypoint metadata: COCO-17 facts and custom sets from a categories entry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hsrpose.data.keypoints import COCO_KEYPOINTS, KeypointInfo


def test_coco_facts() -> None:
    k = COCO_KEYPOINTS
    assert k.num_keypoints == 17
    assert k.names[0] == "nose" and k.names[16] == "right_ankle"
    # every flip pair is (left_x, right_x)
    for a, b in k.flip_pairs:
        assert k.names[a].startswith("left_") and k.names[b] == "right_" + k.names[a][5:]
    assert k.flip_index == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    # pycocotools' sigmas
    from pycocotools.cocoeval import Params

    np.testing.assert_allclose(k.sigmas_array, Params(iouType="keypoints").kpt_oks_sigmas)


def test_coco_category_of_the_real_file_matches(coco_mini) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((coco_mini / "annotations" / "person_keypoints_train2017.json").read_text())
    info = KeypointInfo.from_coco_category(data["categories"][0])
    assert info == COCO_KEYPOINTS


def test_dict_round_trip() -> None:
    assert KeypointInfo.from_dict(json.loads(json.dumps(COCO_KEYPOINTS.to_dict()))) == COCO_KEYPOINTS


def test_custom_set_needs_sigmas_and_validates() -> None:
    cat = {"name": "hand", "keypoints": ["a", "b", "c"], "skeleton": [[1, 2], [2, 3]]}
    with pytest.raises(ValueError, match="needs OKS sigmas"):
        KeypointInfo.from_coco_category(cat)
    info = KeypointInfo.from_coco_category(cat, flip_pairs=[[0, 2]], sigmas=[0.1, 0.2, 0.1])
    assert info.skeleton == ((0, 1), (1, 2)) and info.flip_index == [2, 1, 0]
    with pytest.raises(ValueError, match="out of range"):
        KeypointInfo.from_coco_category(cat, flip_pairs=[[0, 3]], sigmas=[0.1] * 3)
    with pytest.raises(ValueError, match="2 sigmas for 3 keypoints"):
        KeypointInfo.from_coco_category(cat, sigmas=[0.1, 0.1])
