"""Checkpoint loading: foreign formats in their repos' exact key layouts, hsrpose files, and failures.

The foreign layouts below are written out from each repository's model code
(torchvision ``resnet.py``, DetNet_pytorch ``detnet_backbone.py``, SimpleBaseline
``pose_resnet.py`` + ``train.py``'s checkpoint dict), independently of hsrpose's
modules, and filled with random values.
"""

from __future__ import annotations

import math
import pickle
import random
from pathlib import Path

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from hsrpose.data.keypoints import COCO_KEYPOINTS, KeypointInfo
from hsrpose.errors import CheckpointError
from hsrpose.models import create_model
from hsrpose.models.weights import LoadReport, load_pose_model, load_weights, save_pose_model

Shapes = dict[str, tuple[int, ...]]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- key layouts of the foreign repositories -------------------------------------------------


def _bn(prefix: str, c: int, counter: bool = True) -> Shapes:
    out: Shapes = {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,), f"{prefix}.running_var": (c,)}
    if counter:
        out[f"{prefix}.num_batches_tracked"] = ()
    return out


def _resnet_trunk(blocks: tuple[int, ...], counter: bool = True) -> Shapes:
    """torchvision ResNet (Bottleneck, stride on conv2): conv1, bn1, layer1..N, downsample.{0,1}."""
    s: Shapes = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64, counter)}
    inplanes = 64
    for i, n in enumerate(blocks, start=1):
        planes = 64 * 2 ** (i - 1)
        for j in range(n):
            p = f"layer{i}.{j}"
            s[f"{p}.conv1.weight"] = (planes, inplanes if j == 0 else planes * 4, 1, 1)
            s.update(_bn(f"{p}.bn1", planes, counter))
            s[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            s.update(_bn(f"{p}.bn2", planes, counter))
            s[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            s.update(_bn(f"{p}.bn3", planes * 4, counter))
            if j == 0:
                s[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                s.update(_bn(f"{p}.downsample.1", planes * 4, counter))
        inplanes = planes * 4
    return s


def torchvision_resnet50_layout() -> Shapes:
    return {**_resnet_trunk((3, 4, 6, 3)), "fc.weight": (1000, 2048), "fc.bias": (1000,)}


def detnet59_layout() -> Shapes:
    """DetNet_pytorch detnet59: ResNet-50 stem + layer1..3, layer4/5 = BottleneckB (extra_conv) + 2 x BottleneckA,
    fc 1000x1024; saved by PyTorch 0.3/0.4, so no num_batches_tracked."""
    s = _resnet_trunk((3, 4, 6), counter=False)
    for stage in ("layer4", "layer5"):
        for j in range(3):
            p = f"{stage}.{j}"
            s[f"{p}.conv1.weight"] = (256, 1024, 1, 1)
            s.update(_bn(f"{p}.bn1", 256, False))
            s[f"{p}.conv2.weight"] = (256, 256, 3, 3)
            s.update(_bn(f"{p}.bn2", 256, False))
            s[f"{p}.conv3.weight"] = (1024, 256, 1, 1)
            s.update(_bn(f"{p}.bn3", 1024, False))
            if j == 0:
                s[f"{p}.extra_conv.0.weight"] = (1024, 1024, 1, 1)
                s.update(_bn(f"{p}.extra_conv.1", 1024, False))
    s["fc.weight"], s["fc.bias"] = (1000, 1024), (1000,)
    return s


def pose_resnet50_layout(k: int = 17) -> Shapes:
    """SimpleBaseline PoseResNet-50: ResNet trunk (no fc), deconv_layers (ConvTranspose2d weight is in x out x k x k)."""
    s = _resnet_trunk((3, 4, 6, 3))
    inplanes = 2048
    for i in range(3):
        s[f"deconv_layers.{3 * i}.weight"] = (inplanes, 256, 4, 4)
        s.update(_bn(f"deconv_layers.{3 * i + 1}", 256))
        inplanes = 256
    s["final_layer.weight"], s["final_layer.bias"] = (k, 256, 1, 1), (k,)
    return s


def random_state(shapes: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(1000, dtype=torch.long)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(("bn1.weight", "bn2.weight", "bn3.weight", "1.weight")) and len(shape) == 1:
            out[k] = torch.rand(shape, generator=g) * 0.5 + 0.25  # BN gamma: keep activations tame
        else:
            fan = math.prod(shape[1:]) if len(shape) > 1 else 1
            out[k] = torch.randn(shape, generator=g) / math.sqrt(fan) * 0.5
    return out


def assert_loaded(model: torch.nn.Module, state: dict[str, torch.Tensor], keys: list[str]) -> None:
    """Independent check: each listed model tensor equals the file's tensor."""
    msd = model.state_dict()
    assert keys, "nothing to compare"
    for k in keys:
        assert torch.equal(msd[k], state[k]), k


# --- files shared by several tests (written once; big models) ----------------------------------


@pytest.fixture(scope="module")
def tv_r50(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = random_state(torchvision_resnet50_layout(), seed=1)
    path = tmp_path_factory.mktemp("tv") / "resnet50-0676ba61.pth"
    torch.save(state, path)  # torchvision hub files are plain state dicts
    return path, state


@pytest.fixture(scope="module")
def detnet59(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = random_state(detnet59_layout(), seed=2)
    path = tmp_path_factory.mktemp("detnet") / "detnet59.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)  # the old (pre-1.6) file format
    return path, state


@pytest.fixture(scope="module")
def pose_r50() -> dict[str, torch.Tensor]:
    return random_state(pose_resnet50_layout(), seed=3)


# --- torchvision -------------------------------------------------------------------------------


def test_torchvision_resnet50_into_simplebaseline(tv_r50: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = tv_r50
    model = create_model("simplebaseline_res50_256x192")
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("deconv", "final"))}
    report = load_weights(model, path)
    assert isinstance(report, LoadReport) and report.format == "torchvision"
    assert set(report.unexpected) == {"fc.weight", "fc.bias"}
    assert set(report.missing) == set(head_before)
    assert_loaded(model, state, [k for k in state if not k.startswith("fc.")])
    for k, v in head_before.items():  # the head stays as initialised
        assert torch.equal(model.state_dict()[k], v)


def test_torchvision_resnet50_into_hsrnet_drops_stage5(tv_r50: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = tv_r50
    model = create_model("hsrnet59_256x192")
    report = load_weights(model, path, format="torchvision")
    assert set(report.unexpected) == {k for k in state if k.startswith(("fc.", "layer4."))}
    assert all(k.startswith(("layer4.", "layer5.", "deconv_layers.", "final_layer.")) for k in report.missing)
    assert_loaded(model, state, [k for k in state if k.startswith(("conv1", "bn1", "layer1", "layer2", "layer3"))])


def test_torchvision_output_equals_torchvision_model(tmp_path: Path) -> None:
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    ref = tvm.resnet50()
    with torch.no_grad():  # non-trivial BN statistics so that eval mode tests them
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "resnet50.pth"
    torch.save(ref.state_dict(), path)
    model = create_model("simplebaseline_res50_256x192")
    load_weights(model, path)
    ref.eval(), model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = ref.layer4(ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))))))
        assert torch.allclose(model.forward_features(x), feats, atol=1e-5)


def test_renamed_or_absent_key_fails_loudly(tmp_path: Path, tv_r50: tuple[Path, dict[str, torch.Tensor]]) -> None:
    _, state = tv_r50
    renamed = dict(state)
    renamed["layer2.1.conv_2.weight"] = renamed.pop("layer2.1.conv2.weight")
    torch.save(renamed, tmp_path / "renamed.pth")
    model = create_model("simplebaseline_res50_256x192")
    with pytest.raises(CheckpointError, match=r"layer2\.1\.conv_2\.weight"):
        load_weights(model, tmp_path / "renamed.pth", format="torchvision")

    absent = dict(state)
    del absent["layer3.2.bn1.running_var"]
    torch.save(absent, tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match=r"missing.*layer3\.2\.bn1\.running_var"):
        load_weights(model, tmp_path / "absent.pth", format="torchvision")


# --- DetNet ------------------------------------------------------------------------------------


def _reference_detnet_stage(sd: dict[str, torch.Tensor], stage: str, x: torch.Tensor) -> torch.Tensor:
    """DetNet_pytorch's BottleneckB/A forward written with torch.nn.functional from the file's tensors (eval BN)."""

    def bn(p: str, t: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(t, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"], False, 0.0, 1e-5)

    for j in range(3):
        p = f"{stage}.{j}"
        out = F.relu(bn(f"{p}.bn1", F.conv2d(x, sd[f"{p}.conv1.weight"])))
        out = F.relu(bn(f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], padding=2, dilation=2)))
        out = bn(f"{p}.bn3", F.conv2d(out, sd[f"{p}.conv3.weight"]))
        short = bn(f"{p}.extra_conv.1", F.conv2d(x, sd[f"{p}.extra_conv.0.weight"])) if j == 0 else x
        x = F.relu(out + short)
    return x


def test_detnet59_into_hsrnet59(detnet59: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = detnet59
    model = create_model("hsrnet59_256x192")
    report = load_weights(model, path)
    assert report.format == "detnet"
    assert set(report.unexpected) == {"fc.weight", "fc.bias"}
    assert all(k.startswith(("deconv_layers.", "final_layer.")) or k.endswith("num_batches_tracked") for k in report.missing)
    assert_loaded(model, state, [k for k in state if not k.startswith("fc.")])
    model.eval()
    x = torch.randn(1, 1024, 4, 3)
    with torch.no_grad():
        ref = _reference_detnet_stage(state, "layer5", _reference_detnet_stage(state, "layer4", x))
        assert torch.allclose(model.layer5(model.layer4(x)), ref, atol=1e-5)


def test_detnet59_into_hsr_msnet59_keeps_msnet_parts_fresh(detnet59: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = detnet59
    torch.manual_seed(0)
    model = create_model("hsr_msnet59_256x192")
    fresh_before = {k: v.clone() for k, v in model.state_dict().items() if ".convs." in k or ".se." in k}
    report = load_weights(model, path, format="detnet")
    dropped = {k for k in state if k.startswith("fc.") or (k.startswith(("layer4.", "layer5.")) and (".conv2." in k or ".bn2." in k))}
    assert set(report.unexpected) == dropped
    assert set(fresh_before) <= set(report.missing)
    assert_loaded(model, state, [k for k in state if k not in dropped])
    for k, v in fresh_before.items():
        assert torch.equal(model.state_dict()[k], v)


# --- SimpleBaseline / HRNet pose_resnet --------------------------------------------------------


def test_simplebaseline_checkpoint_with_module_prefix_and_plain(tmp_path: Path, pose_r50: dict[str, torch.Tensor]) -> None:
    # lib/utils/utils.py save_checkpoint: the model is wrapped in DataParallel during training.
    ckpt = {
        "epoch": 140,
        "model": "pose_resnet",
        "state_dict": {"module." + k: v for k, v in pose_r50.items()},
        "perf": 0.704,
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-5, "params": [0, 1]}]},
    }
    torch.save(ckpt, tmp_path / "checkpoint.pth.tar")
    torch.save(pose_r50, tmp_path / "final_state.pth.tar")  # model.module.state_dict()
    for name in ("checkpoint.pth.tar", "final_state.pth.tar"):
        model = create_model("simplebaseline_res50_256x192")
        report = load_weights(model, tmp_path / name)
        assert report.format == "pose_resnet"
        assert report.missing == () and report.unexpected == ()
        assert_loaded(model, pose_r50, list(pose_r50))


