"""The settings that turn a model's heatmaps into keypoints; they travel with the weights.

A model is trained with one heatmap sigma, one codec (``standard`` = SimpleBaseline/HRNet,
``dark`` = DARK), one box padding and crop aspect ratio, and validated with one flip-test
shift. Evaluating or deploying it with other values silently changes its numbers, so
:class:`DecodeSettings` is stored in hsrpose weights, training checkpoints and ONNX
metadata (key ``decode``), and ``eval``, ``predict``, ``export`` and ``PoseEstimator``
read it back. An explicit option overrides a stored value; a file written before these
settings existed loads with the protocol defaults and a note.

No torch and no cv2 here: ONNX deployments import this too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from hsrpose.errors import CheckpointError

__all__ = ["DECODE_KEY", "DecodeSettings", "add_decode_arguments", "decode_overrides", "resolve_decode"]

# Key under which the settings are stored (a dict in .pth files, JSON in safetensors/ONNX metadata).
DECODE_KEY = "decode"

Decoder = Literal["standard", "dark"]


@dataclass(frozen=True)
class DecodeSettings:
    """How heatmaps become keypoints, and how boxes become crops; the defaults are protocol.md's.

    Attributes:
        sigma: Gaussian sigma of the training targets in heatmap px (2); DARK's blur uses it.
        decoder: ``standard`` (argmax + 0.25 px toward the higher neighbour, HRNet
            ``get_final_preds``) or ``dark`` (Taylor refinement, DARK/mmpose ``unbiased``).
        box_padding: box enlargement after the aspect fix (1.25, HRNet ``_xywh2cs``).
        aspect_wh: crop aspect ratio w/h the boxes are extended to; None = the model input's
            (``input_w / input_h``, what HRNet's ``aspect_ratio`` is).
        flip_shift: shift the flipped-back heatmaps one pixel right in the flip test
            (HRNet ``TEST.SHIFT_HEATMAP: true``).
    """

    sigma: float = 2.0
    decoder: Decoder = "standard"
    box_padding: float = 1.25
    aspect_wh: float | None = None
    flip_shift: bool = True

    def __post_init__(self) -> None:
        if self.decoder not in ("standard", "dark"):
            raise ValueError(f"decoder must be 'standard' or 'dark', got {self.decoder!r}")
        if not float(self.sigma) > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma!r}")
        if not float(self.box_padding) > 0:
            raise ValueError(f"box_padding must be > 0, got {self.box_padding!r}")
        if self.aspect_wh is not None and not float(self.aspect_wh) > 0:
            raise ValueError(f"aspect_wh must be > 0, got {self.aspect_wh!r}")

    @property
    def dark(self) -> bool:
        return self.decoder == "dark"

    def aspect_for(self, input_hw: tuple[int, int]) -> float:
        """The crop aspect ratio w/h for a model of input ``(H, W)``."""
        return float(self.aspect_wh) if self.aspect_wh is not None else input_hw[1] / input_hw[0]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<settings>") -> "DecodeSettings":
        """Settings from a stored dict; missing keys take the defaults, unknown keys are refused."""
        if not isinstance(d, Mapping):
            raise CheckpointError(f"{source}: '{DECODE_KEY}' metadata must be an object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CheckpointError(f"{source}: '{DECODE_KEY}' metadata has unknown field(s) {unknown}")
        try:
            return cls(**{k: d[k] for k in names if k in d})
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{source}: '{DECODE_KEY}' metadata: {e}") from None

    @classmethod
    def from_metadata(cls, info: Mapping[str, Any], source: str = "<file>") -> tuple["DecodeSettings", str | None]:
        """``(settings, note)`` from a file's metadata dict; ``note`` is set when the file stores none.

        ``info[DECODE_KEY]`` may be a dict or its JSON text (ONNX / safetensors metadata).
        """
        raw = info.get(DECODE_KEY)
        if raw is None:
            default = cls()
            return default, f"note: {source} stores no decode settings (written before they were saved); using the protocol defaults: {default.describe()}"
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{source}: '{DECODE_KEY}' metadata is not JSON ({e})") from None
        return cls.from_dict(raw, source), None

    def replace(self, **overrides: Any) -> "DecodeSettings":
        """A copy with the given fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def describe(self, input_hw: tuple[int, int] | None = None) -> str:
        """One line, e.g. ``decoder standard, sigma 2, box padding 1.25, aspect 0.75, flip shift on``."""
        aspect = f"{self.aspect_for(input_hw):g}" if input_hw is not None else (f"{self.aspect_wh:g}" if self.aspect_wh else "input's")
        return (
            f"decoder {self.decoder}, sigma {self.sigma:g}, box padding {self.box_padding:g}, "
            f"aspect {aspect}, flip shift {'on' if self.flip_shift else 'off'}"
        )

    def codec(self, input_hw: tuple[int, int], heatmap_hw: tuple[int, int]) -> Any:
        """The :class:`~hsrpose.codec.HeatmapCodec` of these settings for a model's sizes."""
        from hsrpose.codec import HeatmapCodec

        return HeatmapCodec(input_hw, heatmap_hw, sigma=self.sigma, dark=self.dark)


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """The override options every command that decodes shares (default: what the weights store)."""
    g = parser.add_argument_group("decode settings (default: the values stored in the weights)")
    g.add_argument("--decoder", choices=("standard", "dark"), default=None, help="heatmap decoder")
    g.add_argument("--sigma", type=float, default=None, help="heatmap sigma in heatmap px (DARK's blur uses it)")
    g.add_argument("--box-padding", type=float, default=None, help="box enlargement (protocol 1.25)")
    g.add_argument("--aspect-ratio", type=float, default=None, help="crop aspect ratio w/h (default: the model input's)")
    g.add_argument("--flip-shift", choices=("on", "off"), default=None, help="one-pixel shift of the flipped heatmaps")


def decode_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The decode options given on the command line, as :class:`DecodeSettings` fields."""
    out: dict[str, Any] = {
        "decoder": getattr(args, "decoder", None),
        "sigma": getattr(args, "sigma", None),
        "box_padding": getattr(args, "box_padding", None),
        "aspect_wh": getattr(args, "aspect_ratio", None),
    }
    shift = getattr(args, "flip_shift", None)
    out["flip_shift"] = None if shift is None else shift == "on"
    return {k: v for k, v in out.items() if v is not None}


def resolve_decode(stored: DecodeSettings, overrides: Mapping[str, Any]) -> DecodeSettings:
    """``stored`` with the explicit ``overrides`` applied; a bad value raises HsrposeError."""
    try:
        return stored.replace(**dict(overrides))
    except ValueError as e:
        from hsrpose.errors import HsrposeError

        raise HsrposeError(f"decode settings: {e}") from None
