"""The ``skoffice31`` command line: ``reproduce``, ``train`` and ``predict``.

A thin shell: it parses the options into a
:class:`~skoffice31.study.StudySettings`, calls the library and prints. The
work is done by :mod:`skoffice31.study` (its ``_train`` module for
``train``), ``skoffice31._reproduce`` (the reproduce run's files and text),
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
JSON). The model is saved and loaded through
:mod:`skoffice31.persistence` only.

Run ``skoffice31 COMMAND --help`` for the options.
"""

import argparse
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from . import _reproduce, study
from ._messages import first_line, load_error, os_reason, warning_line
from .study._output import fmt_hidden, fmt_seconds
from .study._settings import STANDARDIZE

__all__ = ["main", "build_parser"]

DEFAULT_MODEL = "model.skops"


class UsageError(Exception):
    """A mistake on the command line or in the inputs: one line, exit code 2."""


class Failure(Exception):
    """The command could not do its work (training diverged, disk full): one line, exit code 1."""


#: Set this environment variable to get the full traceback of an unexpected error.
DEBUG_ENV = "SKOFFICE31_DEBUG"


# --------------------------------------------------------------------------
# argument parsing
# --------------------------------------------------------------------------


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
    many = "; repeat for a grid" if grid else ""
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
        help="'sgd' or 'adam'" + many,
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


def build_parser():
    """The :class:`argparse.ArgumentParser` of the ``skoffice31`` command."""
    parser = _Parser(
        prog="skoffice31",
        description="Multi-head MLPs on Office-31 the scikit-learn way: reproduce the "
        "two-head study, train a model, predict images.",
    )
    parser.add_argument("--version", action="version", version=_version_string())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add_command in (_add_reproduce, _add_train, _add_predict):
        add_command(sub)
    return parser


def _add_reproduce(sub):
    rep = sub.add_parser(
        "reproduce",
        help="re-run the study's grid (hidden layouts x solvers) and tabulate it",
        description="Re-run the two-head study: every hidden layout x solver fitted on one "
        "ShuffleSplit, the longest fit first; prints the table (and the study's own numbers "
        "with --preset study) and writes results.csv, results.json (after every finished "
        "configuration) and figures to --out.",
    )
    _add_training_options(rep, grid=True)
    rep.add_argument("--n-jobs", metavar="N",
                     type=_number(int, "--n-jobs", "use a positive number, or -1 for all cores",
                                  lambda v: v != 0),
                     help="configurations fitted at once (joblib n_jobs)")
    rep.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="run the grid on dask: tcp://HOST:PORT of a running scheduler, "
        "or local:N for a LocalCluster of N workers (extra 'distributed')",
    )
    rep.add_argument("--seeds", type=_number(int, "--seeds", "must be >= 1", lambda v: v >= 1),
                     metavar="N",
                     help="run every configuration with N seeds (--seed, --seed + 1, ...; the "
                     "split and the weights follow the seed) and report mean and std per head")
    rep.add_argument("--out", metavar="DIR", default="skoffice31-results",
                     help="output folder (default: %(default)s)")
    rep.add_argument("--samples", type=_number(int, "--samples", "must be >= 0", lambda v: v >= 0),
                     default=3, metavar="K",
                     help="sample test predictions shown per configuration (default: %(default)s)")
    rep.set_defaults(func=cmd_reproduce)


def _add_train(sub):
    tr = sub.add_parser(
        "train",
        help="train one network on Office-31 or your own images and save it",
        description="Train one MultiHeadMLPClassifier (one head per label column of the "
        "data) on the training part of the split, report each head's test accuracy next to "
        "its majority-class and chance levels, save Pipeline(ImageFlattener, classifier) to "
        "--out as a .skops file (skops format: loading it runs no code from the file), and write next to it <name>_per_class.csv and (with matplotlib) one "
        "<name>_confusion_<head>.png per head.",
    )
    _add_training_options(tr, grid=False)
    tr.add_argument("--out", metavar="FILE", default=None,
                    help=f"where to save the model, in the safe skops format (default: {DEFAULT_MODEL})")
    tr.add_argument("--model", metavar="FILE", default=None, dest="model",
                    help="deprecated alias of --out")
    tr.set_defaults(func=cmd_train)


