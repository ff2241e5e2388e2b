"""Metrics and scorers for multi-head classifiers.

scikit-learn's ``accuracy_score``, ``classification_report``,
``confusion_matrix`` and ``log_loss`` (and so ``scoring="accuracy"`` or
``scoring="neg_log_loss"``) refuse multiclass-multioutput targets. The
functions here evaluate each head (each column of ``y``) on its own, and the
scorers score one head, or all heads at once, inside
``GridSearchCV(scoring=...)`` or ``cross_validate``:

>>> from skoffice31.metrics import head_accuracy_scorer, exact_match_scorer
>>> scoring = {"domain": head_accuracy_scorer("domain"),
...            "object": head_accuracy_scorer("object"),
...            "both": exact_match_scorer}

A multi-metric search can then refit on the head a user cares about
(``refit="object"``).

The scorers follow scikit-learn's scorer protocol: in a multi-metric search
they share one ``predict`` call per split, they take ``sample_weight``, and
with ``sklearn.set_config(enable_metadata_routing=True)`` they ask for it
with ``set_score_request(sample_weight=True)``, as scikit-learn's own
scorers do.

Missing labels in ``y_true`` (``-1`` in an integer head; ``NaN``, ``None``
or ``pandas.NA`` otherwise, scikit-learn's semi-supervised convention, as
in :class:`~skoffice31.MultiHeadMLPClassifier`) are left out: each head is
scored on its labelled rows, and a row counts for the exact match on the
heads it has labels for. A head with no labelled row cannot be scored and
raises ``ValueError``.
"""

import numbers

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, log_loss
from sklearn.metrics._scorer import _BaseScorer
from sklearn.utils import Bunch

from ._missing import missing_mask

__all__ = [
    "ExactMatchScorer",
    "HeadAccuracyScorer",
    "HeadLogLossScorer",
    "exact_match_accuracy",
    "exact_match_scorer",
    "head_accuracies",
    "head_accuracy_scorer",
    "head_classification_report",
    "head_confusion_matrices",
    "head_log_loss_scorer",
    "head_log_losses",
]


def _as_columns(y):
    """``y`` as a 2-D object-safe array of shape (n_samples, n_heads)."""
    if hasattr(y, "iloc"):
        y = y.to_numpy()
    y = np.asarray(y)
    if y.ndim == 1:
        return y.reshape(-1, 1)
    if y.ndim != 2:
        raise ValueError(f"y must be 1-D or 2-D, got an array of shape {y.shape}.")
    return y


def _column(y2d, h):
    """Column ``h`` of a 2-D array with the dtype of its values.

    A column of a mixed 2-D object array (strings in one head, ints in
    another) holds Python ints as objects, which scikit-learn's
    ``type_of_target`` calls "unknown": such a column becomes a numeric array.
    """
    return _as_values(y2d[:, h])


def _as_values(col):
    """A 1-D object column of numbers as a numeric array (see :func:`_column`)."""
    col = np.asarray(col)
    if col.dtype == object and all(
        isinstance(v, numbers.Number) and not isinstance(v, bool) for v in col
    ):
        return np.array(col.tolist())
    return col


def _check_same_shape(y_true, y_pred):
    y_true, y_pred = _as_columns(y_true), _as_columns(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}."
        )
    return y_true, y_pred


def _average(correct, sample_weight):
    return float(np.average(correct, weights=sample_weight))


def _labelled(y_true, sample_weight, name="y_true", *others):
    """Drop the rows whose ``y_true`` label is missing.

    Returns ``y_true``, ``sample_weight`` and each of ``others`` restricted
    to the labelled rows (unchanged objects when no label is missing).
    """
    y_true = np.asarray(y_true)
    mask = missing_mask(y_true, name)
    if not mask.any():
        return (y_true, sample_weight, *others)
    if mask.all():
        raise ValueError(
            f"Every label of head {name!r} is missing: there is nothing to score it "
            "on. Score on samples that have labels for that head."
        )
    keep = ~mask
    sw = None if sample_weight is None else np.asarray(sample_weight)[keep]
    return (_as_values(y_true[keep]), sw, *(np.asarray(o)[keep] for o in others))


