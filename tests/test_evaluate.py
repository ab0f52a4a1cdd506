"""Top-down evaluation: flip test, decoding to image px, rescoring + NMS, and the protocol end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hsrpose.codec import HeatmapCodec
from hsrpose.data.geometry import box_to_center_size, crop_affine, invert_affine
from hsrpose.data.keypoints import COCO_KEYPOINTS
from hsrpose.engine.evaluate import EvalConfig, Predictions, postprocess
from hsrpose.evaluation.rescoring import rescore
from hsrpose.inference.topdown import heatmaps_to_image, predict_heatmaps

K = 17
FLIP = COCO_KEYPOINTS.flip_index


def pooled_model(weights: np.ndarray):  # type: ignore[no-untyped-def]
    """(B,3,H,W) -> (B,K,H/4,W/4): 4x4 mean of channel 0 times a per-keypoint weight (numpy or torch)."""

    def fn(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            p = torch.nn.functional.avg_pool2d(x[:, :1], 4)
            return p * torch.as_tensor(weights, dtype=x.dtype).view(1, -1, 1, 1)
        b, _, h, w = x.shape
        p = x[:, :1].reshape(b, 1, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
        return (p * weights.reshape(1, -1, 1, 1)).astype(np.float32)

    return fn


def test_flip_test_hand_computed() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 16, 12)).astype(np.float32)
    w = np.arange(1, K + 1, dtype=np.float32)
    fn = pooled_model(w)
    base = fn(x)
    # Without the shift the mirrored branch gives back the same map with left/right weights swapped.
    got = predict_heatmaps(fn, x, FLIP, shift=False)
    want = base / w.reshape(1, -1, 1, 1) * ((w + w[FLIP]) / 2).reshape(1, -1, 1, 1)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # With the shift, the flipped-back maps move one column right (column 0 repeated).
    flipped_back = base / w.reshape(1, -1, 1, 1) * w[FLIP].reshape(1, -1, 1, 1)
    shifted = np.concatenate([flipped_back[..., :1], flipped_back[..., :-1]], axis=3)
    np.testing.assert_allclose(predict_heatmaps(fn, x, FLIP), (base + shifted) / 2, rtol=1e-6)
    np.testing.assert_array_equal(predict_heatmaps(fn, x, None), base)


def test_flip_test_numpy_equals_torch() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((3, 3, 32, 24)).astype(np.float32)
    fn = pooled_model(rng.random(K).astype(np.float32))
    a = predict_heatmaps(fn, x, FLIP)
    b = predict_heatmaps(fn, torch.from_numpy(x), FLIP)
    assert isinstance(a, np.ndarray) and isinstance(b, torch.Tensor)
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-6, atol=1e-7)


def test_heatmaps_to_image_round_trip() -> None:
    """Encode image keypoints into crop heatmaps, decode them back through M_inv: within a heatmap pixel."""
    codec = HeatmapCodec((256, 192), (64, 48))
    rng = np.random.default_rng(2)
    box = np.array([100.0, 50.0, 120.0, 260.0])
    center, size = box_to_center_size(box)
    m = crop_affine(center, size, 0.0, (256, 192))
    pts = np.stack([rng.uniform(100, 220, K), rng.uniform(50, 310, K)], axis=1)
    crop_pts = pts @ m[:, :2].T + m[:, 2]
    hm, _ = codec.encode(crop_pts, np.ones(K))
    m_inv = invert_affine(m)[None]
    for heatmaps in (hm[None], torch.from_numpy(hm[None])):
        kpts, scores = heatmaps_to_image(heatmaps, torch.from_numpy(m_inv) if isinstance(heatmaps, torch.Tensor) else m_inv, codec)
        assert kpts.shape == (1, K, 2) and scores.shape == (1, K)
        px_per_hm = size[0] / 48  # image px per heatmap px
        assert np.abs(kpts[0] - pts).max() <= 0.5 * px_per_hm + 1e-6
        np.testing.assert_allclose(scores, 1.0)


def _preds(kpts: np.ndarray, image_ids: list[int], box_scores: list[float], areas: list[float]) -> Predictions:
    n = len(image_ids)
    return Predictions(
        image_id=np.array(image_ids, np.int64),
        ann_id=np.arange(n, dtype=np.int64),
        keypoints=kpts,
        box_score=np.array(box_scores),
        area=np.array(areas),
    )


def test_postprocess_rescoring_and_nms() -> None:
    rng = np.random.default_rng(3)
    base = np.concatenate([rng.uniform(0, 100, (K, 2)), np.full((K, 1), 0.8)], axis=1)
    near = base.copy()
    near[:, :2] += 0.5  # OKS ~ 1 with base: suppressed
    far = base.copy()
    far[:, :2] += 60.0
    low = base.copy()
    low[:, 2] = 0.1  # no keypoint above 0.2: score 0, kept (nothing suppresses it on its image)
    kpts = np.stack([near, base, far, low])
    preds = _preds(kpts, [7, 7, 7, 9], [0.9, 0.95, 0.5, 1.0], [10000.0] * 4)
    res = postprocess(preds, COCO_KEYPOINTS, EvalConfig())
    got = sorted((r["image_id"], round(r["score"], 6)) for r in res)
    assert got == [(7, round(0.5 * 0.8, 6)), (7, round(0.95 * 0.8, 6)), (9, 0.0)]
    r0 = next(r for r in res if r["image_id"] == 7 and abs(r["score"] - 0.76) < 1e-9)
    assert r0["category_id"] == 1 and len(r0["keypoints"]) == 3 * K
    np.testing.assert_allclose(np.array(r0["keypoints"]).reshape(K, 3), base)
    # Soft-OKS-NMS keeps the near duplicate (with its own score).
    assert len(postprocess(preds, COCO_KEYPOINTS, EvalConfig(soft_nms=True))) == 4
    np.testing.assert_allclose(rescore(preds.box_score, kpts[:, :, 2]), [0.72, 0.76, 0.4, 0.0])


# ----------------------------------------------------------------------------- end to end on coco-mini

ANN = Path("annotations") / "person_keypoints_train2017.json"


def _pycocotools(gt_path: Path, results: list[dict[str, Any]]) -> dict[str, float]:
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from hsrpose.evaluation.cocoeval import METRIC_NAMES

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return dict(zip(METRIC_NAMES, (float(v) for v in ev.stats)))


class OracleModel(torch.nn.Module):
    """Stand-in network that returns the codec-encoded ground truth of each crop, in dataset order.

    With the flip test, every second call is the mirrored batch: it returns what ``flip_back``
    maps back onto the ground-truth heatmaps (shift left one column, mirror, swap channels).
    """

    def __init__(self, targets: list[torch.Tensor], flip_index: list[int] | None) -> None:
        super().__init__()
        self.targets = targets
        self.flip_index = flip_index
        self.pos = 0
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flipped_call = self.flip_index is not None and self.calls % 2 == 1
        self.calls += 1
        b = x.shape[0]
        hm = torch.stack(self.targets[self.pos : self.pos + b])
        if not flipped_call:
            if self.flip_index is None:
                self.pos += b
            return hm
        self.pos += b
        left = torch.cat([hm[..., 1:], hm[..., -1:]], dim=3)
        return torch.flip(left, dims=[3])[:, self.flip_index]


def _gt_dataset(coco_mini: Path, input_hw: tuple[int, int], heatmap_hw: tuple[int, int]):  # type: ignore[no-untyped-def]
    from hsrpose.data.coco import load_coco
    from hsrpose.data.dataset import TopDownDataset

    coco = load_coco(coco_mini / ANN, mode="gt")
    codec = HeatmapCodec(input_hw, heatmap_hw)
    ds = TopDownDataset(coco.instances, coco_mini / "train2017", input_hw, codec, augment=None, keypoint_info=coco.keypoint_info)
    return ds, codec, coco.keypoint_info


@pytest.mark.parametrize("flip_test", [True, False])
def test_oracle_model_reaches_full_ap_with_gt_boxes(coco_mini: Path, flip_test: bool) -> None:
    """The whole protocol (crops, flip test, decode, inverse affine, rescoring, NMS, scoring) with perfect heatmaps."""
    from hsrpose.engine.evaluate import evaluate

    ds, codec, kinfo = _gt_dataset(coco_mini, (256, 192), (64, 48))
    oracle = OracleModel([ds[i]["target"] for i in range(len(ds))], kinfo.flip_index if flip_test else None)
    cfg = EvalConfig(flip_test=flip_test, batch_size=16, num_workers=0)
    results, metrics = evaluate(oracle, ds, codec, kinfo, cfg, device="cpu", gt=coco_mini / ANN)
    assert oracle.pos == len(ds)
    assert metrics["AP"] >= 0.95, metrics
    assert len(results) == len(ds)  # one person per GT box, none suppressed
    assert {r["image_id"] for r in results} == {inst.image_id for inst in ds.instances}
    # The metrics are those pycocotools gives for the returned results.
    assert metrics == _pycocotools(coco_mini / ANN, results)


def test_predictions_gathered_from_shards_equal_single_process(coco_mini: Path) -> None:
    """What DDP validation does: per-rank predictions (with DistributedSampler repeats) concatenated."""
    from hsrpose.engine.evaluate import predict

    ds, codec, kinfo = _gt_dataset(coco_mini, (128, 96), (32, 24))
    targets = [ds[i]["target"] for i in range(len(ds))]
    cfg = EvalConfig(flip_test=False, batch_size=8, num_workers=0)
    whole = predict(OracleModel(targets, None), ds, codec, kinfo, cfg, device="cpu")
    world = 3
    shards = []
    n = len(ds)
    per = -(-n // world)
    for rank in range(world):
        idx = [(rank + world * j) % n for j in range(per)]  # DistributedSampler order, padded by repeats
        sub = torch.utils.data.Subset(ds, idx)
        shards.append(predict(OracleModel([targets[i] for i in idx], None), sub, codec, kinfo, cfg, device="cpu"))
    gathered = Predictions.concat(shards)
    assert len(gathered) > n
    a = postprocess(whole, kinfo, cfg)
    b = postprocess(gathered, kinfo, cfg)
    key = lambda r: (r["image_id"], r["score"], r["keypoints"][:2])  # noqa: E731
    assert sorted(a, key=key) == sorted(b, key=key)


def _write_tiny_weights(path: Path, preset: str = "hsrnet_tiny_128x96") -> None:
    from hsrpose.models import create_model
    from hsrpose.models.weights import save_pose_model

    torch.manual_seed(0)
    save_pose_model(create_model(preset), path, preset, COCO_KEYPOINTS)


def test_eval_cli_end_to_end_tiny_model(coco_mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hsrpose.cli import main
    from hsrpose.evaluation.cocoeval import format_metrics, score_results
    from hsrpose.evaluation.results import load_results, validate_results

    weights = tmp_path / "tiny.pth"
    _write_tiny_weights(weights)
    gt = json.loads((coco_mini / ANN).read_text())
    # A detection file: every GT box with a score, plus a box of another category that must be ignored.
    dets = [
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.5 + 0.5 * (i % 7) / 7}
        for i, a in enumerate(gt["annotations"])
        if not a.get("iscrowd", 0)
    ][:40]
    dets.append({"image_id": dets[0]["image_id"], "category_id": 3, "bbox": [1, 1, 20, 20], "score": 0.9})
    det_path = tmp_path / "dets.json"
    det_path.write_text(json.dumps(dets))
    common = ["--ann", str(coco_mini / ANN), "--images", str(coco_mini / "train2017"), "--device", "cpu", "--batch-size", "16", "--workers", "0"]

    out = tmp_path / "res_det.json"
    assert main(["eval", "hsrnet_tiny_128x96", "--weights", str(weights), "--boxes", str(det_path), "--out", str(out), *common]) == 0
    printed = capsys.readouterr().out
    assert f"detector file {det_path}" in printed and "40 boxes" in printed
    results = load_results(out)
    validate_results(results, {im["id"] for im in gt["images"]}, {1: 17})
    assert 0 < len(results) <= 40
    assert {r["image_id"] for r in results} <= {d["image_id"] for d in dets}
    numbers = "\n".join(line for line in printed.splitlines() if not line.startswith("#"))
    assert numbers == format_metrics(score_results(coco_mini / ANN, out, backend="pycocotools"))

    out2 = tmp_path / "res_gt.json"
    assert main(["eval", "hsrnet_tiny_128x96", "flip_test=false", "--weights", str(weights), "--gt-boxes", "--out", str(out2), *common]) == 0
    printed = capsys.readouterr().out
    assert "boxes: ground truth" in printed and "flip test off" in printed
    assert len(load_results(out2)) > 0


def test_eval_cli_rejects_wrong_preset_and_box_source(coco_mini: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hsrpose.cli import main

    weights = tmp_path / "tiny.pth"
    _write_tiny_weights(weights)
    args = ["--weights", str(weights), "--ann", str(coco_mini / ANN), "--images", str(coco_mini / "train2017"), "--gt-boxes"]
    assert main(["eval", "hsr_msnet_tiny_128x96", *args]) == 1
    assert "holds weights of preset 'hsrnet_tiny_128x96'" in capsys.readouterr().err
    assert main(["eval", "hsrnet_tiny_128x96", "flip_tset=false", *args]) == 1
    assert "flip_test" in capsys.readouterr().err  # near-miss suggestion from apply_overrides
    with pytest.raises(SystemExit):  # neither --boxes nor --gt-boxes
        main(["eval", "hsrnet_tiny_128x96", "--weights", str(weights), "--data-root", str(coco_mini)])


class PooledNet(torch.nn.Module):
    """Deterministic stand-in network whose output does not depend on the batch it runs in."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(0.5, 1.5, K))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x[:, :1], 4).clamp(min=0) * self.w.view(1, -1, 1, 1)