def _add_predict(sub):
    pr = sub.add_parser(
        "predict",
        help="predict the heads of image files or folders with a saved model",
        description="Predict every head (label and probability) of each image: the files "
        "given and the images in the folders given (recursively, sorted). One row per "
        "image; an image that cannot be read gets a row with its error (exit code 1). "
        "MODEL must be a .skops file saved by 'skoffice31 train': it is loaded with "
        "skops.io.load and only skoffice31's and scikit-learn's own types are trusted; "
        "pickle and joblib files are refused, because loading one runs code from the file.",
    )
    pr.add_argument("model", metavar="MODEL", help="a .skops model saved by 'skoffice31 train'")
    pr.add_argument("images", metavar="IMAGE", nargs="+", help="image files or folders")
    pr.add_argument("--top", type=_number(int, "--top", "must be >= 1", lambda v: v >= 1),
                    default=1, metavar="K",
                    help="the K most probable labels per head in the table and JSON "
                    "(default: %(default)s)")
    pr.add_argument("--format", choices=["table", "csv", "json"], default="table",
                    help="output: an aligned table (default), CSV (path, <head>, "
                    "<head>_probability, ..., error) or JSON (a list of such rows)")
    pr.add_argument("--out", metavar="FILE", default=None,
                    help="write the output to FILE instead of the standard output")
    pr.set_defaults(func=cmd_predict)


def _version_string():
    from . import __version__

    return f"skoffice31 {__version__}"


# --------------------------------------------------------------------------
# settings, data
# --------------------------------------------------------------------------


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
        hidden = list(study.DEFAULT_HIDDEN) if grid else [(64, 32, 10)]
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
            scale_features=args.scale_features,
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


# --------------------------------------------------------------------------
# reproduce
# --------------------------------------------------------------------------


