"""The shared training step (engine/step.py) and the GPU benchmark that times it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from hsrpose.engine.config import OptimConfig
from hsrpose.engine.step import SpeedOptions, TrainStep, build_optimizer, compile_model
from hsrpose.engine.train import joints_mse_loss
from hsrpose.errors import HsrposeError
from hsrpose.models import create_model

REPO = Path(__file__).resolve().parents[1]


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 128, 96, generator=g), torch.rand(2, 17, 32, 24, generator=g), torch.ones(2, 17)


def test_train_step_is_forward_loss_backward_clip_adam_ema(one_torch_thread: None) -> None:
    """Two steps of TrainStep equal the same steps written out by hand, bit for bit (CPU, fp32)."""
    torch.manual_seed(0)
    a = create_model("hsrnet_tiny_128x96").train()
    b = create_model("hsrnet_tiny_128x96").train()
    b.load_state_dict(a.state_dict())
    o = OptimConfig(lr=1e-3)
    ema = torch.optim.swa_utils.AveragedModel(a, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.5), use_buffers=True)
    step = TrainStep(a, a, build_optimizer(o, a), joints_mse_loss, ema=ema, grad_clip=0.01)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-3)
    for seed in (1, 2):
        images, target, weight = _batch(seed)
        loss_a = step(images, target, weight)
        loss_b = joints_mse_loss(b(images).float(), target, weight)
        opt_b.zero_grad(set_to_none=True)
        loss_b.backward()
        torch.nn.utils.clip_grad_norm_(b.parameters(), 0.01)
        opt_b.step()
        assert not loss_a.requires_grad and torch.equal(loss_a, loss_b.detach())
    for k, v in b.state_dict().items():
        assert torch.equal(a.state_dict()[k], v), k
    assert int(ema.n_averaged) == 2  # the EMA was updated once per step
    ema_w = next(ema.module.parameters())
    assert not torch.equal(ema_w, next(a.parameters()))  # an average (decay 0.5), not a copy


def test_speed_options_are_named_and_checked() -> None:
    s = SpeedOptions(amp="bf16", channels_last=True, compile=True, cuda_graphs=True)
    assert s.label() == "bf16 channels_last compile cuda_graphs"
    assert SpeedOptions().label() == "fp32"
    with pytest.raises(HsrposeError, match="cuda_graphs=true needs compile=true"):
        SpeedOptions(cuda_graphs=True)
    with pytest.raises(HsrposeError, match="amp"):
        SpeedOptions(amp="fp8")
    model = torch.nn.Linear(2, 2)
    assert compile_model(model, SpeedOptions()) is model
    # fused Adam needs CUDA parameters: on CPU the plain implementation is built, not an error
    opt = build_optimizer(OptimConfig(), model, fused=True)
    assert isinstance(opt, torch.optim.Adam) and not opt.defaults.get("fused")


def test_benchmark_spec_peaks_and_config_names() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_throughput as gt

    assert gt.spec_peak_flops("NVIDIA H100 80GB HBM3") == 989e12  # H100 SXM bf16 dense
    assert gt.spec_peak_flops("NVIDIA H200") == 989e12
    assert gt.spec_peak_flops("NVIDIA H100 PCIe") == 756e12
    assert gt.spec_peak_flops("CPU") is None
    cfg = gt.parse_config("bf16,channels_last,fused_adam,tf32,batch=256", 32)
    assert cfg.batch == 256 and cfg.speed == SpeedOptions(amp="bf16", channels_last=True, fused_adam=True, tf32=True)
    with pytest.raises(SystemExit, match="unknown engine option 'fast'"):
        gt.parse_config("bf16,fast", 32)


def test_benchmark_times_the_engine_step_and_reports_both_mfus(tmp_path: Path, one_torch_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark's trainer calls TrainStep (counted here), syncs losses like training, writes JSON + Markdown."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_throughput as gt
    import hsrpose.engine.step as step_mod

    calls = {"n": 0}
    real_call = step_mod.TrainStep.__call__

    def counting(self, *args):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return real_call(self, *args)

    monkeypatch.setattr(step_mod.TrainStep, "__call__", counting)
    out_json, out_md = tmp_path / "r.json", tmp_path / "r.md"
    rc = gt.main(["--device", "cpu", "--models", "hsrnet_tiny_128x96", "--configs", "fp32;fp32,channels_last",
                  "--batch", "2", "--infer-batch", "2", "--steps", "2", "--warmup", "1", "--skip", "pipeline",
                  "--json-out", str(out_json), "--md-out", str(out_md)])  # fmt: skip
    assert rc == 0
    assert calls["n"] == 2 * 3  # two configs x (1 warm-up + 2 timed) steps
    res = json.loads(out_json.read_text())
    parts = [(r["config"], r["part"]) for r in res["rows"]]
    assert parts == [("fp32 batch 2", "train step"), ("bf16 batch 2", "inference bf16"),
                     ("fp32 channels_last batch 2", "train step"), ("bf16 channels_last batch 2", "inference bf16")]  # fmt: skip
    from hsrpose.models.costs import model_cost

    cost = model_cost("hsrnet_tiny_128x96")
    train_row = res["rows"][0]
    assert train_row["flops_per_sample"] == 3 * 2 * cost.macs
    assert train_row["mfu_measured"] == pytest.approx(train_row["rate"] * train_row["flops_per_sample"] / res["matmul_bf16_flops_per_s"])
    assert train_row["mfu_spec"] is None  # no spec peak for a CPU
    md = out_md.read_text()
    assert "MFU vs measured matmul" in md and "MFU vs spec peak" in md and "| hsrnet_tiny_128x96 | fp32 batch 2 | train step |" in md
