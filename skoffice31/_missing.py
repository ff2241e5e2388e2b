"""Missing labels: which entries of a head's labels are unlabelled.

The convention is scikit-learn's semi-supervised one
(:class:`~sklearn.semi_supervised.SelfTrainingClassifier`,
:class:`~sklearn.semi_supervised.LabelSpreading`): ``-1`` marks an
unlabelled sample in an integer head. A float or object head marks it with
``NaN``, ``None`` or ``pandas.NA`` (what a DataFrame with gaps gives), and an
object head holding integers also with ``-1``.

``-1`` used to be an ordinary class. So that a signed integer label set
(``-2, -1, 0, 1``, say) cannot silently lose its class ``-1``, an integer
head with ``-1`` and another negative label is refused with a message that
says how to recode it. A head whose labels are ``-1`` and exactly one other
value (scikit-learn's binary ``-1, 1`` convention, which its estimator
checks test) cannot be a semi-supervised head, since a head needs two
classes: there ``-1`` is a class. When a head's classes are known (a fitted
model), ``-1`` is a class exactly when it is among them.
"""

from numbers import Integral

import numpy as np

#: The integer marker of a missing label.
MISSING_INT = -1


def _is_na_object(v):
    """Whether one entry of an object array is ``None``, a float NaN or ``pd.NA``."""
    if v is None:
        return True
    if isinstance(v, float):  # np.float64 too
        return v != v
    return type(v).__name__ == "NAType"  # pandas.NA, without importing pandas


def _is_int(v):
    return isinstance(v, (Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def _minus_one_mask(col, name, classes):
    """Where integer labels ``col`` hold the marker ``-1`` (see the module docs)."""
    mask = col == MISSING_INT
    if not mask.any():
        return mask
    if classes is not None:
        return mask & (MISSING_INT not in np.asarray(classes).tolist())
    others = col[~mask]
    if len(others) and np.all(others == others[0]):  # labels {-1, c}: binary, -1 a class
        return np.zeros_like(mask)
    if np.any(others < MISSING_INT):
        raise ValueError(
            f"Head {name!r} of y holds the integer label -1 and other negative labels: "
            "-1 marks a missing label (scikit-learn's semi-supervised convention), so "
            "it cannot also be a class. Recode the labels (e.g. add an offset so that "
            "every class is >= 0, or use strings) and mark missing labels with -1, "
            "NaN or None."
        )
    return mask


def missing_mask(col, name="y", classes=None):
    """Boolean mask of the missing entries of one head's labels.

    Parameters
    ----------
    col : ndarray of shape (n_samples,)
        The labels of one head.
    name : str, default="y"
        The head's name, for error messages.
    classes : array-like, default=None
        The head's classes when they are known: ``-1`` is then a class if it
        is among them, else a missing label.

    Returns
    -------
    mask : ndarray of shape (n_samples,), dtype bool
        True where the label is missing.

    Raises
    ------
    ValueError
        A float head holding infinity, or an integer head holding ``-1`` next
        to other negative labels.
    """
    col = np.asarray(col)
    kind = col.dtype.kind
    if kind == "i":
        return _minus_one_mask(col, name, classes)
    if kind == "f":
        mask = np.isnan(col)
        if np.isinf(col).any():
            raise ValueError(f"Head {name!r} of y contains infinity.")
        return mask
    if kind == "O":
        mask = np.fromiter((_is_na_object(v) for v in col), bool, len(col))
        if any(isinstance(v, float) and not np.isfinite(v) for v in col[~mask]):
            raise ValueError(f"Head {name!r} of y contains infinity.")
        present = col[~mask]
        if len(present) and all(_is_int(v) for v in present):
            minus_one = _minus_one_mask(np.array(present.tolist()), name, classes)
            mask[np.flatnonzero(~mask)[minus_one]] = True
        return mask
    return np.zeros(len(col), dtype=bool)


def labelled_values(col, name="y", classes=None):
    """The labelled entries of ``col`` and the mask of the missing ones.

    An object column whose labelled entries are all numbers comes back as a
    numeric array, so that a column of ints and ``None`` sorts as ints.

    Parameters
    ----------
    col : ndarray of shape (n_samples,)
    name : str, default="y"
    classes : array-like, default=None
        See :func:`missing_mask`.

    Returns
    -------
    values : ndarray
        ``col[~mask]``.
    mask : ndarray of shape (n_samples,), dtype bool
        See :func:`missing_mask`.
    """
    col = np.asarray(col)
    mask = missing_mask(col, name, classes)
    values = col[~mask] if mask.any() else col
    if mask.any() and values.dtype == object and len(values) and all(
        isinstance(v, (Integral, float, np.number)) and not isinstance(v, (bool, np.bool_))
        for v in values
    ):
        values = np.array(values.tolist())
    return values, mask
