"""Load one's own images: an ImageFolder tree or a table of paths and labels."""

import csv
import os
from pathlib import Path

import numpy as np

from .._pixels import RESAMPLE_NAMES, normalize_size, read_images
from ._base import (
    warn_skipped,
    _entries,
    _Scan,
    make_heads_bunch,
    printable,
)

__all__ = ["load_image_folder", "load_image_table"]

FOLDER_HELP = (
    "Expected layout: <path>/<class>/<image>.jpg, one sub-folder per class "
    "(the layout of torchvision's ImageFolder)."
)
TABLE_HELP = (
    "Expected a CSV or TSV file with a header row 'path,<head1>,<head2>,...' and one "
    "row per image; relative paths are resolved against the file's folder."
)


def _check_options(size, mode, resample):
    size = normalize_size(size)
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L'; got {mode!r}.")
    if resample not in RESAMPLE_NAMES:
        raise ValueError(
            f"resample must be one of {list(RESAMPLE_NAMES)}; got {resample!r}."
        )
    return size


def _decode(paths, labels, skipped, *, where, size, mode, resample, n_jobs):
    """Decode ``paths``; drop failed rows (warned once with ``skipped``)."""
    decoded, ok, errors = read_images(
        paths, size=size, mode=mode, resample=resample, n_jobs=n_jobs, on_error="skip"
    )
    skipped = list(skipped) + [(paths[i], errors[i][0]) for i in sorted(errors)]
    warn_skipped(skipped, where, stacklevel=3)
    if isinstance(decoded, list):
        if not decoded:
            raise ValueError(f"None of the images in {printable(where)!r} could be decoded.")
        shapes = sorted({a.shape for a in decoded})
        raise ValueError(
            f"size=None needs images of one size, but the images have shapes "
            f"{shapes}. Pass size=(width, height)."
        )
    if decoded.shape[0] == 0:
        raise ValueError(f"None of the images in {printable(where)!r} could be decoded.")
    ok = np.asarray(ok, dtype=bool)
    paths = [p for p, keep in zip(paths, ok) if keep]
    labels = {h: [v for v, keep in zip(col, ok) if keep] for h, col in labels.items()}
    return decoded, paths, labels


def load_image_folder(
    path,
    *,
    head_name="class",
    size=(100, 100),
    mode="RGB",
    return_X_y=False,
    as_frame=False,
    n_jobs=None,
    resample="bilinear",
    shuffle=False,
    random_state=None,
):
    """Load an ImageFolder tree ``<path>/<class>/*.jpg`` as a one-head dataset.

    Parameters
    ----------
    path : str or path-like
        Folder with one sub-folder per class, holding that class's images.
        Hidden files and files without an image suffix (``.jpg``, ``.png``,
        ...; case-insensitive) are ignored; symbolic links are followed.
    head_name : str, default="class"
        Name of the one head (the column of ``target`` with
        ``as_frame=True``, and ``head_names``).
    size : int or tuple of (int, int) or None, default=(100, 100)
        Output ``(width, height)``; None keeps the original size, which must
        then be the same for all images.
    mode : {"RGB", "L"}, default="RGB"
        Colour mode of the output.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` and ``target`` are pandas DataFrames (``target``
        has the one column ``head_name``).
    n_jobs : int, default=None
        Number of joblib workers that decode the images.
    resample : str, default="bilinear"
        Pillow filter used to resize.
    shuffle : bool, default=False
        Permute the rows; by default they are sorted by class and file name.
    random_state : int, RandomState instance or None, default=None
        Seed of the permutation when ``shuffle`` is True.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (float32 in ``[0, 1]``, shape ``(n, height * width *
        channels)``), ``images`` (uint8), ``target`` (object array of shape
        ``(n, 1)``, the class folder names), ``target_names``
        (``{head_name: sorted classes}``), ``head_names`` (``(head_name,)``),
        ``feature_names``, ``filenames``, ``frame`` and ``DESCR``.
    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder.
    ValueError
        If no class folder holds an image, or no image can be decoded.

    Warns
    -----
    SkippedFilesWarning
        Once, listing the files that could not be decoded or read and the
        entries that could not be followed.

    See Also
    --------
    load_image_table : Any number of heads, from a CSV/TSV file.
    load_office31 : The two-head Office-31 layout.
    """
    size = _check_options(size, mode, resample)
    if not isinstance(head_name, str) or not head_name:
        raise ValueError(f"head_name must be a non-empty string; got {head_name!r}.")
    root = Path(os.fspath(path)).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {os.fspath(path)!r} does not exist or is not a folder. "
            f"{FOLDER_HELP}"
        )
    scan = _Scan(root)
    paths, classes = [], []
    for cls, cls_path, _ in _entries(scan, None, root, files=False):
        try:
            files = _entries(scan, None, cls_path, files=True)
        except OSError as exc:
            scan.skip(None, cls_path, f"folder cannot be listed: {exc.strerror or exc}")
            continue
        paths += [p for _, p, _ in files]
        classes += [cls] * len(files)
    if not paths:
        raise ValueError(f"No images found in {printable(root)!r}. {FOLDER_HELP}")
    images, paths, labels = _decode(
        paths, {head_name: classes}, [(p, r) for _, p, r in scan.skipped], where=root,
        size=size, mode=mode, resample=resample, n_jobs=n_jobs,
    )
    found = sorted(set(classes))
    descr = (
        f"Images of {printable(root)}: {len(paths)} images in {len(found)} class "
        f"folders (head {head_name!r}), loaded by skoffice31.datasets.load_image_folder."
    )
    return make_heads_bunch(
        images, labels, {head_name: np.asarray(found, dtype=object)}, paths, descr,
        return_X_y=return_X_y, as_frame=as_frame, shuffle=shuffle,
        random_state=random_state,
    )


