"""Load the study's data, fit and evaluate one configuration, run a grid."""

import contextlib
import dataclasses
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np

from ._output import head_confusion
from ._settings import HEADS, STUDY_RESULTS, Configuration, expected_cost, final_classifier
from ._threads import FreeCores
from ._train import fit_context, named_target

__all__ = [
    "LAYOUTS", "StudyData", "detect_layout", "empty_row", "fit_and_evaluate", "load_study_data", "order_by_cost", "run_study",
]


@dataclasses.dataclass(frozen=True)
class StudyData:
    """The study's data, flattened, and its one train/test split.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        Flattened pixels, already multiplied by the settings' ``scale``.
    y : ndarray of str of shape (n_samples, 2)
        Domain and object of each image.
    images : ndarray
        The images (for figures).
    classes : list of ndarray
        The sorted classes of each head.
    train, test : ndarray of int
        Row indices of the :class:`~sklearn.model_selection.ShuffleSplit`.
    source : str
        The folder of the photos, or ``"builtin:load_office_digits"``.
    description : str
        One line: what the data is, how many images, domains, objects, pixels.
    heads : tuple of str, default=("domain", "object")
        The names of the columns of ``y``.
    """

    X: np.ndarray
    y: np.ndarray
    images: np.ndarray
    classes: list
    train: np.ndarray
    test: np.ndarray
    source: str
    description: str
    heads: tuple = HEADS

    @property
    def n_outputs(self):
        """Output units over all heads (the sum of the class counts)."""
        return sum(len(c) for c in self.classes)

    def cv(self):
        """The split as a ``cv`` argument of scikit-learn (one (train, test) pair)."""
        return [(self.train, self.test)]


LAYOUTS = ("auto", "office31", "folder", "table")


def detect_layout(data):
    """Which of the three layouts the path ``data`` holds.

    Parameters
    ----------
    data : str or path-like
        A folder or a file.

    Returns
    -------
    layout : {"office31", "folder", "table"}
        ``"table"`` for a file (CSV/TSV ``path,<head1>,...``); ``"folder"``
        when a visible sub-folder holds image files directly (the ImageFolder
        layout ``<class>/*.jpg``); else ``"office31"``
        (``<domain>/[images/]<class>/*.jpg``).

    Raises
    ------
    FileNotFoundError
        If ``data`` does not exist.
    """
    from ..datasets._base import _is_hidden, _is_image_name

    path = Path(data).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data folder not found: {data}")
    if not path.is_dir():
        return "table"
    try:
        children = sorted(c for c in path.iterdir() if not _is_hidden(c.name))
    except OSError:
        return "office31"  # the Office-31 loader reports the problem
    for child in children:
        if child.name == "images" or not child.is_dir():
            continue
        try:
            if any(_is_image_name(f.name) and not _is_hidden(f.name) and f.is_file()
                   for f in child.iterdir()):
                return "folder"
        except OSError:
            continue
    return "office31"


