"""Dotted overrides: type checks, nearest-key suggestions, YAML round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from hsrpose.overrides import (
    ConfigError, apply_overrides, bounded, config_to_dict, flat_keys, load_config, save_config, validate_ranges,
)


@dataclass
class Optim:
    lr: float = 1e-4
    milestones: tuple[int, ...] = (90, 120)
    name: Literal["adam", "sgd"] = "adam"


@dataclass
class Cfg:
    epochs: int = 140
    amp: bool = False
    out: Optional[str] = None
    input_hw: tuple[int, int] = (256, 192)
    optim: Optim = field(default_factory=Optim)


def test_overrides_parse_and_coerce() -> None:
    cfg = apply_overrides(Cfg(), ["epochs=3", "amp=true", "optim.lr=1e-3", "optim.milestones=[1, 2]", "input_hw=[128,96]"])
    assert cfg.epochs == 3 and cfg.amp is True
    assert cfg.optim.lr == pytest.approx(1e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.optim.milestones == (1, 2)
    assert cfg.input_hw == (128, 96)
    # the original is untouched
    assert Cfg().epochs == 140


def test_int_given_to_float_field_and_none_to_optional() -> None:
    cfg = apply_overrides(Cfg(), ["optim.lr=1", "out=runs/x"])
    assert cfg.optim.lr == 1.0 and cfg.out == "runs/x"
    assert apply_overrides(cfg, ["out=null"]).out is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("epochs=ten", "epochs: expected an integer"),
        ("epochs=1.5", "epochs: expected an integer"),
        ("amp=maybe", "amp: expected true/false"),
        ("optim.name=adamw", "not one of"),
        ("input_hw=[1,2,3]", "expected 2 values"),
        ("optim=3", "is a section"),
        ("epochs", "key=value"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Cfg(), [override])


def test_typo_suggests_nearest_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr'; did you mean 'optim.lr'\?"):
        apply_overrides(Cfg(), ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        apply_overrides(Cfg(), ["epoch=1"])
    # last component alone
    with pytest.raises(ConfigError, match="did you mean 'optim.milestones'"):
        apply_overrides(Cfg(), ["milestones=[1]"])


def test_flat_keys_and_yaml_round_trip(tmp_path: Path) -> None:
    assert flat_keys(Cfg()) == ["epochs", "amp", "out", "input_hw", "optim.lr", "optim.milestones", "optim.name"]
    cfg = apply_overrides(Cfg(), ["optim.lr=0.5", "input_hw=[384,288]"])
    save_config(cfg, tmp_path / "c.yaml")
    back = load_config(Cfg, tmp_path / "c.yaml")
    assert back == cfg
    assert config_to_dict(back)["optim"]["milestones"] == [90, 120]


def test_bad_yaml_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  lr: fast\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: optim.lr: expected a number"):
        load_config(Cfg, p)


# ---- ranges (issue 15): bounded fields, checked by apply_overrides with the dotted key


@dataclass
class Ranged:
    batch_size: int = bounded(32, ge=1)
    prob: float = bounded(0.5, ge=0, le=1)
    lr: float = bounded(1e-3, gt=0)
    ids: tuple[int, ...] = bounded((0, 1), ge=0)
    optional: Optional[float] = bounded(None, gt=0)


@dataclass
class Outer:
    inner: Ranged = field(default_factory=Ranged)


@pytest.mark.parametrize(
    "override, message",
    [
        ("inner.batch_size=0", "inner.batch_size=0 is out of range: must be >= 1"),
        ("inner.prob=1.5", "inner.prob=1.5 is out of range: must be >= 0 and <= 1"),
        ("inner.lr=0", "inner.lr=0.0 is out of range: must be > 0"),
        ("inner.lr=.nan", "inner.lr=nan is out of range: must be > 0"),
        ("inner.ids=[0, -2]", "inner.ids=[0, -2] is out of range: each value must be >= 0"),
        ("inner.optional=-1", "inner.optional=-1.0 is out of range: must be > 0"),
    ],
)
def test_out_of_range_override_names_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(Outer(), [override])
    assert str(info.value) == message


def test_in_range_overrides_and_unset_optional_pass() -> None:
    cfg = apply_overrides(Outer(), ["inner.batch_size=1", "inner.prob=1", "inner.ids=[]", "inner.optional=null"])
    assert (cfg.inner.batch_size, cfg.inner.prob, cfg.inner.ids, cfg.inner.optional) == (1, 1.0, (), None)


def test_every_shipped_default_is_in_range() -> None:
    from hsrpose.engine.config import TrainConfig
    from hsrpose.engine.eval_config import EvalConfig

    validate_ranges(TrainConfig())
    validate_ranges(EvalConfig())
