"""Data home, folder scanning and small helpers shared by the loaders."""

import os
import shutil
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
    """
    if data_home is None:
        data_home = os.environ.get("SKOFFICE31_DATA") or os.path.join(
            "~", "skoffice31_data"
        )
    path = Path(os.path.expandvars(os.fspath(data_home))).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def clear_data_home(data_home=None):
    """Delete the whole data home folder (downloads and caches).

    Parameters
    ----------
    data_home : str or path-like, default=None
        See :func:`get_data_home`.
    """
    shutil.rmtree(get_data_home(data_home), ignore_errors=True)


def _is_hidden(name):
    return name.startswith(".") or name.startswith("__MACOSX") or name in (
        "Thumbs.db", "desktop.ini")


def _subdirs(path):
    with os.scandir(path) as it:
        return sorted(
            e.name for e in it if not _is_hidden(e.name) and e.is_dir()
        )


def _image_files(path):
    """Sorted ``(name, size, mtime_ns)`` of the image files in ``path``."""
    out = []
    with os.scandir(path) as it:
        for e in it:
            if _is_hidden(e.name):
                continue
            if os.path.splitext(e.name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            if not e.is_file():
                continue
            st = e.stat()
            out.append((e.name, st.st_size, st.st_mtime_ns))
    out.sort()
    return out


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
        mtime_ns), ...]}}}`` in sorted order. ``base`` is
        ``<path>/<domain>/images`` or ``<path>/<domain>``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or is not a folder.
    ValueError
        If no domain with class folders holding images is found, or if
        ``path`` looks like a single domain folder.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Office-31 folder {os.fspath(root)!r} does not exist or is not a "
            f"folder. {LAYOUT_HELP}"
        )
    domains = {}
    for name in _subdirs(root):
        base = root / name
        if (base / "images").is_dir():
            base = base / "images"
        classes = {}
        for cls in _subdirs(base):
            classes[cls] = _image_files(base / cls)
        if classes:
            domains[name] = {"base": base, "classes": classes}
    if "images" in domains or root.name == "images":
        raise ValueError(
            f"{os.fspath(root)!r} looks like a single domain folder (it holds "
            f"an 'images' folder of classes); pass its parent instead. {LAYOUT_HELP}"
        )
    n_files = sum(len(f) for d in domains.values() for f in d["classes"].values())
    if not domains or n_files == 0:
        raise ValueError(
            f"No images found in {os.fspath(root)!r}. {LAYOUT_HELP}"
        )
    return domains


def atomic_write_npz(path, **arrays):
    """Write an uncompressed ``.npz`` file atomically.

    The data go to a temporary file in the same folder which is then renamed
    over ``path`` with :func:`os.replace`, so readers never see a partial
    file.

    Parameters
    ----------
    path : str or path-like
        Destination.
    **arrays : ndarray
        Arrays to store (no object arrays).
    """
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def make_bunch(images, domain_labels, object_labels, target_names, filenames,
               descr, *, scale=1 / 255, return_X_y=False, as_frame=False):
    """Assemble the common two-head ``Bunch`` of the image loaders.

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

    Returns
    -------
    bunch : Bunch or tuple
    """
    from sklearn.utils import Bunch

    n = images.shape[0]
    data = flatten_scaled(images, scale)
    target = np.empty((n, 2), dtype=object)
    target[:, 0] = list(domain_labels)
    target[:, 1] = list(object_labels)
    frame = None
    cols = pixel_feature_names(*images.shape[1:])
    if as_frame:
        import pandas as pd

        data = pd.DataFrame(data, columns=cols, copy=False)
        target = pd.DataFrame(target, columns=list(HEAD_NAMES))
        frame = pd.concat([data, target], axis=1)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        images=images,
        target=target,
        target_names=target_names,
        head_names=HEAD_NAMES,
        feature_names=cols,
        filenames=np.asarray(filenames, dtype=object),
        frame=frame,
        DESCR=descr,
    )