DDP_SUBSET = list(range(0, 60, 3))


def _ddp_worker(rank: int, world: int, init_file: str, root: str, out_dir: str) -> None:
    import torch.distributed as dist

    from hsrpose.engine.evaluate import evaluate

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        ds, codec, kinfo = _gt_dataset(Path(root), (128, 96), (32, 24))
        model = torch.nn.parallel.DistributedDataParallel(PooledNet())
        cfg = EvalConfig(batch_size=4, num_workers=0)
        sub = torch.utils.data.Subset(ds, DDP_SUBSET)
        results, metrics = evaluate(model, sub, codec, kinfo, cfg, device="cpu", gt=Path(root) / ANN)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"results": results, "metrics": metrics}))
    finally:
        dist.destroy_process_group()


def test_evaluate_distributed_equals_single_process(coco_mini: Path, tmp_path: Path) -> None:
    """Two gloo ranks: sharded prediction, gathered on rank 0, metrics on every rank, same as one process."""
    import torch.multiprocessing as mp

    from hsrpose.engine.evaluate import evaluate

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(coco_mini), str(tmp_path)), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    ds, codec, kinfo = _gt_dataset(coco_mini, (128, 96), (32, 24))
    sub = torch.utils.data.Subset(ds, DDP_SUBSET)
    results, metrics = evaluate(PooledNet(), sub, codec, kinfo, EvalConfig(batch_size=4, num_workers=0), device="cpu", gt=coco_mini / ANN)
    assert len(results) > 0
    assert r0["metrics"] == r1["metrics"] == metrics
    assert r1["results"] == []
    key = lambda r: (r["image_id"], r["score"], r["keypoints"])  # noqa: E731
    assert sorted(r0["results"], key=key) == sorted(results, key=key)


def test_eval_paths_follow_coco_layout(tmp_path: Path) -> None:
    import argparse

    from hsrpose.commands.eval import _resolve_paths
    from hsrpose.errors import HsrposeError

    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "person_keypoints_val2017.json").write_text("{}")
    (tmp_path / "val2017").mkdir()
    ns = argparse.Namespace(data_root=str(tmp_path), ann=None, images=None)
    assert _resolve_paths(ns) == (tmp_path / "annotations" / "person_keypoints_val2017.json", tmp_path / "val2017")
    with pytest.raises(HsrposeError, match="image folder not found"):
        _resolve_paths(argparse.Namespace(data_root=str(tmp_path), ann=None, images=str(tmp_path / "nope")))
    with pytest.raises(HsrposeError, match="--data-root"):
        _resolve_paths(argparse.Namespace(data_root=None, ann=None, images=None))
