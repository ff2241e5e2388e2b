"""The ``skoffice31`` command line: ``reproduce``, ``train`` and ``predict``.

``skoffice31 reproduce`` re-runs the Office-31 two-head study (three hidden
layouts x {plain SGD, Adam}) as one scikit-learn
:class:`~sklearn.model_selection.GridSearchCV` per batch of configurations,
prints the study's table next to ours and writes ``results.csv``,
``results.json`` and (with matplotlib) figures.  ``skoffice31 train`` fits one
network and saves an image-to-labels :class:`~sklearn.pipeline.Pipeline`;
``skoffice31 predict`` applies it to image files.

Run ``skoffice31 COMMAND --help`` for the options.
"""

import argparse
import contextlib
import csv
import io
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._multihead import MultiHeadMLPClassifier
from ._progress import epoch_callback

__all__ = ["main", "build_parser", "PRESETS", "STUDY_RESULTS"]

#: The study's own table (Office-31, 100x100 RGB raw pixels, 80% train /
#: 15% test, 50 epochs, lr 1e-4, minibatch 10, on a laptop):
#: (hidden, solver) -> (domain accuracy, object accuracy, seconds).
STUDY_RESULTS = {
    ((10,), "sgd"): (0.661, 0.032, 93),
    ((10,), "adam"): (0.661, 0.032, 396),
    ((64, 32, 10), "sgd"): (0.872, 0.195, 257),
    ((64, 32, 10), "adam"): (0.858, 0.269, 2260),
    ((384, 192, 64, 32, 10), "sgd"): (0.837, 0.214, 2376),
    ((384, 192, 64, 32, 10), "adam"): (0.890, 0.283, 11752),
}

DEFAULT_HIDDEN = [(10,), (64, 32, 10), (384, 192, 64, 32, 10)]
DEFAULT_SOLVERS = ["sgd", "adam"]
HEADS = ("domain", "object")

#: Settings of the two presets.  ``learning_rate_init`` is given per solver;
#: any command-line flag overrides the preset value.
PRESETS = {
    # The study exactly: raw 0..255 pixels, N(0, 0.03) weights, plain SGD
    # (no momentum), no L2, lr 1e-4, minibatch 10, 50 epochs, the textbook
    # code's 80% train / 15% test split (5% unused) with a fixed seed.
    "study": {
        "scale": 1.0,
        "init": "normal",
        "init_scale": 0.03,
        "momentum": 0.0,
        "nesterovs_momentum": False,
        "alpha": 0.0,
        "learning_rate_init": {"sgd": 1e-4, "adam": 1e-4},
        "batch_size": 10,
        "epochs": 50,
        "train_size": 0.8,
        "test_size": 0.15,
        "seed": 0,
    },
    # Our recommendation: pixels scaled to 0..1, Glorot initialisation,
    # SGD with Nesterov momentum, a little L2, larger minibatches and fewer
    # epochs (see the performance page of the documentation).
    "tuned": {
        "scale": 1.0 / 255.0,
        "init": "glorot",
        "init_scale": 0.03,
        "momentum": 0.9,
        "nesterovs_momentum": True,
        "alpha": 1e-4,
        "learning_rate_init": {"sgd": 0.01, "adam": 1e-3},
        "batch_size": 32,
        "epochs": 40,
        "train_size": 0.8,
        "test_size": 0.15,
        "seed": 0,
    },
}

#: Image side used for the built-in dataset when ``--size`` is not given
#: (the real photos use the study's 100x100).
BUILTIN_SIZE = 32
OFFICE31_SIZE = 100


class UsageError(Exception):
    """A mistake on the command line or in the inputs: one line, exit code 2."""