def load_study_data(settings, data=None, *, n_jobs=None, layout="auto", head_name="class",
                    cache=True):
    """Load Office-31 photos, one's own images or the built-in stand-in, and split them.

    Parameters
    ----------
    settings : StudySettings
        Image size, pixel scale, split fractions and seed are taken from it.
    data : str or path-like, default=None
        An Office-31 folder (``<domain>/images/<object>/*.jpg``), an
        ImageFolder tree (``<class>/*.jpg``, one head) or a CSV/TSV file
        (``path,<head1>,<head2>,...``); ``None`` loads
        :func:`skoffice31.datasets.load_office_digits`.
    n_jobs : int, default=None
        Parallel image decoding of the photos.
    layout : {"auto", "office31", "folder", "table"}, default="auto"
        The layout of ``data``; ``"auto"`` uses :func:`detect_layout`.
    head_name : str, default="class"
        The head's name with the ``"folder"`` layout.
    cache : bool, default=True
        Use the decoded-image cache of :func:`skoffice31.datasets.load_office31`
        (``False``: neither read nor write it).

    Returns
    -------
    data : StudyData
        ``heads`` names the columns of ``y``: ``("domain", "object")`` for
        Office-31 and the built-in data, ``(head_name,)`` for a folder, the
        header's columns for a table.

    Raises
    ------
    FileNotFoundError, NotADirectoryError, ValueError
        When ``data`` is missing or not in the layout.
    """
    from sklearn.model_selection import ShuffleSplit

    from .. import datasets
    from .._image import ImageFlattener

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}; got {layout!r}.")
    size = settings.image_size(real_photos=data is not None)
    heads = HEADS
    if data is not None:
        path = Path(data).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data folder not found: {data}")
        if layout == "auto":
            layout = detect_layout(path)
        if layout == "table":
            if path.is_dir():
                raise IsADirectoryError(f"--data {data} is a folder, not a CSV/TSV file")
            bunch = datasets.load_image_table(path, size=size, n_jobs=n_jobs)
            what = f"images listed in {data}"
        elif not path.is_dir():
            raise NotADirectoryError(
                f"the data must be a folder with the Office-31 layout, got a file: {data}"
            )
        elif layout == "folder":
            bunch = datasets.load_image_folder(path, head_name=head_name, size=size,
                                               n_jobs=n_jobs)
            what = f"ImageFolder images from {data}"
        else:
            bunch = datasets.load_office31(path, size=size, n_jobs=n_jobs, cache=cache)
            what = f"Office-31 photos from {data}"
        heads = tuple(bunch.head_names)
        source = str(path.resolve())
    else:
        bunch = datasets.load_office_digits(size=size)
        what = (
            "built-in office-digits dataset (scikit-learn's handwritten digits drawn in "
            "three domain styles; it stands in for Office-31 - use --data DIR for the "
            "real photos)"
        )
        source = "builtin:load_office_digits"
    images = np.asarray(bunch.images)
    y = np.asarray(bunch.target).astype(str)
    classes = [np.unique(y[:, h]) for h in range(y.shape[1])]
    shape = "x".join(str(d) for d in images.shape[1:3])
    channels = images.shape[3] if images.ndim == 4 else 1
    if heads == HEADS:
        counts = f"{len(classes[0])} domains, {len(classes[1])} objects"
    else:
        counts = ", ".join(f"{name} {len(c)} classes" for name, c in zip(heads, classes))
    description = (
        f"Data: {what}: {len(images)} images, {counts}, {shape} px x {channels} channel"
        f"{'s' if channels != 1 else ''}"
    )
    width, height = int(images.shape[2]), int(images.shape[1])
    X = ImageFlattener(size=(width, height), mode="RGB", scale=settings.scale).fit_transform(
        images
    )
    cv = ShuffleSplit(n_splits=1, train_size=settings.train_size,
                      test_size=settings.test_size, random_state=settings.seed)
    train, test = next(cv.split(X, y))
    return StudyData(X, y, images, classes, train, test, source, description, heads)


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def empty_row(settings, config):
    """A result row of ``config`` with nothing measured yet (all NaN)."""
    config = Configuration(*config)
    row = {
        "hidden": list(config.hidden),
        "solver": config.solver,
        "learning_rate_init": settings.learning_rate(config.solver),
        "batch_size": settings.batch_size,
        "epochs": settings.epochs,
        "n_iter": 0,
        "domain_acc": math.nan,
        "object_acc": math.nan,
        "both_acc": math.nan,
        "train_domain_acc": math.nan,
        "train_object_acc": math.nan,
        "train_both_acc": math.nan,
        "fit_seconds": math.nan,
        "score_seconds": math.nan,
        "final_loss": math.nan,
        "loss_curve": [],
        "head_loss_curves": {name: [] for name in HEADS},
        "samples": [],
        "confusion": {},
        "started": math.nan,
        "finished": math.nan,
        "status": "ok",
        "error": None,
        "warnings": [],
    }
    if settings.preset == "study" and tuple(config) in STUDY_RESULTS:
        d, o, sec = STUDY_RESULTS[tuple(config)]
        row.update({"study_domain_acc": d, "study_object_acc": o, "study_seconds": sec})
    return row