def _names_of(y, n_heads, head_names):
    """Head names: ``head_names``, else a DataFrame's columns, else head0, ..."""
    if head_names is not None:
        names = [str(n) for n in head_names]
        if len(names) != n_heads:
            raise ValueError(
                f"head_names has {len(names)} name(s) but y has {n_heads} head(s)."
            )
        return names
    if hasattr(y, "columns"):
        return [str(c) for c in y.columns]
    name = getattr(y, "name", None)
    if n_heads == 1 and isinstance(name, str):
        return [name]
    return [f"head{j}" for j in range(n_heads)]


def _head_accuracy(y_true, y_pred, sample_weight=None):
    # the score function of HeadAccuracyScorer: one column of each; rows
    # whose true label is missing are left out
    y_true, sample_weight, y_pred = _labelled(y_true, sample_weight, "y_true", y_pred)
    return _average(y_true == np.asarray(y_pred), sample_weight)


def head_accuracies(y_true, y_pred, sample_weight=None):
    """Accuracy of each head (each column).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_heads)
        True and predicted labels.
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each sample.

    Returns
    -------
    accuracies : ndarray of shape (n_heads,)
        The (weighted) fraction of right labels of each head.

    Examples
    --------
    >>> from skoffice31.metrics import head_accuracies
    >>> head_accuracies([["a", 1], ["b", 2]], [["a", 2], ["b", 2]])
    array([1. , 0.5])
    """
    y_true, y_pred = _check_same_shape(y_true, y_pred)
    return np.array([
        _head_accuracy(y_true[:, h], y_pred[:, h], sample_weight)
        for h in range(y_true.shape[1])
    ])


def exact_match_accuracy(y_true, y_pred, sample_weight=None):
    """Fraction of samples whose every head is right (subset accuracy).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_heads)
        True and predicted labels.
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each sample.

    Returns
    -------
    accuracy : float
        The (weighted) fraction of rows with all heads right.

    Examples
    --------
    >>> from skoffice31.metrics import exact_match_accuracy
    >>> exact_match_accuracy([["a", 1], ["b", 2]], [["a", 2], ["b", 2]])
    0.5
    """
    y_true, y_pred = _check_same_shape(y_true, y_pred)
    missing = np.column_stack([missing_mask(y_true[:, h], f"head{h}")
                               for h in range(y_true.shape[1])])
    if not missing.any():
        return _average(np.all(y_true == y_pred, axis=1), sample_weight)
    # a row is right when every head it has a label for is right
    keep = ~missing.all(axis=1)
    if not keep.any():
        raise ValueError("Every label of y_true is missing: there is nothing to score.")
    right = np.all((y_true == y_pred) | missing, axis=1)
    sw = None if sample_weight is None else np.asarray(sample_weight)[keep]
    return _average(right[keep], sw)