# --------------------------------------------------------------------------
# argument parsing
# --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (and exit code 2)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _parse_hidden(text):
    """``"64,32,10"`` -> ``(64, 32, 10)``; ``"none"`` or ``""`` -> ``()``."""
    original = text
    text = text.strip().strip("()[]").replace(" ", "")
    if text.lower() in ("", "none", "0"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(",") if part != "")
    except ValueError:
        sizes = None
    if not sizes or any(s <= 0 for s in sizes):
        raise UsageError(
            f"bad --hidden {original!r}: expected comma-separated positive layer "
            "sizes such as 10 or 64,32,10 (or 'none' for no hidden layer)"
        )
    return sizes


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
    p.add_argument(
        "--data",
        metavar="DIR",
        help="Office-31 folder (<domain>/images/<object>/*.jpg); "
        "default: the built-in office-digits dataset",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="study" if grid else "tuned",
        help="'study' = the study's exact settings, 'tuned' = our recommendation "
        "(default: %(default)s); the flags below override it",
    )
    many = "; repeat for a grid" if grid else ""
    p.add_argument(
        "--hidden",
        action="append",
        metavar="SIZES",
        help="hidden layer sizes, e.g. 64,32,10" + many,
    )
    p.add_argument(
        "--solver",
        action="append",
        choices=DEFAULT_SOLVERS,
        help="'sgd' or 'adam'" + many,
    )
    p.add_argument("--epochs", type=int, metavar="N", help="training epochs (max_iter)")
    p.add_argument("--lr", type=float, metavar="X", help="learning_rate_init (all solvers)")
    p.add_argument("--batch-size", type=int, metavar="N", help="minibatch size")
    p.add_argument("--alpha", type=float, metavar="X", help="L2 penalty")
    p.add_argument("--seed", type=int, metavar="N", help="seed of the split and the weights")
    p.add_argument(
        "--size",
        metavar="PX",
        help=f"image side in pixels, e.g. 100 or 100x100 (default {OFFICE31_SIZE} "
        f"with --data, {BUILTIN_SIZE} for the built-in data)",
    )
    p.add_argument("--train-size", type=float, metavar="F", help="training fraction of the split")
    p.add_argument("--test-size", type=float, metavar="F", help="test fraction of the split")
    p.add_argument(
        "--blas-threads",
        type=int,
        default=0,
        metavar="N",
        help="limit BLAS threads per fit (default: 0 = no limit; the estimator itself runs "
        "minibatches of <= 64 on one BLAS thread and gives the second core to the weight "
        "update; use --n-jobs to fit configurations in parallel)",
    )
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

    rep = sub.add_parser(
        "reproduce",
        help="re-run the study's grid (hidden layouts x solvers) and tabulate it",
        description="Re-run the two-head study: a GridSearchCV over hidden layouts x "
        "solvers with one ShuffleSplit; prints the table (and the study's own numbers "
        "with --preset study) and writes results.csv, results.json and figures to --out.",
    )
    _add_training_options(rep, grid=True)
    rep.add_argument("--n-jobs", type=int, metavar="N", help="parallel fits (GridSearchCV n_jobs)")
    rep.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="run the grid on dask: tcp://HOST:PORT of a running scheduler, "
        "or local:N for a LocalCluster of N workers (extra 'distributed')",
    )
    rep.add_argument("--out", metavar="DIR", default="skoffice31-results",
                     help="output folder (default: %(default)s)")
    rep.add_argument("--samples", type=int, default=3, metavar="K",
                     help="sample test predictions shown per configuration (default: %(default)s)")
    rep.set_defaults(func=cmd_reproduce)

    tr = sub.add_parser(
        "train",
        help="train one network and save it (images in, (domain, object) out)",
        description="Train one MultiHeadMLPClassifier on the training part of the split, "
        "report its test accuracy and save Pipeline(ImageFlattener, classifier) with joblib.",
    )
    _add_training_options(tr, grid=False)
    tr.add_argument("--model", metavar="FILE", default="model.joblib",
                    help="where to save the model (default: %(default)s)")
    tr.set_defaults(func=cmd_train)

    pr = sub.add_parser(
        "predict",
        help="predict domain and object of image files with a saved model",
        description="Print the predicted domain and object (with probabilities) of each image.",
    )
    pr.add_argument("model", metavar="MODEL", help="a model saved by 'skoffice31 train'")
    pr.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    pr.add_argument("--top", type=int, default=1, metavar="K",
                    help="show the K most probable labels per head (default: %(default)s)")
    pr.set_defaults(func=cmd_predict)
    return parser


def _version_string():
    from . import __version__

    return f"skoffice31 {__version__}"


# --------------------------------------------------------------------------
# settings, data
# --------------------------------------------------------------------------


def _resolve_settings(args, *, grid):
    """Preset values overridden by the flags given."""
    s = dict(PRESETS[args.preset])
    s["learning_rate_init"] = dict(s["learning_rate_init"])
    s["preset"] = args.preset
    for flag, key in [
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("alpha", "alpha"),
        ("seed", "seed"),
        ("train_size", "train_size"),
        ("test_size", "test_size"),
    ]:
        value = getattr(args, flag)
        if value is not None:
            s[key] = value
    if args.lr is not None:
        if not args.lr > 0:
            raise UsageError(f"bad --lr {args.lr}: must be > 0")
        s["learning_rate_init"] = {k: args.lr for k in s["learning_rate_init"]}
    if s["epochs"] < 1:
        raise UsageError(f"bad --epochs {s['epochs']}: must be >= 1")
    if s["batch_size"] < 1:
        raise UsageError(f"bad --batch-size {s['batch_size']}: must be >= 1")
    if args.blas_threads < 0:
        raise UsageError(f"bad --blas-threads {args.blas_threads}: must be >= 0")
    s["blas_threads"] = args.blas_threads
    if s["alpha"] < 0:
        raise UsageError(f"bad --alpha {s['alpha']}: must be >= 0")
    tr, te = s["train_size"], s["test_size"]
    if not (0 < tr < 1 and 0 < te < 1 and tr + te <= 1 + 1e-9):
        raise UsageError(
            f"bad split --train-size {tr} --test-size {te}: both in (0, 1), sum <= 1"
        )
    if args.hidden:
        hidden = []
        for text in args.hidden:
            h = _parse_hidden(text)
            if h not in hidden:
                hidden.append(h)
    else:
        hidden = list(DEFAULT_HIDDEN) if grid else [(64, 32, 10)]
    solvers = list(dict.fromkeys(args.solver)) if args.solver else (
        list(DEFAULT_SOLVERS) if grid else ["adam"]
    )
    if not grid and (len(hidden) > 1 or len(solvers) > 1):
        raise UsageError("train takes one --hidden and one --solver (use 'reproduce' for a grid)")
    s["hidden"] = hidden
    s["solvers"] = solvers
    if args.size is not None:
        s["size"] = _parse_size(args.size)
    else:
        side = OFFICE31_SIZE if args.data else BUILTIN_SIZE
        s["size"] = (side, side)
    return s


