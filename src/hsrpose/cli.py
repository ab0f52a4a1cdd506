"""``hsrpose <verb>``: one module per verb under :mod:`hsrpose.commands`.

Each verb module defines ``HELP: str``, ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their verb runs, so
``hsrpose score`` never pays for importing torch models it does not use.

Exit codes, the same for every verb:

- 0: done;
- 1: a user error: bad input, bad path, bad setting, missing optional package. One
  line on stderr, ``hsrpose VERB: error: ...``, naming the file, option or key; no
  traceback. Verbs raise :class:`hsrpose.errors.HsrposeError` (or a subclass) or
  :class:`hsrpose.overrides.ConfigError` for these;
- 2: a command-line usage error (unknown verb or option, a value of the wrong type or
  range), printed by argparse;
- 70 (``EX_SOFTWARE``): any other exception. That is a bug in hsrpose: the traceback
  is printed, then a line asking for a report;
- 130: interrupted (Ctrl-C);
- 141 (128 + SIGPIPE, what a shell reports for ``cat``/``yes`` in the same case): stdout
  was closed early by the reader (``hsrpose models --json | head``); nothing more is
  printed.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import os
import sys
import traceback
from typing import Sequence

# verb -> one-line help. The module is hsrpose.commands.<verb> (a "-" in the verb is "_" in the module name).
VERBS: dict[str, str] = {
    "demo": "generate a synthetic dataset, train, evaluate and draw a small model in minutes on CPU",
    "models": "list every model preset (paper row, params, GMACs, heatmap size)",
    "synth": "write a synthetic multi-person keypoint dataset in COCO format",
    "browse": "draw augmented training samples with keypoints and heatmaps",
    "train": "train a preset on a COCO-format keypoint dataset",
    "eval": "evaluate weights on COCO with the published top-down protocol",
    "score": "score a COCO keypoint results file against ground truth",
    "predict": "run pose estimation on images, folders or videos",
    "export": "export weights to ONNX",
    "import-onnx": "write a copy of a foreign top-down ONNX model with hsrpose's metadata",
}


EXIT_USER_ERROR = 1
EXIT_BUG = 70  # sysexits.h EX_SOFTWARE: an internal software error
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE

BUG_REPORT = (
    "this is a bug in hsrpose, not in your input: please report it as an issue of the hsrpose project, "
    "with the command line, the traceback above and the output of 'hsrpose --version'"
)

# Operating-system errors that describe the machine, not hsrpose: a full disk, a read-only
# mount, missing permissions. Reported as one line like any other user error.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _load(verb: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"hsrpose.commands.{verb.replace('-', '_')}")


def _quiet_broken_pipe() -> int:
    """stdout's reader went away: point stdout at /dev/null so that the interpreter's final
    flush cannot raise again, and exit like a process ended by SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return EXIT_BROKEN_PIPE


def _user_message(e: BaseException) -> str | None:
    """The one-line message for an exception that is the user's or the machine's problem,
    or None for a bug (shown with its traceback)."""
    from hsrpose.errors import HsrposeError
    from hsrpose.overrides import ConfigError

    if isinstance(e, (HsrposeError, ConfigError)):
        return str(e)
    if isinstance(e, ModuleNotFoundError) and e.name and not e.name.startswith("hsrpose"):
        from hsrpose.utils.extras import install_hint

        return f"the Python package '{e.name}' is not installed: run {install_hint(e.name)}"
    if isinstance(e, OSError) and e.errno in _ENVIRONMENT_ERRNOS:
        where = f"{e.filename}: " if e.filename else "cannot write the output: "
        return f"{where}{e.strerror or e}"
    if type(e).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch here
        first = str(e).strip().splitlines()[0] if str(e).strip() else "out of memory"
        return f"out of device memory ({first.split('. ')[0]}); use a smaller batch size or another --device"
    return None


def _run_verb(verb: str, module, argv: Sequence[str]) -> int:  # type: ignore[no-untyped-def]
    vp = argparse.ArgumentParser(prog=f"hsrpose {verb}", description=VERBS[verb])
    module.add_arguments(vp)
    args = vp.parse_args(list(argv))
    code = int(module.run(args) or 0)
    sys.stdout.flush()  # a reader that closed the pipe is noticed here, inside the handler
    return code


def main(argv: Sequence[str] | None = None) -> int:
    # OpenMP threads that spin while waiting for work make torch threads plus data workers
    # on a small or busy CPU many times slower (measured: 3.6-11 s vs 0.2-0.8 s per tiny
    # training step on 2 shared cores); sleeping waiters cost little. This only takes effect
    # before torch is imported, which is why it sits here and not in the verbs. A value the
    # user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="hsrpose", description="Top-down multi-person 2D human pose estimation (SimpleBaseline, HSRNet, HSR-MSNet).")
    from hsrpose import __version__

    parser.add_argument("--version", action="version", version=f"hsrpose {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, text in VERBS.items():
        sub.add_parser(verb, help=text, add_help=False)

    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] == "--version":
        parser.parse_args(argv)
    verb = argv[0]
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, list(VERBS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        print(f"hsrpose: unknown command '{verb}'.{hint} Run 'hsrpose --help' for the list.", file=sys.stderr)
        return 2
    try:
        return _run_verb(verb, _load(verb), argv[1:])
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print(f"hsrpose {verb}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the one place that decides how every error is shown
        message = _user_message(e)
        if message is not None:
            print(f"hsrpose {verb}: error: {' '.join(message.split())}", file=sys.stderr)
            return EXIT_USER_ERROR
        traceback.print_exc()
        print(f"hsrpose {verb}: internal error: {BUG_REPORT}", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
