"""Data home, folder scanning and small helpers shared by the loaders."""

import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from .._pixels import flatten_scaled, pixel_feature_names

#: File name suffixes (lower case) taken as images when scanning a folder.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)

HEAD_NAMES = ("domain", "object")

LAYOUT_HELP = (
    "Expected layout: <path>/<domain>/images/<class>/<image>.jpg (the Office-31 "
    "archive layout, e.g. office31/amazon/images/back_pack/frame_0001.jpg) or "
    "<path>/<domain>/<class>/<image>.jpg, with one folder per domain "
    "(amazon, dslr, webcam) under <path>."
)


class SkippedFilesWarning(UserWarning):
    """Some files or folders of a dataset were skipped while loading it.

    One warning per load lists every skipped entry with its reason: images
    that could not be decoded or read, dangling symbolic links, symbolic
    link loops, links back to a parent folder, folder names that are not
    valid UTF-8 and folders that could not be listed. The rows of the other
    images are loaded and labelled correctly.

    Attributes
    ----------
    files : tuple of str
        The skipped paths, as Python gives them (a name that is not valid
        UTF-8 holds surrogate escapes, see :func:`os.fsdecode`).
    reasons : tuple of str
        Why each one was skipped, in the same order.
    """

    def __init__(self, message, files=(), reasons=()):
        super().__init__(message)
        self.files = tuple(files)
        self.reasons = tuple(reasons)


class CacheWarning(UserWarning):
    """The on-disk cache could not be used; the data were loaded without it.

    Attributes
    ----------
    path : str
        The cache folder that could not be written.
    error : str
        What went wrong, e.g. ``"PermissionError: Permission denied"``.
    """

    def __init__(self, message, path="", error=""):
        super().__init__(message)
        self.path = path
        self.error = error