def _load_dataset(data, size, n_jobs=None):
    """Load Office-31 from ``data`` or the built-in dataset; returns (bunch, description)."""
    from . import datasets

    if data:
        path = Path(data).expanduser()
        if not path.exists():
            raise UsageError(f"data folder not found: {data}")
        if not path.is_dir():
            raise UsageError(
                f"--data must be a folder with the Office-31 layout, got a file: {data}"
            )
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                bunch = datasets.load_office31(path, size=size, n_jobs=n_jobs)
        except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
            raise UsageError(
                f"{data} is not an Office-31 folder "
                f"(expected <domain>/images/<object>/<image>.jpg): {_first_line(exc)}"
            ) from None
        except OSError as exc:
            raise UsageError(f"cannot read {data}: {exc.strerror or _first_line(exc)}") from None
        for w in caught:
            sys.stderr.write(f"warning: {_first_line(w.message)}\n")
        what = f"Office-31 photos from {data}"
    else:
        bunch = _call_with_supported(datasets.load_office_digits, size=size)
        what = (
            "built-in office-digits dataset (scikit-learn's handwritten digits drawn in "
            "three domain styles; it stands in for Office-31 - use --data DIR for the "
            "real photos)"
        )
    images = np.asarray(bunch.images)
    n = len(images)
    doms = np.unique(np.asarray(bunch.target)[:, 0])
    objs = np.unique(np.asarray(bunch.target)[:, 1])
    shape = "x".join(str(d) for d in images.shape[1:3])
    channels = images.shape[3] if images.ndim == 4 else 1
    desc = (
        f"Data: {what}: {n} images, {len(doms)} domains, {len(objs)} objects, "
        f"{shape} px x {channels} channel{'s' if channels != 1 else ''}"
    )
    return bunch, desc


def _call_with_supported(func, **kwargs):
    """Call ``func`` with the keyword arguments its signature accepts."""
    import inspect

    params = inspect.signature(func).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return func(**kwargs)


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _flattener(size, scale):
    from ._image import ImageFlattener

    return ImageFlattener(size=tuple(size), mode="RGB", scale=scale)


def _named_target(y):
    """``y`` with head names ``domain`` and ``object``.

    A pandas DataFrame (when pandas is installed) makes the estimator's
    ``head_names_`` ``("domain", "object")``; otherwise the plain array is
    used and the heads are referred to by index.
    """
    try:
        import pandas as pd
    except ImportError:
        return y
    return pd.DataFrame(y, columns=list(HEADS))


def _image_size(images):
    """``(width, height)`` of an (n, H, W[, C]) image array."""
    return (int(images.shape[2]), int(images.shape[1]))


def _images_to_X(images, scale):
    images = np.asarray(images)
    return _flattener(_image_size(images), scale).fit_transform(images)


def _estimator_params(s, hidden, solver):
    return {
        "hidden": tuple(hidden),
        "solver": solver,
        "learning_rate_init": s["learning_rate_init"][solver],
        "momentum": s["momentum"],
        "nesterovs_momentum": s["nesterovs_momentum"],
        "alpha": s["alpha"],
        "batch_size": s["batch_size"],
        "max_iter": s["epochs"],
        # run every epoch the study ran: no stopping on a loss plateau
        "n_iter_no_change": s["epochs"],
        "init": s["init"],
        "init_scale": s["init_scale"],
        "shuffle": True,
        "random_state": s["seed"],
    }


def _check_output_dir(out):
    path = Path(out).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or _first_line(exc)
        raise UsageError(f"cannot write to output folder {out}: {reason}") from None
    return path


def _atomic_write(path, text):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# the classifier used inside the search, scoring, progress
# --------------------------------------------------------------------------


class _ReproduceClassifier(MultiHeadMLPClassifier):
    """MultiHeadMLPClassifier whose ``fit`` accepts a ``progress`` callback.

    ``GridSearchCV.fit(X, y, progress=printer)`` routes ``progress`` to every
    fit, in whichever process or dask worker runs it; the callback is
    installed with :func:`skoffice31._progress.epoch_callback` for the fit's
    duration.  The reaching of ``max_iter`` (expected: the study trains a
    fixed number of epochs) is not reported as a ``ConvergenceWarning``.
    """

    def fit(self, X, y, sample_weight=None, progress=None, blas_threads=None):
        from sklearn.exceptions import ConvergenceWarning

        with contextlib.ExitStack() as stack:
            if progress is not None:
                stack.enter_context(epoch_callback(progress))
            if blas_threads:
                stack.enter_context(_blas_limits(blas_threads))
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore", ConvergenceWarning)
            return super().fit(X, y, sample_weight=sample_weight)


