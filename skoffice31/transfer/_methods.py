"""The transfer methods: how a model for the target domain is trained.

Every method is a :class:`TransferMethod`: a name, whether it needs
labelled target images (``k > 0``) or an optional package, and a function
that trains on one :class:`TransferProblem` and predicts the target's test
images.
"""

import copy
import dataclasses
import time
from typing import Callable

import numpy as np
import sklearn
from sklearn.base import clone

__all__ = ["METHODS", "SKADA_HINT", "MethodContext", "TransferMethod", "TransferProblem",
           "default_methods",
           "skada_available"]

#: The line printed instead of the skada rows when skada is not installed.
SKADA_HINT = ('skada rows (CORAL + ours, CORAL + adversarial) omitted: skada is not '
              'installed; pip install "skoffice31[skada]" to get them')


def skada_available():
    """Whether :mod:`skada` (scikit-adaptation) can be imported."""
    try:
        import skada  # noqa: F401
    except ImportError:
        return False
    return True


@dataclasses.dataclass
class TransferProblem:
    """One transfer problem: a task, a number of shots and a seed.

    All images of both domains are given; the methods see the target's
    labels only at ``labelled``. Unlabelled target images (all but the
    labelled ones, the test images included, as in the usual transductive
    protocol of Office-31) may be used without their labels.

    Parameters
    ----------
    source, target : str
        Domain names.
    k : int
        Labelled target images per class.
    seed : int
        Seed of the split and of the networks.
    X_source : ndarray of shape (n_source, n_features)
    y_source : ndarray of shape (n_source,)
    X_target : ndarray of shape (n_target, n_features)
    y_target : ndarray of shape (n_target,)
        Read only at ``labelled`` (training) and ``test`` (scoring).
    labelled, test : ndarray of int
        Indices into the target (:func:`~skoffice31.transfer.few_shot_split`).
    """

    source: str
    target: str
    k: int
    seed: int
    X_source: np.ndarray
    y_source: np.ndarray
    X_target: np.ndarray
    y_target: np.ndarray
    labelled: np.ndarray
    test: np.ndarray

    @property
    def X_labelled(self):
        """The labelled target images."""
        return self.X_target[self.labelled]

    @property
    def y_labelled(self):
        """Their labels."""
        return self.y_target[self.labelled]

    @property
    def X_test(self):
        """The target images scored."""
        return self.X_target[self.test]

    @property
    def y_test(self):
        """Their labels (for scoring only)."""
        return self.y_target[self.test]

    def adversarial_inputs(self):
        """``X`` and the two-column ``y`` (domain, object) of a domain-adversarial fit.

        Rows: every source image (its domain, its object), then every target
        image (the target's domain; its object at ``labelled``, missing --
        ``None`` -- elsewhere).
        """
        X = np.concatenate([self.X_source, self.X_target])
        domain = np.array([self.source] * len(self.X_source)
                          + [self.target] * len(self.X_target), dtype=object)
        obj = np.full(len(X), None, dtype=object)
        obj[:len(self.X_source)] = self.y_source
        obj[len(self.X_source) + self.labelled] = self.y_labelled
        return X, np.column_stack([domain, obj])

    def skada_inputs(self):
        """``X``, integer ``y`` (-1 unlabelled) and ``sample_domain`` in skada's convention.

        ``sample_domain`` is 1 on the source rows, -2 on the target rows;
        the classes are coded by their position in ``classes``.

        Returns
        -------
        X, y, sample_domain, classes : ndarray
        """
        classes = np.unique(np.concatenate([self.y_source, self.y_labelled]).astype(str))
        X = np.concatenate([self.X_source, self.X_target])
        y = np.full(len(X), -1, dtype=int)
        y[:len(self.X_source)] = np.searchsorted(classes, self.y_source.astype(str))
        y[len(self.X_source) + self.labelled] = np.searchsorted(
            classes, self.y_labelled.astype(str))
        sample_domain = np.r_[np.ones(len(self.X_source), int),
                              np.full(len(self.X_target), -2, int)]
        return X, y, sample_domain, classes


