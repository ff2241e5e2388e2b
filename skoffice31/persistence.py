"""Saving and loading models in the safe ``.skops`` format.

:func:`save_model` writes a fitted estimator (typically the
``Pipeline(ImageFlattener, MultiHeadMLPClassifier)`` that ``skoffice31
train`` makes) with :mod:`skops.io`, together with the skoffice31,
scikit-learn, NumPy and Python versions it was saved with.
:func:`load_model` reads it back **without running code from the file**: a
``.skops`` file describes objects instead of holding instructions (which is
what a pickle is), and before anything is built every type the file names
is checked against scikit-learn's and skops' own trusted types plus
:data:`TRUSTED_TYPES`, the package's explicit list. A file naming any other
type, a pickle or joblib file, or a file that is not a skops file at all is
refused with a :class:`ModelFileError` that says what the file is.

Loading a pickle (``pickle.load``, ``joblib.load``) runs whatever code the
file contains, so only ever load a pickle you made yourself or fully trust;
see the "Saving models" page of the documentation.
"""

import sys
import warnings
import zipfile
from pathlib import Path

from ._fileio import atomic_path

__all__ = [
    "FORMAT",
    "TRUSTED_TYPES",
    "ModelFileError",
    "ModelVersionWarning",
    "UntrustedTypesError",
    "load_model",
    "save_model",
]

#: Value of the ``"format"`` key of a file written by :func:`save_model`.
FORMAT = "skoffice31-model"
_FORMAT_VERSION = 1

#: The package's own types that :func:`load_model` trusts, by full name.
#: Together with the types skops trusts by default (scikit-learn's
#: estimators such as :class:`~sklearn.pipeline.Pipeline`, NumPy arrays,
#: builtins) they are everything a model saved by ``skoffice31 train``
#: holds. A type is only trusted by its exact name: a class from another
#: module with the same short name is not.
TRUSTED_TYPES = (
    "skoffice31._image.ImageFlattener",
    "skoffice31._preprocessing.ImageStandardizer",
    "skoffice31._preprocessing.ImageStatistics",
    "skoffice31._preprocessing.PrincipalComponents",
    "skoffice31.augmentation.AugmentedClassifier",
    "skoffice31._multihead.MultiHeadMLPClassifier",
    "skoffice31.adaptation.DomainHeadClassifier",
    "skoffice31._optimizers.SGDOptimizer",
    "skoffice31._optimizers.AdamOptimizer",
    "skoffice31._plan.TrainingPlan",
)

# The first bytes of the pickle-based formats, to say what a refused file is.
_PICKLE_MAGIC = [
    (b"\x80", "a pickle (as written by pickle.dump or joblib.dump)"),
    (b"\x1f\x8b", "a gzip-compressed file (joblib.dump with compression writes these)"),
    (b"BZh", "a bz2-compressed file (joblib.dump with compression writes these)"),
    (b"\xfd7zXZ", "an xz-compressed file (joblib.dump with compression writes these)"),
    *[(b"x" + second, "a zlib-compressed file (joblib.dump with compression writes these)")
      for second in (b"\x01", b"\x5e", b"\x9c", b"\xda")],
    (b"\x04\x22\x4d\x18", "an lz4-compressed file (joblib.dump with compression writes these)"),
]


class ModelFileError(ValueError):
    """A file is not a model that :func:`load_model` can load safely.

    The message says what the file is and what was expected.

    Attributes
    ----------
    path : str
        The file.
    """

    def __init__(self, message, path=""):
        super().__init__(message)
        self.path = str(path)


class UntrustedTypesError(ModelFileError):
    """A ``.skops`` file names types outside the trusted ones.

    Nothing from the file was built. If you trust the file (you made it),
    load it with ``skops.io.load(path, trusted=error.types)``.

    Attributes
    ----------
    path : str
        The file.
    types : list of str
        The untrusted types, by full name.
    """

    def __init__(self, message, path="", types=()):
        super().__init__(message, path)
        self.types = list(types)


class ModelVersionWarning(UserWarning):
    """A model was saved with other skoffice31 or scikit-learn versions.

    The model loads, but its predictions are only guaranteed with the
    versions it was saved with.

    Attributes
    ----------
    saved : dict
        Package name -> version at saving time.
    current : dict
        Package name -> version installed now.
    """

    def __init__(self, message, saved=None, current=None):
        super().__init__(message)
        self.saved = dict(saved or {})
        self.current = dict(current or {})


def _versions():
    import numpy
    import sklearn

    from . import __version__

    return {
        "skoffice31": __version__,
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "python": ".".join(str(v) for v in sys.version_info[:3]),
    }