def head_classification_report(
    y_true,
    y_pred,
    *,
    head_names=None,
    sample_weight=None,
    digits=2,
    output_dict=False,
    zero_division="warn",
):
    """Scikit-learn's classification report for each head.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_heads)
        True and predicted labels; a DataFrame ``y_true`` names the heads.
    head_names : list of str, default=None
        Names of the heads (e.g. a fitted model's ``head_names_``); default
        the columns of a DataFrame ``y_true``, else ``head0``, ``head1``, ...
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each sample.
    digits : int, default=2
        Digits of the floats in the text report.
    output_dict : bool, default=False
        Return a dict per head instead of text.
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        Passed to :func:`sklearn.metrics.classification_report`.

    Returns
    -------
    report : str or dict
        Text: one report per head, each under a line naming the head. With
        ``output_dict=True``: head name -> the dict that
        :func:`sklearn.metrics.classification_report` returns for that head.

    See Also
    --------
    sklearn.metrics.classification_report : The report of one head.

    Examples
    --------
    >>> from skoffice31.metrics import head_classification_report
    >>> y_true = [["amazon", "mug"], ["dslr", "pen"], ["dslr", "mug"]]
    >>> y_pred = [["amazon", "mug"], ["dslr", "mug"], ["dslr", "mug"]]
    >>> report = head_classification_report(
    ...     y_true, y_pred, head_names=["domain", "object"], output_dict=True,
    ...     zero_division=0.0)
    >>> report["object"]["accuracy"]
    0.666...
    """
    names = _names_of(y_true, _as_columns(y_true).shape[1], head_names)
    y_true, y_pred = _check_same_shape(y_true, y_pred)
    reports = {}
    for h, name in enumerate(names):
        t, sw, p = _labelled(_column(y_true, h), sample_weight, name, _column(y_pred, h))
        reports[name] = classification_report(
            t, _as_values(p), sample_weight=sw, digits=digits,
            output_dict=output_dict, zero_division=zero_division,
        )
    if output_dict:
        return reports
    return "\n".join(f"head: {name}\n\n{text}" for name, text in reports.items())


def head_confusion_matrices(y_true, y_pred, *, head_names=None, sample_weight=None,
                            normalize=None):
    """The confusion matrix of each head, ready for ``ConfusionMatrixDisplay``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_heads)
        True and predicted labels; a DataFrame ``y_true`` names the heads.
    head_names : list of str, default=None
        Names of the heads; default the columns of a DataFrame ``y_true``,
        else ``head0``, ``head1``, ...
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each sample.
    normalize : {"true", "pred", "all"}, default=None
        Passed to :func:`sklearn.metrics.confusion_matrix`.

    Returns
    -------
    matrices : dict of Bunch
        Head name -> a Bunch with ``confusion_matrix`` (ndarray of shape
        (n_labels, n_labels), rows the true labels, columns the predicted
        ones) and ``display_labels`` (the sorted labels seen in that head's
        ``y_true`` or ``y_pred``): the two arguments of
        :class:`sklearn.metrics.ConfusionMatrixDisplay`.

    See Also
    --------
    sklearn.metrics.confusion_matrix : The matrix of one head.

    Examples
    --------
    >>> from sklearn.metrics import ConfusionMatrixDisplay
    >>> from skoffice31.metrics import head_confusion_matrices
    >>> y_true = [["amazon", "mug"], ["dslr", "pen"], ["dslr", "mug"]]
    >>> y_pred = [["amazon", "mug"], ["dslr", "mug"], ["dslr", "mug"]]
    >>> cms = head_confusion_matrices(y_true, y_pred,
    ...                               head_names=["domain", "object"])
    >>> cms["object"].confusion_matrix
    array([[2, 0],
           [1, 0]])
    >>> display = ConfusionMatrixDisplay(**cms["object"])  # then display.plot()
    """
    names = _names_of(y_true, _as_columns(y_true).shape[1], head_names)
    y_true, y_pred = _check_same_shape(y_true, y_pred)
    out = {}
    for h, name in enumerate(names):
        t, sw, p = _labelled(_column(y_true, h), sample_weight, name, _column(y_pred, h))
        p = _as_values(p)
        try:
            labels = np.unique(np.concatenate([t, p]))
        except TypeError:
            raise ValueError(
                f"Head {name!r} mixes label types (e.g. strings and numbers); use one "
                "type per head."
            ) from None
        cm = confusion_matrix(t, p, labels=labels, sample_weight=sw, normalize=normalize)
        out[name] = Bunch(confusion_matrix=cm, display_labels=labels)
    return out


def _per_head_proba(proba, classes):
    """Probabilities and classes as lists with one entry per head."""
    if isinstance(proba, (list, tuple)):
        return list(proba), list(classes)
    return [proba], [classes]


