"""Training on mirrored and shifted copies of the images (data augmentation).

A network on raw pixels has no notion that an object seen in a mirror, or
two pixels to the left, is the same object: it has to see it. On Office-31
the tuned preset's networks fit their training photos almost perfectly
(objects >= 0.99) while reaching about 0.57 on the test photos; training on
copies of each photo mirrored left-right and moved by a pixel or two
narrows that gap (``benchmarks/tune_recipe.py``, stage 10).

The copies must be made from the *training rows only*, after the split, and
before any per-feature preprocessing (a mirrored image is not the mirror of
its standardised features). :class:`AugmentedClassifier` does exactly that:
it wraps a model (typically a :class:`~sklearn.pipeline.Pipeline` of the
preprocessing and the classifier), adds the copies in its ``fit`` and
predicts from the photo and its mirror image. Put after an
:class:`~skoffice31.ImageFlattener`, or used on the flattened rows the
flattener returns, it works inside cross-validation and
:class:`~sklearn.model_selection.GridSearchCV` too: each fold's training
part is augmented, its validation part never is.

The functions :func:`mirror_images` and :func:`shift_images` are the two
transformations, on the same flattened rows (C order: row, column, channel).
"""

import math
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted

__all__ = ["AugmentedClassifier", "mirror_images", "shift_images"]