def _blas_limits(n_threads):
    """Limit the BLAS thread pools (threadpoolctl comes with scikit-learn)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(n_threads), user_api="blas")


def _config_key(hidden, solver):
    return (tuple(int(h) for h in hidden), str(solver))


def _n_weights(n_features, hidden, n_outputs):
    sizes = [n_features, *hidden, n_outputs]
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


class _EpochPrinter:
    """Progress lines on stderr: config i of n, epoch, loss, elapsed, ETA.

    Picklable (it travels to worker processes with the fit parameters).  The
    ETA of the run extrapolates the current configuration's speed per weight
    to the configurations still queued after the running batch.
    """

    def __init__(self, index, n_total, costs, queued_cost, parallel, inline):
        self.index = index  # config key -> 1-based position
        self.n_total = n_total
        self.costs = costs  # config key -> weights per epoch
        self.queued_cost = queued_cost  # weight-epochs after the running batch
        self.parallel = max(1, parallel)
        self.inline = inline
        self._last = {}

    def __call__(self, info):
        est = info["estimator"]
        key = _config_key(est.hidden, est.solver)
        i = self.index.get(key, 0)
        epoch, max_iter = int(info["epoch"]), int(info["max_iter"])
        elapsed = float(info["elapsed"])
        cost = self.costs.get(key, 1)
        rate = elapsed / max(epoch * cost, 1)
        eta = (max_iter - epoch) * cost * rate + self.queued_cost * rate / self.parallel
        now = time.monotonic()
        last = self._last.get(key)
        final = epoch >= max_iter
        if not self.inline and not final and epoch != 1 and last is not None and now - last < 2.0:
            return
        self._last[key] = now
        heads = info.get("head_losses") or {}
        head_txt = ", ".join(f"{_head_label(k)} {v:.4f}" for k, v in heads.items())
        line = (
            f"config {i}/{self.n_total} hidden {_fmt_hidden(key[0])} {key[1]}: "
            f"epoch {epoch}/{max_iter} loss {info['loss']:.4f}"
            + (f" ({head_txt})" if head_txt else "")
            + f" elapsed {_fmt_seconds(elapsed)} ETA {_fmt_seconds(eta)}"
        )
        if self.inline:
            sys.stderr.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _head_label(name):
    return {"head0": "domain", "head1": "object"}.get(str(name), str(name))


class _StudyScoring:
    """Multi-metric scorer for the search: accuracies plus what to report.

    Returns ``domain``, ``object`` and ``both`` (the
    :func:`skoffice31.metrics.head_accuracy_scorer` and
    :func:`~skoffice31.metrics.exact_match_scorer` values) and, because
    ``refit=False`` keeps no fitted model, the numbers the report needs from
    each fit: the per-epoch loss curves (``loss_e001`` ...,
    ``domain_loss_e001`` ...) and the predictions of the first ``n_samples``
    rows (``sample0_domain`` = index into the class list, ``sample0_domain_p``
    = its probability).  They land in ``cv_results_`` like any score.
    """

    def __init__(self, classes, n_epochs, n_samples):
        self.classes = [list(map(str, c)) for c in classes]
        self.n_epochs = n_epochs
        self.n_samples = n_samples

    def __call__(self, estimator, X, y):
        from .metrics import exact_match_scorer, head_accuracy_scorer

        out = {
            name: float(head_accuracy_scorer(_head_ref(estimator, h, name))(estimator, X, y))
            for h, name in enumerate(HEADS)
        }
        out["both"] = float(exact_match_scorer(estimator, X, y))
        total = list(getattr(estimator, "loss_curve_", []))
        curves = dict(getattr(estimator, "head_loss_curves_", {}) or {})
        names = list(getattr(estimator, "head_names_", ()))
        for e in range(self.n_epochs):
            out[f"loss_e{e + 1:03d}"] = float(total[e]) if e < len(total) else math.nan
            for h, name in enumerate(HEADS):
                curve = curves.get(name, curves.get(names[h]) if h < len(names) else None)
                curve = list(curve) if curve is not None else []
                out[f"{name}_loss_e{e + 1:03d}"] = float(curve[e]) if e < len(curve) else math.nan
        k = min(self.n_samples, len(X))
        if k:
            proba = estimator.predict_proba(X[:k])
            if not isinstance(proba, list):
                proba = [proba]
            for h, name in enumerate(HEADS):
                cls = [str(c) for c in estimator.classes_[h]]
                for i in range(k):
                    j = int(np.argmax(proba[h][i]))
                    label = cls[j]
                    out[f"sample{i}_{name}"] = float(
                        self.classes[h].index(label) if label in self.classes[h] else -1
                    )
                    out[f"sample{i}_{name}_p"] = float(proba[h][i][j])
        return out


def _head_ref(estimator, index, name):
    """Refer to a head by name when the estimator knows it, else by index."""
    names = tuple(getattr(estimator, "head_names_", ()))
    return name if name in names else index


# --------------------------------------------------------------------------
# reproduce
# --------------------------------------------------------------------------


def cmd_reproduce(args):
    s = _resolve_settings(args, grid=True)
    if args.n_jobs is not None and args.n_jobs == 0:
        raise UsageError("bad --n-jobs 0: use a positive number, or -1 for all cores")
    if args.samples < 0:
        raise UsageError(f"bad --samples {args.samples}: must be >= 0")
    if args.scheduler:
        _check_scheduler(args.scheduler)
    out = _check_output_dir(args.out)
    started = time.time()
    bunch, desc = _load_dataset(args.data, s["size"], n_jobs=args.n_jobs)
    print(desc, flush=True)

    images = np.asarray(bunch.images)
    y = np.asarray(bunch.target).astype(str)
    X = _images_to_X(images, s["scale"])
    y_fit = _named_target(y)
    classes = [np.unique(y[:, h]) for h in range(y.shape[1])]

    from sklearn.model_selection import ShuffleSplit

    cv = ShuffleSplit(
        n_splits=1, train_size=s["train_size"], test_size=s["test_size"], random_state=s["seed"]
    )
    train_idx, test_idx = next(cv.split(X, y))
    configs = [_config_key(h, solver) for h in s["hidden"] for solver in s["solvers"]]
    print(
        f"Preset {s['preset']}: {len(configs)} configuration{'s' if len(configs) != 1 else ''}, "
        f"{s['epochs']} epochs, "
        f"batch {s['batch_size']}, lr "
        + ", ".join(f"{k} {s['learning_rate_init'][k]:g}" for k in s["solvers"])
        + f", {_fmt_scale(s['scale'])}, init {s['init']}; "
        f"split {len(train_idx)} train / {len(test_idx)} test (seed {s['seed']})",
        flush=True,
    )

    run = {
        "command": ["skoffice31", *getattr(args, "argv", ["reproduce"])],
        "started": _iso(started),
        "data": {
            "source": str(Path(args.data).resolve()) if args.data else "builtin:load_office_digits",
            "description": desc,
            "n_samples": int(len(X)),
            "n_features": int(X.shape[1]),
            "image_size": list(s["size"]),
            "heads": list(HEADS),
            "classes": {name: [str(c) for c in classes[h]] for h, name in enumerate(HEADS)},
        },
        "split": {
            "cv": "ShuffleSplit(n_splits=1)",
            "train_size": s["train_size"],
            "test_size": s["test_size"],
            "random_state": s["seed"],
            "n_train": int(len(train_idx)),
            "n_test": int(len(test_idx)),
        },
        "settings": _json_settings(s),
        "versions": _versions(),
        "machine": _machine(),
    }
    sample_rows = test_idx[: args.samples]
    with contextlib.ExitStack() as stack:
        stack.enter_context(_terminate_as_interrupt())
        if args.scheduler:
            _enter_scheduler(stack, args.scheduler, args.n_jobs, [X, y_fit])
            run["scheduler"] = args.scheduler
        rows, interrupted, failure = _run_grid(args, s, X, y_fit, cv, configs, classes, out, run,
                                               sample_rows, started)

    _finish(run, rows, started, interrupted, failure, out)
    _write_results(out, run, rows)
    _print_report(rows, s, y, sample_rows, classes)
    figures = _plot_all(out, rows, s, images, y, sample_rows, classes)
    files = ["results.csv", "results.json", *figures]
    print(f"\nWrote {', '.join(files)} to {out}/ (wall time {_fmt_seconds(time.time() - started)})")
    if interrupted:
        sys.stderr.write(
            f"skoffice31: interrupted; {len(rows)} of {len(configs)} configurations "
            f"finished and saved in {out}/\n"
        )
        return 130
    if failure:
        sys.stderr.write(f"skoffice31: error: {failure}; finished configurations saved in {out}/\n")
        return 1
    return 0


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Treat SIGTERM like Ctrl-C while the grid runs (finished rows are kept)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # pragma: no cover - unusual platforms
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_scheduler(scheduler):
    """Validate ``--scheduler`` before any work (one-line error)."""
    from ._distributed import parse_scheduler

    try:
        parse_scheduler(scheduler)
    except ValueError as exc:
        raise UsageError(f"bad --scheduler: {_first_line(exc)}") from None


def _enter_scheduler(stack, scheduler, n_jobs, scatter):
    """Run the joblib calls of the search on dask (see :mod:`skoffice31._distributed`).

    ``X`` and ``y`` are scattered to the workers once, so the per-batch
    searches do not ship the image matrix again.
    """
    from ._distributed import DistributedError, parallel_context

    try:
        stack.enter_context(parallel_context(scheduler, n_jobs, scatter=scatter))
    except ImportError as exc:
        raise UsageError(_first_line(exc)) from None
    except (DistributedError, OSError, TimeoutError) as exc:
        raise UsageError(f"--scheduler {scheduler}: {_first_line(exc)}") from None


def _run_grid(args, s, X, y, cv, configs, classes, out, run, sample_rows, started):
    y_true = np.asarray(y).astype(str)
    import joblib
    from sklearn.model_selection import GridSearchCV

    parallel = max(1, int(joblib.effective_n_jobs(args.n_jobs)))
    parallel = min(parallel, len(configs))
    costs = {c: _n_weights(X.shape[1], c[0], sum(len(k) for k in classes)) for c in configs}
    index = {c: i + 1 for i, c in enumerate(configs)}
    scoring = _StudyScoring(classes, s["epochs"], len(sample_rows))
    inline = parallel == 1 and not args.quiet and sys.stderr.isatty()
    rows, interrupted, failure = [], False, None
    # One GridSearchCV per batch of `parallel` configurations: the results of
    # finished batches are on disk before the next one starts (Ctrl-C safe).
    for start in range(0, len(configs), parallel):
        batch = configs[start:start + parallel]
        queued = configs[start + parallel:]
        grid = [
            {"hidden": [c[0]], "solver": [c[1]],
             "learning_rate_init": [s["learning_rate_init"][c[1]]]}
            for c in batch
        ]
        base = _ReproduceClassifier(**_estimator_params(s, batch[0][0], batch[0][1]))
        search = GridSearchCV(
            base, grid, scoring=scoring, refit=False, cv=cv, n_jobs=args.n_jobs,
            return_train_score=True, error_score=np.nan,
        )
        fit_params = {"blas_threads": args.blas_threads}
        if not args.quiet:
            fit_params["progress"] = _EpochPrinter(
                index, len(configs), costs,
                sum(costs[c] for c in queued) * s["epochs"], parallel, inline,
            )
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                search.fit(X, y, **fit_params)
        except KeyboardInterrupt:
            interrupted = True
            break
        except ValueError as exc:
            if "fits failed" not in str(exc):
                raise
            for c in batch:
                rows.append(_failed_row(c, s, _fit_error(str(exc))))
            _write_results(out, run, rows, started=started)
            continue
        except Exception as exc:  # e.g. the dask scheduler went away
            if args.scheduler:
                from ._distributed import as_scheduler_lost

                exc = as_scheduler_lost(exc)
            failure = f"{type(exc).__name__}: {_first_line(exc)}"
            break
        errors = [_fit_error(str(w.message)) for w in caught
                  if "fit failed" in str(w.message).lower() or "fits failed" in str(w.message)]
        new = _rows_from_search(search, s, classes, sample_rows, y_true, errors)
        rows.extend(new)
        for row in new:
            if not args.quiet:
                sys.stderr.write(
                    f"config {index[_config_key(row['hidden'], row['solver'])]}/{len(configs)} "
                    f"done: hidden {_fmt_hidden(row['hidden'])} {row['solver']} - domain "
                    f"{_fmt_acc(row['domain_acc'])}, object {_fmt_acc(row['object_acc'])}, "
                    f"both {_fmt_acc(row['both_acc'])} in {_fmt_seconds(row['fit_seconds'])}\n"
                )
        _write_results(out, run, rows, started=started)
    return rows, interrupted, failure


def _fit_error(text):
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "fit failed"


def _failed_row(config, s, error):
    row = _base_row(config, s)
    row.update({"status": f"failed: {error}"})
    return row


def _base_row(config, s):
    hidden, solver = config
    row = {
        "hidden": list(hidden),
        "solver": solver,
        "learning_rate_init": s["learning_rate_init"][solver],
        "batch_size": s["batch_size"],
        "epochs": s["epochs"],
        "domain_acc": math.nan,
        "object_acc": math.nan,
        "both_acc": math.nan,
        "train_domain_acc": math.nan,
        "train_object_acc": math.nan,
        "train_both_acc": math.nan,
        "fit_seconds": math.nan,
        "score_seconds": math.nan,
        "final_loss": math.nan,
        "status": "ok",
    }
    if s["preset"] == "study" and config in STUDY_RESULTS:
        d, o, sec = STUDY_RESULTS[config]
        row.update({"study_domain_acc": d, "study_object_acc": o, "study_seconds": sec})
    return row


def _rows_from_search(search, s, classes, sample_rows, y, errors):
    res = search.cv_results_
    rows = []
    for i, params in enumerate(res["params"]):
        config = _config_key(params["hidden"], params["solver"])
        row = _base_row(config, s)

        def val(key):
            v = res.get(key)
            return float(v[i]) if v is not None else math.nan

        row["domain_acc"] = val("split0_test_domain")
        row["object_acc"] = val("split0_test_object")
        row["both_acc"] = val("split0_test_both")
        row["train_domain_acc"] = val("split0_train_domain")
        row["train_object_acc"] = val("split0_train_object")
        row["train_both_acc"] = val("split0_train_both")
        row["fit_seconds"] = float(res["mean_fit_time"][i])
        row["score_seconds"] = float(res["mean_score_time"][i])
        loss = [val(f"split0_test_loss_e{e + 1:03d}") for e in range(s["epochs"])]
        row["loss_curve"] = [v for v in loss if not math.isnan(v)]
        row["head_loss_curves"] = {
            name: [v for v in (val(f"split0_test_{name}_loss_e{e + 1:03d}")
                               for e in range(s["epochs"])) if not math.isnan(v)]
            for name in HEADS
        }
        row["n_iter"] = len(row["loss_curve"])
        row["final_loss"] = row["loss_curve"][-1] if row["loss_curve"] else math.nan
        samples = []
        for k, r in enumerate(sample_rows):
            pred, proba = [], []
            for h, name in enumerate(HEADS):
                j = val(f"split0_test_sample{k}_{name}")
                pred.append(str(classes[h][int(j)]) if not math.isnan(j) and j >= 0 else "?")
                proba.append(val(f"split0_test_sample{k}_{name}_p"))
            samples.append({"row": int(r), "true": [str(v) for v in y[r]], "predicted": pred,
                            "probability": proba})
        row["samples"] = samples
        if math.isnan(row["domain_acc"]):
            row["status"] = "failed: " + (errors[0] if errors else "fit failed")
        rows.append(row)
    return rows


def _finish(run, rows, started, interrupted, failure, out):
    end = time.time()
    run["finished"] = _iso(end)
    run["wall_seconds"] = round(end - started, 3)
    run["interrupted"] = bool(interrupted)
    if failure:
        run["error"] = failure


def _iso(t):
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def _json_settings(s):
    out = {k: v for k, v in s.items() if k not in ("hidden", "solvers", "size")}
    out["hidden"] = [list(h) for h in s["hidden"]]
    out["solvers"] = list(s["solvers"])
    out["size"] = list(s["size"])
    out["estimator"] = "skoffice31.MultiHeadMLPClassifier"
    out["search"] = ("GridSearchCV(scoring={domain, object, both}, refit=False, "
                     "return_train_score=True, cv=ShuffleSplit(n_splits=1))")
    return out


def _versions():
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("skoffice31", "scikit-learn", "numpy", "scipy", "joblib", "pillow",
                 "matplotlib", "threadpoolctl"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    from . import __version__

    out["skoffice31"] = __version__
    return out


def _machine():
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
            info["memory_gb"] = round(kb / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
            for d in threadpool_info()
        ]
    except Exception:  # pragma: no cover - informational only
        pass
    return info


CSV_COLUMNS = [
    "hidden", "solver", "learning_rate_init", "batch_size", "epochs", "n_iter",
    "domain_acc", "object_acc", "both_acc", "train_domain_acc", "train_object_acc",
    "train_both_acc", "fit_seconds", "final_loss", "study_domain_acc", "study_object_acc",
    "study_seconds", "status",
]


def _write_results(out, run, rows, started=None):
    if started is not None:
        _finish(run, rows, started, False, None, out)
        run["partial"] = True
    else:
        run.pop("partial", None)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = []
        for col in CSV_COLUMNS:
            v = row.get(col, "")
            if col == "hidden":
                v = _fmt_hidden(v)
            elif isinstance(v, float):
                v = "" if math.isnan(v) else round(v, 6)
            values.append(v)
        writer.writerow(values)
    _atomic_write(Path(out) / "results.csv", buf.getvalue())
    doc = dict(run)
    doc["results"] = [_jsonable(r) for r in rows]
    _atomic_write(Path(out) / "results.json", json.dumps(doc, indent=2) + "\n")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def _fmt_scale(scale):
    if scale == 1.0:
        return "raw 0..255 pixels"
    if abs(scale - 1 / 255) < 1e-12:
        return "pixels scaled to 0..1"
    return f"pixels x {scale:.4g}"


def _fmt_hidden(hidden):
    return "(" + ",".join(str(int(h)) for h in hidden) + ")"


def _fmt_acc(v):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _fmt_seconds(sec):
    if sec is None or (isinstance(sec, float) and math.isnan(sec)):
        return "-"
    sec = float(sec)
    if sec < 60:
        return f"{sec:.1f}s"
    if sec < 3600:
        return f"{int(sec // 60)}m{int(sec % 60):02d}s"
    return f"{int(sec // 3600)}h{int(sec % 3600 // 60):02d}m"


def format_table(rows, study=False):
    """The study's table (Markdown) from result rows; ``study`` adds its figures."""
    head = ["hidden", "solver", "domain acc", "object acc", "both right", "train s"]
    if study:
        head += ["study domain", "study object", "study s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [_fmt_hidden(r["hidden"]), r["solver"], _fmt_acc(r["domain_acc"]),
                 _fmt_acc(r["object_acc"]), _fmt_acc(r["both_acc"]),
                 "-" if math.isnan(r["fit_seconds"]) else f"{r['fit_seconds']:.1f}"]
        if study:
            if "study_domain_acc" in r:
                cells += [f"{r['study_domain_acc']:.3f}", f"{r['study_object_acc']:.3f}",
                          f"{r['study_seconds']:,}"]
            else:
                cells += ["", "", ""]
        if r.get("status", "ok") != "ok":
            cells[1] += " (" + r["status"] + ")"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _print_report(rows, s, y, sample_rows, classes):
    study = s["preset"] == "study"
    print()
    if study:
        print("Our run (left) next to the study's own figures (right; Office-31, 100x100 "
              "RGB, a laptop):")
    print(format_table(rows, study=study))
    for r in rows:
        if not r.get("samples"):
            continue
        print(f"\nSample test predictions, hidden {_fmt_hidden(r['hidden'])} {r['solver']}:")
        for smp in r["samples"]:
            t, p = smp["true"], smp["predicted"]
            mark = "ok" if t == p else ("half" if t[0] == p[0] or t[1] == p[1] else "wrong")
            print(f"  true ({t[0]}, {t[1]}) \u2192 predicted ({p[0]}, {p[1]})  [{mark}]")


