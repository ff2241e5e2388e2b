"""Decoding images to pixels and pixels to features: shared helpers.

:class:`~skoffice31.ImageFlattener` and the loaders of
:mod:`skoffice31.datasets` both use these, so the two always produce the same
pixels for the same file: the same draft-mode JPEG decoding, colour
conversion, resizing, C-order flattening, luma weights and feature names.
The module is private; its names are what the rest of the package imports.
"""

import io
from numbers import Integral
from os import PathLike, fspath

import numpy as np

__all__ = [
    "CHANNEL_NAMES",
    "LUMA",
    "RESAMPLE_NAMES",
    "ImageDecodeError",
    "ImageReadError",
    "describe_source",
    "flatten_scaled",
    "normalize_size",
    "pil_to_array",
    "pixel_feature_names",
    "read_image",
    "read_images",
    "resample_filter",
    "stack_uniform",
]

#: Names of the Pillow resampling filters accepted as ``resample``.
RESAMPLE_NAMES = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")
#: Channel letters used in the pixel feature names, per colour mode.
CHANNEL_NAMES = {"RGB": ("R", "G", "B"), "L": ("L",)}
#: ITU-R 601-2 luma transform, the one Pillow uses for ``convert("L")``.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class ImageReadError(ValueError):
    """An image file could not be read at all (missing, no permission, I/O error).

    The bytes of the file were never seen, so nothing is known about them:
    the failure may go away (permissions fixed, disk remounted), and a cache
    must not remember it. A subclass of ``ValueError``, like every failure to
    turn a source into pixels.
    """


class ImageDecodeError(ValueError):
    """The bytes of an image file were read but are not a decodable image.

    The failure belongs to the file's content: it stays as long as the file
    does not change, so a cache keyed on the file may remember it.
    """


def resample_filter(name):
    """Return the Pillow resampling constant called ``name``.

    Parameters
    ----------
    name : str
        One of :data:`RESAMPLE_NAMES`.

    Returns
    -------
    filter : int
        The ``PIL.Image.Resampling`` member.
    """
    from PIL import Image

    return getattr(Image.Resampling, name.upper())