def test_wrong_shape_names_key_and_both_shapes(tmp_path: Path, pose_r50: dict[str, torch.Tensor]) -> None:
    bad = dict(pose_r50)
    bad["final_layer.weight"] = torch.zeros(16, 256, 1, 1)
    bad["final_layer.bias"] = torch.zeros(16)
    torch.save({"state_dict": bad}, tmp_path / "k16.pth.tar")
    model = create_model("simplebaseline_res50_256x192", num_keypoints=17)
    before = model.final_layer.weight.clone()
    with pytest.raises(CheckpointError, match=r"final_layer\.\w+: checkpoint \(16.*\) vs model \(17"):
        load_weights(model, tmp_path / "k16.pth.tar")
    assert torch.equal(model.final_layer.weight, before)  # nothing half-loaded


def test_pose_resnet_renamed_key_fails(tmp_path: Path, pose_r50: dict[str, torch.Tensor]) -> None:
    bad = dict(pose_r50)
    bad["deconv_layer.0.weight"] = bad.pop("deconv_layers.0.weight")
    torch.save(bad, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError, match=r"deconv_layer\.0\.weight"):
        load_weights(create_model("simplebaseline_res50_256x192"), tmp_path / "renamed.pth", format="pose_resnet")


# --- files that are not checkpoints ------------------------------------------------------------


