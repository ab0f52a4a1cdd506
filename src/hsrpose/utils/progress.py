"""Progress for long loops: a tqdm bar on a terminal, plain lines everywhere else.

tqdm's bar is made of carriage returns: in a log file, CI output or ``nohup.out``
it is either switched off (``disable=None``: silent for hours) or one endless
line. When stderr is not a terminal, :func:`progress` prints instead one ordinary
line every ``HSRPOSE_PROGRESS_INTERVAL`` seconds (default 30; 0 = after every
item) and one when the loop ends::

    predict: 120/500 img (24%), 3.1 img/s, 0:02:03 left
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator, TextIO

__all__ = ["progress", "LineProgress", "INTERVAL_ENV"]

INTERVAL_ENV = "HSRPOSE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class LineProgress:
    """The part of tqdm's interface hsrpose uses (iterate, ``update``, ``set_postfix``,
    ``close``, ``write``, context manager), written as plain lines to ``file``."""

    def __init__(
        self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "", unit: str = "it",
        initial: int = 0, file: TextIO | None = None, disable: bool = False, **_ignored: Any,
    ) -> None:  # fmt: skip
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.n = total, desc, unit, int(initial)
        self.file = file or sys.stderr
        self.disable = disable
        self.interval = _interval()
        self._start_n = self._emitted_n = self.n
        self._t0 = self._last = time.monotonic()
        self._postfix = ""
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def line(self) -> str:
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        dt = time.monotonic() - self._t0
        rate = (self.n - self._start_n) / dt if dt > 0 else 0.0
        left = f", {_hms((self.total - self.n) / rate)} left" if self.total and rate > 0 and self.n < self.total else ""
        post = f", {self._postfix}" if self._postfix else ""
        return f"{self.desc}: {done} {self.unit}{pct}, {rate:.3g} {self.unit}/s{left}{post}"

    def _emit(self) -> None:
        print(self.line(), file=self.file, flush=True)
        self._last, self._emitted_n = time.monotonic(), self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.disable and time.monotonic() - self._last >= self.interval:
            self._emit()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable and self.n != self._emitted_n:
            self._emit()  # the final count, whatever the interval

    @staticmethod
    def write(text: str, file: TextIO | None = None, **_ignored: Any) -> None:
        print(text, file=file or sys.stderr, flush=True)


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)`` when stderr is a terminal, else a :class:`LineProgress`.

    ``disable=True`` switches both off; ``disable=None`` (tqdm: off without a terminal)
    is treated as False here, since the point is progress in logs too.
    """
    stream = kwargs.get("file") or sys.stderr
    if kwargs.get("disable") is None:
        kwargs["disable"] = False
    if hasattr(stream, "isatty") and stream.isatty():
        from tqdm import tqdm

        return tqdm(iterable, **kwargs)
    return LineProgress(iterable, **kwargs)