def normalize_size(size):
    """Return ``size`` as a ``(width, height)`` tuple of ints, or None.

    Parameters
    ----------
    size : int, tuple of 2 int or None
        Requested output size. An int ``s`` means ``(s, s)``.

    Returns
    -------
    size : tuple of (int, int) or None

    Raises
    ------
    ValueError
        If ``size`` is not None, a positive int or a pair of positive ints.
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


def describe_source(source, index=None):
    """Short human-readable name of an image source for error messages."""
    if isinstance(source, (str, PathLike)):
        return repr(fspath(source))
    where = f"image at index {index}" if index is not None else "image"
    return f"{where} ({type(source).__name__})"


def pixel_feature_names(height, width, channels):
    """Names of the flattened pixels: ``pixel_<row>_<col>_<channel>``.

    Parameters
    ----------
    height, width : int
        Image size.
    channels : {1, 3}
        1 for "L" (channel letter ``L``), 3 for "RGB" (``R``, ``G``, ``B``).

    Returns
    -------
    names : list of str
        One name per feature, in the C order of :func:`flatten_scaled`.
    """
    chans = CHANNEL_NAMES["RGB" if channels == 3 else "L"]
    return [f"pixel_{r}_{q}_{ch}" for r in range(height) for q in range(width)
            for ch in chans]


def flatten_scaled(images, scale):
    """Flatten ``(n, H, W, C)`` images to C-ordered float32 times ``scale``."""
    n = images.shape[0]
    out = np.empty((n, int(np.prod(images.shape[1:]))), dtype=np.float32)
    np.multiply(images.reshape(n, -1), np.float32(scale), out=out, casting="unsafe")
    return out


def pil_to_array(img, size, mode, resample):
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


def _read_bytes(path):
    """The whole content of the file ``path`` (one place to fail on access)."""
    with open(path, "rb") as f:
        return f.read()


def read_image(source, size, mode, resample, index=None):
    """Decode one image (path or PIL image) to a uint8 ``(H, W, C)`` array.

    A file is first read whole, then decoded from memory, so that a failure
    to read it (:class:`ImageReadError`) is told apart from bytes that are
    not an image (:class:`ImageDecodeError`). A JPEG that is shrunk is
    decoded in draft mode: libjpeg scales it down by 1/2, 1/4 or 1/8 while
    decoding (never below ``size``), several times faster than a full
    decode for large photos.

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
    ImageReadError
        If the file is missing or cannot be read (a ``ValueError``).
    ImageDecodeError
        If its bytes are not a decodable image, or a PIL image cannot be
        converted (a ``ValueError``). Both messages name the file.
    """
    from PIL import Image

    if isinstance(source, Image.Image):
        try:
            return pil_to_array(source, size, mode, resample)
        except Exception as exc:  # pragma: no cover - exotic PIL modes
            raise ImageDecodeError(
                f"cannot convert {describe_source(source, index)} to mode {mode!r}: {exc}"
            ) from exc
    if not isinstance(source, (str, PathLike)):
        raise ValueError(
            f"{describe_source(source, index)} is neither a file path nor a PIL image."
        )
    path = fspath(source)
    try:
        data = _read_bytes(path)
    except FileNotFoundError as exc:
        err = ImageReadError(f"image file {path!r} does not exist.")
        err.reason = "the file does not exist (removed while loading?)"
        raise err from exc
    except OSError as exc:  # permissions, a folder, I/O errors, symlink loops
        detail = f"{type(exc).__name__}: {exc.strerror or exc}"
        err = ImageReadError(f"cannot read image file {path!r}: {detail}")
        err.reason = f"the file cannot be read ({detail})"
        raise err from exc
    try:
        with Image.open(io.BytesIO(data)) as img:
            if (
                size is not None
                and img.format == "JPEG"
                and (img.size[0] > size[0] or img.size[1] > size[1])
            ):
                img.draft(mode, size)
            img.load()
            return pil_to_array(img, size, mode, resample)
    except Exception as exc:
        # UnidentifiedImageError, truncated data (OSError), decoder errors,
        # decompression bombs, ...
        from PIL import UnidentifiedImageError

        if isinstance(exc, UnidentifiedImageError):
            detail = "not an image of a known format"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        err = ImageDecodeError(f"cannot read image file {path!r}: {detail}")
        err.reason = f"could not be decoded as an image ({detail})"
        raise err from exc


def _read_chunk_packed(sources, size, mode, filt, start=0, on_error="raise"):
    """Decode a chunk; return ``(images, ok, errors)`` with the images stacked.

    ``images`` is a uint8 array ``(n_ok, H, W, C)`` when the decoded images
    share one shape, else a list of arrays; ``ok`` marks the decoded ones;
    ``errors`` maps the position (in the whole batch) of each failed source
    to ``(reason, decodable)``. Stacking in the worker sends one array back
    instead of many.
    """
    n = len(sources)
    ok = np.zeros(n, dtype=bool)
    errors = {}
    out = None  # filled in place while all shapes agree (no list + stack copy)
    good = []
    n_ok = 0
    for i, src in enumerate(sources):
        try:
            arr = read_image(src, size, mode, filt, index=start + i)
        except ValueError as exc:
            if on_error == "raise":
                raise
            reason = getattr(exc, "reason", str(exc))
            errors[start + i] = (reason, not isinstance(exc, ImageReadError))
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
        return out[:n_ok], ok, errors
    return good, ok, errors


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
        With ``"skip"``, images that fail are left out, marked False in
        ``ok`` and described in ``errors``; with ``"raise"`` the first one
        raises its ``ValueError``.

    Returns
    -------
    images : ndarray of shape (n_ok, H, W, C), uint8, or list of ndarray
        The decoded images in input order; a list only when their shapes
        differ (possible with ``size=None``).
    ok : ndarray of shape (len(sources),), bool
        Which sources were decoded.
    errors : dict
        ``{index: (reason, decodable)}`` for every source that failed
        (``reason`` is a short text without the file name);
        ``decodable`` is True when the bytes were read and are not an image
        (:class:`ImageDecodeError`), False when the file could not be read
        (:class:`ImageReadError`).
    """
    from joblib import Parallel, delayed, effective_n_jobs

    sources = list(sources)
    filt = resample_filter(resample)
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
    errors = {k: v for p in parts for k, v in p[2].items()}
    stacks = [p[0] for p in parts if len(p[0])]
    if all(isinstance(a, np.ndarray) for a in stacks) and len(
        {a.shape[1:] for a in stacks}
    ) == 1:
        out = np.empty((int(ok.sum()),) + stacks[0].shape[1:], dtype=np.uint8)
        pos = 0
        for a in stacks:
            out[pos:pos + len(a)] = a
            pos += len(a)
        return out, ok, errors
    return [img for a in stacks for img in a], ok, errors


def stack_uniform(arrays, sources):
    """Stack ``(H, W, C)`` arrays, raising a clear error if shapes differ."""
    first = arrays[0].shape
    for i, arr in enumerate(arrays):
        if arr.shape != first:
            raise ValueError(
                f"size=None needs images of one size, but "
                f"{describe_source(sources[i], i)} has shape {arr.shape} while the "
                f"first image has shape {first}. Pass size=(width, height) to "
                "resize them."
            )
    return np.stack(arrays)
