"""What the commands share: errors, option types, the training options, settings, data."""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from .. import study
from ..study import _results
from .._messages import first_line, load_error, warning_line
from ..study._settings import STANDARDIZE


DEFAULT_MODEL = "model.skops"


class UsageError(Exception):
    """A mistake on the command line or in the inputs: one line, exit code 2."""


class Failure(Exception):
    """The command could not do its work (training diverged, disk full): one line, exit code 1."""


#: Set this environment variable to get the full traceback of an unexpected error.
DEBUG_ENV = "SKOFFICE31_DEBUG"


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (and exit code 2)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _parse_hidden(text):
    """``"64,32,10"`` -> ``(64, 32, 10)``; ``"none"`` -> ``()`` (no hidden layer).

    Every part must be a positive integer: ``"64,,32"``, ``"64,0"`` and
    ``"0"`` are refused (``0`` used to mean "no hidden layer" silently; say
    ``none`` for that). A tuple is returned as it is (already parsed).
    """
    if isinstance(text, tuple):
        return text
    original = text
    text = text.strip().strip("()[]").replace(" ", "")
    if text.lower() == "none":
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = None
    if not sizes or any(s <= 0 for s in sizes):
        raise UsageError(
            f"bad --hidden {original!r}: expected comma-separated positive layer "
            "sizes such as 10 or 64,32,10 (or 'none' for no hidden layer)"
        )
    return sizes


