"""The ``skoffice31`` command line: ``reproduce``, ``train``, ``predict`` and ``transfer``.

A thin shell, one module per command (``_reproduce``, ``_models`` for
``train`` and ``predict``, ``_transfer``; what they share is in
``_common``): it parses the options into a
:class:`~skoffice31.study.StudySettings`, calls the library and prints. The
work is done by :mod:`skoffice31.study` (its ``_train`` module for
``train``), ``skoffice31.study._results`` (the reproduce run's files and text),
:mod:`skoffice31.prediction` and :mod:`skoffice31.persistence`; the
one-line messages of errors and warnings come from ``skoffice31._messages``.
``skoffice31 reproduce`` re-runs the Office-31 two-head study (three hidden
layouts x {plain SGD, Adam}) with :func:`skoffice31.study.run_study`,
prints the study's table next to ours and writes ``results.csv``,
``results.json``, ``per_class.csv`` and (with matplotlib) figures.
``skoffice31 train`` fits one network on Office-31 or on your own images (an
ImageFolder tree or a CSV/TSV of paths and labels, any number of heads) and
saves an image-to-labels :class:`~sklearn.pipeline.Pipeline`;
``skoffice31 predict`` applies it to image files and folders (table, CSV or
JSON); ``skoffice31 transfer`` runs :func:`skoffice31.transfer.run_transfer`
(source -> target domain, k labelled target images per class, every
transfer method) and prints its table. The model is saved and loaded through
:mod:`skoffice31.persistence` only.

Run ``skoffice31 COMMAND --help`` for the options.
"""

import os
import sys

from .._messages import first_line, os_reason
from ._common import DEBUG_ENV, Failure, UsageError, _Parser, _version_string
from ._models import _add_predict, _add_train
from ._reproduce import _add_reproduce
from ._transfer import _add_transfer

# Also importable from here, as before the commands had modules of their own.
from ._common import DEFAULT_MODEL, settings_from_args  # noqa: F401
from ._models import cmd_predict, cmd_train  # noqa: F401
from ._reproduce import cmd_reproduce  # noqa: F401
from ._transfer import cmd_transfer  # noqa: F401

__all__ = ["main", "build_parser"]


def build_parser():
    """The :class:`argparse.ArgumentParser` of the ``skoffice31`` command."""
    parser = _Parser(
        prog="skoffice31",
        description="Multi-head MLPs on Office-31 the scikit-learn way: reproduce the "
        "two-head study, train a model, predict images, transfer between domains.",
    )
    parser.add_argument("--version", action="version", version=_version_string())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add_command in (_add_reproduce, _add_train, _add_predict, _add_transfer):
        add_command(sub)
    return parser


def _ignore_interrupts_in_finalizers():
    """Leave out Python's report of a Ctrl-C that lands in a finalizer.

    A ``KeyboardInterrupt`` raised while a ``weakref.finalize`` callback or a
    ``__del__`` runs (joblib's clean-up of its memory-mapped arrays, when
    Ctrl-C reaches the command and its workers at once) cannot propagate:
    Python prints "Exception ignored in ..." with a traceback and goes on.
    The command reports the interrupt itself in one line, so those reports
    are dropped; every other unraisable exception is reported as before.
    Installed once per process, by the console script only.
    """
    previous = sys.unraisablehook
    if getattr(previous, "_skoffice31", False):
        return

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            return
        previous(unraisable)

    hook._skoffice31 = True
    sys.unraisablehook = hook


def main(argv=None):
    """Entry point of the ``skoffice31`` console script; returns the exit code."""
    if argv is None:  # the process's own command line (console script, python -m)
        _ignore_interrupts_in_finalizers()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        return args.func(args)
    except UsageError as exc:
        sys.stderr.write(f"skoffice31 {args.command}: error: {exc}\n")
        return 2
    except Failure as exc:
        sys.stderr.write(f"skoffice31 {args.command}: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("skoffice31: interrupted\n")
        return 130
    except MemoryError:
        sys.stderr.write("skoffice31: error: out of memory (try a smaller --size)\n")
        return 1
    except OSError as exc:  # disk full, a folder that became read-only, ...
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        sys.stderr.write(f"skoffice31 {args.command}: error:{where} {os_reason(exc)}\n")
        return 1
    except Exception as exc:  # anything else: one line, the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        sys.stderr.write(f"skoffice31 {args.command}: error: {type(exc).__name__}: "
                         f"{first_line(exc)} (set {DEBUG_ENV}=1 for the traceback)\n")
        return 1