def cmd_reproduce(args):
    settings = settings_from_args(args, grid=True)
    if args.n_jobs is not None and args.n_jobs == 0:  # (also refused at parse time)
        raise UsageError("bad --n-jobs 0: use a positive number, or -1 for all cores")
    if args.samples < 0:
        raise UsageError(f"bad --samples {args.samples}: must be >= 0")
    if args.scheduler:
        _check_scheduler(args.scheduler)
    try:
        out = _reproduce.check_output_folder(args.out)
    except OSError as exc:
        raise UsageError(f"cannot write to output folder {args.out}: "
                         f"{exc.strerror or first_line(exc)}") from None
    started = time.time()
    data = _load_data(args, settings)
    print(data.description, flush=True)
    configs = settings.configurations()
    print(_reproduce.plan_line(settings, data, configs), flush=True)
    steps = settings.preprocessing_steps()
    if steps:
        print("Preprocessing: " + ", ".join(repr(step) for _, step in steps), flush=True)
    seeds = settings.seed_values()
    if len(seeds) > 1:
        print(f"Seeds {', '.join(map(str, seeds))}: every configuration on the split and "
              "the initial weights of each seed", flush=True)
    info = study.run_info(settings, data, command=["skoffice31", *args.argv],
                          started=started, scheduler=args.scheduler)
    baselines = study.head_baselines(data.y[data.train], data.y[data.test], data.heads)
    info["baselines"] = baselines

    with contextlib.ExitStack() as stack:
        stack.enter_context(_reproduce.sigterm_as_interrupt())
        if args.scheduler:
            _enter_scheduler(stack, args.scheduler, args.n_jobs, [data.X, data.y])
        shown = {}  # the progress display of the running seed

        def start_seed(seed, one, seed_data):
            if shown:
                shown.pop("progress").close()
            if len(seeds) > 1:
                print(f"Seed {seed} ({seeds.index(seed) + 1} of {len(seeds)}): split "
                      f"{len(seed_data.train)} train / {len(seed_data.test)} test", flush=True)
            if not args.quiet:
                shown["progress"] = _reproduce.progress_display(one, seed_data, configs,
                                                                args.n_jobs)

        stack.callback(lambda: shown and shown.pop("progress").close())
        epoch = None if args.quiet else (lambda record: shown["progress"].epoch(record))
        if len(seeds) > 1:  # rows with a "seed"; the summary is written with them
            run = study.run_seeds(settings, data, n_jobs=args.n_jobs, n_samples=args.samples,
                                  progress=epoch, on_seed=start_seed)
        else:
            start_seed(settings.seed, settings, data)
            run = study.run_study(settings, data, n_jobs=args.n_jobs, n_samples=args.samples,
                                  progress=epoch)
        results = stack.enter_context(contextlib.closing(run))

        def show(row):
            if shown:
                shown["progress"].done(row)
            for message in row.get("warnings") or ():
                sys.stderr.write(f"warning: hidden {fmt_hidden(row['hidden'])} "
                                 f"{row['solver']}: {message}\n")

        kept = _reproduce.keep_results(results, out, info, configs, on_row=show)

    rows, interrupted, write_error, failure = kept.rows, kept.interrupted, kept.write_error, None
    if kept.error is not None:
        exc = kept.error
        if args.scheduler:
            from .parallel import as_scheduler_lost

            exc = as_scheduler_lost(exc)
        failure = f"{type(exc).__name__}: {first_line(exc)}"
    if write_error is not None:
        failure = f"cannot write the results to {out}/: {os_reason(write_error)}"
    _reproduce.finish_info(info, interrupted, failure)
    print("\n".join(_reproduce.report_lines(rows, settings, baselines)))
    if len(seeds) > 1:
        print(f"\nMean \u00b1 std (ddof=1) over the seeds {', '.join(map(str, seeds))}:")
        print(study.format_seed_table(study.aggregate_seeds(rows)))
    files = []
    if write_error is None:
        try:
            files = _reproduce.write_final_results(out, info, rows, data, settings, baselines)
        except OSError as exc:
            write_error = exc
            failure = f"cannot write the results to {out}/: {os_reason(exc)}"
    if len(seeds) > 1 and "results.json" in files:
        files.insert(files.index("results.json") + 1, "results_summary.csv")
    wall = fmt_seconds(time.time() - started)
    if files:
        print(f"\nWrote {', '.join(files)} to {out}/ (wall time {wall})")
    n_ok = sum(r.get("status") == "ok" for r in rows)
    n_failed = len(rows) - n_ok
    n_runs = len(configs) * len(seeds)
    n_missing = n_runs - len(rows)
    what = "configurations" if len(seeds) == 1 else "runs (configuration x seed)"
    summary = (f"{n_ok} of {n_runs} {what} succeeded, {n_failed} failed"
               + (f", {n_missing} not run" if n_missing else ""))
    if write_error is not None:
        saved = (f"the {kept.n_saved} configuration(s) saved before are kept in {out}/"
                if kept.n_saved else "no results file was written")
        sys.stderr.write(f"skoffice31 reproduce: error: {failure}; {saved} ({summary}, the "
                         "table above shows them all)\n")
        return 1
    if interrupted:
        sys.stderr.write(
            f"skoffice31: interrupted; {len(rows)} of {n_runs} {what} "
            f"finished and saved in {out}/ ({summary})\n"
        )
        return 130
    if failure:
        sys.stderr.write(f"skoffice31 reproduce: error: {failure}; {summary}; finished "
                         f"configurations saved in {out}/\n")
        return 1
    if n_ok == 0:
        first = next((r["status"] for r in rows if r.get("status", "ok") != "ok"), "")
        first = first[len("failed: "):] if first.startswith("failed: ") else first
        sys.stderr.write(f"skoffice31 reproduce: error: no configuration succeeded ({summary}; "
                         f"first error: {first}); see {out}/results.csv\n")
        return 1
    print(summary + (f" (see the status column of {out}/results.csv)" if n_failed else ""))
    return 0


