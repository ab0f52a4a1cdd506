"""Pause Python's cyclic garbage collector while a large batch of acyclic objects is built.

Each 700 new container objects (lists, dicts) start a young-generation collection, and the
older generations are scanned ever more often as the batch grows. Turning 100k boxes into
COCO result dicts (one list of 51 floats each) spent more time in those collections than in
building the objects (``benchmarks/postprocess_speed.py``). Reference counting still frees
everything as usual; only the cycle search waits until the block ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC inside the block; restore its previous state after (nesting is safe)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
