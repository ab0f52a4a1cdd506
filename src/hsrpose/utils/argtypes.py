"""Command-line value checks shared by the verbs: numbers with a range, torch devices.

``parser.add_argument("--batch-size", type=int_range(1))``: argparse then prints
``argument --batch-size: must be >= 1, got 0`` and exits with code 2, like any
other usage error.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

from hsrpose.errors import HsrposeError

__all__ = ["int_range", "float_range", "check_device"]


def _bounds(lo: float | None, hi: float | None) -> str:
    return " and ".join(t for t in (f">= {lo:g}" if lo is not None else "", f"<= {hi:g}" if hi is not None else "") if t)


def _ranged(convert: Callable[[str], float], kind: str, lo: float | None, hi: float | None) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_bounds(lo, hi) or 'finite'}, got {text}")
        return value

    parse.__name__ = kind.split()[-1]  # argparse names the type in some messages
    return parse


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse ``type``: an integer in ``[lo, hi]`` (either end open when None)."""
    return _ranged(int, "an integer", lo, hi)


def float_range(lo: float | None = None, hi: float | None = None) -> Callable[[str], float]:
    """argparse ``type``: a finite number in ``[lo, hi]`` (either end open when None)."""
    return _ranged(float, "a number", lo, hi)


def check_device(spec: str, what: str = "--device", allow_auto: bool = True) -> None:
    """Raise :class:`HsrposeError` unless ``spec`` names a torch device that exists here.

    ``auto`` (when allowed), ``cpu``, ``cuda``/``cuda:N`` (needs CUDA and N < the GPU
    count), ``mps`` (needs Apple's Metal backend); other torch device types are only
    parsed.
    """
    import torch

    if allow_auto and spec == "auto":
        return
    try:
        dev = torch.device(spec)
    except (RuntimeError, ValueError, TypeError):
        choices = "auto, cpu, cuda, cuda:1, mps" if allow_auto else "cpu, cuda, cuda:1, mps"
        raise HsrposeError(f"{what} {spec!r} is not a device; use one of {choices}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise HsrposeError(f"{what} {spec}: CUDA is not available here (no GPU or a CPU-only torch); use {what} cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise HsrposeError(f"{what} {spec}: this machine has {count} GPU(s), cuda:0..cuda:{count - 1}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise HsrposeError(f"{what} {spec}: Apple MPS is not available here; use {what} cpu")
