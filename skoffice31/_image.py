"""Images in, vectors out: :class:`ImageFlattener`.

The transformer turns image files, PIL images or arrays of images into the
flat ``float32`` feature matrix that :class:`~skoffice31.MultiHeadMLPClassifier`
consumes. The decoding helpers at module level are shared with
:mod:`skoffice31.datasets`.
"""

from numbers import Integral, Real
from os import PathLike, fspath

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

__all__ = ["ImageFlattener"]

_RESAMPLE_NAMES = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")
_CHANNEL_NAMES = {"RGB": ("R", "G", "B"), "L": ("L",)}
# ITU-R 601-2 luma transform, the one Pillow uses for ``convert("L")``.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _resample_filter(name):
    """Return the Pillow resampling constant called ``name``.

    Parameters
    ----------
    name : str
        One of ``"nearest"``, ``"box"``, ``"bilinear"``, ``"hamming"``,
        ``"bicubic"`` or ``"lanczos"``.

    Returns
    -------
    filter : int
        The ``PIL.Image.Resampling`` member.
    """
    from PIL import Image

    return getattr(Image.Resampling, name.upper())


def _normalize_size(size):
    """Return ``size`` as a ``(width, height)`` tuple of ints, or None.

    Parameters
    ----------
    size : int, tuple of 2 int or None
        Requested output size. An int ``s`` means ``(s, s)``.

    Returns
    -------
    size : tuple of (int, int) or None
    """
    if size is None:
        return None
    if isinstance(size, Integral) and not isinstance(size, bool):
        size = (size, size)
    try:
        width, height = size
    except (TypeError, ValueError):
        raise ValueError(
            f"size must be None, a positive int or a (width, height) pair of "
            f"positive ints; got {size!r}."
        ) from None
    for v in (width, height):
        if not isinstance(v, Integral) or isinstance(v, bool) or v < 1:
            raise ValueError(
                f"size must be None, a positive int or a (width, height) pair "
                f"of positive ints; got {size!r}."
            )
    return int(width), int(height)


def _describe(source, index=None):
    """Short human-readable name of an image source for error messages."""
    if isinstance(source, (str, PathLike)):
        return repr(fspath(source))
    where = f"image at index {index}" if index is not None else "image"
    return f"{where} ({type(source).__name__})"


def _pil_to_array(img, size, mode, resample):
    """Convert an opened PIL image to a uint8 ``(H, W, C)`` array.

    Parameters
    ----------
    img : PIL.Image.Image
        An opened (possibly not yet loaded) image.
    size : tuple of (int, int) or None
        Target ``(width, height)``; None keeps the image size.
    mode : {"RGB", "L"}
        Target colour mode.
    resample : int
        Pillow resampling filter.

    Returns
    -------
    array : ndarray of shape (H, W, C), dtype uint8
    """
    if img.mode != mode:
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            # High bit-depth greyscale: rescale to 8 bit before converting.
            arr = np.asarray(img, dtype=np.float64)
            hi = 65535.0 if img.mode.startswith("I;16") else max(arr.max(), 1.0)
            from PIL import Image

            img = Image.fromarray(
                np.clip(arr * (255.0 / hi), 0, 255).round().astype(np.uint8), "L"
            )
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        if img.mode != mode:
            img = img.convert(mode)
    if size is not None and img.size != size:
        img = img.resize(size, resample=resample)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


def _read_image(source, size, mode, resample, index=None):
    """Decode one image (path or PIL image) to a uint8 ``(H, W, C)`` array.

    A JPEG file that is shrunk is decoded in draft mode: libjpeg scales it
    down by 1/2, 1/4 or 1/8 while decoding (never below ``size``), which is
    several times faster than a full decode for large photos.

    Parameters
    ----------
    source : str, path-like or PIL.Image.Image
        The image.
    size : tuple of (int, int) or None
        Target ``(width, height)``; None keeps the image size.
    mode : {"RGB", "L"}
        Target colour mode.
    resample : int
        Pillow resampling filter.
    index : int, default=None
        Position of the image in its batch, used in error messages.

    Returns
    -------
    array : ndarray of shape (H, W, C), dtype uint8

    Raises
    ------
    ValueError
        If the file is missing, unreadable or not a decodable image. The
        message names the file.
    """
    from PIL import Image

    if isinstance(source, Image.Image):
        try:
            return _pil_to_array(source, size, mode, resample)
        except Exception as exc:  # pragma: no cover - exotic PIL modes
            raise ValueError(
                f"cannot convert {_describe(source, index)} to mode {mode!r}: {exc}"
            ) from exc
    if not isinstance(source, (str, PathLike)):
        raise ValueError(
            f"{_describe(source, index)} is neither a file path nor a PIL image."
        )
    path = fspath(source)
    try:
        with Image.open(path) as img:
            if (
                size is not None
                and img.format == "JPEG"
                and (img.size[0] > size[0] or img.size[1] > size[1])
            ):
                img.draft(mode, size)
            img.load()
            return _pil_to_array(img, size, mode, resample)
    except FileNotFoundError as exc:
        raise ValueError(f"image file {path!r} does not exist.") from exc
    except Exception as exc:
        # UnidentifiedImageError, truncated data (OSError), decoder errors,
        # directories, permission errors, ...
        raise ValueError(
            f"cannot read image file {path!r}: {type(exc).__name__}: {exc}"
        ) from exc


