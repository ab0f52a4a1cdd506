"""Exceptions that carry a message meant for the user (the CLI prints them without a traceback)."""

from __future__ import annotations

__all__ = ["HsrposeError", "CheckpointError", "DataError", "ResultsError"]


class HsrposeError(Exception):
    """Base class: an error with a clear message naming the file, record or field at fault."""


class CheckpointError(HsrposeError):
    """A weights/checkpoint file that cannot be loaded (not a checkpoint, wrong keys or shapes, unsafe pickle)."""


class DataError(HsrposeError):
    """A malformed dataset or annotation file (the message gives the location of the problem)."""


class ResultsError(HsrposeError):
    """A malformed COCO results file (the message gives the entry index and the reason)."""