def _read_table(path, delimiter):
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    if delimiter is None:
        if Path(path).suffix.lower() in (".tsv", ".tab"):
            delimiter = "\t"
        else:
            first = text.splitlines()[0] if text.strip() else ""
            delimiter = "\t" if first.count("\t") > first.count(",") else ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter)]
    return [r for r in rows if any(cell.strip() for cell in r)]


def load_image_table(
    path,
    *,
    size=(100, 100),
    mode="RGB",
    path_column=None,
    delimiter=None,
    return_X_y=False,
    as_frame=False,
    n_jobs=None,
    resample="bilinear",
    shuffle=False,
    random_state=None,
):
    """Load images listed in a CSV/TSV file with one column per head.

    The file has a header row, ``path,<head1>,<head2>,...``, and one row per
    image: its path (relative paths are resolved against the folder of the
    file, not the working directory) and its label for every head. Any
    number of heads (one or more) may be given.

    Parameters
    ----------
    path : str or path-like
        The CSV or TSV file (UTF-8; a byte order mark is ignored).
    size : int or tuple of (int, int) or None, default=(100, 100)
        Output ``(width, height)``; None keeps the original size, which must
        then be the same for all images.
    mode : {"RGB", "L"}, default="RGB"
        Colour mode of the output.
    path_column : str, default=None
        Name of the column holding the image paths; default ``"path"`` when
        the header has it, else the first column. Every other column is a
        head, in file order.
    delimiter : str, default=None
        Field separator; default a tab for ``.tsv`` files, else whichever of
        tab and comma the header holds more of.
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        If True, ``data`` and ``target`` are pandas DataFrames (one
        ``target`` column per head, named as in the header).
    n_jobs : int, default=None
        Number of joblib workers that decode the images.
    resample : str, default="bilinear"
        Pillow filter used to resize.
    shuffle : bool, default=False
        Permute the rows; by default they keep the file's order.
    random_state : int, RandomState instance or None, default=None
        Seed of the permutation when ``shuffle`` is True.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data``, ``images``, ``target`` (object array of shape
        ``(n, n_heads)``, the labels as text), ``target_names``
        (``{head: sorted labels}``), ``head_names`` (the header's head
        columns), ``feature_names``, ``filenames`` (resolved paths),
        ``frame`` and ``DESCR``.
    (data, target) : tuple if ``return_X_y`` is True

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the header has no head column, a head name is repeated or empty,
        a row has the wrong number of cells or an empty label (the message
        gives the line number), or no listed image can be decoded.

    Warns
    -----
    SkippedFilesWarning
        Once, listing the listed files that are missing or cannot be
        decoded (their rows are left out).

    See Also
    --------
    load_image_folder : One head from an ImageFolder tree.
    """
    size = _check_options(size, mode, resample)
    table = Path(os.fspath(path)).expanduser().resolve()
    if not table.is_file():
        raise FileNotFoundError(f"image table {os.fspath(path)!r} does not exist. {TABLE_HELP}")
    rows = _read_table(table, delimiter)
    if not rows:
        raise ValueError(f"{printable(table)!r} is empty. {TABLE_HELP}")
    header = [cell.strip() for cell in rows[0]]
    if path_column is None:
        path_column = "path" if "path" in header else header[0]
    if path_column not in header:
        raise ValueError(f"path_column {path_column!r} is not in the header {header} of "
                         f"{printable(table)!r}.")
    p_col = header.index(path_column)
    heads = [h for j, h in enumerate(header) if j != p_col]
    if not heads:
        raise ValueError(f"{printable(table)!r} has no head column besides "
                         f"{path_column!r}. {TABLE_HELP}")
    if any(not h for h in heads) or len(set(heads)) != len(heads):
        raise ValueError(f"the head names {heads} in the header of {printable(table)!r} must "
                         "be non-empty and distinct.")
    base = table.parent
    paths, labels, skipped = [], {h: [] for h in heads}, []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"line {line} of {printable(table)!r} has {len(row)} cells, the "
                             f"header {len(header)}.")
        cells = [c.strip() for c in row]
        if not cells[p_col]:
            raise ValueError(f"line {line} of {printable(table)!r} has an empty path.")
        empty = [h for j, h in enumerate(header) if j != p_col and not cells[j]]
        if empty:
            raise ValueError(f"line {line} of {printable(table)!r} has no label for head(s) "
                             f"{empty}.")
        file = Path(os.path.expanduser(cells[p_col]))
        file = file if file.is_absolute() else base / file
        if not file.is_file():
            skipped.append((str(file), "no such file" if not file.exists() else "not a file"))
            continue
        paths.append(str(file))
        for j, h in enumerate(header):
            if j != p_col:
                labels[h].append(cells[j])
    if not paths:
        if skipped:
            raise ValueError(f"none of the {len(skipped)} files listed in {printable(table)!r} "
                             f"exists (first: {printable(skipped[0][0])!r}); relative paths "
                             f"are resolved against {printable(base)!r}.")
        raise ValueError(f"{printable(table)!r} lists no image. {TABLE_HELP}")
    images, paths, labels = _decode(
        paths, labels, skipped, where=table, size=size, mode=mode, resample=resample,
        n_jobs=n_jobs,
    )
    target_names = {h: np.asarray(sorted(set(labels[h])), dtype=object) for h in heads}
    descr = (
        f"Images listed in {printable(table)}: {len(paths)} images, heads "
        + ", ".join(f"{h} ({len(target_names[h])} classes)" for h in heads)
        + "; loaded by skoffice31.datasets.load_image_table."
    )
    return make_heads_bunch(
        images, labels, target_names, paths, descr, return_X_y=return_X_y,
        as_frame=as_frame, shuffle=shuffle, random_state=random_state,
    )