def _head_log_loss(y_true, y_proba, sample_weight=None):
    # the score function of HeadLogLossScorer: one column of y, and the pair
    # (one head's probabilities, that head's classes). Its signature is what
    # metadata routing reads, so no further keyword (``labels``) appears.
    proba, labels = y_proba
    y_true, sample_weight, proba = _labelled(y_true, sample_weight, "y_true", proba)
    return float(log_loss(y_true, proba, labels=labels, sample_weight=sample_weight))


def head_log_losses(y_true, y_proba, *, classes, sample_weight=None):
    """Log-loss (cross-entropy) of each head.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_heads)
        True labels.
    y_proba : ndarray of shape (n_samples, n_classes) or list of such
        A multi-head model's ``predict_proba``: one array per head, columns
        in the order of that head's ``classes``.
    classes : ndarray or list of ndarray
        The model's ``classes_``: the labels of each head.
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each sample.

    Returns
    -------
    losses : ndarray of shape (n_heads,)
        :func:`sklearn.metrics.log_loss` of each head (lower is better).

    Examples
    --------
    >>> import numpy as np
    >>> from skoffice31.metrics import head_log_losses
    >>> proba = [np.array([[0.5, 0.5], [0.5, 0.5]]),
    ...          np.array([[1.0, 0.0], [0.0, 1.0]])]
    >>> losses = head_log_losses([["a", "x"], ["b", "y"]], proba,
    ...                          classes=[np.array(["a", "b"]), np.array(["x", "y"])])
    >>> np.round(losses, 4)
    array([0.6931, 0.    ])
    """
    y_true = _as_columns(y_true)
    proba, classes = _per_head_proba(y_proba, classes)
    if not len(proba) == len(classes) == y_true.shape[1]:
        raise ValueError(
            f"y_true has {y_true.shape[1]} head(s) but y_proba has {len(proba)} and "
            f"classes {len(classes)}: give one probability array and one class list "
            "per head."
        )
    return np.array([
        _head_log_loss(_column(y_true, h), (proba[h], classes[h]), sample_weight=sample_weight)
        for h in range(y_true.shape[1])
    ])


# ------------------------------------------------------------------ scorers


def _estimator_head_names(estimator):
    """``head_names_`` of the estimator, of a Pipeline's last step or of a search."""
    for _ in range(10):  # a Pipeline in a search in a Pipeline ...
        if hasattr(estimator, "head_names_"):
            return [str(n) for n in estimator.head_names_]
        if hasattr(estimator, "_final_estimator"):
            estimator = estimator._final_estimator
        elif hasattr(estimator, "best_estimator_"):
            estimator = estimator.best_estimator_
        else:
            break
    return []


def _check_head(head):
    if isinstance(head, bool) or not isinstance(head, (str, numbers.Integral)):
        raise TypeError(
            f"head must be a head's name (str) or its column index (int), got {head!r}."
        )
    return head


def _resolve_head(head, estimator, y, n_heads):
    """Column index of ``head`` in a ``y`` of ``n_heads`` columns.

    An int is an index (negative counts from the end). A name is looked up in
    the fitted estimator's ``head_names_`` first, then in the columns of a
    DataFrame ``y``; a name found in neither raises, so that a typo or a
    model fitted on an unnamed target fails loudly rather than scoring some
    other head.
    """
    if isinstance(head, numbers.Integral):
        if not -n_heads <= head < n_heads:
            raise ValueError(
                f"Head index {head} is out of range: y has {n_heads} head(s), indices "
                f"0 to {n_heads - 1}."
            )
        return int(head) % n_heads
    est_names = _estimator_head_names(estimator)
    y_names = [str(c) for c in y.columns] if hasattr(y, "columns") else []
    for names in (est_names, y_names):
        if head in names:
            index = names.index(head)
            if index >= n_heads:
                raise ValueError(
                    f"Head {head!r} is column {index} of the estimator's heads but y "
                    f"has only {n_heads} column(s)."
                )
            return index
    known = f"the fitted estimator's heads are {est_names}" if est_names else (
        "the fitted estimator names no heads")
    if y_names:
        known += f" and y's columns are {y_names}"
    raise ValueError(
        f"Unknown head {head!r}: {known}. A model fitted on a plain array names its "
        "heads head0, head1, ...: fit it on a DataFrame whose columns name the heads "
        "(e.g. the target of load_office_digits(as_frame=True)), or refer to the head "
        "by its column index."
    )


