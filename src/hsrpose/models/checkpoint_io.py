"""Reading checkpoint files safely: torch.save files (``weights_only``) and safetensors, never running code from them.

``read_checkpoint_file`` tells the two apart by their first bytes (no suffix guessing);
an old pickle that the safe unpickler refuses loads only with ``trust_pickle=True``.
"""

from __future__ import annotations

import pickle
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from hsrpose.errors import CheckpointError

__all__ = ["read_checkpoint_file"]

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = 0x80  # first byte of a pickle of protocol >= 2 (torch's legacy format)


def read_checkpoint_file(path: str | Path, trust_pickle: bool = False) -> tuple[Any, dict[str, str] | None]:
    """Read a torch.save or safetensors file without running code from it.

    Returns ``(obj, safetensors_metadata)``: ``obj`` is what torch.save wrote
    (metadata None), or the tensor dict of a safetensors file (metadata its header
    ``__metadata__``, possibly empty).
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such file")
    with open(p, "rb") as f:
        head = f.read(9)
    # A pickle starts with PROTO (0x80) and the protocol number (2..5); a safetensors file whose
    # header length ends in byte 0x80 starts with 0x80 too, so the second byte decides.
    if head[:4] == _ZIP_MAGIC or (len(head) > 1 and head[0] == _PICKLE_PROTO and 2 <= head[1] <= 5):
        try:
            with _numpy_array_globals(), warnings.catch_warnings():
                # a non-torch pickle makes torch warn about its protocol before failing; the error says enough
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                return torch.load(p, map_location="cpu", weights_only=True), None
        except pickle.UnpicklingError as e:
            msg = str(e)
            if "Weights only load failed" not in msg:
                raise CheckpointError(f"{p}: not a readable checkpoint ({_first_line(msg)})") from None
            m = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
            if m is None:  # the safe unpickler failed on the data itself, not on a class it refuses
                w = re.search(r"WeightsUnpickler error:\s*([^\n]+)", msg)
                detail = w.group(1) if w else _first_line(msg)
                raise CheckpointError(f"{p}: not a readable checkpoint ({_first_line(detail)})") from None
            if not trust_pickle:
                what = f"it contains {m.group(1)}"
                raise CheckpointError(
                    f"{p}: refused to load: {what}, and unpickling it could run code from the file. "
                    "If you trust where the file came from, load it with trust_pickle=True (CLI: --trust-pickle)."
                ) from None
        except Exception as e:  # noqa: BLE001 - torch raises RuntimeError/EOFError/... on corrupt files
            raise CheckpointError(
                f"{p}: not a readable checkpoint; the file may be truncated or damaged ({type(e).__name__}: {_first_line(str(e))})"
            ) from None
        try:  # only reached with trust_pickle=True, after the safe load refused
            return torch.load(p, map_location="cpu", weights_only=False), None
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{p}: cannot unpickle ({type(e).__name__}: {_first_line(str(e))})") from None
    if _looks_like_safetensors(p, head):
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt", device="cpu") as sf:
                meta = dict(sf.metadata() or {})
                tensors = {k: sf.get_tensor(k) for k in sf.keys()}
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"{p}: broken safetensors file ({_first_line(str(e))})") from None
        return tensors, meta
    raise CheckpointError(f"{p}: not a checkpoint (neither a torch.save file nor a safetensors file)")


@contextmanager
def _numpy_array_globals() -> Iterator[None]:
    """Let the weights-only unpickler rebuild plain numpy arrays and scalars (e.g. a training
    checkpoint's ``np.random`` state). These globals only rebuild data from dtype + bytes;
    torch's docs list them as safe to allow. Anything else stays refused."""
    import numpy as np
    import torch

    try:
        from numpy._core.multiarray import _reconstruct, scalar  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    allowed: list[Any] = [_reconstruct, scalar, np.ndarray, np.dtype]
    allowed += [type(np.dtype(t)) for t in (np.bool_, np.uint8, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64)]
    ctx = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    if ctx is None:
        yield
        return
    with ctx(allowed):
        yield


def _first_line(msg: str, limit: int = 200) -> str:
    """The first line of a library's error message, shortened to whole sentences (a message
    cut mid-sentence reads as if it were the whole reason)."""
    text = msg.strip().splitlines()[0].strip() if msg.strip() else ""
    if not text:
        return "no message"
    if len(text) <= limit:
        return text
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", text[: limit + 1])]
    if ends:
        return text[: ends[-1]]
    return text[:limit].rsplit(" ", 1)[0] + " (...)"


def _looks_like_safetensors(p: Path, head: bytes) -> bool:
    """safetensors: 8-byte little-endian header length, then a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= p.stat().st_size - 8