class NotATensor:  # a class a weights_only unpickler must refuse
    pass


def test_not_a_checkpoint_gives_clear_errors(tmp_path: Path) -> None:
    model = create_model("hsrnet_tiny_128x96")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="notes.txt: not a checkpoint"):
        load_weights(model, tmp_path / "notes.txt")
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(CheckpointError, match="broken.pth: not a readable checkpoint"):
        load_weights(model, tmp_path / "broken.pth")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"x": 1}, protocol=2))  # a pickle, but not torch's
    with pytest.raises(CheckpointError, match="plain.pkl: not a readable checkpoint"):
        load_weights(model, tmp_path / "plain.pkl")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_weights(model, tmp_path / "list.pth")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="cannot tell the checkpoint format"):
        load_weights(model, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_weights(model, tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_weights(model, tmp_path / "other.pth", format="caffe")


def test_pickle_with_custom_class_is_refused_unless_trusted(tmp_path: Path) -> None:
    model = create_model("hsrnet_tiny_128x96")
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"state_dict": sd, "extra": NotATensor()}, tmp_path / "custom.pth")
    with pytest.raises(CheckpointError, match=r"refused to load: it contains .*NotATensor.*trust_pickle=True"):
        load_weights(model, tmp_path / "custom.pth")
    report = load_weights(model, tmp_path / "custom.pth", trust_pickle=True)
    assert report.format == "pose_resnet" and report.missing == ()