def _plot_all(out, rows, s, images, y, sample_rows, classes):
    """accuracy.png, loss_curves.png and samples.png when matplotlib is installed."""
    ok_rows = [r for r in rows if r.get("status") == "ok"]
    if not ok_rows:
        return []
    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = _plot_accuracy(plt, ok_rows, s["preset"] == "study")
        fig.savefig(Path(out) / "accuracy.png", dpi=100)
        plt.close(fig)
        written.append("accuracy.png")
        if any(r.get("loss_curve") for r in ok_rows):
            fig = _plot_losses(plt, ok_rows)
            fig.savefig(Path(out) / "loss_curves.png", dpi=100)
            plt.close(fig)
            written.append("loss_curves.png")
        if len(sample_rows) and any(r.get("samples") for r in ok_rows):
            fig = _plot_samples(plt, ok_rows, images)
            fig.savefig(Path(out) / "samples.png", dpi=100)
            plt.close(fig)
            written.append("samples.png")
    return written


def _plot_accuracy(plt, rows, study):
    labels = [f"{_fmt_hidden(r['hidden'])}\n{r['solver']}" for r in rows]
    series = [("domain", "domain_acc", "C0"), ("object", "object_acc", "C1"),
              ("both right", "both_acc", "C2")]
    if study:
        series += [("study domain", "study_domain_acc", "C0"),
                   ("study object", "study_object_acc", "C1")]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 2.0 * len(rows)), 4.2))
    x = np.arange(len(rows))
    for j, (name, key, color) in enumerate(series):
        vals = [r.get(key, np.nan) for r in rows]
        hatch = "//" if name.startswith("study") else None
        ax.bar(x + (j - (len(series) - 1) / 2) * width, vals, width, label=name, color=color,
               alpha=0.5 if hatch else 1.0, hatch=hatch, edgecolor="k" if hatch else None)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.18)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy per configuration and head"
                 + (" (hatched: the study's Office-31 figures)" if study else ""))
    ax.legend(fontsize="small", ncol=len(series), loc="upper center")
    fig.tight_layout()
    return fig