@dataclasses.dataclass(frozen=True)
class TransferMethod:
    """A way to train a classifier for the target domain.

    Parameters
    ----------
    name : str
        Its name in the tables (``"fine-tune output"``).
    fit_predict : callable
        ``fit_predict(problem, context) -> y_pred`` on ``problem.X_test``,
        for a :class:`TransferProblem` and a :class:`MethodContext` (the
        network to clone, the epochs on the few labelled images, the weight
        of the adversarial head, and the model trained on the source alone,
        fitted once per task and seed). Fit networks with
        ``context.fit`` so that the progress display sees them.
    needs_labels : bool, default=False
        Only defined for ``k > 0`` (it trains on labelled target images).
    requires : str or None, default=None
        An optional package it needs (``"skada"``).
    description : str, default=""
        One sentence for the docs and ``--help``.
    """

    name: str
    fit_predict: Callable
    needs_labels: bool = False
    requires: str = None
    description: str = ""

    def applies(self, k):
        """Whether the method runs with ``k`` labelled target images per class."""
        return k > 0 or not self.needs_labels


class MethodContext:
    """What the methods of one task and seed share.

    Parameters
    ----------
    estimator : MultiHeadMLPClassifier
        The network to clone for every fit (its ``random_state`` is replaced
        by the seed).
    seed : int
        The seed of the fits.
    X_source, y_source : ndarray
        The source images and labels (of :attr:`source_model`).
    few_max_iter : int
        Epochs of the fits on the few labelled target images (target only,
        fine-tuning).
    adversarial : float
        Weight lambda of the reversed domain gradient.
    watch : callable or None
        ``watch(model)`` before each fit of a network; may return a callable
        called after the fit (e.g. to show the progress).

    Attributes
    ----------
    source_seconds : float or None
        Seconds of the fit of :attr:`source_model` (once it is made).
    """

    def __init__(self, estimator, seed, X_source, y_source, *, few_max_iter=100,
                 adversarial=1.0, watch=None):
        self.estimator = estimator
        self.seed = seed
        self.X_source = X_source
        self.y_source = y_source
        self.few_max_iter = few_max_iter
        self.adversarial = adversarial
        self.watch = watch
        self.source_seconds = None
        self._source_model = None

    def estimator_for(self, seed=None):
        """A fresh clone of the network, seeded with ``seed`` (default: the context's)."""
        return clone(self.estimator).set_params(
            random_state=self.seed if seed is None else seed)

    def fit(self, model, X, y, *, net=None, **fit_params):
        """``model.fit(X, y, **fit_params)``, watched; ``net``: the network inside ``model``.

        The network's callbacks are removed afterwards, so that the fitted
        model can be copied.
        """
        net = model if net is None else net
        after = self.watch(net) if self.watch is not None else None
        try:
            model.fit(X, y, **fit_params)
        finally:
            if callable(after):
                after()
            if self.watch is not None:
                net.set_callbacks()
        return model

    @property
    def source_model(self):
        """The network fitted on the source alone (fitted on first use)."""
        if self._source_model is None:
            t0 = time.perf_counter()
            self._source_model = self.fit(self.estimator_for(), self.X_source, self.y_source)
            self.source_seconds = time.perf_counter() - t0
        return self._source_model


def _few_params(model, context, n_rows):
    """Epochs and a minibatch no larger than the few labelled images."""
    batch = model.get_params()["batch_size"]
    params = dict(max_iter=context.few_max_iter)
    if batch == "auto" or batch > n_rows:
        params["batch_size"] = min(200, n_rows)
    return params


def _source_only(problem, context):
    return context.source_model.predict(problem.X_test)


def _target_only(problem, context):
    model = context.estimator_for()
    model.set_params(**_few_params(model, context, len(problem.labelled)))
    return context.fit(model, problem.X_labelled, problem.y_labelled).predict(problem.X_test)


def _fine_tune(problem, context, n_frozen_layers):
    model = copy.deepcopy(context.source_model)
    params = dict(warm_start=True, **_few_params(model, context, len(problem.labelled)))
    if n_frozen_layers:
        params["n_frozen_layers"] = n_frozen_layers
    model.set_params(**params)
    return context.fit(model, problem.X_labelled, problem.y_labelled).predict(problem.X_test)


def _fine_tune_all(problem, context):
    return _fine_tune(problem, context, 0)


def _fine_tune_output(problem, context):
    # the trunk (every hidden layer) stays as trained on the source
    return _fine_tune(problem, context, len(context.source_model.coefs_) - 1)


def _pooled(problem, context):
    X = np.concatenate([problem.X_source, problem.X_labelled])
    y = np.concatenate([problem.y_source, problem.y_labelled])
    return context.fit(context.estimator_for(), X, y).predict(problem.X_test)


