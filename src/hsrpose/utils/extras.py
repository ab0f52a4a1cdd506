"""Optional dependencies: import one, or fail with the extra that installs it.

The extras are those of ``pyproject.toml`` (``[project.optional-dependencies]``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from hsrpose.errors import HsrposeError

__all__ = ["EXTRA_OF_MODULE", "MissingExtraError", "require_extra", "install_hint"]

# top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF_MODULE: dict[str, str] = {
    "onnx": "export",
    "onnxruntime": "export",
    "tensorboard": "tensorboard",
    "ultralytics": "yolo",
}


class MissingExtraError(HsrposeError):
    """An optional package is not installed; the message names the pip command."""


def install_hint(module: str, extra: str | None = None) -> str:
    """``pip install -e ".[export]"`` for a module of an extra, else ``pip install <module>``."""
    extra = extra or EXTRA_OF_MODULE.get(module.split(".")[0])
    return f'pip install -e ".[{extra}]"' if extra else f"pip install {module.split('.')[0]}"


def require_extra(module: str, extra: str | None = None, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install.

    ``purpose`` says what needs it ("ONNX export"); ``extra`` defaults to
    :data:`EXTRA_OF_MODULE`. Only a missing module is turned into the message: a module
    that is installed but fails while importing raises its own error.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or module.split(".")[0] != e.name.split(".")[0]:
            raise  # the module exists; something it imports is missing
        what = f"{purpose} needs" if purpose else "this needs"
        raise MissingExtraError(
            f"{what} the Python package '{module}', which is not installed: run {install_hint(module, extra)} "
            f"(or pip install {module.split('.')[0]})."
        ) from None