def _plot_losses(plt, rows):
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)
    panels = [("total loss", lambda r: r.get("loss_curve", []))] + [
        (f"{name} cross-entropy", lambda r, n=name: r.get("head_loss_curves", {}).get(n, []))
        for name in HEADS
    ]
    for ax, (title, get) in zip(axes, panels):
        for r in rows:
            curve = get(r)
            if len(curve):
                ax.plot(np.arange(1, len(curve) + 1), curve,
                        label=f"{_fmt_hidden(r['hidden'])} {r['solver']}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("training loss")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def _plot_samples(plt, rows, images):
    k = max(len(r.get("samples", [])) for r in rows)
    fig, axes = plt.subplots(len(rows), k, figsize=(2.3 * k, 2.5 * len(rows)), squeeze=False)
    for i, r in enumerate(rows):
        for j in range(k):
            ax = axes[i, j]
            ax.axis("off")
            if j >= len(r.get("samples", [])):
                continue
            smp = r["samples"][j]
            img = np.asarray(images[smp["row"]])
            if img.dtype != np.uint8 and img.max() > 1.0:
                img = np.clip(img / 255.0, 0, 1)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            t, p = smp["true"], smp["predicted"]
            n_ok = (t[0] == p[0]) + (t[1] == p[1])
            color = {2: "green", 1: "darkorange", 0: "red"}[n_ok]
            ax.set_title(f"true {t[0]}, {t[1]}\npred {p[0]}, {p[1]}", fontsize=8, color=color)
            if j == 0:
                ax.text(-0.1, 0.5, f"{_fmt_hidden(r['hidden'])}\n{r['solver']}", fontsize=8,
                        transform=ax.transAxes, ha="right", va="center")
    fig.suptitle("Sample test predictions (green: both heads right, orange: one, red: none)",
                 fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# train / predict
# --------------------------------------------------------------------------


def cmd_train(args):
    s = _resolve_settings(args, grid=False)
    model_path = Path(args.model).expanduser()
    parent = model_path.parent
    if model_path.is_dir():
        raise UsageError(f"--model must be a file name, got a folder: {args.model}")
    if not parent.is_dir():
        raise UsageError(f"cannot write model {args.model}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write model {args.model}: folder {parent} is not writable")
    bunch, desc = _load_dataset(args.data, s["size"])
    print(desc, flush=True)

    import joblib
    from sklearn.model_selection import ShuffleSplit
    from sklearn.pipeline import Pipeline

    from .metrics import exact_match_accuracy, head_accuracies

    images = np.asarray(bunch.images)
    y = np.asarray(bunch.target).astype(str)
    hidden, solver = s["hidden"][0], s["solvers"][0]
    cv = ShuffleSplit(n_splits=1, train_size=s["train_size"], test_size=s["test_size"],
                      random_state=s["seed"])
    train_idx, test_idx = next(cv.split(images, y))
    clf = MultiHeadMLPClassifier(**_estimator_params(s, hidden, solver))
    model = Pipeline([("imageflattener", _flattener(_image_size(images), s["scale"])),
                      ("multiheadmlpclassifier", clf)])
    print(f"Training hidden {_fmt_hidden(hidden)} {solver} (preset {s['preset']}, "
          f"{s['epochs']} epochs, batch {s['batch_size']}, lr "
          f"{s['learning_rate_init'][solver]:g}) on {len(train_idx)} images...", flush=True)
    printer = _EpochPrinter({_config_key(hidden, solver): 1}, 1, {}, 0, 1,
                            inline=sys.stderr.isatty())
    from sklearn.exceptions import ConvergenceWarning

    with contextlib.ExitStack() as stack:
        if not args.quiet:
            stack.enter_context(epoch_callback(printer))
        if args.blas_threads:
            stack.enter_context(_blas_limits(args.blas_threads))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        model.fit(images[train_idx], _named_target(y[train_idx]))
        seconds = time.perf_counter() - t0
    pred = model.predict(images[test_idx])
    accs = [float(a) for a in head_accuracies(y[test_idx], pred)]
    both = exact_match_accuracy(y[test_idx], pred)
    print(f"Test accuracy on {len(test_idx)} held-out images: domain {accs[0]:.3f}, "
          f"object {accs[1]:.3f}, both right {both:.3f} (trained in {_fmt_seconds(seconds)})")
    model.skoffice31_info_ = {"heads": list(HEADS), "settings": _json_settings(s),
                              "data": desc, "test_accuracy": {"domain": accs[0],
                                                              "object": accs[1], "both": both}}
    try:
        tmp = model_path.with_name(f".{model_path.name}.tmp{os.getpid()}")
        joblib.dump(model, tmp)
        os.replace(tmp, model_path)
    except OSError as exc:
        raise UsageError(f"cannot write model {args.model}: {exc.strerror or exc}") from None
    print(f"Saved the model to {args.model} (use: skoffice31 predict {args.model} IMAGE...)")
    return 0


def cmd_predict(args):
    import joblib

    path = Path(args.model).expanduser()
    if not path.is_file():
        raise UsageError(f"model file not found: {args.model}")
    try:
        model = joblib.load(path)
    except Exception as exc:
        raise UsageError(f"cannot load model {args.model}: {_first_line(exc)}") from None
    if not hasattr(model, "predict_proba") or not hasattr(model, "steps"):
        raise UsageError(f"{args.model} is not a model saved by 'skoffice31 train'")
    if args.top < 1:
        raise UsageError(f"bad --top {args.top}: must be >= 1")
    info = getattr(model, "skoffice31_info_", {})
    transformer, clf = model[:-1], model[-1]
    names = list(info.get("heads") or [_head_label(h) for h in clf.head_names_])
    rows, failed = [], 0
    for image in args.images:
        try:
            if not Path(image).is_file():
                raise ValueError("no such file" if not Path(image).exists() else "not a file")
            rows.append((image, transformer.transform([image])))
        except Exception as exc:  # one line per bad image, the others go on
            failed += 1
            sys.stderr.write(f"skoffice31: error: cannot read image {image}: {_first_line(exc)}\n")
    if rows:
        X = np.concatenate([x for _, x in rows])
        proba = clf.predict_proba(X)
        if not isinstance(proba, list):
            proba = [proba]
        for i, (image, _) in enumerate(rows):
            parts = []
            for h, name in enumerate(names):
                order = np.argsort(proba[h][i])[::-1][: args.top]
                labels = ", ".join(f"{clf.classes_[h][j]} ({proba[h][i][j]:.2f})" for j in order)
                parts.append(f"{name} {labels}")
            print(f"{image}: " + "; ".join(parts))
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
    except KeyboardInterrupt:
        sys.stderr.write("skoffice31: interrupted\n")
        return 130
    except MemoryError:
        sys.stderr.write("skoffice31: error: out of memory (try a smaller --size)\n")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