class _HeadScorer(_BaseScorer):
    """A scikit-learn scorer that knows about heads.

    Subclasses set ``_score_func``, ``_sign`` and ``_response_method`` and
    implement ``_score_heads``. Deriving from scikit-learn's ``_BaseScorer``
    gives the scorer protocol: ``set_score_request`` and metadata routing,
    ``sample_weight`` in multi-metric scoring without routing, and the shared
    ``predict`` cache of a multi-metric search (``method_caller``).
    """

    def __call__(self, estimator, X, y_true, *, sample_weight=None, **kwargs):
        """Score the fitted ``estimator`` on ``X`` against ``y_true``.

        Parameters
        ----------
        estimator : object
            A fitted (multi-head) classifier, a Pipeline ending in one, or a
            fitted search.
        X : array-like of shape (n_samples, n_features)
            Test data.
        y_true : array-like of shape (n_samples,) or (n_samples, n_heads)
            True labels, one column per head; a DataFrame's columns name the
            heads.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample.
        **kwargs : dict
            Further metadata, only with metadata routing enabled (see
            ``set_score_request``).

        Returns
        -------
        score : float
            The score; greater is better.
        """
        return super().__call__(estimator, X, y_true, sample_weight=sample_weight, **kwargs)

    def _score(self, method_caller, estimator, X, y_true, **kwargs):
        return self._sign * self._score_heads(method_caller, estimator, X, y_true, **kwargs)

    def _accept_sample_weight(self):
        return True

    def _predict_columns(self, method_caller, estimator, X, y_true):
        y = _as_columns(y_true)
        y_pred = _as_columns(method_caller(estimator, "predict", X))
        if y_pred.shape != y.shape:
            raise ValueError(
                f"The estimator predicts {y_pred.shape[1]} head(s) for "
                f"{y_pred.shape[0]} samples but y has shape {y.shape}."
            )
        return y, y_pred


class HeadAccuracyScorer(_HeadScorer):
    """Scorer: accuracy of one head of a fitted multi-head estimator.

    Called as ``scorer(estimator, X, y, sample_weight=None)``; goes into
    ``GridSearchCV(scoring=...)`` and ``cross_validate``. Make one with
    :func:`head_accuracy_scorer`.

    Parameters
    ----------
    head : str or int
        The head's name or its column index (negative counts from the end).
        A name is looked up, when scoring, in the estimator's ``head_names_``
        (through a Pipeline or a fitted search), then in the columns of a
        DataFrame ``y``; an unknown name raises a ``ValueError``.

    See Also
    --------
    head_accuracy_scorer : Make this scorer.
    sklearn.metrics.accuracy_score : The metric, for one head.

    Notes
    -----
    With ``GridSearchCV(error_score=np.nan)`` (the default) scikit-learn
    turns an exception raised while scoring into a NaN score and a
    ``UserWarning`` "Scoring failed ..." carrying this scorer's message; pass
    ``error_score="raise"`` to make a wrong head name stop the search.

    Examples
    --------
    >>> from skoffice31.metrics import HeadAccuracyScorer
    >>> scorer = HeadAccuracyScorer("object")  # scorer(estimator, X, y)
    >>> scorer
    head_accuracy_scorer('object')
    """

    def __init__(self, head):
        self.head = _check_head(head)
        super().__init__(_head_accuracy, 1, {}, "predict")

    def _score_heads(self, method_caller, estimator, X, y_true, **kwargs):
        y, y_pred = self._predict_columns(method_caller, estimator, X, y_true)
        h = _resolve_head(self.head, estimator, y_true, y.shape[1])
        return self._score_func(_column(y, h), _column(y_pred, h), **kwargs)

    def __repr__(self):
        return f"head_accuracy_scorer({self.head!r})"