def save_model(model, path, *, info=None):
    """Save ``model`` to ``path`` in the safe ``.skops`` format.

    The file is written next to its destination and moved into place in one
    step, so an interrupted or failed save (disk full) leaves any previous
    file as it was and no partial file behind.

    Parameters
    ----------
    model : estimator
        A fitted estimator or pipeline made of scikit-learn and skoffice31
        objects (anything else is saved too, but :func:`load_model` will
        refuse it, naming the type).
    path : str or os.PathLike
        The file to write, conventionally ending in ``.skops``. Its folder
        must exist.
    info : dict, optional
        Extra JSON-like facts to keep with the model (``skoffice31 train``
        keeps its settings and test accuracy). Returned by
        ``load_model(path, return_info=True)``.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    OSError
        The file could not be written (missing or read-only folder, disk
        full); nothing is left behind.

    See Also
    --------
    load_model : Load the model back.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn.datasets import make_classification
    >>> from skoffice31 import MultiHeadMLPClassifier
    >>> from skoffice31.persistence import save_model, load_model
    >>> X, y = make_classification(n_samples=40, random_state=0)
    >>> clf = MultiHeadMLPClassifier(hidden=(4,), max_iter=3, tol=0).fit(X, y)
    >>> path = save_model(clf, pathlib.Path(tempfile.mkdtemp()) / "clf.skops")
    >>> bool((load_model(path).predict(X) == clf.predict(X)).all())
    True
    """
    import skops.io as sio

    path = Path(path)
    document = {
        "format": FORMAT,
        "format_version": _FORMAT_VERSION,
        "versions": _versions(),
        "info": dict(info or {}),
        "model": model,
    }
    with atomic_path(path, suffix=".skops") as tmp:
        sio.dump(document, tmp)
    return path


def _what_is(path, head):
    """A phrase describing a file that is not a ``.skops`` file."""
    if not head:
        return "an empty file"
    if head.startswith(b"PK"):
        return "a damaged or truncated zip file (a .skops file cut short?)"
    for magic, what in _PICKLE_MAGIC:
        if head.startswith(magic):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c.isspace() for c in text):
        return "a text file"
    return "a file of an unknown format"


def load_model(path, *, trusted=None, return_info=False):
    """Load a model saved by :func:`save_model` without running code from the file.

    Every type named in the file is checked first; the file is refused
    unless all of them are trusted (skops' defaults, :data:`TRUSTED_TYPES`
    and ``trusted``). Pickle and joblib files are refused without being
    read past their first bytes.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.skops`` file written by :func:`save_model` (``skoffice31
        train`` writes one).
    trusted : list of str, optional
        More types to trust, by full name (``"module.Class"``), for models
        that hold your own estimators. Only add types you know.
    return_info : bool, default=False
        Also return the file's facts: ``{"versions": {...}, "info": {...}}``.

    Returns
    -------
    model : estimator
        The saved model.
    meta : dict
        Only with ``return_info=True``: ``versions`` (at saving time) and
        ``info`` (as given to :func:`save_model`).

    Raises
    ------
    FileNotFoundError
        No such file.
    ModelFileError
        The file is a pickle or joblib file, not a skops file, damaged, or
        a skops file not written by :func:`save_model`.
    UntrustedTypesError
        The file names types outside the trusted ones (listed in the
        message and in the exception's ``types``); nothing was built.

    Warns
    -----
    ModelVersionWarning
        The model was saved with another skoffice31 or scikit-learn
        version.

    See Also
    --------
    save_model : Save a model.
    """
    import skops.io as sio

    path = Path(path)
    with open(path, "rb") as f:  # FileNotFoundError / IsADirectoryError as they are
        head = f.read(8)
    if not head.startswith(b"PK") or not zipfile.is_zipfile(path):
        what = _what_is(path, head)
        hint = ""
        if what.startswith(("a pickle", "a gzip", "a bz2", "an xz", "a zlib", "an lz4")):
            hint = (
                "; loading a pickle runs code from the file, so it is refused (if you made "
                "it yourself, convert it with skoffice31.persistence.save_model, see the "
                "'Saving models' documentation)"
            )
        raise ModelFileError(
            f"{path} is {what}, not a .skops model file as written by "
            f"'skoffice31 train' or skoffice31.persistence.save_model{hint}",
            path,
        )
    allowed = set(TRUSTED_TYPES) | set(trusted or ())
    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise ModelFileError(
            f"{path} is a zip file but not a readable skops file "
            f"({type(exc).__name__}: {_first_line(exc)}); expected a .skops model file "
            "as written by 'skoffice31 train'",
            path,
        ) from None
    untrusted = sorted(set(found) - allowed)
    if untrusted:
        raise UntrustedTypesError(
            f"{path} holds types skoffice31 does not trust: {', '.join(untrusted)}; "
            "refused without loading (if you made this file yourself, load it with "
            "skops.io.load(path, trusted=[...]) after checking those types)",
            path,
            untrusted,
        )
    try:
        document = sio.load(path, trusted=sorted(set(found)))
    except Exception as exc:
        raise ModelFileError(
            f"{path} is a damaged skops file ({type(exc).__name__}: {_first_line(exc)})", path
        ) from None
    if not (isinstance(document, dict) and document.get("format") == FORMAT
            and "model" in document):
        raise ModelFileError(
            f"{path} is a skops file holding a {type(document).__name__}, not a skoffice31 "
            "model file (save models with skoffice31.persistence.save_model)",
            path,
        )
    saved = dict(document.get("versions") or {})
    current = _versions()
    differ = [name for name in ("skoffice31", "scikit-learn")
              if saved.get(name) != current[name]]
    if differ:
        warnings.warn(
            ModelVersionWarning(
                f"{path} was saved with "
                + ", ".join(f"{n} {saved.get(n, 'unknown')}" for n in differ)
                + "; installed: " + ", ".join(f"{n} {current[n]}" for n in differ)
                + ". Its predictions may differ; re-train or install those versions.",
                saved,
                current,
            ),
            stacklevel=2,
        )
    model = document["model"]
    if return_info:
        return model, {"versions": saved, "info": dict(document.get("info") or {})}
    return model


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