def _adversarial_network(context):
    """Two heads (domain, object), the domain head's gradient reversed into the trunk."""
    return context.estimator_for().set_params(
        adversarial_heads={0: context.adversarial}, adversarial_schedule="dann")


def _adversarial(problem, context):
    X, y = problem.adversarial_inputs()
    model = context.fit(_adversarial_network(context), X, y)
    return np.asarray(model.predict(problem.X_test), dtype=object)[:, 1]


def _adversarial_fine_tune(problem, context):
    X, y = problem.adversarial_inputs()
    model = context.fit(_adversarial_network(context), X, y)
    # then every layer trained further on the labelled target images (both
    # heads: their domain is the target's), without the reversed gradient
    model.set_params(warm_start=True, adversarial_heads=None,
                     **_few_params(model, context, len(problem.labelled)))
    y_few = np.column_stack([np.full(len(problem.labelled), problem.target, dtype=object),
                             problem.y_labelled])
    context.fit(model, problem.X_labelled, y_few)
    return np.asarray(model.predict(problem.X_test), dtype=object)[:, 1]


def _coral_ours(problem, context):
    from skada import CORALAdapter, make_da_pipeline

    X, y, sample_domain, classes = problem.skada_inputs()
    # mask_target_labels=False keeps the k labelled target rows for the
    # network; skada drops the unlabelled ones (y = -1) before it.
    net = context.estimator_for()
    pipe = make_da_pipeline(CORALAdapter(), net, mask_target_labels=False)
    # skada's pipelines route sample_domain through scikit-learn's metadata
    # routing: importing skada turns it on, but the caller may have turned it
    # off since (or imported skada before setting it).
    with sklearn.config_context(enable_metadata_routing=True):
        context.fit(pipe, X, y, net=net, sample_domain=sample_domain)
        pred = pipe.predict(problem.X_test, sample_domain=np.full(len(problem.test), -2))
    return classes[np.asarray(pred, dtype=int)]


def _coral_adversarial(problem, context):
    from skada import CORALAdapter

    X, y = problem.adversarial_inputs()
    sample_domain = np.r_[np.ones(len(problem.X_source), int),
                          np.full(len(problem.X_target), -2, int)]
    # CORAL re-colours the source rows with the target's covariance; the
    # target rows are unchanged, so the test rows are used as they are.
    X = CORALAdapter().fit_transform(X, sample_domain=sample_domain)
    model = context.fit(_adversarial_network(context), X, y)
    return np.asarray(model.predict(problem.X_test), dtype=object)[:, 1]


#: The methods by name, in the order of the tables.
METHODS = {m.name: m for m in (
    TransferMethod("source only", _source_only,
                   description="trained on the labelled source images only"),
    TransferMethod("target only", _target_only, needs_labels=True,
                   description="trained on the k labelled target images per class only"),
    TransferMethod("fine-tune all", _fine_tune_all, needs_labels=True,
                   description="the source model, every layer trained further on the "
                   "labelled target images (warm_start)"),
    TransferMethod("fine-tune output", _fine_tune_output, needs_labels=True,
                   description="the source model with its trunk frozen (n_frozen_layers), "
                   "the output layer trained further on the labelled target images"),
    TransferMethod("pooled", _pooled, needs_labels=True,
                   description="trained on the source and the labelled target images together"),
    TransferMethod("adversarial", _adversarial,
                   description="two heads: the object head on the labelled images, a domain "
                   "head on all images whose gradient is reversed into the trunk (DANN)"),
    TransferMethod("adversarial + fine-tune", _adversarial_fine_tune, needs_labels=True,
                   description="the adversarial network, then every layer trained further on "
                   "the labelled target images (warm_start, no reversed gradient)"),
    TransferMethod("CORAL + ours", _coral_ours, requires="skada",
                   description="skada's CORALAdapter (source re-coloured with the target's "
                   "covariance), then our network on the source and labelled target images"),
    TransferMethod("CORAL + adversarial", _coral_adversarial, requires="skada",
                   description="CORAL-aligned inputs, then the domain-adversarial network"),
)}


def default_methods(*, skada=None):
    """The methods of a transfer run: all of :data:`METHODS`, the skada ones if installed.

    Parameters
    ----------
    skada : bool or None, default=None
        Include the methods that need skada; ``None``: if it is importable.

    Returns
    -------
    methods : list of TransferMethod
    """
    skada = skada_available() if skada is None else skada
    return [m for m in METHODS.values() if skada or m.requires != "skada"]
