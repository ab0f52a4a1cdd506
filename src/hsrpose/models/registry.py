"""Named model presets: a plain dict from name to :class:`Preset`, filled by ``@register_preset``.

A preset is one builder function (timm's ``resnet50()`` style) plus the facts a
user or tool needs without building it: paper row, input and heatmap sizes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from hsrpose.errors import HsrposeError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Preset", "UnknownPresetError", "register_preset", "get_preset", "list_presets", "create_model"]


class UnknownPresetError(HsrposeError, KeyError):
    """A model name that is not registered (the message lists the near misses)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


@dataclass(frozen=True)
class Preset:
    """A named model.

    Attributes:
        name: registry name, e.g. ``hsrnet59_256x192``.
        paper_row: row of the paper's tables (``"T1 g / T2 a"``), ``"-"`` for non-paper presets.
        input_hw: network input (height, width) in pixels.
        heatmap_hw: output heatmap (height, width) = input_hw / 4.
        description: one line: backbone, head and input.
        backbone: backbone name as the paper writes it (``"HSRNet-59"``).
        num_deconv: deconv layers of the head.
        deconv_kernel: kernel size of those deconvs.
        builder: ``builder(num_keypoints=17, **kwargs) -> PoseNet``.
    """

    name: str
    paper_row: str
    input_hw: tuple[int, int]
    heatmap_hw: tuple[int, int]
    description: str
    backbone: str
    num_deconv: int
    deconv_kernel: int
    builder: Callable[..., "nn.Module"]


_PRESETS: dict[str, Preset] = {}

F = TypeVar("F", bound=Callable[..., Any])


def register_preset(
    *,
    paper_row: str,
    input_hw: tuple[int, int],
    backbone: str,
    num_deconv: int,
    deconv_kernel: int,
    description: str,
) -> Callable[[F], F]:
    """Decorator: register the builder under its function name. A name already taken is an error."""

    def deco(fn: F) -> F:
        name = fn.__name__
        if name in _PRESETS:
            raise ValueError(f"model preset {name!r} is already registered")
        h, w = input_hw
        if h % 4 or w % 4:
            raise ValueError(f"preset {name!r}: input size {input_hw} is not a multiple of 4")
        _PRESETS[name] = Preset(
            name=name,
            paper_row=paper_row,
            input_hw=(h, w),
            heatmap_hw=(h // 4, w // 4),
            description=description,
            backbone=backbone,
            num_deconv=num_deconv,
            deconv_kernel=deconv_kernel,
            builder=fn,
        )
        return fn

    return deco


def list_presets() -> list[str]:
    """Every registered name, in registration order (paper rows first, then the small presets)."""
    return list(_PRESETS)


def get_preset(name: str) -> Preset:
    try:
        return _PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_PRESETS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownPresetError(f"unknown model preset {name!r}.{hint} Run 'hsrpose models' for the list.") from None


def create_model(name: str, num_keypoints: int = 17, **kwargs: Any) -> "nn.Module":
    """Build preset ``name`` with ``num_keypoints`` heatmap channels.

    ``kwargs`` go to the builder (e.g. ``se=False`` for HSR-MSNet); the
    arguments that define the preset (depth, head, input size) cannot be changed.
    """
    return get_preset(name).builder(num_keypoints=num_keypoints, **kwargs)
