"""Atomic writes: a writer that dies before the rename leaves the old file intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hsrpose.utils.io import atomic_path, atomic_write_json


def test_write_and_replace(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "r.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [f.name for f in p.parent.iterdir()] == ["r.json"]  # no temp files left
    # same permissions as a plain open() would give, not mkstemp's 0600
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


def test_exception_keeps_old_file(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    atomic_write_json(p, {"good": True})
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert json.loads(p.read_text()) == {"good": True}
    assert sorted(f.name for f in tmp_path.iterdir()) == ["r.json"]


def test_sigkill_during_write_keeps_old_file(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    atomic_write_json(p, {"good": True})
    code = (
        "import os, signal, sys\n"
        "from hsrpose.utils.io import atomic_path\n"
        f"with atomic_path({str(p)!r}) as tmp:\n"
        "    tmp.write_text('partial')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    r = subprocess.run([sys.executable, "-c", code])
    assert r.returncode == -signal.SIGKILL
    assert json.loads(p.read_text()) == {"good": True}


def test_gc_paused_restores_the_collector_state() -> None:
    """The cyclic GC is off inside the block and back as it was after, exceptions and nesting included."""
    import gc

    from hsrpose.utils.gcpause import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block does not re-enable it early
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_read_json_gc_state_and_errors(tmp_path: Path) -> None:
    """read_json pauses the GC only while parsing: after a good file and after a syntax error
    (which still names line and column) the collector is on again."""
    import gc

    from hsrpose.errors import DataError
    from hsrpose.utils.io import read_json

    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"a": [1.5, 2]}, {"b": None}]))
    assert read_json(good) == [{"a": [1.5, 2]}, {"b": None}]
    assert gc.isenabled()
    bad = tmp_path / "bad.json"
    bad.write_text('[{"a": 1},\n {"b": }]')
    with pytest.raises(DataError, match="line 2, column 8"):
        read_json(bad)
    assert gc.isenabled()
