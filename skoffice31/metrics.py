"""Metrics and scorers for multi-head classifiers.

scikit-learn's ``accuracy_score`` (and so ``scoring="accuracy"``) refuses
multiclass-multioutput targets. These functions score one head, or all heads
at once, and the scorers plug into ``GridSearchCV(scoring=...)``:

>>> from skoffice31.metrics import head_accuracy_scorer, exact_match_scorer
>>> scoring = {"domain": head_accuracy_scorer("domain"),
...            "object": head_accuracy_scorer("object"),
...            "both": exact_match_scorer}

A multi-metric search can then refit on the head a user cares about
(``refit="object"``).
"""

import numpy as np


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


def _average(correct, sample_weight):
    return float(np.average(correct, weights=sample_weight))


def head_accuracies(y_true, y_pred, sample_weight=None):
    """Accuracy of each head (each column).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_heads)
        True and predicted labels.
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    accuracies : ndarray of shape (n_heads,)
    """
    y_true, y_pred = _as_columns(y_true), _as_columns(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}."
        )
    return np.array(
        [_average(y_true[:, h] == y_pred[:, h], sample_weight) for h in range(y_true.shape[1])]
    )


def exact_match_accuracy(y_true, y_pred, sample_weight=None):
    """Fraction of samples whose every head is right (subset accuracy).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_heads)
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    accuracy : float
    """
    y_true, y_pred = _as_columns(y_true), _as_columns(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}."
        )
    return _average(np.all(y_true == y_pred, axis=1), sample_weight)


def _head_index(estimator, head):
    if isinstance(head, (int, np.integer)):
        return int(head)
    # a Pipeline (or a fitted search) names its heads through its last estimator
    while not hasattr(estimator, "head_names_"):
        if hasattr(estimator, "_final_estimator"):
            estimator = estimator._final_estimator
        elif hasattr(estimator, "best_estimator_"):
            estimator = estimator.best_estimator_
        else:
            break
    names = list(getattr(estimator, "head_names_", ()))
    if head not in names:
        raise ValueError(f"Unknown head {head!r}; the estimator's heads are {names}.")
    return names.index(head)


class HeadAccuracyScorer:
    """Scorer: accuracy of one head of a fitted multi-head estimator.

    Parameters
    ----------
    head : str or int
        The head's name (see ``head_names_``) or its column index.

    Examples
    --------
    >>> from skoffice31.metrics import HeadAccuracyScorer
    >>> scorer = HeadAccuracyScorer("object")  # scorer(estimator, X, y)
    """

    def __init__(self, head):
        self.head = head

    def __call__(self, estimator, X, y, sample_weight=None):
        h = _head_index(estimator, self.head)
        y_true = _as_columns(y)
        y_pred = _as_columns(estimator.predict(X))
        return _average(y_true[:, h] == y_pred[:, h], sample_weight)

    def __repr__(self):
        return f"head_accuracy_scorer({self.head!r})"


def head_accuracy_scorer(head):
    """Make a scorer for the accuracy of one head.

    Parameters
    ----------
    head : str or int
        Head name (from the estimator's ``head_names_``) or column index.

    Returns
    -------
    scorer : callable ``scorer(estimator, X, y)``
    """
    return HeadAccuracyScorer(head)


def exact_match_scorer(estimator, X, y, sample_weight=None):
    """Scorer: fraction of samples with every head right."""
    return exact_match_accuracy(y, estimator.predict(X), sample_weight)