def printable(path):
    """``path`` as text that can always be printed (``\\xe9`` for a bad byte)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def warn_skipped(skipped, where, stacklevel=1):
    """Warn once, with one :class:`SkippedFilesWarning`, about ``skipped``.

    Parameters
    ----------
    skipped : list of (path, reason)
        The files or folders left out; nothing is warned when empty.
    where : str or path-like
        The folder (or table) they were found in, named in the message.
    stacklevel : int, default=1
        As for :func:`warnings.warn`, counted from the caller of this function.
    """
    if not skipped:
        return
    warnings.warn(
        SkippedFilesWarning(
            f"Skipped {len(skipped)} file(s) of {printable(where)!r} that could "
            "not be loaded (their rows are left out):\n  "
            + "\n  ".join(f"{printable(p)}: {r}" for p, r in skipped),
            files=[p for p, _ in skipped], reasons=[r for _, r in skipped],
        ),
        stacklevel=stacklevel + 1,
    )


def _is_utf8(name):
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes of undecodable bytes
        return False
    return True


def _data_home_path(data_home=None):
    """Absolute path of the data home, without creating it."""
    if data_home is None:
        data_home = os.environ.get("SKOFFICE31_DATA") or os.path.join(
            "~", "skoffice31_data"
        )
    return Path(os.path.expandvars(os.fspath(data_home))).expanduser().resolve()


def get_data_home(data_home=None):
    """Return the folder where skoffice31 keeps downloaded data and caches.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder to use. If None, the environment variable
        ``SKOFFICE31_DATA`` is used when set, else ``~/skoffice31_data``.

    Returns
    -------
    data_home : str
        Absolute path of the folder; it is created if it does not exist.

    Raises
    ------
    OSError
        If the folder cannot be created (e.g. a file of that name exists, or
        its parent is read-only); ``filename`` names it.
    """
    path = _data_home_path(data_home)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise NotADirectoryError(
            exc.errno, "the data home exists but is not a folder", str(path)
        ) from None
    return str(path)


def clear_data_home(data_home=None):
    """Delete the whole data home folder (downloads and caches).

    Parameters
    ----------
    data_home : str or path-like, default=None
        See :func:`get_data_home`.
    """
    shutil.rmtree(_data_home_path(data_home), ignore_errors=True)


def _is_hidden(name):
    return name.startswith(".") or name.startswith("__MACOSX") or name in (
        "Thumbs.db", "desktop.ini")


def _is_image_name(name):
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


class _Scan:
    """What :func:`_scan` found: ``domains``, ``empty`` and ``skipped``."""

    def __init__(self, root):
        self.root = root
        self.domains = {}
        self.empty = []  # domain folders without any image
        self.skipped = []  # (domain or None, path, reason)

    def skip(self, domain, path, reason):
        self.skipped.append((domain, os.fspath(path), reason))


def _entries(scan, domain, folder, *, files):
    """Visible entries of ``folder``: ``(name, path, stat_result)``, sorted.

    Symbolic links are followed. Entries that cannot be followed (dangling
    links, link loops) are recorded in ``scan.skipped``, and so are folder
    links that point back to ``folder`` or one of its parents (they would
    make the same images appear again under other names). With
    ``files=True`` only names with an image suffix are looked at (others are
    ignored silently).
    """
    import errno
    import stat as stat_mod

    with os.scandir(folder) as it:
        found = sorted(it, key=lambda e: e.name)
    real_folder = None
    out = []
    for e in found:
        if _is_hidden(e.name) or (files and not _is_image_name(e.name)):
            continue
        try:
            st = e.stat()  # follows links; one system call per entry
        except OSError as exc:
            link = e.is_symlink()
            if link and exc.errno == errno.ELOOP:
                reason = "symbolic link loop"
            elif link and exc.errno == errno.ENOENT:
                reason = f"dangling symbolic link (to {printable(os.readlink(e.path))!r})"
            else:
                reason = f"cannot be read: {exc.strerror or exc}"
            scan.skip(domain, e.path, reason)
            continue
        if files:
            if stat_mod.S_ISREG(st.st_mode):
                out.append((e.name, e.path, st))
            continue
        if not stat_mod.S_ISDIR(st.st_mode):
            continue
        if e.is_symlink():
            target = os.path.realpath(e.path)
            if real_folder is None:
                real_folder = os.path.realpath(folder)
            if os.path.commonpath([target, real_folder]) == target:
                scan.skip(domain, e.path, "symbolic link back to a parent folder "
                          f"({printable(target)!r})")
                continue
        if not _is_utf8(e.name):
            scan.skip(domain, e.path, "folder name is not valid UTF-8 (it would be "
                      "a label); rename it")
            continue
        out.append((e.name, e.path, st))
    return out


def _scan(path):
    """Scan an Office-31 style folder; see :func:`scan_image_folder`."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Office-31 folder {os.fspath(root)!r} does not exist or is not a "
            f"folder. {LAYOUT_HELP}"
        )
    scan = _Scan(root)
    for name, dom_path, _ in _entries(scan, None, root, files=False):
        base = Path(dom_path)
        try:
            if (base / "images").is_dir():
                base = base / "images"
            class_dirs = _entries(scan, name, base, files=False)
        except OSError as exc:
            scan.skip(name, base, f"folder cannot be listed: {exc.strerror or exc}")
            continue
        classes = {}
        for cls, cls_path, _ in class_dirs:
            try:
                files = _entries(scan, name, cls_path, files=True)
            except OSError as exc:
                scan.skip(name, cls_path,
                          f"folder cannot be listed: {exc.strerror or exc}")
                continue
            if files:
                classes[cls] = [(f, st.st_size, st.st_mtime_ns) for f, _, st in files]
        if classes:
            scan.domains[name] = {"base": base, "classes": classes}
        else:
            scan.empty.append(name)
    if "images" in scan.domains or root.name == "images":
        raise ValueError(
            f"{os.fspath(root)!r} looks like a single domain folder (it holds "
            f"an 'images' folder of classes); pass its parent instead. {LAYOUT_HELP}"
        )
    if not scan.domains:
        raise ValueError(
            f"No images found in {printable(root)!r}. {LAYOUT_HELP}"
        )
    return scan


