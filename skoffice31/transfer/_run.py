"""Run transfer methods over tasks, numbers of shots and seeds."""

import contextlib
import time
import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .._multihead import MultiHeadMLPClassifier
from .._preprocessing import ImageStandardizer
from ._methods import METHODS, MethodContext, TransferProblem, default_methods
from ._split import check_shots, few_shot_split
from ._tasks import task_label, transfer_tasks

__all__ = ["FEATURES", "default_estimator", "make_features", "plan_transfer", "run_transfer"]

#: The preprocessings :func:`make_features` knows, fitted on the images of
#: both domains of a task (no labels).
FEATURES = {
    "standardized": "each image standardised on its own (ImageStandardizer), then per "
                    "feature, then PCA",
    "pca": "pixels standardised per feature, then PCA",
    "pixels": "pixels standardised per feature",
}


def make_features(kind="standardized", *, n_components=100):
    """The preprocessing of a transfer task's images, by name.

    It is fitted on the images of both domains of the task (source and
    target, without their labels) and applied to both.

    Parameters
    ----------
    kind : {"standardized", "pca", "pixels"}, default="standardized"
        ``"pixels"``: :class:`~sklearn.preprocessing.StandardScaler`;
        ``"pca"``: then a :class:`~sklearn.decomposition.PCA` to
        ``n_components``; ``"standardized"``: first
        :class:`~skoffice31.ImageStandardizer` (each image centred and
        scaled by its own mean and standard deviation, which removes its
        brightness and contrast), then as ``"pca"``.
    n_components : int, default=100
        Components kept by ``"pca"`` (at most the number of images and of
        pixels).

    Returns
    -------
    transformer : sklearn Pipeline
    """
    if kind not in FEATURES:
        raise ValueError(f"unknown features {kind!r}: use one of {', '.join(FEATURES)}")
    if kind == "pixels":
        return make_pipeline(StandardScaler())
    steps = [StandardScaler(), PCA(n_components, svd_solver="randomized", random_state=0)]
    if kind == "standardized":
        steps.insert(0, ImageStandardizer())
    return make_pipeline(*steps)


def default_estimator(**params):
    """The network of the transfer methods: ``MultiHeadMLPClassifier`` with these defaults.

    One hidden layer of 256 ReLU units, Adam 1e-3, minibatches of 64,
    ``alpha=1e-3``, 20 epochs without early stopping; ``params`` override
    them.

    Returns
    -------
    estimator : MultiHeadMLPClassifier
    """
    defaults = dict(hidden=(256,), solver="adam", learning_rate_init=1e-3, batch_size=64,
                    alpha=1e-3, max_iter=20, n_iter_no_change=np.inf)
    return MultiHeadMLPClassifier(**{**defaults, **params})


def _as_methods(methods):
    if methods is None:
        return default_methods()
    out = []
    for m in methods:
        if isinstance(m, str):
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}: use one of {', '.join(METHODS)}")
            m = METHODS[m]
        out.append(m)
    return out


def _as_seeds(seeds):
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1 (the number of seeds), got {seeds}")
        return list(range(int(seeds)))
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("give at least one seed")
    return seeds


def plan_transfer(tasks, shots, seeds, methods):
    """The fits of a run, in the order :func:`run_transfer` makes them.

    Parameters
    ----------
    tasks : list of (str, str)
        (source, target) pairs.
    shots : list of int
        Labelled target images per class.
    seeds : list of int
    methods : list of TransferMethod
        A method that needs labels has no fit at ``k = 0``.

    Returns
    -------
    plan : list of dict
        ``task``, ``source``, ``target``, ``k``, ``seed``, ``method`` and
        ``label`` (``"A->W k=3 seed 0 pooled"``) of every fit.
    """
    plan = []
    for source, target in tasks:
        task = task_label(source, target)
        for seed in seeds:
            for k in shots:
                for m in methods:
                    if m.applies(k):
                        plan.append(dict(task=task, source=source, target=target, k=k,
                                         seed=seed, method=m.name,
                                         label=f"{task} k={k} seed {seed} {m.name}"))
    return plan


def _first_line(exc):
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _accuracy(y_true, y_pred):
    return float(np.mean(np.asarray(y_true, dtype=object).astype(str)
                         == np.asarray(y_pred, dtype=object).astype(str)))


