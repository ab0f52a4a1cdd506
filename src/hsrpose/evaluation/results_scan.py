"""The raw-byte check of a COCO keypoint results file: does every entry have a ``keypoints``
array of exactly L numbers? (hotcoco, which parses the file, scores a short, long, empty or
missing array without a word.)

Standard library only (``os``, ``re``, ``sys``): :class:`hsrpose.evaluation.fast_score.ResultsScan`
runs this file as a script in a child process (``python -I -S results_scan.py FILE`` prints
``[entries, length]`` or ``null``), where every import is paid on each ``hsrpose score``.
"""

from __future__ import annotations

import os
import re
import sys

__all__ = ["Verdict", "scan_results_file"]

Verdict = tuple[int, int] | None  # (entries, keypoints length) proven, or None: not proven

# Of the raw bytes only the structure is kept: brackets, braces, commas, quotes and the
# letter k. Numbers, null, true and false contain none of these, so they vanish; a string
# becomes its quotes around its k's ("keypoints" -> "k", "image_id" -> "").
_DELETE = bytes(c for c in range(256) if c not in b'[]{},"k')
_CHUNK = 1 << 20  # bytes per read of the results file (stays in the CPU cache for the second pass)
_KEY = b'"keypoints"'
_FIELD = rb'""(?:\[,*\])?'  # a key without k holding a non-string scalar or a flat array (bbox)


def _entry_pattern(commas: bytes) -> bytes:
    """One reduced entry: keys without a k holding a non-string scalar or a flat array (``bbox``),
    and exactly one key with a single k (``keypoints``, proven by counting) holding an array whose
    commas match the pattern ``commas`` (``rb",{50}"``: 51 numbers; ``rb"(,*)"``: any, captured)."""
    return rb'\{(?:%s,)*"k"\[%s\](?:,%s)*\}' % (_FIELD, commas, _FIELD)


def _reduce(path: str | os.PathLike[str]) -> tuple[bytes, int] | None:
    """``(structure of the file, occurrences of "keypoints")``, None when unreadable or not a list.

    In chunks through one reused buffer rather than one read of the whole file: each chunk is
    still in the CPU cache for the second pass, and no 100 MB buffer is allocated and faulted in
    (1.7x less CPU on a 110 MB file)."""
    buf = bytearray(_CHUNK)
    parts: list[bytes] = []
    count, tail, started = 0, b"", False
    try:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                chunk = buf if n == len(buf) else buf[:n]
                if not started:
                    if not chunk.strip():
                        continue  # leading whitespace only, so far
                    if chunk.lstrip()[:1] != b"[":
                        return None  # hotcoco reads an object as an empty result set: the full validator says why
                    started = True
                # A key cut by the chunk boundary lies within the last len(key)-1 bytes of the
                # previous chunk and the first len(key)-1 of this one; no key fits in either part alone.
                count += (tail + chunk[: len(_KEY) - 1]).count(_KEY) + chunk.count(_KEY)
                tail = bytes(chunk[-(len(_KEY) - 1) :])
                parts.append(chunk.translate(None, _DELETE))
    except OSError:
        return None
    return (b"".join(parts), count) if started else None


def scan_results_file(path: str | os.PathLike[str]) -> Verdict:
    """``(entries, keypoints length)`` when the raw bytes prove that the file is a JSON list of
    ``entries`` objects, each with one ``keypoints`` array of exactly ``keypoints length`` numbers
    and otherwise only non-string scalars or flat arrays (``bbox``); None means "not proven", not "bad".

    Every entry has exactly one key with a single k, and "keypoints" occurs ``entries`` times in
    the file, so that key is "keypoints" in every entry (a string value would break the pattern)."""
    reduced = _reduce(path)
    if reduced is None:
        return None
    structure, keys = reduced
    first = structure.find(b"}")
    if first < 0:
        return None
    template = structure[1 : first + 1]
    m = re.fullmatch(_entry_pattern(rb"(,*)"), template)
    if m is None:
        return None
    length = len(m.group(1)) + 1
    entries = (len(structure) - 1) // (len(template) + 1)
    # Fast: every entry reduced the same way (one writer wrote the file); else match each one.
    if structure != b"[" + b",".join([template] * entries) + b"]":
        e = _entry_pattern(rb",{%d}" % (length - 1))
        if re.fullmatch(rb"\[" + e + rb"(?:," + e + rb")*\]", structure) is None:
            return None
        entries = structure.count(b"}")  # objects do not nest in the pattern
    return (entries, length) if keys == entries else None


if __name__ == "__main__":  # the child process of fast_score.ResultsScan: one line, the verdict
    verdict = scan_results_file(sys.argv[1])
    print("null" if verdict is None else f"[{verdict[0]}, {verdict[1]}]")