# --- hsrpose's own files -----------------------------------------------------------------------


CUSTOM_KP = KeypointInfo(
    names=("a", "b", "c", "d", "e"), flip_pairs=((1, 2),), skeleton=((0, 1), (1, 3)), sigmas=(0.05,) * 5
)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_hsrpose_weights_round_trip(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(0)
    model = create_model("hsr_msnet_tiny_128x96", num_keypoints=5, se=False)
    with torch.no_grad():  # non-default BN statistics must survive too
        model.bn1.running_mean.uniform_(-1, 1)
    model.eval()
    path = tmp_path / f"w{suffix}"
    save_pose_model(model, path, "hsr_msnet_tiny_128x96", CUSTOM_KP, model_kwargs={"se": False})
    loaded, meta = load_pose_model(path)
    assert meta.preset == "hsr_msnet_tiny_128x96" and meta.num_keypoints == 5
    assert meta.input_hw == (128, 96) and meta.heatmap_hw == (32, 24)
    assert meta.keypoint_info == CUSTOM_KP and meta.model_kwargs == {"se": False}
    assert not loaded.training
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    other = create_model("hsr_msnet_tiny_128x96", num_keypoints=5, se=False)
    assert load_weights(other, path).format == "hsrpose"
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k


def test_training_checkpoint_is_read_and_extra_keys_tolerated(tmp_path: Path) -> None:
    model = create_model("hsrnet_tiny_128x96").eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 128, 96)).mean().backward()
    opt.step()
    ckpt = {
        "format": "hsrpose-checkpoint",
        "hsrpose_version": "0.1.0",
        "preset": "hsrnet_tiny_128x96",
        "model_kwargs": {},
        "num_keypoints": 17,
        "input_hw": [128, 96],
        "keypoint_info": COCO_KEYPOINTS.to_dict(),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "step": 120,
        "best_ap": 0.1,
        "something_new": {"a": 1},
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    torch.save(ckpt, tmp_path / "last.pth")
    loaded, meta = load_pose_model(tmp_path / "last.pth")
    assert meta.format == "hsrpose-checkpoint" and meta.keypoint_info == COCO_KEYPOINTS
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_hsrpose_file_for_another_model_fails(tmp_path: Path) -> None:
    model = create_model("hsrnet_tiny_128x96")
    save_pose_model(model, tmp_path / "w.safetensors", "hsrnet_tiny_128x96", COCO_KEYPOINTS)
    with pytest.raises(CheckpointError, match="not in the model"):
        load_weights(create_model("hsr_msnet_tiny_128x96"), tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match=r"shape mismatch at final_layer\.weight"):
        load_weights(create_model("hsrnet_tiny_128x96", num_keypoints=5), tmp_path / "w.safetensors")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="not an hsrpose"):
        load_pose_model(tmp_path / "foreign.pth")