def _check_scheduler(scheduler):
    """Validate ``--scheduler`` before any work (one-line error)."""
    from .parallel import parse_scheduler

    try:
        parse_scheduler(scheduler)
    except ValueError as exc:
        raise UsageError(f"bad --scheduler: {first_line(exc)}") from None


def _enter_scheduler(stack, scheduler, n_jobs, scatter):
    """Run the study's joblib calls on dask (see :mod:`skoffice31.parallel`).

    ``X`` and ``y`` are scattered to the workers once, so the tasks do not
    ship the image matrix again.
    """
    from .parallel import DistributedError, parallel_context

    try:
        stack.enter_context(parallel_context(scheduler, n_jobs, scatter=scatter))
    except ImportError as exc:
        raise UsageError(first_line(exc)) from None
    except (DistributedError, OSError, TimeoutError) as exc:
        raise UsageError(f"--scheduler {scheduler}: {first_line(exc)}") from None


# --------------------------------------------------------------------------
# train / predict
# --------------------------------------------------------------------------


def _model_path(args):
    """``--out`` (or the deprecated ``--model``), checked before any work."""
    if args.model is not None:
        if args.out is not None and args.out != args.model:
            raise UsageError("give the model file once: --out (--model is its deprecated alias)")
        sys.stderr.write("skoffice31 train: warning: --model is deprecated; use --out\n")
    name = args.out or args.model or DEFAULT_MODEL
    path = _output_file(name, "model ")
    if not os.access(path.parent, os.W_OK):
        raise UsageError(f"cannot write model {name}: folder {path.parent} is not writable")
    return name, path


def _output_file(name, what=""):
    """The path of ``--out NAME``, refused when it is a folder or its folder is missing."""
    path = Path(name).expanduser()
    if path.is_dir():
        raise UsageError(f"--out must be a file name, got a folder: {name}")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {what}{name}: folder {path.parent} does not exist")
    return path


def cmd_train(args):
    from .callbacks import EpochReporter
    from .study import _train

    settings = settings_from_args(args, grid=False)
    name, model_path = _model_path(args)
    data = _load_data(args, settings)
    print(data.description, flush=True)
    try:
        _train.check_two_classes_per_head(data)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    heads, config = data.heads, settings.configurations()[0]
    model = _train.make_pipeline(settings, data)
    print(f"Training hidden {fmt_hidden(config.hidden)} {config.solver} (preset "
          f"{settings.preset}, {settings.epochs} epochs, batch {settings.batch_size}, lr "
          f"{settings.learning_rate(config.solver):g}) on {len(data.train)} images, "
          f"head{'s' if len(heads) != 1 else ''} {', '.join(heads)}...", flush=True)
    clf = model[-1]
    if not args.quiet:
        progress = study.StudyProgress([config], {config: 1.0}, [config], 1)
        clf.set_callbacks(EpochReporter(progress.epoch, tag=config))
    try:
        # only the collapses are shown: every warning of the command is one line
        seconds, collapses = _train.fit_pipeline(model, settings, data, reissue=False)
    except (ValueError, ArithmeticError) as exc:  # divergence, bad labels
        raise Failure(f"training failed: {first_line(exc)}") from None
    finally:
        if not args.quiet:
            progress.close()
    for message in collapses:
        sys.stderr.write(f"warning: {message}\n")
    clf.set_callbacks()  # the display does not belong in the saved model
    pred, accuracy, baselines = _train.evaluate_pipeline(model, settings, data)
    parts = [f"{h} {accuracy[h]:.3f} (majority class {baselines[h]['majority']:.3f}, chance "
             f"{baselines[h]['chance']:.3f})" for h in heads]
    if len(heads) > 1:
        parts.append(f"all heads right {accuracy['all' if len(heads) != 2 else 'both']:.3f}")
    print(f"Test accuracy on {len(data.test)} held-out images: " + ", ".join(parts)
          + f" (trained in {fmt_seconds(seconds)})")
    _save_model(model, model_path, name)
    print(f"Saved the model to {name} (use: skoffice31 predict {name} IMAGE_OR_FOLDER...)")
    try:
        written = _train.write_train_report(model_path, clf, data.y[data.test], pred, heads)
    except OSError as exc:  # the model is saved; the report is a bonus
        sys.stderr.write(f"skoffice31 train: warning: cannot write the report next to the "
                         f"model: {exc.strerror or exc}\n")
        written = []
    if written:
        print(f"Wrote {', '.join(written)} to {model_path.parent}/")
    return 0


