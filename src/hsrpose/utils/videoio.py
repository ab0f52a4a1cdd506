"""Writing a video file all-or-nothing: readers see the complete file or none."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import numpy as np

__all__ = ["AtomicVideoWriter"]


class AtomicVideoWriter:
    """An mp4v ``cv2.VideoWriter`` opened at the first frame (its size), writing to a hidden
    ``.<stem>.partial.mp4`` beside ``path`` (OpenCV picks the container from the extension)
    that is renamed over ``path`` when the ``with`` block ends without an exception and
    deleted otherwise. No frame written: no file.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        self._writer = None
        self.frames = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        import cv2

        from hsrpose.errors import HsrposeError

        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = frame_bgr.shape[:2]
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise HsrposeError(f"{self.tmp}: OpenCV cannot write an mp4v video here")
        self._writer.write(frame_bgr)
        self.frames += 1

    def __enter__(self) -> "AtomicVideoWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._writer is None:
            return
        self._writer.release()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