def run_transfer(X, domains, y, *, tasks=None, shots=(0, 3), seeds=3, methods=None,
                 estimator=None, features="standardized", few_max_iter=100, adversarial=1.0,
                 blas_threads=1, watch=None):
    """Train and score transfer methods on every task, number of shots and seed.

    For each task (source -> target) the preprocessing ``features`` is fitted
    on the images of both domains (without labels). For each seed the
    network is fitted once on the source (the ``source only`` model, the
    start of the fine-tuning methods); for each ``k`` the target is split by
    :func:`few_shot_split` (``k`` labelled images per class, seeded by the
    seed; the rest is the test set) and every method that applies is
    trained and scored on the test images.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The images of all domains, flattened.
    domains : array-like of shape (n_samples,)
        The domain of each image.
    y : array-like of shape (n_samples,)
        The object class of each image.
    tasks : list of (str, str), default=None
        The (source, target) pairs; ``None``: :func:`transfer_tasks` of the
        domains (Office-31's six).
    shots : int or sequence of int, default=(0, 3)
        Labelled target images per class.
    seeds : int or sequence of int, default=3
        The seeds (an int ``n``: ``0 .. n-1``).
    methods : list of str or TransferMethod, default=None
        ``None``: :func:`default_methods` (the skada ones when skada is
        installed).
    estimator : MultiHeadMLPClassifier, default=None
        The network (cloned for every fit); ``None``:
        :func:`default_estimator`.
    features : str or transformer, default="standardized"
        A name of :func:`make_features` or an unfitted scikit-learn
        transformer (cloned per task).
    few_max_iter : int, default=100
        Epochs of the fits on the few labelled target images only (target
        only, fine-tuning).
    adversarial : float, default=1.0
        Weight lambda of the domain head's reversed gradient (reached by the
        DANN schedule at the end of training).
    blas_threads : int or None, default=1
        Limit of the BLAS threads during the run (threadpoolctl); ``None``:
        no limit. The fits are small (a few thousand rows of 100 features),
        where BLAS threads cost more than they give, by far on a loaded
        machine (thread oversubscription: the fits of a run share the cores
        with each other and with other work).
    watch : callable, default=None
        Called as ``watch(fit, model)`` before each network fit of the plan
        (``fit`` a :func:`plan_transfer` entry), e.g. to set callbacks that
        show the progress; it may return a callable that is called after the
        fit.

    Returns
    -------
    rows : generator of dict
        The arguments are checked when it is called; the fits run as the
        generator is consumed (with the BLAS limit in force meanwhile), one
        row per fit:
        ``task``, ``source``, ``target``, ``k``, ``method``, ``seed``,
        ``accuracy`` (on the target's test images), ``fit_seconds``,
        ``n_labelled``, ``n_test``, ``status`` (``"ok"`` or the error).
    """
    X = np.asarray(X)
    domains = np.asarray(domains, dtype=object).astype(str)
    y = np.asarray(y, dtype=object)
    if not (len(X) == len(domains) == len(y)):
        raise ValueError(f"X, domains and y have {len(X)}, {len(domains)} and {len(y)} rows: "
                         "give one domain and one label per image")
    tasks = transfer_tasks(np.unique(domains)) if tasks is None else [
        transfer_tasks(np.unique(domains), s, t)[0] for s, t in tasks]
    methods = _as_methods(methods)
    seeds = _as_seeds(seeds)
    for _, target in tasks:
        shot_list = check_shots(shots, y[domains == target])
    estimator = default_estimator() if estimator is None else estimator
    transformer = make_features(features) if isinstance(features, str) else features
    plan = plan_transfer(tasks, shot_list, seeds, methods)
    by_key = {(p["task"], p["k"], p["seed"], p["method"]): p for p in plan}

    return _run_tasks(X, domains, y, tasks, shot_list, seeds, methods, estimator, transformer,
                      few_max_iter, adversarial, blas_threads, watch, by_key)


def _run_tasks(X, domains, y, tasks, shot_list, seeds, methods, estimator, transformer,
               few_max_iter, adversarial, blas_threads, watch, by_key):
    from sklearn.base import clone

    limit = (threadpool_limits(blas_threads, user_api="blas") if blas_threads is not None
             else contextlib.nullcontext())
    with limit:
        for source, target in tasks:
            task = task_label(source, target)
            s_rows, t_rows = domains == source, domains == target
            prep = clone(transformer).fit(np.concatenate([X[s_rows], X[t_rows]]))
            Xs, Xt = prep.transform(X[s_rows]), prep.transform(X[t_rows])
            ys, yt = y[s_rows], y[t_rows]
            for seed in seeds:
                context = MethodContext(estimator, seed, Xs, ys, few_max_iter=few_max_iter,
                                        adversarial=adversarial)
                for k in shot_list:
                    labelled, test = few_shot_split(yt, k, random_state=seed)
                    problem = TransferProblem(source, target, k, seed, Xs, ys, Xt, yt,
                                              labelled, test)
                    for method in methods:
                        if not method.applies(k):
                            continue
                        fit = by_key[(task, k, seed, method.name)]
                        row = dict(task=task, source=source, target=target, k=k,
                                   method=method.name, seed=seed, n_labelled=len(labelled),
                                   n_test=len(test))
                        context.watch = (None if watch is None
                                         else (lambda m, f=fit: watch(f, m)))
                        yield _run_method(method, problem, context, row)


def _run_method(method, problem, context, row):
    """Fit and score one method; a failure is the row's status, not an exception."""
    try:
        with warnings.catch_warnings():
            # fixed numbers of epochs: reaching max_iter is expected
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            pred = method.fit_predict(problem, context)
            seconds = time.perf_counter() - t0
        if method.name == "source only":  # the source model may have been made earlier
            seconds = context.source_seconds
        row.update(accuracy=_accuracy(problem.y_test, pred), fit_seconds=seconds, status="ok")
    except MemoryError:
        raise
    except Exception as exc:  # one failed fit does not stop the run
        row.update(accuracy=float("nan"), fit_seconds=float("nan"),
                   status=f"failed: {type(exc).__name__}: {_first_line(exc)}")
    return row