def scan_image_folder(path):
    """Find the domains, classes and image files of an Office-31 style folder.

    Parameters
    ----------
    path : str or path-like
        Root folder holding one sub-folder per domain.

    Returns
    -------
    domains : dict
        ``{domain: {"base": Path, "classes": {class: [(name, size,
        mtime_ns), ...]}}}`` in sorted order, only domains and classes that
        hold at least one image file. ``base`` is ``<path>/<domain>/images``
        or ``<path>/<domain>``. Symbolic links are followed; entries that
        cannot be (see :class:`SkippedFilesWarning`) are left out.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or is not a folder.
    OSError
        If ``path`` itself cannot be listed; ``filename`` names it.
    ValueError
        If no domain with class folders holding images is found, or if
        ``path`` looks like a single domain folder.
    """
    return _scan(path).domains


def make_bunch(images, domain_labels, object_labels, target_names, filenames,
               descr, *, scale=1 / 255, return_X_y=False, as_frame=False,
               shuffle=False, random_state=None):
    """Assemble the common two-head ``Bunch`` of the Office-31 style loaders.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C), uint8
        The images.
    domain_labels, object_labels : sequence of str
        Per-image labels.
    target_names : dict
        ``{"domain": array, "object": array}`` of sorted class names.
    filenames : sequence of str
        Per-image source names.
    descr : str
        Dataset description.
    scale : float, default=1/255
        Factor applied to the pixel values in ``data``.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of the Bunch.
    as_frame : bool, default=False
        Give ``data`` and ``target`` as pandas objects.
    shuffle, random_state
        See :func:`make_heads_bunch`.

    Returns
    -------
    bunch : Bunch or tuple
    """
    return make_heads_bunch(
        images, {"domain": domain_labels, "object": object_labels}, target_names,
        filenames, descr, scale=scale, return_X_y=return_X_y, as_frame=as_frame,
        shuffle=shuffle, random_state=random_state,
    )


def make_heads_bunch(images, labels, target_names, filenames, descr, *,
                     scale=1 / 255, return_X_y=False, as_frame=False,
                     shuffle=False, random_state=None):
    """Assemble the ``Bunch`` of an image loader with any number of heads.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, C), uint8
        The images.
    labels : dict
        ``{head_name: sequence of n labels}``, in head order.
    target_names : dict
        ``{head_name: array}`` of sorted class names.
    filenames : sequence of str
        Per-image source names.
    descr : str
        Dataset description.
    scale : float, default=1/255
        Factor applied to the pixel values in ``data``.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of the Bunch.
    as_frame : bool, default=False
        Give ``data`` and ``target`` as pandas objects (``target`` a
        DataFrame whose columns are the head names).
    shuffle : bool, default=False
        Permute the rows (``data``, ``images``, ``target``, ``filenames``
        alike) instead of keeping the loader's sorted order.
    random_state : int, RandomState instance or None, default=None
        Seed of the permutation when ``shuffle`` is True.

    Returns
    -------
    bunch : Bunch or tuple
    """
    from sklearn.utils import Bunch, check_random_state

    names = tuple(str(h) for h in labels)
    n = images.shape[0]
    target = np.empty((n, len(names)), dtype=object)
    for j, name in enumerate(names):
        target[:, j] = list(labels[name])
    filenames = np.asarray(filenames, dtype=object)
    if shuffle:
        order = check_random_state(random_state).permutation(n)
        images, target, filenames = images[order], target[order], filenames[order]
    data = flatten_scaled(images, scale)
    frame = None
    cols = pixel_feature_names(*images.shape[1:])
    if as_frame:
        import pandas as pd

        data = pd.DataFrame(data, columns=cols, copy=False)
        target = pd.DataFrame(target, columns=list(names))
        frame = pd.concat([data, target], axis=1)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        images=images,
        target=target,
        target_names=target_names,
        head_names=names,
        feature_names=cols,
        filenames=filenames,
        frame=frame,
        DESCR=descr,
    )