def _number(kind, flag, rule, ok):
    """An argparse ``type=``: parse ``kind`` (int or float), refuse NaN/inf and bad values.

    The error is argparse's one line with exit code 2, at parse time.
    """

    def parse(text):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if kind is float and not np.isfinite(value):
            raise argparse.ArgumentTypeError(f"bad {flag} {text}: must be a finite number, {rule}")
        if not ok(value):
            raise argparse.ArgumentTypeError(f"bad {flag} {text}: {rule}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _fmt_layout(hidden):
    return ",".join(str(h) for h in hidden)


def _hidden_arg(text):
    try:
        _parse_hidden(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _parse_size(text):
    """``"32"`` -> ``(32, 32)``; ``"40x30"`` -> ``(40, 30)`` (width x height)."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) <= 0:
        raise UsageError(f"bad --size {text!r}: expected a side like 32 or WIDTHxHEIGHT like 40x30")
    return size


def _add_training_options(p, *, grid):
    if grid:
        p.add_argument(
            "--data",
            metavar="DIR",
            help="Office-31 folder (<domain>/images/<object>/*.jpg); "
            "default: the built-in office-digits dataset",
        )
    else:
        p.add_argument(
            "--data",
            metavar="PATH",
            help="your images, in one of three layouts (detected): an Office-31 folder "
            "<domain>/images/<object>/*.jpg (heads domain and object); an ImageFolder "
            "<class>/*.jpg (one head, see --head-name); or a CSV/TSV file "
            "path,<head1>,<head2>,... (any number of heads; relative paths are resolved "
            "against the file's folder). Default: the built-in office-digits dataset",
        )
        p.add_argument(
            "--layout",
            choices=list(study.LAYOUTS),
            default="auto",
            help="the layout of --data (default: %(default)s = detected)",
        )
        p.add_argument(
            "--head-name",
            metavar="NAME",
            default="class",
            help="name of the one head of an ImageFolder layout (default: %(default)s)",
        )
    p.add_argument(
        "--preset",
        choices=sorted(study.PRESETS),
        default="study" if grid else "tuned",
        help="'study' = the study's exact settings, 'tuned' = our recommendation "
        "(default: %(default)s); the flags below override it",
    )
    many = ("; repeat for a grid (default: the preset's layouts, study "
            + " ".join(_fmt_layout(h) for h in study.DEFAULT_HIDDEN) + ", tuned "
            + " ".join(_fmt_layout(h) for h in study.TUNED_HIDDEN) + ")") if grid else ""
    p.add_argument(
        "--hidden",
        action="append",
        type=_hidden_arg,
        metavar="SIZES",
        help="hidden layer sizes, e.g. 64,32,10, or 'none' for no hidden layer" + many,
    )
    p.add_argument(
        "--solver",
        action="append",
        choices=list(study.DEFAULT_SOLVERS),
        help="'sgd' or 'adam'" + (
            "; repeat for a grid (default: " + " and ".join(study.DEFAULT_SOLVERS) + ")"
            if grid else ""),
    )
    p.add_argument("--epochs", type=_number(int, "--epochs", "must be >= 1", lambda v: v >= 1),
                   metavar="N", help="training epochs (max_iter)")
    p.add_argument("--lr", type=_number(float, "--lr", "must be > 0", lambda v: v > 0),
                   metavar="X", help="learning_rate_init (all solvers)")
    p.add_argument("--batch-size", type=_number(int, "--batch-size", "must be >= 1",
                                                lambda v: v >= 1),
                   metavar="N", help="minibatch size")
    p.add_argument("--alpha", type=_number(float, "--alpha", "must be >= 0", lambda v: v >= 0),
                   metavar="X", help="L2 penalty")
    p.add_argument("--seed", type=_number(int, "--seed", "must be >= 0", lambda v: v >= 0),
                   metavar="N", help="seed of the split and the weights")
    p.add_argument(
        "--size",
        metavar="PX",
        help="image side in pixels, e.g. 100 or 100x100 (default with --data: the preset's, "
        f"study {study.PRESETS['study'].get('photo_size', study.OFFICE31_SIZE)}, tuned "
        f"{study.PRESETS['tuned']['photo_size']}; {study.BUILTIN_SIZE} for the built-in data)",
    )
    p.add_argument("--standardize", choices=list(STANDARDIZE),
                   help="per-image standardisation of the pixels (ImageStandardizer): by the "
                   "image's mean and std, by each channel's, or none (the study's)")
    p.add_argument("--image-stats", action=argparse.BooleanOptionalAction, default=None,
                   help="append each image's per-channel mean and std as features "
                   "(needs --standardize)")
    p.add_argument("--scale-features", action=argparse.BooleanOptionalAction, default=None,
                   help="standardise each feature on the training rows (StandardScaler)")
    p.add_argument("--augment", type=_number(int, "--augment", "must be >= 1", lambda v: v >= 1),
                   metavar="N",
                   help="train on N versions of every training photo: 1 the photos alone, 2 with "
                   "their mirror images, 3 and more with copies shifted by up to 2 pixels "
                   "(AugmentedClassifier; an epoch costs N times as much; "
                   f"{_preset_defaults('augment', 1)})")
    p.add_argument("--shift-each-epoch", action=argparse.BooleanOptionalAction, default=None,
                   help="with --augment 3 or more, draw new shifts for the shifted copies at "
                   "every epoch instead of once (the network is then trained one epoch at a "
                   f"time; {_preset_defaults('shift_each_epoch', False)})")
    p.add_argument("--pca", type=_number(int, "--pca", "must be >= 0", lambda v: v >= 0),
                   metavar="N",
                   help="project the standardised features on their first N principal "
                   "components (PCA fitted on the training rows; 0: none; needs "
                   f"--scale-features; {_preset_defaults('pca', 0)})")
    p.add_argument("--statistics", action=argparse.BooleanOptionalAction, default=None,
                   help="put 8 statistics of each image and channel (ImageStatistics: "
                   "brightness, contrast, range, sharpness), standardised, next to the "
                   f"preprocessed pixels ({_preset_defaults('statistics', False)})")
    p.add_argument("--train-size", type=_number(float, "--train-size", "must be between 0 and 1",
                                                lambda v: 0 < v < 1),
                   metavar="F", help="training fraction of the split")
    p.add_argument("--test-size", type=_number(float, "--test-size", "must be between 0 and 1",
                                               lambda v: 0 < v < 1),
                   metavar="F", help="test fraction of the split")
    p.add_argument(
        "--blas-threads",
        type=_number(int, "--blas-threads", "must be >= 0", lambda v: v >= 0),
        default=0,
        metavar="N",
        help="limit BLAS threads per fit (default: 0 = no limit; the estimator itself runs "
        "minibatches of <= 64 on one BLAS thread and gives the second core to the weight "
        "update; use --n-jobs to fit configurations in parallel)",
    )
    p.add_argument("--no-cache", action="store_true",
                   help="do not read or write the decoded-image cache in the data home "
                   "(SKOFFICE31_DATA); use it when that folder is read-only")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _preset_defaults(name, absent):
    """``"default: the preset's, study 1, tuned 4"``: each preset's value of
    setting ``name`` (``absent`` where a preset does not set it), for a help text."""
    values = ", ".join(f"{preset} {study.PRESETS[preset].get(name, absent)}"
                       for preset in ("study", "tuned"))
    return f"default: the preset's, {values}"


def _int_list(flag, rule, ok):
    """An argparse ``type=``: ``"0,1,3"`` -> ``[0, 1, 3]``, each part checked by ``ok``."""

    def parse(text):
        try:
            values = [int(part) for part in str(text).split(",")]
        except ValueError:
            values = None
        if not values or not all(ok(v) for v in values):
            raise argparse.ArgumentTypeError(f"bad {flag} {text!r}: {rule}")
        return values

    return parse


def _version_string():
    from .. import __version__

    return f"skoffice31 {__version__}"


def settings_from_args(args, *, grid):
    """The :class:`~skoffice31.study.StudySettings` of the parsed options.

    The preset's values, overridden by the flags given; a bad value is a
    :class:`UsageError` naming the flag.
    """
    for flag, value, ok, rule in [
        ("--lr", args.lr, lambda v: v > 0, "must be > 0"),
        ("--epochs", args.epochs, lambda v: v >= 1, "must be >= 1"),
        ("--batch-size", args.batch_size, lambda v: v >= 1, "must be >= 1"),
        ("--alpha", args.alpha, lambda v: v >= 0, "must be >= 0"),
        ("--blas-threads", args.blas_threads, lambda v: v >= 0, "must be >= 0"),
    ]:
        if value is not None and not ok(value):
            raise UsageError(f"bad {flag} {value}: {rule}")
    if args.hidden:
        hidden = [_parse_hidden(text) for text in args.hidden]
    else:
        # a grid: the preset's own layouts (the study's three, or the tuned preset's)
        hidden = None if grid else [(64, 32, 10)]
    solvers = args.solver or (list(study.DEFAULT_SOLVERS) if grid else ["adam"])
    if not grid and (len(set(hidden)) > 1 or len(set(solvers)) > 1):
        raise UsageError("train takes one --hidden and one --solver (use 'reproduce' for a grid)")
    try:
        return study.StudySettings.from_preset(
            args.preset, epochs=args.epochs, batch_size=args.batch_size, alpha=args.alpha,
            seed=args.seed, train_size=args.train_size, test_size=args.test_size,
            learning_rate_init=args.lr, blas_threads=args.blas_threads,
            hidden=hidden, solvers=solvers, seeds=getattr(args, "seeds", None),
            standardize=args.standardize, image_stats=args.image_stats,
            scale_features=args.scale_features, augment=args.augment,
            shift_each_epoch=args.shift_each_epoch, pca=args.pca,
            statistics=args.statistics,
            size=None if args.size is None else _parse_size(args.size),
        )
    except ValueError as exc:
        raise UsageError(f"bad settings: {exc}") from None


def _load_data(args, settings):
    """:func:`skoffice31.study.load_study_data`, its problems as one-line errors.

    The loader's warnings are printed one line each: a
    :class:`~skoffice31.datasets.SkippedFilesWarning` as the number of
    skipped files and the first few with their reasons, a
    :class:`~skoffice31.datasets.CacheWarning` naming the cache folder and
    ``--no-cache``.
    """
    data = args.data
    cache = not getattr(args, "no_cache", False)
    layout = getattr(args, "layout", "office31" if data is not None else "auto")
    if data is not None and layout == "auto":
        try:
            layout = study.detect_layout(data)
        except FileNotFoundError as exc:
            raise UsageError(first_line(exc)) from None
    try:
        with warnings.catch_warnings(record=data is not None) as caught:
            if data is not None:  # the photos' warnings become one line each
                warnings.simplefilter("always")
            result = study.load_study_data(
                settings, data, n_jobs=getattr(args, "n_jobs", None), layout=layout,
                head_name=getattr(args, "head_name", "class"), cache=cache,
            )
    except (OSError, ValueError) as exc:  # also UnicodeDecodeError
        raise UsageError(load_error(exc, data, layout)) from None
    for w in caught or ():
        sys.stderr.write(f"warning: {warning_line(w.message)}\n")
    return result


def _output_file(name, what=""):
    """The path of ``--out NAME``, refused when it is a folder or its folder is missing."""
    path = Path(name).expanduser()
    if path.is_dir():
        raise UsageError(f"--out must be a file name, got a folder: {name}")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {what}{name}: folder {path.parent} does not exist")
    return path


def _output_folder(folder):
    """The ``--out`` folder, created if needed (one that cannot be written: :class:`UsageError`)."""
    try:
        return _results.check_output_folder(folder)
    except OSError as exc:
        raise UsageError(f"cannot write to output folder {folder}: "
                         f"{exc.strerror or first_line(exc)}") from None