class HeadLogLossScorer(_HeadScorer):
    """Scorer: negated log-loss of one head (greater is better).

    The multi-head counterpart of ``scoring="neg_log_loss"``: minus
    :func:`sklearn.metrics.log_loss` of the head's ``predict_proba`` against
    its true labels, the classes taken from the estimator's ``classes_``.
    Make one with :func:`head_log_loss_scorer`.

    Parameters
    ----------
    head : str or int
        The head's name or its column index, resolved as in
        :class:`HeadAccuracyScorer`.

    See Also
    --------
    head_log_loss_scorer : Make this scorer.
    head_log_losses : The log-loss of every head.

    Examples
    --------
    >>> from skoffice31.metrics import HeadLogLossScorer
    >>> HeadLogLossScorer("domain")
    head_log_loss_scorer('domain')
    """

    def __init__(self, head):
        self.head = _check_head(head)
        super().__init__(_head_log_loss, -1, {}, "predict_proba")

    def _score_heads(self, method_caller, estimator, X, y_true, **kwargs):
        y = _as_columns(y_true)
        h = _resolve_head(self.head, estimator, y_true, y.shape[1])
        # predict_proba of a multi-head model is a list: not through
        # scikit-learn's response helpers, which expect one array
        proba, classes = _per_head_proba(estimator.predict_proba(X), estimator.classes_)
        if len(proba) != y.shape[1]:
            raise ValueError(
                f"The estimator's predict_proba gives {len(proba)} head(s) but y has "
                f"{y.shape[1]} column(s)."
            )
        return self._score_func(_column(y, h), (proba[h], classes[h]), **kwargs)

    def __repr__(self):
        return f"head_log_loss_scorer({self.head!r})"


class ExactMatchScorer(_HeadScorer):
    """Scorer: fraction of samples with every head right (subset accuracy).

    Use the ready-made instance :data:`exact_match_scorer`.

    See Also
    --------
    exact_match_accuracy : The metric.

    Examples
    --------
    >>> from skoffice31.metrics import ExactMatchScorer, exact_match_scorer
    >>> exact_match_scorer
    exact_match_scorer
    """

    def __init__(self):
        super().__init__(exact_match_accuracy, 1, {}, "predict")

    def _score_heads(self, method_caller, estimator, X, y_true, **kwargs):
        y, y_pred = self._predict_columns(method_caller, estimator, X, y_true)
        return self._score_func(y, y_pred, **kwargs)

    def __repr__(self):
        return "exact_match_scorer"


def head_accuracy_scorer(head):
    """Make a scorer for the accuracy of one head.

    Parameters
    ----------
    head : str or int
        Head name (from the estimator's ``head_names_`` or a DataFrame
        ``y``'s columns) or column index.

    Returns
    -------
    scorer : HeadAccuracyScorer
        A callable ``scorer(estimator, X, y, sample_weight=None)``.

    Examples
    --------
    >>> from skoffice31.metrics import head_accuracy_scorer
    >>> scoring = {"domain": head_accuracy_scorer("domain"),
    ...            "first": head_accuracy_scorer(0)}
    """
    return HeadAccuracyScorer(head)


def head_log_loss_scorer(head):
    """Make a scorer for the negated log-loss of one head.

    Parameters
    ----------
    head : str or int
        Head name (from the estimator's ``head_names_`` or a DataFrame
        ``y``'s columns) or column index.

    Returns
    -------
    scorer : HeadLogLossScorer
        A callable ``scorer(estimator, X, y, sample_weight=None)`` returning
        minus the head's log-loss, so that greater is better.

    Examples
    --------
    >>> from skoffice31.metrics import head_log_loss_scorer
    >>> scoring = {"object": head_log_loss_scorer("object")}
    """
    return HeadLogLossScorer(head)


#: Scorer: fraction of samples with every head right (an
#: :class:`ExactMatchScorer`), called as
#: ``exact_match_scorer(estimator, X, y, sample_weight=None)``.
exact_match_scorer = ExactMatchScorer()