def fit_and_evaluate(settings, config, X, y, train, test, *, n_samples=3, callbacks=()):
    """Fit the estimator of one configuration and evaluate it on the test rows.

    The estimator is ``settings.make_pipeline(config)`` (the classifier,
    after the preprocessing of the settings if any), fitted on
    ``X[train]``, scored with :func:`skoffice31.metrics.head_accuracy_scorer`
    and :func:`~skoffice31.metrics.exact_match_scorer` (the numbers
    :class:`~sklearn.model_selection.GridSearchCV` with these scorers gives).
    An exception raised by the fit or the scoring does not propagate: the
    row's ``status`` says ``"failed: ..."`` and ``error`` holds the exception.

    Parameters
    ----------
    settings : StudySettings
    config : Configuration or (hidden, solver)
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples, 2)
        Domain and object labels.
    train, test : ndarray of int
        Row indices.
    n_samples : int, default=3
        Predictions of the first ``n_samples`` test rows are reported.
    callbacks : sequence of callbacks, default=()
        Set on the estimator with ``set_callbacks`` (e.g.
        :class:`skoffice31.callbacks.EpochReporter`).

    Returns
    -------
    row : dict
        ``hidden``, ``solver``, ``learning_rate_init``, ``batch_size``,
        ``epochs``, ``n_iter``; test accuracies ``domain_acc``,
        ``object_acc``, ``both_acc`` (both heads right) and the same on the
        training rows (``train_...``); ``fit_seconds``, ``score_seconds``,
        ``started`` and ``finished`` (``time.time()``); ``final_loss``,
        ``loss_curve`` and ``head_loss_curves`` (per epoch, training loss);
        ``samples`` (row, true and predicted labels, probability of each
        head); ``confusion`` (``{head: {"labels": [...], "matrix": [[...]]}}``,
        the test rows' confusion matrix of each head, true labels in rows,
        predicted in columns, in ``classes_`` order); ``status`` (``"ok"`` or
        ``"failed: ..."``) and ``error`` (the exception or ``None``);
        ``warnings``, the messages of the
        :class:`~skoffice31.TrainingCollapseWarning` of the fit; with the
        study preset also the
        study's own ``study_domain_acc``, ``study_object_acc`` and
        ``study_seconds``.
    """
    from ..metrics import exact_match_scorer, head_accuracy_scorer

    config = Configuration(tuple(config[0]), config[1])
    row = empty_row(settings, config)
    row["started"] = time.time()
    try:
        clf = settings.make_pipeline(config)
        if callbacks:  # on the template: a meta-estimator's fitted clone keeps them
            final_classifier(clf).set_callbacks(*callbacks)
        y = np.asarray(y)
        # BLAS limit, no ConvergenceWarning (fixed epochs); a collapse is kept in the row
        with fit_context(settings) as row["warnings"]:
            t0 = time.perf_counter()
            clf.fit(X[train], named_target(y[train]))
            row["fit_seconds"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            mlp = final_classifier(clf, fitted=True)  # the classifier's own attributes
            names = list(mlp.head_names_)  # ("domain", "object") with pandas, else head0, head1
            for part, rows in (("", test), ("train_", train)):
                Xp, yp = X[rows], named_target(y[rows])
                for h, name in enumerate(HEADS):
                    scorer = head_accuracy_scorer(name if name in names else h)
                    row[f"{part}{name}_acc"] = float(scorer(clf, Xp, yp))
                row[f"{part}both_acc"] = float(exact_match_scorer(clf, Xp, yp))
            row["score_seconds"] = time.perf_counter() - t0
            row["confusion"] = head_confusion(y[test], clf.predict(X[test]), clf.classes_, HEADS)
            row["loss_curve"] = [float(v) for v in mlp.loss_curve_]
            row["head_loss_curves"] = {
                name: [float(v) for v in mlp.head_loss_curves_.get(names[h], [])]
                for h, name in enumerate(HEADS)
            }
            row["n_iter"] = int(mlp.n_iter_)
            row["final_loss"] = row["loss_curve"][-1] if row["loss_curve"] else math.nan
            rows = np.asarray(test[:n_samples])
            if len(rows):
                proba = clf.predict_proba(X[rows])
                for k, r in enumerate(rows):
                    best = [int(np.argmax(p[k])) for p in proba]
                    row["samples"].append({
                        "row": int(r),
                        "true": [str(v) for v in y[r]],
                        "predicted": [str(clf.classes_[h][j]) for h, j in enumerate(best)],
                        "probability": [float(p[k][j]) for p, j in zip(proba, best)],
                    })
    except Exception as exc:  # reported in the row; KeyboardInterrupt propagates
        row["status"] = f"failed: {type(exc).__name__}: {_first_line(exc)}"
        row["error"] = exc
    row["finished"] = time.time()
    return row


def order_by_cost(configs, data, settings):
    """``configs`` sorted by expected fit time, longest first (stable).

    The estimate is weights x epochs x training rows
    (:func:`~skoffice31.study.expected_cost`).
    """
    return sorted(
        (Configuration(tuple(c[0]), c[1]) for c in configs),
        key=lambda c: -expected_cost(c, data.X.shape[1], data.n_outputs,
                                     len(data.train), settings.epochs),
    )


class _QueueSink:
    """Picklable ``report`` for EpochReporter: put records on a (manager) queue.

    A display must never fail a fit: a queue that went away (the run is
    being interrupted) drops the record.
    """

    def __init__(self, queue):
        self.queue = queue

    def __call__(self, record):
        try:
            self.queue.put(record)
        except (OSError, EOFError):
            pass


def _ignore_sigint():  # the manager process: Ctrl-C is the parent's to handle
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _epoch_channel(progress, in_process):
    """``report`` callable for the workers, delivering to ``progress`` here.

    In this process: ``progress`` itself. Worker processes: a
    :class:`multiprocessing.managers.SyncManager` queue drained by a thread.
    """
    if progress is None:
        yield None
        return
    if in_process:
        yield progress
        return
    from multiprocessing.managers import SyncManager

    manager = SyncManager()
    manager.start(_ignore_sigint)
    queue = manager.Queue()
    stop = threading.Event()

    def drain():
        import queue as queue_mod

        while True:
            try:
                record = queue.get(timeout=0.1)
            except queue_mod.Empty:
                if stop.is_set():
                    return
                continue
            except (OSError, EOFError):
                return
            try:
                progress(record)
            except Exception:  # pragma: no cover - a display error must not stop the run
                pass

    thread = threading.Thread(target=drain, name="skoffice31-progress", daemon=True)
    thread.start()
    try:
        yield _QueueSink(queue)
    finally:
        stop.set()
        thread.join(timeout=5)
        manager.shutdown()


def _warm_up_kernels(settings, configs, data):
    """Compile (or load from numba's disk cache) the kernels the fits will use.

    With a cold cache, every loky or local dask worker would compile the same
    kernels at the same time (measured ~12 s each on a loaded 2-core machine
    instead of ~3 s once); after this call they load them from the cache.
    """
    from .. import _kernels
    from .._plan import wants_kernels

    X, solvers = data.X, set()
    for c in configs:
        first = (X.shape[1], (tuple(c.hidden) or (data.n_outputs,))[0])
        kind = "adam" if c.solver == "adam" else "momentum" if settings.momentum else "sgd"
        # Adam and momentum SGD always take the compiled block updates
        if kind != "sgd" or wants_kernels(settings.batch_size, c.solver, settings.momentum,
                                          X.dtype, [first]):
            solvers.add(kind)
    if solvers:
        _kernels.warm_up((X.dtype,), tuple(sorted(solvers)))


def _runs_in_process(n_jobs):
    import joblib
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return type(backend).__name__ == "SequentialBackend" or joblib.effective_n_jobs(n_jobs) == 1


def _runs_on_this_machine():
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return type(backend).__module__.startswith("joblib.") and "dask" not in type(
        backend
    ).__module__


def run_study(settings, data, *, configs=None, n_jobs=None, n_samples=3, progress=None):
    """Fit and evaluate configurations, yielding each row as soon as it is done.

    The configurations start in the order of their expected fit time,
    longest first (:func:`order_by_cost`), on ``joblib.Parallel(n_jobs,
    return_as="generator_unordered")``: with more configurations than
    workers, the short ones fill in beside the long one and the wall time
    approaches the longest fit instead of a sum of batch maxima. When
    fewer fits are left than workers, the cores of the finished ones go to
    those still running (:mod:`skoffice31.study._threads`: in a worker of a
    2-core machine running two jobs a fit updates on one thread; the last
    one gets two), which changes their speed, not their weights. Inside a
    :func:`skoffice31.parallel.parallel_context` block the fits run on dask
    (and keep their plan's threads).

    Parameters
    ----------
    settings : StudySettings
    data : StudyData
        From :func:`load_study_data`.
    configs : list of Configuration, default=None
        Default: ``settings.configurations()``.
    n_jobs : int, default=None
        Configurations fitted at once (joblib's ``n_jobs``).
    n_samples : int, default=3
        Sample predictions per row.
    progress : callable, default=None
        Receives the :class:`~skoffice31.callbacks.EpochReporter` record of
        every epoch, tagged with the configuration, in this process (a
        thread drains the worker processes' records). Not on dask.

    Yields
    ------
    row : dict
        As returned by :func:`fit_and_evaluate`, in the order they finish.
        A failed configuration yields a row with ``status`` ``"failed: ..."``;
        a ``KeyboardInterrupt`` stops the run (rows already yielded stay
        valid).
    """
    import joblib

    from ..callbacks import EpochReporter

    configs = order_by_cost(settings.configurations() if configs is None else configs,
                            data, settings)
    in_process = _runs_in_process(n_jobs)
    if not (in_process or _runs_on_this_machine()):
        progress = None  # dask: no per-epoch records (only finished rows)
    # the cores of finished fits go to the fits still running (this machine only)
    share = (
        FreeCores(len(configs), joblib.effective_n_jobs(n_jobs))
        if not in_process and _runs_on_this_machine() else None
    )
    with _epoch_channel(progress, in_process) as report, (
        share if share is not None else contextlib.nullcontext()
    ):

        def callbacks(config):
            found = () if report is None else (EpochReporter(report, tag=config),)
            return found if share is None else (*found, share.follower())

        if not in_process:  # compile once here, not in every worker at once
            _warm_up_kernels(settings, configs, data)
        parallel = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=1)
        for row in parallel(
            joblib.delayed(fit_and_evaluate)(
                settings, c, data.X, data.y, data.train, data.test,
                n_samples=n_samples, callbacks=callbacks(c),
            )
            for c in configs
        ):
            if share is not None:
                share.fit_done()
            yield row
