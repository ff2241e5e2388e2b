"""Images in, vectors out: :class:`ImageFlattener`.

The transformer turns image files, PIL images or arrays of images into the
flat ``float32`` feature matrix that :class:`~skoffice31.MultiHeadMLPClassifier`
consumes. It decodes with the helpers of :mod:`skoffice31._pixels`, which
:mod:`skoffice31.datasets` uses too, so both give the same pixels.
"""

from numbers import Integral, Real
from os import PathLike, fspath

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ._pixels import (
    LUMA,
    RESAMPLE_NAMES,
    flatten_scaled,
    normalize_size,
    pil_to_array,
    pixel_feature_names,
    read_images,
    resample_filter,
    stack_uniform,
)

__all__ = ["ImageFlattener"]


class ImageFlattener(TransformerMixin, BaseEstimator):
    """Turn images into flat ``float32`` feature vectors.

    Images can be given as file paths, PIL images or an array of images.
    Each one is converted to ``mode``, resized to ``size`` and flattened in
    C order (row, column, channel), then multiplied by ``scale``.

    Parameters
    ----------
    size : int or tuple of (int, int) or None, default=(100, 100)
        Output ``(width, height)`` in pixels, Pillow's order (an int ``s``
        means ``(s, s)``). None keeps the input size; all images must then
        have the size seen in :meth:`fit`.
    mode : {"RGB", "L"}, default="RGB"
        Colour mode of the output. Greyscale, RGBA, LA, palette and CMYK
        inputs are converted (an alpha channel is dropped).
    scale : float, default=1/255
        Factor applied to the 0..255 pixel values: the default gives values
        in ``[0, 1]``; ``scale=1.0`` gives raw 0..255 pixels.
    resample : {"nearest", "box", "bilinear", "hamming", "bicubic", \
            "lanczos"}, default="bilinear"
        Pillow resampling filter used when resizing.
    n_jobs : int, default=None
        Number of joblib workers used to decode lists of files or PIL
        images. None means 1 unless in a :func:`joblib.parallel_config`
        context; -1 means all processors.

    Attributes
    ----------
    image_shape_ : tuple of (int, int, int)
        ``(height, width, channels)`` of the images after conversion.
    n_features_out_ : int
        Number of output features, ``height * width * channels``.

    See Also
    --------
    skoffice31.datasets.load_office31 : Load Office-31 as flat vectors.

    Notes
    -----
    Accepted inputs of ``X``:

    - a list, tuple or 1-D array of file paths (``str`` or
      :class:`pathlib.Path`) and/or :class:`PIL.Image.Image` objects;
    - an ndarray of shape ``(n, H, W)`` (greyscale) or ``(n, H, W, C)`` with
      ``C`` in 1 (greyscale), 3 (RGB) or 4 (RGBA). ``uint8`` arrays hold
      0..255 values; floating point arrays must hold values in ``[0, 1]``
      (the matplotlib / scikit-image convention), they are mapped to 0..255.

    JPEG files that are shrunk are decoded in Pillow's draft mode (libjpeg
    scales by 1/2, 1/4 or 1/8 while decoding, never below ``size``), then
    resized exactly to ``size``. A 1000x1000 photo bound for 100x100 is thus
    decoded at 125x125, several times faster than a full decode.

    A missing, unreadable or non-image file raises a ``ValueError`` that
    names it: rows are never silently dropped.

    The transformer is stateless apart from the output shape recorded by
    :meth:`fit`, so ``transform`` returns the same rows in the same order.
    EXIF orientation tags are not applied (pixels are used as stored).

    It records no ``n_features_in_``: its input is a list of images, not a
    feature matrix (like scikit-learn's text vectorizers). The fitted
    ``image_shape_`` and ``n_features_out_`` play that role.

    Examples
    --------
    >>> import numpy as np
    >>> from skoffice31 import ImageFlattener
    >>> images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    >>> X = ImageFlattener(size=(4, 4)).fit_transform(images)
    >>> X.shape, X.dtype
    ((2, 48), dtype('float32'))
    """

    # The "?" of the HTML repr opens this class's page of the API reference,
    # relative to the built docs' example pages (auto_examples/): the docs
    # have no public host yet; make this absolute once they have one.
    _doc_link_module = "skoffice31"
    _doc_link_template = "../gen_modules/{estimator_module}.{estimator_name}.html"

    _parameter_constraints: dict = {
        "size": [None, Interval(Integral, 1, None, closed="left"), tuple, list],
        "mode": [StrOptions({"RGB", "L"})],
        "scale": [Interval(Real, 0, None, closed="neither")],
        "resample": [StrOptions(set(RESAMPLE_NAMES))],
        "n_jobs": [None, Integral],
    }

    def __init__(
        self, size=(100, 100), mode="RGB", scale=1 / 255, resample="bilinear",
        n_jobs=None,
    ):
        self.size = size
        self.mode = mode
        self.scale = scale
        self.resample = resample
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.string = True
        tags.input_tags.positive_only = True
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # ------------------------------------------------------------------
    # input handling
    def _n_channels(self):
        return 3 if self.mode == "RGB" else 1

    def _check_array_input(self, X):
        """Validate an ndarray of images; return float32 (n, H, W, C) or uint8."""
        X = check_array(
            X, dtype=None, ensure_2d=False, allow_nd=True,
            ensure_all_finite=True, input_name="X",
        )
        if X.ndim == 3:
            X = X[:, :, :, None]
        if X.ndim != 4 or X.shape[3] not in (1, 3, 4):
            raise ValueError(
                "An array of images must have shape (n_images, height, width) or "
                "(n_images, height, width, channels) with channels in (1, 3, 4); "
                f"got shape {X.shape}. (A 2-D array is ambiguous: reshape "
                "flattened images first.)"
            )
        if X.dtype == np.uint8:
            return X
        if X.dtype.kind == "b" or X.dtype.kind not in "fiu":
            raise ValueError(
                f"Image arrays must be uint8 or floating point; got dtype {X.dtype}."
            )
        if X.dtype.kind in "iu":
            if X.size and (X.min() < 0 or X.max() > 255):
                raise ValueError(
                    "Integer image arrays must hold values in 0..255; got values "
                    f"in [{X.min()}, {X.max()}]."
                )
            return X.astype(np.uint8)
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                "Floating point image arrays must hold values in [0, 1]; got "
                f"values in [{X.min():g}, {X.max():g}]. Pass uint8 for 0..255 "
                "pixel values."
            )
        return X.astype(np.float32) * np.float32(255.0)

    def _array_images(self, X, size):
        """Convert a validated (n, H, W, C) array to (n, H', W', C') array."""
        n, h, w, c = X.shape
        out_c = self._n_channels()
        if X.dtype == np.uint8:
            if size is not None and size != (w, h) or c == 4 or c != out_c:
                from PIL import Image

                mode_in = {1: "L", 3: "RGB", 4: "RGBA"}[c]
                filt = resample_filter(self.resample)
                imgs = [
                    pil_to_array(
                        Image.fromarray(x[:, :, 0] if c == 1 else x, mode_in),
                        size, self.mode, filt,
                    )
                    for x in X
                ]
                return np.stack(imgs) if imgs else np.empty(
                    (0, h if size is None else size[1],
                     w if size is None else size[0], out_c), np.uint8)
            return X
        # float32 data in 0..255: colour conversion in numpy, resize in "F".
        if c == 4:
            X = X[..., :3]
            c = 3
        if out_c == 1 and c == 3:
            X = (X @ LUMA)[..., None]
        elif out_c == 3 and c == 1:
            X = np.repeat(X, 3, axis=3)
        if size is not None and size != (w, h):
            from PIL import Image

            filt = resample_filter(self.resample)
            res = np.empty((n, size[1], size[0], out_c), dtype=np.float32)
            for i in range(n):
                for k in range(out_c):
                    ch = Image.fromarray(np.ascontiguousarray(X[i, :, :, k]), "F")
                    res[i, :, :, k] = np.asarray(ch.resize(size, resample=filt))
            X = res
        return X

    def _is_array_input(self, X):
        """True for a numeric ndarray (pixels), False for paths / PIL images."""
        return isinstance(X, np.ndarray) and X.dtype.kind in "biuf"

    def _as_sources(self, X):
        """Return X as a list of paths / PIL images, or raise ValueError."""
        from PIL import Image

        if isinstance(X, (str, PathLike)) or isinstance(X, Image.Image):
            raise ValueError(
                "X must be a sequence of images (file paths, PIL images) or an "
                "array of images, not a single image; wrap it in a list."
            )
        try:
            sources = list(X)
        except TypeError:
            raise ValueError(
                "X must be a sequence of file paths / PIL images or an ndarray "
                f"of images; got {type(X).__name__}."
            ) from None
        if len(sources) == 0:
            raise ValueError("X contains no images (0 samples).")
        for i, s in enumerate(sources):
            if not isinstance(s, (str, PathLike, Image.Image)):
                raise ValueError(
                    f"Element {i} of X is a {type(s).__name__}; expected a file "
                    "path (str or Path) or a PIL image."
                )
        return sources

    def _images_uint8_or_float(self, X, size):
        """Decode/convert X to an (n, H, W, C) array (uint8 or float32 0..255)."""
        if self._is_array_input(X):
            X = self._check_array_input(X)
            if X.shape[0] == 0:
                raise ValueError("X contains no images (0 samples).")
            return self._array_images(X, size)
        if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
            X = X.to_numpy()  # pandas Series of paths
        sources = self._as_sources(X)
        images, _, _ = read_images(
            sources, size=size, mode=self.mode, resample=self.resample,
            n_jobs=self.n_jobs,
        )
        if isinstance(images, list):
            return stack_uniform(images, sources)
        return images

    def _shape_of_first(self, X):
        """``(H, W, C)`` of the first image without a full decode."""
        from PIL import Image

        if self._is_array_input(X):
            A = self._check_array_input(X)
            if A.shape[0] == 0:
                raise ValueError("X contains no images (0 samples).")
            return A.shape[1], A.shape[2], self._n_channels()
        if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
            X = X.to_numpy()
        first = self._as_sources(X)[0]
        if isinstance(first, Image.Image):
            return first.size[1], first.size[0], self._n_channels()
        try:
            with Image.open(fspath(first)) as img:
                w, h = img.size
        except FileNotFoundError as exc:
            raise ValueError(f"image file {fspath(first)!r} does not exist.") from exc
        except Exception as exc:
            raise ValueError(
                f"cannot read image file {fspath(first)!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return h, w, self._n_channels()

    # ------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the parameters and record the output shape.

        Parameters
        ----------
        X : list of str, path-like or PIL images, or ndarray
            Images; see the class docstring for the accepted forms. With
            ``size`` set, ``X`` is only checked for form (files are read by
            :meth:`transform`); with ``size=None`` the first image's size is
            read and recorded.
        y : None
            Ignored.

        Returns
        -------
        self : ImageFlattener
            The fitted transformer.
        """
        size = normalize_size(self.size)
        if size is None:
            h, w, c = self._shape_of_first(X)
        else:
            if self._is_array_input(X):
                A = self._check_array_input(X)
                if A.shape[0] == 0:
                    raise ValueError("X contains no images (0 samples).")
            else:
                self._as_sources(X.to_numpy() if hasattr(X, "to_numpy") else X)
            w, h = size
            c = self._n_channels()
        self.image_shape_ = (int(h), int(w), int(c))
        self.n_features_out_ = int(h * w * c)
        return self

    def transform(self, X):
        """Decode, convert, resize and flatten the images.

        Parameters
        ----------
        X : list of str, path-like or PIL images, or ndarray
            Images; see the class docstring for the accepted forms.

        Returns
        -------
        X_new : ndarray of shape (n_images, height * width * channels)
            C-ordered ``float32`` pixels (row, column, channel) times
            ``scale``.

        Raises
        ------
        ValueError
            If an image cannot be read (the message names the file), or with
            ``size=None`` if an image's size differs from the one seen in
            :meth:`fit`.
        """
        check_is_fitted(self)
        size = normalize_size(self.size)
        images = self._images_uint8_or_float(X, size)
        if images.shape[1:] != self.image_shape_:
            raise ValueError(
                f"Images have shape {images.shape[1:]} (height, width, channels) "
                f"but this ImageFlattener was fitted for {self.image_shape_}. "
                "Set size=(width, height) to resize every image."
            )
        return flatten_scaled(images, self.scale)

    def fit_transform(self, X, y=None):
        """Fit to ``X`` and return its flattened form.

        Parameters
        ----------
        X : list of str, path-like or PIL images, or ndarray
            Images; see the class docstring for the accepted forms.
        y : None
            Ignored.

        Returns
        -------
        X_new : ndarray of shape (n_images, height * width * channels)
            C-ordered ``float32`` pixels times ``scale``.
        """
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        """Turn flat vectors back into displayable images.

        Parameters
        ----------
        X : array-like of shape (n_images, n_features)
            Output of :meth:`transform` (or anything of that shape):
            ``n_features`` is ``n_features_out_``.

        Returns
        -------
        images : ndarray of shape (n_images, height, width, channels), uint8
            ``X / scale`` rounded and clipped to 0..255, ready for
            ``matplotlib.pyplot.imshow`` (squeeze the last axis for "L").
        """
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float32, np.float64], input_name="X")
        if X.shape[1] != self.n_features_out_:
            raise ValueError(
                f"X has {X.shape[1]} features, but this ImageFlattener produces "
                f"{self.n_features_out_} features (image shape {self.image_shape_})."
            )
        img = np.rint(X / self.scale)
        np.clip(img, 0, 255, out=img)
        return img.astype(np.uint8).reshape((X.shape[0],) + self.image_shape_)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features: ``pixel_<row>_<col>_<channel>``.

        Parameters
        ----------
        input_features : None
            Ignored; images have no input feature names.

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per output column, in the C order of :meth:`transform`,
            e.g. ``"pixel_0_0_R"``, ``"pixel_0_0_G"``, ...
        """
        check_is_fitted(self)
        return np.asarray(pixel_feature_names(*self.image_shape_), dtype=object)