def _read_chunk_packed(sources, size, mode, filt, start=0, on_error="raise"):
    """Decode a chunk; return ``(images, ok)`` with the images stacked.

    ``images`` is a uint8 array ``(n_ok, H, W, C)`` when the decoded images
    share one shape, else a list of arrays; ``ok`` marks the decoded ones.
    Stacking in the worker sends one array back instead of many.
    """
    n = len(sources)
    ok = np.zeros(n, dtype=bool)
    out = None  # filled in place while all shapes agree (no list + stack copy)
    good = []
    n_ok = 0
    for i, src in enumerate(sources):
        try:
            arr = _read_image(src, size, mode, filt, index=start + i)
        except ValueError:
            if on_error == "raise":
                raise
            continue
        ok[i] = True
        if out is None and not good:
            out = np.empty((n,) + arr.shape, dtype=np.uint8)
        if out is not None and arr.shape == out.shape[1:]:
            out[n_ok] = arr
        else:
            if out is not None:  # shapes differ: fall back to a list
                good = list(out[:n_ok])
                out = None
            good.append(arr)
        n_ok += 1
    if out is not None:
        return out[:n_ok], ok
    return good, ok


def read_images(sources, *, size, mode, resample, n_jobs=None, on_error="raise"):
    """Decode many images, in parallel with joblib when asked.

    Parameters
    ----------
    sources : sequence
        Paths or PIL images.
    size : tuple of (int, int) or None
        Target ``(width, height)``.
    mode : {"RGB", "L"}
        Target colour mode.
    resample : str
        Pillow filter name.
    n_jobs : int, default=None
        Number of joblib workers; None means 1 unless in a
        :func:`joblib.parallel_config` context. Fewer than 64 images are
        always decoded in this process.
    on_error : {"raise", "skip"}, default="raise"
        With ``"skip"``, undecodable images are left out and marked False in
        ``ok``; with ``"raise"`` the first one raises ``ValueError``.

    Returns
    -------
    images : ndarray of shape (n_ok, H, W, C), uint8, or list of ndarray
        The decoded images in input order; a list only when their shapes
        differ (possible with ``size=None``).
    ok : ndarray of shape (len(sources),), bool
        Which sources were decoded.
    """
    from joblib import Parallel, delayed, effective_n_jobs

    sources = list(sources)
    filt = _resample_filter(resample)
    n = len(sources)
    n_workers = effective_n_jobs(n_jobs) if n >= 64 else 1
    if n_workers <= 1:
        return _read_chunk_packed(sources, size, mode, filt, 0, on_error)
    # A few chunks per worker: low dispatch overhead, decent load balance.
    n_chunks = min(n, 4 * n_workers)
    bounds = np.linspace(0, n, n_chunks + 1).astype(int)
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_read_chunk_packed)(sources[a:b], size, mode, filt, a, on_error)
        for a, b in zip(bounds[:-1], bounds[1:])
        if b > a
    )
    ok = np.concatenate([p[1] for p in parts])
    stacks = [p[0] for p in parts if len(p[0])]
    if all(isinstance(a, np.ndarray) for a in stacks) and len(
        {a.shape[1:] for a in stacks}
    ) == 1:
        out = np.empty((int(ok.sum()),) + stacks[0].shape[1:], dtype=np.uint8)
        pos = 0
        for a in stacks:
            out[pos:pos + len(a)] = a
            pos += len(a)
        return out, ok
    return [img for a in stacks for img in a], ok


def _stack_uniform(arrays, sources):
    """Stack ``(H, W, C)`` arrays, raising a clear error if shapes differ."""
    first = arrays[0].shape
    for i, arr in enumerate(arrays):
        if arr.shape != first:
            raise ValueError(
                f"size=None needs images of one size, but {_describe(sources[i], i)} "
                f"has shape {arr.shape} while the first image has shape {first}. "
                "Pass size=(width, height) to resize them."
            )
    return np.stack(arrays)


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
        "resample": [StrOptions(set(_RESAMPLE_NAMES))],
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
                filt = _resample_filter(self.resample)
                imgs = [
                    _pil_to_array(
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
            X = (X @ _LUMA)[..., None]
        elif out_c == 3 and c == 1:
            X = np.repeat(X, 3, axis=3)
        if size is not None and size != (w, h):
            from PIL import Image

            filt = _resample_filter(self.resample)
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
        images, _ = read_images(
            sources, size=size, mode=self.mode, resample=self.resample,
            n_jobs=self.n_jobs,
        )
        if isinstance(images, list):
            return _stack_uniform(images, sources)
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
        size = _normalize_size(self.size)
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
        size = _normalize_size(self.size)
        images = self._images_uint8_or_float(X, size)
        if images.shape[1:] != self.image_shape_:
            raise ValueError(
                f"Images have shape {images.shape[1:]} (height, width, channels) "
                f"but this ImageFlattener was fitted for {self.image_shape_}. "
                "Set size=(width, height) to resize every image."
            )
        return _flatten_scaled(images, self.scale)

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
        h, w, c = self.image_shape_
        chans = _CHANNEL_NAMES["RGB" if c == 3 else "L"]
        names = [f"pixel_{r}_{q}_{ch}" for r in range(h) for q in range(w)
                 for ch in chans]
        return np.asarray(names, dtype=object)


def _flatten_scaled(images, scale):
    """Flatten ``(n, H, W, C)`` images to C-ordered float32 times ``scale``."""
    n = images.shape[0]
    out = np.empty((n, int(np.prod(images.shape[1:]))), dtype=np.float32)
    np.multiply(images.reshape(n, -1), np.float32(scale), out=out, casting="unsafe")
    return out
