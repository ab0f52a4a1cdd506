"""Output paths checked before any work starts.

Every command that writes calls one of these first, so that a wrong ``--out`` (an
existing file where a folder is wanted, a folder where a file is wanted, a place
that cannot be written) fails at once with one line naming the path, not with an
``OSError`` traceback after minutes of work.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hsrpose.errors import HsrposeError

__all__ = ["check_output_dir", "check_output_file"]


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def _probe_writable(folder: Path, what: str, target: Path) -> None:
    """Create and delete a temporary file in ``folder``: the only test that also holds for
    root, read-only mounts and pseudo file systems (``os.access`` says yes to root)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".hsrpose-write-test-", dir=folder)
    except OSError as e:
        raise HsrposeError(f"{what} {target}: cannot write in {folder} ({_reason(e)})") from None
    os.close(fd)
    os.unlink(name)


def _make_dir(path: Path, what: str, target: Path) -> None:
    # Walk up to the deepest existing ancestor: a file there is named as the culprit.
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise HsrposeError(f"{what} {target}: {parent} is a file, not a folder")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HsrposeError(f"{what} {target}: cannot create the folder {path} ({_reason(e)})") from None


def check_output_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Make sure ``path`` is (or can become) a writable folder; create it and return it.

    ``what`` names the option or key in the message (``--out``, ``output_dir``).
    Raises :class:`HsrposeError` when ``path`` is an existing file, lies under a file,
    or cannot be created or written.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise HsrposeError(f"{what} {p}: this is an existing file; give a folder")
    _make_dir(p, what, p)
    _probe_writable(p, what, p)
    return p


def check_output_file(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Make sure the file ``path`` can be written (atomically: a temporary file beside it,
    then a rename); create its folder and return it. An existing file is fine (it is
    replaced); an existing folder, a parent that is a file or an unwritable place raise
    :class:`HsrposeError`."""
    p = Path(path)
    if p.is_dir():
        raise HsrposeError(f"{what} {p}: this is a folder; give a file name")
    parent = p.parent
    _make_dir(parent, what, p)
    _probe_writable(parent, what, p)
    return p
