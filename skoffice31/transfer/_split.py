"""The k-shot split of the target domain."""

from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["check_shots", "few_shot_split"]


def check_shots(shots, y_target):
    """Validate numbers of labelled target images per class against ``y_target``.

    Parameters
    ----------
    shots : int or sequence of int
        Labelled target images per class.
    y_target : array-like of shape (n_target,)
        The target domain's labels.

    Returns
    -------
    shots : list of int
        Sorted, without repeats.
    """
    values = [shots] if isinstance(shots, Integral) else list(shots)
    if not values:
        raise ValueError("give at least one number of labelled target images per class")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, Integral):
            raise ValueError(f"the number of labelled target images per class must be an "
                             f"integer, got {k!r}")
        if k < 0:
            raise ValueError(f"negative number of labelled target images per class ({k}): "
                             "use 0 (unlabelled target only) or more")
    labels, counts = np.unique(np.asarray(y_target, dtype=object).astype(str),
                               return_counts=True)
    smallest = int(counts.min())
    if max(values) >= smallest:
        raise ValueError(
            f"{max(values)} labelled target images per class is too many: the smallest class "
            f"of the target ({str(labels[np.argmin(counts)])!r}) has {smallest} images and at "
            f"least one per class must be left to test on; use at most {smallest - 1}"
        )
    return sorted(set(int(k) for k in values))


def few_shot_split(y_target, k, random_state=None):
    """Split the target domain into ``k`` labelled images per class and the rest.

    For each class, its images are put in a random order (seeded by
    ``random_state``) and the first ``k`` are labelled; the test set is all
    the others. For one seed the labelled sets are nested: the 1-shot images
    are among the 3-shot ones.

    Parameters
    ----------
    y_target : array-like of shape (n_target,)
        The target domain's labels.
    k : int
        Labelled images per class; 0 labels none (unlabelled target only).
        Must be smaller than the smallest class.
    random_state : int, RandomState instance or None, default=None
        Seeds the choice.

    Returns
    -------
    labelled : ndarray of int
        Indices (into ``y_target``, sorted) of the ``k * n_classes`` labelled
        images.
    test : ndarray of int
        Indices of the other images, sorted.

    Examples
    --------
    >>> import numpy as np
    >>> from skoffice31.transfer import few_shot_split
    >>> y = np.array(["cat"] * 4 + ["dog"] * 3)
    >>> labelled, test = few_shot_split(y, 1, random_state=0)
    >>> sorted(y[labelled].tolist()), len(test)
    (['cat', 'dog'], 5)
    """
    y = np.asarray(y_target, dtype=object).astype(str)
    (k,) = check_shots([k], y)
    rng = check_random_state(random_state)
    chosen = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        chosen.append(rows[rng.permutation(rows.size)[:k]])
    labelled = np.sort(np.concatenate(chosen)).astype(int)
    test = np.setdiff1d(np.arange(y.size), labelled)
    return labelled, test