def _image_rows(X, image_shape, n_channels=3):
    """``X`` as an ``(n, height, width, channels)`` view; checks the shape."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"X must be a 2-D array of flattened images (one image per row, as "
            f"ImageFlattener returns them), got an array of shape {X.shape}."
        )
    n, n_features = X.shape
    if image_shape is None:
        side = math.isqrt(n_features // n_channels) if n_features % n_channels == 0 else 0
        if side * side * n_channels != n_features:
            raise ValueError(
                f"X has {n_features} features per row, which is not a square image of "
                f"{n_channels} channels; give image_shape=(height, width, channels)."
            )
        image_shape = (side, side, n_channels)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"image_shape must be (height, width, channels) of positive ints, got {image_shape!r}."
        )
    if math.prod(shape) != n_features:
        raise ValueError(
            f"image_shape {shape} has {math.prod(shape)} values per image but X has "
            f"{n_features} features per row."
        )
    return X.reshape((n, *shape))


def mirror_images(X, image_shape=None):
    """Flip every image left to right.

    Parameters
    ----------
    X : array-like of shape (n_images, height * width * channels)
        Flattened images, C order (row, column, channel), as
        :class:`~skoffice31.ImageFlattener` returns them.
    image_shape : tuple of (height, width, channels), default=None
        ``None``: square images of 3 channels.

    Returns
    -------
    X_mirrored : ndarray of the shape and dtype of ``X``

    Examples
    --------
    >>> import numpy as np
    >>> from skoffice31.augmentation import mirror_images
    >>> X = np.arange(6).reshape(1, 6)          # one 1x2 image of 3 channels
    >>> mirror_images(X, image_shape=(1, 2, 3))
    array([[3, 4, 5, 0, 1, 2]])
    """
    images = _image_rows(X, image_shape)
    return np.ascontiguousarray(images[:, :, ::-1, :]).reshape(len(images), -1)


def shift_images(X, image_shape=None, *, max_shift=2, random_state=None):
    """Move every image by a random whole number of pixels, up to ``max_shift``.

    Each image gets its own vertical and horizontal offsets, drawn
    uniformly from ``-max_shift .. max_shift``; the border uncovered by the
    move repeats the image's edge pixels (no black bands, which would be a
    cue of their own).

    Parameters
    ----------
    X : array-like of shape (n_images, height * width * channels)
        Flattened images (see :func:`mirror_images`).
    image_shape : tuple of (height, width, channels), default=None
        ``None``: square images of 3 channels.
    max_shift : int, default=2
        Largest move in pixels, in each direction.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X_shifted : ndarray of the shape and dtype of ``X``

    Examples
    --------
    >>> import numpy as np
    >>> from skoffice31.augmentation import shift_images
    >>> X = np.arange(12, dtype=float).reshape(3, 4)     # three 2x2 grey images
    >>> shift_images(X, (2, 2, 1), max_shift=0).tolist() == X.tolist()
    True
    """
    images = _image_rows(X, image_shape)
    max_shift = int(max_shift)
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}.")
    n, h, w, _ = images.shape
    rng = check_random_state(random_state)
    dy = rng.randint(-max_shift, max_shift + 1, size=n)
    dx = rng.randint(-max_shift, max_shift + 1, size=n)
    m = max_shift
    padded = np.pad(images, ((0, 0), (m, m), (m, m), (0, 0)), mode="edge")
    out = np.empty_like(images)
    # one slice per offset pair: at most (2m + 1)^2 vectorised copies
    for oy in range(-m, m + 1):
        for ox in range(-m, m + 1):
            rows = np.flatnonzero((dy == oy) & (dx == ox))
            if rows.size:
                out[rows] = padded[rows, m - oy:m - oy + h, m - ox:m - ox + w]
    return out.reshape(n, -1)


class AugmentedClassifier(MetaEstimatorMixin, BaseEstimator):
    """Fit a classifier on mirrored and shifted copies of its training images.

    ``fit`` trains a clone of ``estimator`` on ``copies`` versions of every
    training image: the image itself, its mirror image (left-right; unless
    ``mirror=False``), then randomly shifted versions of the two in turn
    (:func:`shift_images`), with the labels (and sample weights) repeated.
    ``predict_proba`` averages the probabilities of each image and of its
    mirror image when ``mirror_at_predict`` is true (the model has learnt
    both), and ``predict`` takes each head's most probable class of that
    average.

    The input is flattened images (one image per row, C order: row,
    column, channel), as :class:`~skoffice31.ImageFlattener` returns them,
    *before* any per-feature preprocessing: wrap the preprocessing and the
    classifier together, as in the example.

    Parameters
    ----------
    estimator : classifier or Pipeline
        The model to train on the copies, e.g. a
        :class:`~skoffice31.MultiHeadMLPClassifier` or a Pipeline ending in
        one. It is cloned at ``fit``.
    image_shape : tuple of (height, width, channels), default=None
        Shape of one image of a row. ``None``: square images of 3 channels.
    copies : int, default=4
        Versions of every training image: 1 trains on the images alone (and
        ``predict`` is the estimator's), 2 adds the mirror images, 3 and
        more add shifted ones.
    max_shift : int, default=2
        Largest shift in pixels of the shifted copies, in each direction.
    mirror : bool, default=True
        Whether the second copy is the mirror image. ``False`` where left
        and right carry the label (digits, text, arrows): every copy after
        the first is then a shifted version of the image itself.
    mirror_at_predict : bool, default=True
        Average the probabilities of each image and of its mirror image at
        prediction (only with ``mirror`` and ``copies >= 2``: a model that
        never saw a mirror image has nothing to gain from it).
    shift_each_epoch : bool, default=False
        Draw new shifts for the shifted copies at every epoch (on-the-fly
        augmentation), instead of once in ``fit``: the network then sees
        each photo moved in many ways over its epochs, not in
        ``copies - 2`` fixed ones. ``fit`` fits the preprocessing steps of
        a Pipeline ``estimator`` on the first epoch's copies (as without
        this option), then trains its last step one epoch at a time with
        ``partial_fit`` (its ``max_iter`` epochs; it must not use early
        stopping), transforming each epoch's new shifted copies through the
        fitted preprocessing. An integer ``random_state`` of the classifier
        seeds one stream of minibatch orders over all the epochs, as in its
        ``fit``. No effect without shifted copies (``copies`` of 2 or less
        with ``mirror``, 1 without).
    random_state : int, RandomState instance or None, default=None
        Seed of the shifts (the estimator has its own ``random_state``).

    Attributes
    ----------
    estimator_ : estimator
        The fitted clone of ``estimator``.
    classes_, head_names_, n_outputs_ : as the fitted classifier's
        Those of the last step of ``estimator_`` (when it has them).
    n_features_in_ : int
        Features of a row (``height * width * channels``).

    See Also
    --------
    mirror_images, shift_images : The two transformations.

    Notes
    -----
    Fitting on ``copies`` versions of the data costs ``copies`` times as much
    per epoch: the tuned preset halves its epochs when it uses 4 copies.
    With ``shift_each_epoch`` every epoch also sends the new shifted copies
    through the preprocessing (for the tuned preset's grid, whose
    preprocessing ends in a projection on 512 principal components, about
    5 % more time: ``benchmarks/tune_recipe.py``, stage 16).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skoffice31 import MultiHeadMLPClassifier
    >>> from skoffice31.augmentation import AugmentedClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((40, 8 * 8 * 3), dtype=np.float32)   # 40 8x8 RGB images
    >>> y = np.column_stack([np.arange(40) % 2, np.arange(40) % 4])
    >>> model = AugmentedClassifier(
    ...     make_pipeline(StandardScaler(), MultiHeadMLPClassifier(hidden=(16,), max_iter=5,
    ...                                                            random_state=0)),
    ...     copies=4, random_state=0)
    >>> model.augment(X, y)[0].shape                     # what fit trains on
    (160, 192)
    >>> model.fit(X, y).predict(X[:3]).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict_proba"])],
        "image_shape": [tuple, list, None],
        "copies": [Interval(Integral, 1, None, closed="left")],
        "max_shift": [Interval(Integral, 0, None, closed="left")],
        "mirror": ["boolean"],
        "mirror_at_predict": ["boolean"],
        "shift_each_epoch": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator, *, image_shape=None, copies=4, max_shift=2, mirror=True,
                 mirror_at_predict=True, shift_each_epoch=False, random_state=None):
        self.estimator = estimator
        self.image_shape = image_shape
        self.copies = copies
        self.max_shift = max_shift
        self.mirror = mirror
        self.mirror_at_predict = mirror_at_predict
        self.shift_each_epoch = shift_each_epoch
        self.random_state = random_state

    def augment(self, X, y, sample_weight=None):
        """The training rows :meth:`fit` gives the estimator.

        Parameters
        ----------
        X : array-like of shape (n_images, height * width * channels)
        y : array-like of shape (n_images,) or (n_images, n_heads)
            Also a pandas DataFrame (its rows are repeated).
        sample_weight : array-like of shape (n_images,), default=None

        Returns
        -------
        X_aug : ndarray of shape (copies * n_images, n_features)
            The images, their mirror images, then shifted versions of the two
            in turn (without ``mirror``: the images, then shifted versions
            of them).
        y_aug : array-like of ``copies * n_images`` rows, ``y``'s type
        sample_weight_aug : ndarray or None
        """
        X_aug, y_aug, sw, _ = self._augment(X, y, sample_weight,
                                            check_random_state(self.random_state))
        return X_aug, y_aug, sw

    def _augment(self, X, y, sample_weight, rng):
        """:meth:`augment`, plus the unshifted copies and the image shape
        (what :meth:`_shifted` needs to draw an epoch's shifts again)."""
        images = _image_rows(X, self.image_shape)
        X = images.reshape(len(images), -1)
        n = len(X)
        if _num_rows(y) != n:
            raise ValueError(f"X has {n} rows but y has {_num_rows(y)}.")
        fixed = [X]
        if self.mirror and self.copies >= 2:
            fixed.append(mirror_images(X, images.shape[1:]))
        fixed = fixed[:self.copies]
        shape = images.shape[1:]
        parts = fixed + self._shifted(fixed, shape, rng)
        rows = np.tile(np.arange(n), len(parts))
        X_aug = np.concatenate(parts)
        sw = None if sample_weight is None else np.asarray(sample_weight)[rows]
        return X_aug, _safe_indexing(y, rows), sw, (fixed, shape)

    def _shifted(self, fixed, shape, rng):
        """The shifted copies: of the image and its mirror image in turn."""
        return [shift_images(fixed[k % len(fixed)], shape, max_shift=self.max_shift,
                             random_state=rng)
                for k in range(self.copies - len(fixed))]

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Fit a clone of ``estimator`` on the augmented training rows.

        Parameters
        ----------
        X : array-like of shape (n_images, height * width * channels)
        y : array-like of shape (n_images,) or (n_images, n_heads)
        sample_weight : array-like of shape (n_images,), default=None
            Repeated for every copy; passed to the estimator's ``fit`` (for a
            Pipeline: to its last step).

        Returns
        -------
        self : AugmentedClassifier
        """
        if self.shift_each_epoch and self.copies > (2 if self.mirror else 1):
            self.estimator_, self.n_features_in_ = self._fit_epochs(X, y, sample_weight)
            return self
        X_aug, y_aug, sw = self.augment(X, y, sample_weight)
        estimator = clone(self.estimator)
        params = {}
        if sw is not None:
            if hasattr(estimator, "steps"):
                params[f"{estimator.steps[-1][0]}__sample_weight"] = sw
            else:
                params["sample_weight"] = sw
        self.estimator_ = estimator.fit(X_aug, y_aug, **params)
        self.n_features_in_ = X_aug.shape[1]
        return self

    def _fit_epochs(self, X, y, sample_weight):
        """``fit`` with new shifts every epoch: the fitted clone and the features of a row."""
        from sklearn.pipeline import Pipeline

        estimator = clone(self.estimator)
        if hasattr(estimator, "steps"):
            clf = estimator.steps[-1][1]
            # the same step objects: fitting it fits them inside ``estimator``
            preprocessing = Pipeline(estimator.steps[:-1]) if len(estimator.steps) > 1 else None
        else:
            clf, preprocessing = estimator, None
        what = type(clf).__name__
        params = clf.get_params()
        missing = ("partial_fit" if not hasattr(clf, "partial_fit")
                   else None if "max_iter" in params else "max_iter")
        if missing:
            raise ValueError(
                f"shift_each_epoch=True trains the classifier one epoch at a time with "
                f"partial_fit for its max_iter epochs; {what} has no {missing}. "
                "Use shift_each_epoch=False, or a classifier such as MultiHeadMLPClassifier."
            )
        if params.get("early_stopping"):
            raise ValueError(
                f"shift_each_epoch=True trains {what} with partial_fit, which has no early "
                "stopping: set its early_stopping=False, or shift_each_epoch=False."
            )
        rng = check_random_state(self.random_state)
        X_aug, y_aug, sw, (fixed, shape) = self._augment(X, y, sample_weight, rng)
        n_fixed = len(fixed) * len(fixed[0])
        # the shifted rows are rewritten every epoch (X_aug is this fit's own array)
        Z = X_aug if preprocessing is None else preprocessing.fit_transform(X_aug)
        classes = _all_classes(y_aug, clf)
        fit_params = {} if sw is None else {"sample_weight": sw}
        seed = params.get("random_state")
        if isinstance(seed, Integral):  # one stream of minibatch orders, as in its fit
            clf.set_params(random_state=np.random.RandomState(seed))
        try:
            for epoch in range(params["max_iter"]):
                if epoch:
                    shifted = np.concatenate(self._shifted(fixed, shape, rng))
                    Z[n_fixed:] = (shifted if preprocessing is None
                                   else preprocessing.transform(shifted))
                clf.partial_fit(Z, y_aug, classes=classes, **fit_params)
        finally:
            if isinstance(seed, Integral):
                clf.set_params(random_state=seed)
        return estimator, X_aug.shape[1]

    def _check_X(self, X):
        check_is_fitted(self)
        images = _image_rows(X, self.image_shape)
        n_features = math.prod(images.shape[1:])
        if n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features per row, the model was fitted on "
                f"{self.n_features_in_}."
            )
        return images.reshape(len(images), -1), images.shape[1:]

    def _mirrors(self):
        return self.mirror and self.mirror_at_predict and self.copies >= 2

    def predict_proba(self, X):
        """Probabilities of each head's classes (averaged with the mirror image's).

        Parameters
        ----------
        X : array-like of shape (n_images, height * width * channels)

        Returns
        -------
        proba : ndarray of shape (n_images, n_classes) or list of them
            As the estimator's ``predict_proba`` (a list with one array per
            head for a multi-head classifier).
        """
        X, shape = self._check_X(X)
        proba = self.estimator_.predict_proba(X)
        if not self._mirrors():
            return proba
        mirrored = self.estimator_.predict_proba(mirror_images(X, shape))
        if isinstance(proba, list):
            return [(p + q) / 2 for p, q in zip(proba, mirrored)]
        return (proba + mirrored) / 2

    def predict(self, X):
        """Each head's most probable class.

        Parameters
        ----------
        X : array-like of shape (n_images, height * width * channels)

        Returns
        -------
        y : ndarray of shape (n_images,) or (n_images, n_heads)
            As the estimator's ``predict``.
        """
        if not self._mirrors():
            return self.estimator_.predict(self._check_X(X)[0])
        proba = self.predict_proba(X)
        classes = self.classes_
        if not isinstance(proba, list):
            return np.asarray(classes)[np.argmax(proba, axis=1)]
        from ._multihead import stack_head_columns

        cols = [np.asarray(c)[np.argmax(p, axis=1)] for c, p in zip(classes, proba)]
        return stack_head_columns(cols, classes)

    def score(self, X, y, sample_weight=None):
        """Mean over heads of each head's accuracy (plain accuracy for one head).

        Parameters
        ----------
        X : array-like of shape (n_images, height * width * channels)
        y : array-like of shape (n_images,) or (n_images, n_heads)
        sample_weight : array-like of shape (n_images,), default=None

        Returns
        -------
        score : float
        """
        pred = np.asarray(self.predict(X))
        y = np.asarray(y)
        if y.shape != pred.shape:
            raise ValueError(f"y has shape {y.shape}; the predictions have {pred.shape}.")
        right = (pred == y).reshape(len(y), -1)  # object columns (mixed labels) included
        return float(np.mean([np.average(right[:, h], weights=sample_weight)
                              for h in range(right.shape[1])]))

    def _fitted_attribute(self, name):
        from .study import final_classifier

        check_is_fitted(self)
        return getattr(final_classifier(self.estimator_, fitted=True), name)

    @property
    def classes_(self):
        return self._fitted_attribute("classes_")

    @property
    def head_names_(self):
        return self._fitted_attribute("head_names_")

    @property
    def n_outputs_(self):
        return self._fitted_attribute("n_outputs_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = self.estimator.__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        tags.target_tags = inner.target_tags
        tags.classifier_tags = inner.classifier_tags
        return tags


def _all_classes(y, clf):
    """``partial_fit``'s ``classes`` of ``y``: an array, or one per head."""
    from ._missing import labelled_values
    from ._multihead import MultiHeadMLPClassifier, _split_heads

    columns, names, one_head = _split_heads(y)
    if isinstance(clf, MultiHeadMLPClassifier):  # its missing labels are not classes
        classes = [np.unique(labelled_values(c, n)[0]) for c, n in zip(columns, names)]
    else:
        classes = [np.unique(c) for c in columns]
    return classes[0] if one_head else classes


def _num_rows(y):
    return y.shape[0] if hasattr(y, "shape") else len(y)
