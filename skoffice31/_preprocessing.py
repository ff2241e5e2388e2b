"""Preprocessing of flattened pixels: :class:`ImageStandardizer` (per-image
standardisation), :class:`ImageStatistics` (a few summary statistics of
each image) and :class:`PrincipalComponents` (a projection that adapts its
size to the data).

They go in a :class:`~sklearn.pipeline.Pipeline` after
:class:`~skoffice31.ImageFlattener`, whose rows hold one image's pixels in C
order (row, column, channel): the channels of a row are the columns
``c, c + n_channels, c + 2 * n_channels, ...``.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

__all__ = ["IMAGE_STATISTICS", "ImageStandardizer", "ImageStatistics", "PrincipalComponents"]

#: The statistics of :class:`ImageStatistics`, in the order of its output.
IMAGE_STATISTICS = ("mean", "std", "min", "max", "abs_dx", "abs_dy",
                    "abs_laplacian", "std_laplacian")

# rows of X transformed at a time by ImageStatistics (bounds its scratch arrays)
_BLOCK_ROWS = 256


class ImageStandardizer(TransformerMixin, BaseEstimator):
    """Centre and scale each image by its own mean and standard deviation.

    Each row of ``X`` is one image flattened channel-last (the output of
    :class:`~skoffice31.ImageFlattener`). The row is centred by its mean and
    divided by its standard deviation, over the whole image or separately
    for each colour channel. This removes each photo's brightness and
    contrast; ``append_stats=True`` keeps them as extra features (the mean
    and standard deviation of each channel, before standardisation), so a
    network can use both the standardised pixels and the removed cues.

    Unlike :class:`~sklearn.preprocessing.StandardScaler`, which scales each
    feature with statistics of the training rows, nothing is learned from
    the training rows: every image is transformed on its own.

    Parameters
    ----------
    per_channel : bool, default=False
        False: one mean and one standard deviation per image. True: one per
        image and channel (each channel centred and scaled on its own).
    n_channels : int, default=3
        Channels of each pixel (3 for RGB, 1 for greyscale): the row is read
        as consecutive groups of ``n_channels`` values. Used by
        ``per_channel=True`` and ``append_stats=True``; the number of
        features must then be a multiple of it.
    append_stats : bool, default=False
        Append ``2 * n_channels`` features to each row: the mean of each
        channel, then its standard deviation, of the input pixels.
    eps : float, default=1e-8
        Added to the variance before the square root, so that a constant
        image (standard deviation 0) becomes zeros instead of a division by
        zero.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X`
        has feature names that are all strings.
    n_features_out_ : int
        Number of output features: ``n_features_in_``, plus
        ``2 * n_channels`` with ``append_stats=True``.

    See Also
    --------
    skoffice31.ImageFlattener : Images to the flat rows this transformer reads.
    sklearn.preprocessing.StandardScaler : Standardise each feature over the rows.
    sklearn.preprocessing.Normalizer : Scale each row to unit norm.

    Notes
    -----
    With ``m`` and ``s`` the mean and standard deviation of a row (or of one
    channel of it, ``per_channel=True``), each value ``x`` becomes
    ``(x - m) / sqrt(s**2 + eps)``. The statistics are computed in float64;
    the output has the input's floating dtype (float32 stays float32).

    Examples
    --------
    >>> import numpy as np
    >>> from skoffice31 import ImageStandardizer
    >>> X = np.array([[0.0, 0.2, 0.4, 0.6],
    ...               [0.5, 0.5, 0.5, 0.7]])
    >>> ImageStandardizer().fit_transform(X).round(3)
    array([[-1.342, -0.447,  0.447,  1.342],
           [-0.577, -0.577, -0.577,  1.732]])
    >>> st = ImageStandardizer(n_channels=2, append_stats=True).fit(X)
    >>> st.get_feature_names_out().tolist()[4:]
    ['channel0_mean', 'channel1_mean', 'channel0_std', 'channel1_std']

    In a pipeline after the flattener:

    >>> from sklearn.pipeline import make_pipeline
    >>> from skoffice31 import ImageFlattener
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    >>> pipe = make_pipeline(ImageFlattener(size=4), ImageStandardizer(per_channel=True))
    >>> pipe.fit_transform(images).shape
    (2, 48)
    """

    # the "?" of the HTML repr: as ImageFlattener (relative to the example pages)
    _doc_link_module = "skoffice31"
    _doc_link_template = "../gen_modules/{estimator_module}.{estimator_name}.html"

    _parameter_constraints: dict = {
        "per_channel": ["boolean"],
        "n_channels": [Interval(Integral, 1, None, closed="left")],
        "append_stats": ["boolean"],
        "eps": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, per_channel=False, n_channels=3, append_stats=False, eps=1e-8):
        self.per_channel = per_channel
        self.n_channels = n_channels
        self.append_stats = append_stats
        self.eps = eps

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _uses_channels(self):
        return bool(self.per_channel or self.append_stats)

    def _check_channels(self, n_features):
        if self._uses_channels() and n_features % self.n_channels:
            what = "per_channel=True" if self.per_channel else "append_stats=True"
            raise ValueError(
                f"X has {n_features} features, not a multiple of n_channels="
                f"{self.n_channels}: with {what} each row must hold whole pixels of "
                f"{self.n_channels} channels (channel-last, as ImageFlattener writes "
                "them). Set n_channels to the number of channels of the images "
                "(1 for greyscale)."
            )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check ``X`` and record its number of features (nothing is learned).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Flattened images, channel-last.
        y : None
            Ignored.

        Returns
        -------
        self : ImageStandardizer
            The fitted transformer.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        self._check_channels(X.shape[1])
        self.n_features_out_ = X.shape[1] + (2 * self.n_channels if self.append_stats else 0)
        return self

    def transform(self, X):
        """Standardise each image (row) of ``X`` by its own statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Flattened images, channel-last.

        Returns
        -------
        X_out : ndarray of shape (n_samples, n_features_out)
            The standardised rows, followed by the per-channel means and
            standard deviations with ``append_stats=True``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        n, d = X.shape
        X64 = X.astype(np.float64)
        if self._uses_channels():
            pixels = X64.reshape(n, d // self.n_channels, self.n_channels)
            channel_mean = pixels.mean(axis=1)
            channel_std = pixels.std(axis=1)
        if self.per_channel:
            mean = channel_mean[:, None, :]
            std = np.sqrt(channel_std[:, None, :] ** 2 + self.eps)
            out = ((pixels - mean) / std).reshape(n, d)
        else:
            mean = X64.mean(axis=1, keepdims=True)
            std = np.sqrt(X64.var(axis=1, keepdims=True) + self.eps)
            out = (X64 - mean) / std
        if self.append_stats:
            out = np.hstack([out, channel_mean, channel_std])
        return out.astype(X.dtype, copy=False)

    def get_feature_names_out(self, input_features=None):
        """Output feature names.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; default: ``feature_names_in_`` when fitted
            on named features, else ``x0, x1, ...``.

        Returns
        -------
        feature_names_out : ndarray of str objects
            The input names (the pixels keep their names), then
            ``channel<c>_mean`` and ``channel<c>_std`` for each channel with
            ``append_stats=True``.
        """
        check_is_fitted(self, "n_features_in_")
        names = list(_check_feature_names_in(self, input_features))
        if self.append_stats:
            names += [f"channel{c}_mean" for c in range(self.n_channels)]
            names += [f"channel{c}_std" for c in range(self.n_channels)]
        return np.asarray(names, dtype=object)


class ImageStatistics(TransformerMixin, BaseEstimator):
    """Summary statistics of each image: brightness, contrast, range and sharpness.

    Each row of ``X`` is one image flattened channel-last (the output of
    :class:`~skoffice31.ImageFlattener`). For each colour channel the
    transformer computes eight numbers (:data:`IMAGE_STATISTICS`):

    - ``mean``, ``std``, ``min``, ``max`` of the channel's values;
    - ``abs_dx`` and ``abs_dy``: the mean absolute difference between
      horizontally and vertically neighbouring pixels (0 for an image one
      pixel wide or high);
    - ``abs_laplacian`` and ``std_laplacian``: the mean absolute value and the
      standard deviation of the 4-neighbour Laplacian (edges repeated).

    These are cues of where and how a photo was taken rather than of what it
    shows: a web-shop photo on white is bright and has a wide range, a
    webcam's frames are blurred and noisy, a DSLR's are sharp. Next to the
    pixels (a :class:`~sklearn.pipeline.FeatureUnion`) they give a network
    those cues as a few well-scaled features instead of leaving them spread
    over thousands of pixels. Nothing is learned from the training rows:
    every image is summarised on its own.

    Parameters
    ----------
    image_shape : tuple of (int, int) or None, default=None
        ``(height, width)`` of the images; one of them may be -1, inferred
        from the number of features (as in :func:`numpy.reshape`: ``(1, -1)``
        reads each row as an image one pixel high). ``None``: square images,
        the side inferred from the number of features.
    n_channels : int, default=3
        Channels of each pixel (3 for RGB, 1 for greyscale).

    Attributes
    ----------
    image_shape_ : tuple of (int, int)
        ``(height, width)`` of the images seen during ``fit``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X`
        has feature names that are all strings.
    n_features_out_ : int
        ``8 * n_channels``.

    See Also
    --------
    ImageStandardizer : Per-image standardisation; with ``append_stats=True``
        it keeps the first two of these statistics.
    skoffice31.study.StudySettings : Its ``statistics`` setting puts these
        statistics next to the pixels.

    Notes
    -----
    The output holds one statistic for every channel, then the next
    statistic (``channel0_mean, channel1_mean, ..., channel0_std, ...``).
    The statistics are computed in the input's floating dtype (float32 stays
    float32; NumPy's pairwise sums keep float32 means accurate to about
    1e-7 for values in ``[0, 1]``), a block of rows at a time, so the
    scratch memory does not grow with the number of rows.

    Examples
    --------
    A 2x2 greyscale checkerboard and a constant image:

    >>> import numpy as np
    >>> from skoffice31 import ImageStatistics
    >>> X = np.array([[0.0, 1.0, 1.0, 0.0],
    ...               [0.5, 0.5, 0.5, 0.5]])
    >>> st = ImageStatistics(n_channels=1).fit(X)
    >>> st.image_shape_
    (2, 2)
    >>> st.transform(X)
    array([[0.5, 0.5, 0. , 1. , 1. , 1. , 2. , 2. ],
           [0.5, 0. , 0.5, 0.5, 0. , 0. , 0. , 0. ]])
    >>> st.get_feature_names_out().tolist()[:3]
    ['channel0_mean', 'channel0_std', 'channel0_min']

    Next to the pixels, after the flattener:

    >>> from sklearn.pipeline import make_pipeline, make_union
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skoffice31 import ImageFlattener
    >>> images = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
    >>> pipe = make_pipeline(ImageFlattener(size=4),
    ...                      make_union("passthrough", ImageStatistics()))
    >>> pipe.fit_transform(images).shape
    (2, 72)
    """

    _doc_link_module = "skoffice31"
    _doc_link_template = "../gen_modules/{estimator_module}.{estimator_name}.html"

    _parameter_constraints: dict = {
        "image_shape": [tuple, list, None],
        "n_channels": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, image_shape=None, n_channels=3):
        self.image_shape = image_shape
        self.n_channels = n_channels

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _shape(self, n_features):
        c = int(self.n_channels)
        hint = ("Give image_shape=(height, width) and n_channels so that "
                "height * width * n_channels is the number of features "
                "(ImageFlattener writes each image channel-last).")
        if self.image_shape is None:
            pixels, rest = divmod(n_features, c)
            side = int(round(pixels ** 0.5))
            if rest or side * side != pixels:
                raise ValueError(
                    f"X has {n_features} features, which is not a square image of "
                    f"n_channels={c}: {hint}")
            return side, side
        try:
            h, w = (int(v) for v in self.image_shape)
        except (TypeError, ValueError):
            raise ValueError(
                f"image_shape must be (height, width), got {self.image_shape!r}") from None
        if h == w == -1 or min(h, w) == 0 or min(h, w) < -1:
            raise ValueError(
                f"image_shape must be positive (one side may be -1: inferred), "
                f"got {self.image_shape!r}")
        if -1 in (h, w):
            known = h * w * -c
            if n_features % known:
                raise ValueError(
                    f"X has {n_features} features, not a multiple of "
                    f"{known} (image_shape={(h, w)}, n_channels={c}): {hint}")
            h, w = (n_features // known, w) if h == -1 else (h, n_features // known)
        if h * w * c != n_features:
            raise ValueError(
                f"X has {n_features} features, but image_shape={(h, w)} with "
                f"n_channels={c} makes {h * w * c}: {hint}")
        return h, w

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check ``X`` and record the image shape (nothing is learned).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Flattened images, channel-last.
        y : None
            Ignored.

        Returns
        -------
        self : ImageStatistics
            The fitted transformer.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        self.image_shape_ = self._shape(X.shape[1])
        self.n_features_out_ = len(IMAGE_STATISTICS) * int(self.n_channels)
        return self

    def transform(self, X):
        """The statistics of each image (row) of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Flattened images, channel-last.

        Returns
        -------
        X_out : ndarray of shape (n_samples, 8 * n_channels)
            The statistics, statistic by statistic, channel by channel.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        h, w = self.image_shape_
        c = int(self.n_channels)
        out = np.empty((X.shape[0], self.n_features_out_), dtype=X.dtype)
        for start in range(0, X.shape[0], _BLOCK_ROWS):
            block = X[start:start + _BLOCK_ROWS]
            out[start:start + _BLOCK_ROWS] = _statistics(block.reshape(-1, h, w, c))
        return out

    def get_feature_names_out(self, input_features=None):
        """Output feature names: ``channel<c>_<statistic>``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against the input names; not used.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self, "n_features_out_")
        _check_feature_names_in(self, input_features)
        return np.asarray([f"channel{c}_{stat}" for stat in IMAGE_STATISTICS
                           for c in range(int(self.n_channels))], dtype=object)


def _statistics(images):
    """The :data:`IMAGE_STATISTICS` of ``images`` (n, h, w, c), in their dtype: (n, 8 * c).

    Each channel becomes one contiguous (h, w) plane, so that every reduction
    runs over contiguous memory; the Laplacian (edges repeated) is the sum of
    the neighbour differences that the mean absolute differences read anyway.
    """
    n, h, w, c = images.shape
    planes = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(n * c, h, w)
    flat = planes.reshape(n * c, h * w)
    out = np.zeros((len(IMAGE_STATISTICS), n * c), dtype=planes.dtype)
    out[0] = flat.mean(axis=1)
    out[1] = flat.std(axis=1)
    out[2] = flat.min(axis=1)
    out[3] = flat.max(axis=1)
    # 4-neighbour Laplacian with the edges repeated: at each pixel, the sum of
    # (neighbour - pixel) over its neighbours inside the image
    laplacian = np.zeros_like(planes)
    if w > 1:
        dx = planes[:, :, 1:] - planes[:, :, :-1]
        laplacian[:, :, :-1] += dx
        laplacian[:, :, 1:] -= dx
        out[4] = np.abs(dx, out=dx).reshape(n * c, -1).mean(axis=1)
    if h > 1:
        dy = planes[:, 1:, :] - planes[:, :-1, :]
        laplacian[:, :-1, :] += dy
        laplacian[:, 1:, :] -= dy
        out[5] = np.abs(dy, out=dy).reshape(n * c, -1).mean(axis=1)
    laplacian = laplacian.reshape(n * c, h * w)
    out[7] = laplacian.std(axis=1)
    out[6] = np.abs(laplacian, out=laplacian).mean(axis=1)
    # (statistic, image, channel) -> one row per image, statistic by statistic
    return out.reshape(len(IMAGE_STATISTICS), n, c).transpose(1, 0, 2).reshape(n, -1)


class PrincipalComponents(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Project rows on their first principal components, at most as many as the data has.

    A :class:`~sklearn.decomposition.PCA` (centred, not whitened) whose
    number of components is ``min(n_components, n_samples, n_features)``
    of the rows it is fitted on, so that one setting works for any image
    size and any number of training images: 512 components of 3,288
    32x32 photos, all 192 of 8x8 photos, 40 of 40 photos. In front of a
    network it makes the first layer ``n_components`` wide instead of one
    input per pixel and colour, and every training step cheaper.

    Parameters
    ----------
    n_components : int, default=512
        Most components kept.
    random_state : int, RandomState instance or None, default=None
        Seeds the randomised SVD (used unless every component is kept, which
        takes the exact SVD).

    Attributes
    ----------
    pca_ : sklearn.decomposition.PCA
        The fitted projection.
    n_components_ : int
        Components kept: ``min(n_components, n_samples, n_features)``.
    explained_variance_ratio_ : ndarray of shape (`n_components_`,)
        Fraction of the variance of the fitted rows along each component.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.decomposition.PCA : The projection itself, with a fixed size.
    skoffice31.study.StudySettings : Its ``pca`` setting puts this
        transformer after the ``StandardScaler``.

    Notes
    -----
    The output has the input's floating dtype (float32 stays float32).

    Examples
    --------
    >>> import numpy as np
    >>> from skoffice31 import PrincipalComponents
    >>> X = np.random.default_rng(0).normal(size=(40, 192))
    >>> PrincipalComponents(n_components=512, random_state=0).fit(X).n_components_
    40
    >>> PrincipalComponents(n_components=16, random_state=0).fit_transform(X).shape
    (40, 16)
    """

    _doc_link_module = "skoffice31"
    _doc_link_template = "../gen_modules/{estimator_module}.{estimator_name}.html"

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_components=512, random_state=None):
        self.n_components = n_components
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the projection on the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        self : PrincipalComponents
            The fitted transformer.
        """
        from sklearn.decomposition import PCA

        X = validate_data(self, X, dtype=[np.float64, np.float32])
        largest = min(X.shape)
        k = min(int(self.n_components), largest)
        solver = "full" if k == largest else "randomized"
        self.pca_ = PCA(n_components=k, svd_solver=solver,
                        random_state=self.random_state).fit(X)
        self.n_components_ = int(self.pca_.n_components_)
        self.explained_variance_ratio_ = self.pca_.explained_variance_ratio_
        return self

    def transform(self, X):
        """Project ``X`` on the fitted components.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_new : ndarray of shape (n_samples, `n_components_`)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return self.pca_.transform(X).astype(X.dtype, copy=False)

    @property
    def _n_features_out(self):
        return self.n_components_
