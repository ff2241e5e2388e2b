"""A domain head built from ``sample_domain``: the network inside skada's pipelines.

skada (scikit-adaptation) describes a domain-adaptation problem with a 1-D
``y`` and a ``sample_domain`` array (positive: a source domain, negative: a
target domain) and, in :func:`skada.make_da_pipeline`, masks the labels of
the target rows with ``-1``. Its selectors then *drop* the masked rows
before a final estimator that does not ask for ``sample_domain`` through
metadata routing. :class:`DomainHeadClassifier` asks for it: skada keeps the
unlabelled target rows and hands ``sample_domain`` over, and the classifier
trains a two-head :class:`~skoffice31.MultiHeadMLPClassifier` whose first
head, ``"domain"``, is labelled on every row from ``sample_domain`` and
whose second head, ``"label"``, is ``y`` with its missing labels. The domain
head can be adversarial (gradient reversal), which makes the network a
domain-adversarial network trained on the rows an adapter such as CORAL has
aligned.

The module does not import skada: the classifier also works on its own,
with ``sample_domain`` given by hand or derived from the missing labels.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _num_samples, check_array, check_is_fitted

from ._missing import missing_mask

__all__ = ["DomainHeadClassifier"]

#: Names of the network's two heads, in column order.
HEAD_NAMES = ("domain", "label")

# sample_domain given to rows without one (as skada does when it is not
# given): labelled rows are source 1, unlabelled ones target -2.
_SOURCE, _TARGET = 1, -2


class DomainHeadClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A two-head network whose domain head is built from ``sample_domain``.

    ``fit(X, y, sample_domain=...)`` trains a clone of ``estimator`` (by
    default a :class:`~skoffice31.MultiHeadMLPClassifier`) on two heads:

    - ``"domain"`` (column 0): labelled on **every** row, from
      ``sample_domain`` (see ``domain_head``);
    - ``"label"`` (column 1): ``y``, whose missing labels (``-1``, ``NaN``,
      ``None``; the unlabelled target rows) leave those rows out of that
      head's loss only.

    So the unlabelled target rows take part in the fit: through the domain
    head, and, when the domain head is adversarial
    (``estimator=MultiHeadMLPClassifier(adversarial_heads={"domain": lam})``),
    by pushing the shared trunk towards features that do not tell the
    domains apart (gradient reversal, Ganin et al., 2016 [1]_).
    ``predict``, ``predict_proba`` and ``score`` are those of the label head,
    so skada's scorers and splitters see an ordinary classifier.

    The estimator requests ``sample_domain`` for ``fit`` through
    scikit-learn's metadata routing. Inside
    :func:`skada.make_da_pipeline` (which switches routing on) this is what
    makes skada keep the rows whose labels it masked and pass
    ``sample_domain`` on; a final estimator that does not request it is fitted
    on the labelled rows only.

    Parameters
    ----------
    estimator : estimator, default=None
        The network to train, cloned at fit time: a
        :class:`~skoffice31.MultiHeadMLPClassifier` or an estimator with the
        same API (a 2-D ``y`` with missing labels, ``predict_proba`` returning
        one array per head). ``None`` means ``MultiHeadMLPClassifier()``. Its
        ``adversarial_heads`` and ``head_weights`` refer to the heads
        ``"domain"`` and ``"label"`` (or their column indices 0 and 1).
    domain_head : {"source_target", "per_domain"}, default="source_target"
        The classes of the domain head: ``"source_target"``, two classes,
        ``"source"`` (``sample_domain > 0``) and ``"target"``
        (``sample_domain < 0``), the domain classifier of a domain-adversarial
        network; ``"per_domain"``, one class per distinct ``sample_domain``
        value (several sources or targets told apart).

    Attributes
    ----------
    estimator_ : estimator
        The fitted two-head network; ``estimator_.predict(X)`` gives both
        heads, column 0 being the domain head's class indices into
        ``domain_classes_``.
    classes_ : ndarray
        Classes of the label head.
    domain_classes_ : ndarray
        Classes of the domain head: ``["source", "target"]``, or the sorted
        ``sample_domain`` values seen in ``fit``.
    head_names_ : tuple of str
        ``("domain", "label")``, the heads of ``estimator_`` in column order.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    skoffice31.MultiHeadMLPClassifier : the network; its ``adversarial_heads``
        makes the domain head adversarial.

    Notes
    -----
    **What skada does to y.** In :func:`skada.make_da_pipeline` (with its
    default ``mask_target_labels=True``) every step overwrites the labels of
    the target rows with ``-1`` **in place**, in the very array given to
    ``fit``: pass a copy if the true target labels are needed afterwards.
    skada needs numeric labels (string labels raise ``TypeError`` in its
    label check): encode them, e.g. with
    :class:`~sklearn.preprocessing.LabelEncoder`. A 2-D ``y`` is
    refused by skada itself (``Incompatible label type``) before any
    estimator sees it; this classifier builds the domain head from
    ``sample_domain`` instead, so ``y`` is the labels of one head and a 2-D
    ``y`` raises ``ValueError`` here too.

    Without ``sample_domain`` (outside skada), labelled rows are taken as
    source (``1``) and unlabelled ones as target (``-2``), skada's own
    defaults. A fit needs rows of two domains (one class would make the
    domain head pointless), so scikit-learn's ``check_estimator``, whose
    checks fit fully labelled data of one domain, does not apply.

    References
    ----------
    .. [1] Y. Ganin, E. Ustinova, H. Ajakan, P. Germain, H. Larochelle,
       F. Laviolette, M. Marchand and V. Lempitsky, "Domain-Adversarial
       Training of Neural Networks", Journal of Machine Learning Research
       17(59), 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from skoffice31 import MultiHeadMLPClassifier
    >>> from skoffice31.adaptation import DomainHeadClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(0, 1, (60, 4)), rng.normal(1, 1, (60, 4))])
    >>> y = np.r_[(X[:60, 0] > 0).astype(int), -np.ones(60, int)]  # target unlabelled
    >>> sample_domain = np.r_[np.ones(60, int), -2 * np.ones(60, int)]
    >>> net = MultiHeadMLPClassifier(hidden=(8,), max_iter=20, random_state=0,
    ...                              adversarial_heads={"domain": 0.1})
    >>> clf = DomainHeadClassifier(net).fit(X, y, sample_domain=sample_domain)
    >>> clf.head_names_, clf.domain_classes_.tolist(), clf.classes_.tolist()
    (('domain', 'label'), ['source', 'target'], [0, 1])
    >>> clf.predict(X[:3]).shape
    (3,)
    """

    # fit asks for sample_domain (True: routed whenever it is given); the
    # prediction methods do not take it.
    __metadata_request__fit = {"sample_domain": True}

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "domain_head": [StrOptions({"source_target", "per_domain"})],
    }

    def __init__(self, estimator=None, *, domain_head="source_target"):
        self.estimator = estimator
        self.domain_head = domain_head

    def fit(self, X, y, sample_domain=None, sample_weight=None):
        """Fit the network on the domain head and the label head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: the source rows and the (unlabelled) target rows.
        y : array-like of shape (n_samples,)
            Labels of the label head; ``-1`` (in integer labels, always:
            skada's marker), ``NaN`` or ``None`` marks an unlabelled row.
        sample_domain : array-like of shape (n_samples,), default=None
            skada's domain of each row: a positive int for a source domain, a
            negative one for a target domain. ``None``: labelled rows are
            source (``1``), unlabelled ones target (``-2``).
        sample_weight : array-like of shape (n_samples,), default=None
            Passed to the network's ``fit`` (e.g. the weights of a skada
            reweighting adapter; request them with
            ``set_fit_request(sample_weight=True)``).

        Returns
        -------
        self : object
            The fitted classifier.
        """
        from . import MultiHeadMLPClassifier

        self._validate_params()
        # the input's own errors first (the network checks X again, keeping its dtype)
        check_array(X, accept_sparse=False, dtype=None, ensure_all_finite=True)
        label, missing = _label_column(y)
        n = len(label)
        if _num_samples(X) != n:
            raise ValueError(f"X has {_num_samples(X)} samples but y has {n}: they must match.")
        if missing.all():
            raise ValueError(
                "Every label of y is missing (-1, NaN or None): the label head has "
                "nothing to learn. Give the labels of the source rows (skada masks "
                "only the target rows, sample_domain < 0)."
            )
        present = label[~missing]
        if len(set(present.tolist())) < 2:
            raise ValueError(
                f"The labelled rows of y have one class only ({present[0]!r}): the label "
                "head needs at least two classes."
            )
        kind = type_of_target(present)
        if kind.startswith("continuous"):
            raise ValueError(
                f"Unknown label type: {kind}. y holds continuous values; the label head "
                "needs class labels."
            )
        sample_domain = _check_sample_domain(sample_domain, missing, n)
        domain_codes, self.domain_classes_ = _domain_codes(sample_domain, self.domain_head)
        Y = np.empty((n, 2), dtype=object if label.dtype.kind not in "iuf" else label.dtype)
        Y[:, 0] = domain_codes
        Y[:, 1] = label
        estimator = MultiHeadMLPClassifier() if self.estimator is None else clone(self.estimator)
        params = estimator.get_params(deep=False)
        if params.get("adversarial_heads"):
            estimator.set_params(
                adversarial_heads=_head_indices(params["adversarial_heads"], "adversarial_heads")
            )
        fit_params = {}
        if sample_weight is not None:
            fit_params["sample_weight"] = sample_weight
            w = np.asarray(sample_weight, dtype=float)
            if w.shape == (n,) and np.any(sample_domain < 0) and not np.any(w[sample_domain < 0]):
                warnings.warn(
                    "sample_weight is zero on every target row (skada's reweighting "
                    "adapters give the target rows weight 0): the domain head, and an "
                    "adversarial domain head's effect on the trunk, learn from the source "
                    "rows only, so the target rows take no part in the fit. To use them, "
                    "put a mapping adapter (e.g. CORALAdapter) before this classifier "
                    "instead, or leave sample_weight unrequested.",
                    UserWarning,
                    stacklevel=2,
                )
        self.estimator_ = estimator.fit(X, Y, **fit_params)
        self.classes_ = self.estimator_.classes_[1]
        self.head_names_ = HEAD_NAMES
        return self

    @property
    def n_features_in_(self):
        """Number of features seen in ``fit``."""
        check_is_fitted(self)
        return self.estimator_.n_features_in_

    @property
    def feature_names_in_(self):
        """Feature names seen in ``fit`` (only when ``X`` had string column names)."""
        check_is_fitted(self)
        return self.estimator_.feature_names_in_

    def predict(self, X):
        """Predict the label head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels of the label head (among ``classes_``).
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def predict_proba(self, X):
        """Probabilities of the label head's classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order.
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)[1]

    def predict_log_proba(self, X):
        """Log-probabilities of the label head's classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X)[1]

    def predict_domain(self, X):
        """Predict the domain head.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        domain : ndarray of shape (n_samples,)
            Among ``domain_classes_``: ``"source"``/``"target"``, or
            ``sample_domain`` values with ``domain_head="per_domain"``.
        """
        check_is_fitted(self)
        proba = self.estimator_.predict_proba(X)[0]
        codes = self.estimator_.classes_[0][np.argmax(proba, axis=1)]
        return self.domain_classes_[codes.astype(np.intp)]

    def embed(self, X, layer=-1):
        """Activations of a hidden layer of the network's shared trunk.

        See :meth:`skoffice31.MultiHeadMLPClassifier.embed`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        layer : int, default=-1
            Which hidden layer (``-1``: the features the heads see).

        Returns
        -------
        features : ndarray of shape (n_samples, hidden[layer])
        """
        check_is_fitted(self)
        return self.estimator_.embed(X, layer=layer)

    def score(self, X, y, sample_weight=None):
        """Accuracy of the label head on the labelled rows of ``y``.

        Rows whose label is missing (``-1``, ``NaN``, ``None``) are left
        out, so a masked target scores nothing.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
            ``nan`` when no row of ``y`` is labelled.
        """
        check_is_fitted(self)
        label, missing = _label_column(y, classes=self.classes_)
        keep = ~missing
        if not keep.any():
            return float("nan")
        pred = self.predict(X)
        right = (pred[keep] == label[keep]).astype(float)
        weights = None if sample_weight is None else np.asarray(sample_weight)[keep]
        return float(np.average(right, weights=weights))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def _label_column(y, classes=None):
    """``y`` as a 1-D array, and the mask of its missing labels."""
    if y is None:
        raise ValueError(
            "DomainHeadClassifier requires y to be passed, but the target y is None: give "
            "the labels of the label head (-1 on the unlabelled rows)."
        )
    values = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values.ravel()
    if values.ndim != 1:
        raise ValueError(
            f"DomainHeadClassifier takes the labels of one head, a 1-D y, got shape "
            f"{values.shape}. Its domain head is built from sample_domain, so do not "
            "pass a domain column: give y as the object labels alone, with -1 on the "
            "unlabelled (target) rows, and the domains as sample_domain. (skada's "
            "pipelines cannot carry a 2-D y either.) To train several label heads, fit a "
            "MultiHeadMLPClassifier directly, outside skada."
        )
    kind = values.dtype.kind
    missing = missing_mask(values, HEAD_NAMES[1], classes)
    if kind in "iu" and classes is None:
        # In a domain-adaptation fit -1 is always skada's marker, also next to
        # a single other label (which missing_mask would read as binary -1, c).
        missing = values == -1
    return values, missing


def _check_sample_domain(sample_domain, missing, n):
    if sample_domain is None:
        return np.where(missing, _TARGET, _SOURCE)
    sd = np.asarray(sample_domain)
    if sd.ndim != 1 or len(sd) != n:
        raise ValueError(
            f"sample_domain must be 1-D with one entry per row of y ({n}), got shape "
            f"{sd.shape}."
        )
    if sd.dtype.kind not in "iu":
        if sd.dtype.kind == "f" and np.all(np.isfinite(sd)) and np.all(sd == np.round(sd)):
            sd = sd.astype(np.int64)
        else:
            raise ValueError(
                "sample_domain must hold integers (skada's convention: positive for a "
                f"source domain, negative for a target domain), got dtype {sd.dtype}."
            )
    if np.any(sd == 0):
        raise ValueError(
            "sample_domain holds 0, which is neither a source (positive) nor a target "
            "(negative) domain in skada's convention. Number source domains 1, 2, ... "
            "and target domains -1, -2, ..."
        )
    return sd


def _domain_codes(sample_domain, domain_head):
    """Class index of each row's domain, and the domain head's classes."""
    if domain_head == "source_target":
        codes = (sample_domain < 0).astype(np.intp)
        classes = np.array(["source", "target"], dtype=object)
        present = np.unique(codes)
    else:
        classes, codes = np.unique(sample_domain, return_inverse=True)
        present = classes
    if len(present) < 2:
        only = "source" if np.all(sample_domain > 0) else "target"
        raise ValueError(
            f"sample_domain has {only} rows only, so the domain head would have one "
            "class. Fit on the source rows and the (unlabelled, y = -1) target rows "
            "together, with sample_domain > 0 on the source and < 0 on the target; or "
            "fit a MultiHeadMLPClassifier alone when there is no target data."
        )
    return codes, classes


def _head_indices(spec, what):
    """``spec`` with the head names ``"domain"``/``"label"`` replaced by 0/1."""
    out = {}
    for key, value in spec.items():
        if isinstance(key, str):
            if key not in HEAD_NAMES:
                raise ValueError(
                    f"{what} names the head {key!r}, but DomainHeadClassifier's network has "
                    f"the heads {list(HEAD_NAMES)} (domain: built from sample_domain; "
                    "label: y). Use one of those names, or the column index 0 or 1."
                )
            key = HEAD_NAMES.index(key)
        out[key] = value
    return out