def _save_model(model, path, shown=None):
    """Save ``model`` to ``path`` as a .skops file; a failure is one line (exit code 1).

    The file is written next to ``path`` and moved into place at the end
    (:func:`skoffice31.persistence.save_model`): a full disk or a folder
    that became read-only leaves neither a partial model nor a temporary
    file, and an older model at ``path`` stays as it was.
    """
    from .persistence import save_model

    shown = str(path) if shown is None else shown
    try:
        save_model(model, path, info=getattr(model, "skoffice31_info_", None))
    except OSError as exc:
        raise Failure(f"cannot write model {shown}: {os_reason(exc)}") from None
    return Path(path)


def _load_model_or_exit(path, shown=None):
    """The model saved by ``skoffice31 train`` at ``path``, or a one-line :class:`UsageError`.

    Loaded only through :func:`skoffice31.persistence.load_model`
    (``skops.io.load`` with the package's explicit trusted types): a pickle
    or joblib file is refused before anything in it runs, a skops file with
    other types is refused naming them, and anything that is not
    ``Pipeline(ImageFlattener, MultiHeadMLPClassifier)`` is refused saying
    what it is. A version mismatch is one warning line.
    """
    from .persistence import ModelFileError, ModelVersionWarning, load_model
    from .prediction import _not_an_image_model

    shown = str(path) if shown is None else shown
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"model file not found: {shown}")
    if not path.is_file():
        raise UsageError(f"cannot load model {shown}: it is a folder, expected a .skops file "
                         "saved by 'skoffice31 train'")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ModelVersionWarning)
            model = load_model(path)
    except ModelFileError as exc:
        text = str(exc)
        if text.startswith(str(path)):
            text = "it" + text[len(str(path)):]
        raise UsageError(f"cannot load model {shown}: {text}") from None
    except OSError as exc:
        raise UsageError(f"cannot load model {shown}: {exc.strerror or first_line(exc)}") from None
    for w in caught:
        if issubclass(w.category, ModelVersionWarning):
            sys.stderr.write(f"warning: {first_line(w.message)}\n")
    what = _not_an_image_model(model)
    if what is not None:
        raise UsageError(
            f"cannot load model {shown}: it holds a {what}, not a model saved by 'skoffice31 "
            "train' (expected a fitted Pipeline(ImageFlattener, MultiHeadMLPClassifier))"
        )
    return model


def cmd_predict(args):
    from .prediction import _format_predictions, _head_names, predict_files

    if args.top < 1:
        raise UsageError(f"bad --top {args.top}: must be >= 1")
    out_path = None if args.out is None else _output_file(args.out)
    model = _load_model_or_exit(args.model)
    rows = predict_files(model, args.images, top=args.top)
    text = _format_predictions(rows, _head_names(model), args.format, args.top)
    if out_path is None:
        sys.stdout.write(text)
    else:
        from ._fileio import atomic_write_text

        try:
            atomic_write_text(out_path, text)
        except OSError as exc:
            raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    failed = [r for r in rows if r["error"] is not None]
    for r in failed:  # also on stderr: a script reading stdout still sees them
        sys.stderr.write(f"skoffice31: error: cannot read image {r['path']}: {r['error']}\n")
    return 1 if failed else 0


# --------------------------------------------------------------------------


def main(argv=None):
    """Entry point of the ``skoffice31`` console script; returns the exit code."""
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
