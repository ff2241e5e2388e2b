"""Predicting image files with a saved model.

:func:`predict_files` applies an image-to-labels model (the
``Pipeline(ImageFlattener, MultiHeadMLPClassifier)`` that ``skoffice31
train`` saves, loaded with :func:`skoffice31.persistence.load_model`) to
image files and folders, and returns one row per image: its path, every
head's most probable labels with their probabilities, or the reason the
image could not be read. ``skoffice31 predict`` prints these rows as a
table, CSV or JSON.
"""

import os
from pathlib import Path

import numpy as np

__all__ = ["predict_files"]


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _not_an_image_model(model):
    """``None`` for a fitted image-to-labels pipeline, else what ``model`` is, in words."""
    from ._multihead import MultiHeadMLPClassifier
    from .augmentation import AugmentedClassifier

    steps = getattr(model, "steps", None)
    last = model[-1] if steps else None
    if isinstance(last, AugmentedClassifier) and hasattr(last, "estimator_"):
        from .study import final_classifier

        # trained on augmented copies (train --augment): it predicts like its classifier
        last = final_classifier(last, fitted=True)
    if isinstance(last, MultiHeadMLPClassifier) and hasattr(last, "classes_"):
        return None
    what = type(model).__name__
    if steps:
        what += "(" + ", ".join(type(s).__name__ for _, s in steps) + ")"
    return what


def _head_names(model):
    """The heads' names: as saved by ``skoffice31 train``, else the classifier's."""
    info = getattr(model, "skoffice31_info_", None) or {}
    names = info.get("heads") or [
        {"head0": "domain", "head1": "object"}.get(str(h), str(h)) for h in model[-1].head_names_
    ]
    return [str(h) for h in names]


def _expand_inputs(items):
    """``(path, error)`` pairs: files as given, folders replaced by their image files.

    A folder stands for the image files under it (recursive, sorted, hidden
    files and folders left out). ``error`` is ``None``, or why the item
    cannot be an image: a missing path, not a file, a folder without images.
    """
    from .datasets._base import _is_hidden, _is_image_name

    out = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = []
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
                found += [os.path.join(root, f) for f in sorted(files)
                          if _is_image_name(f) and not _is_hidden(f)]
            if not found:
                out.append((str(item), "folder holds no image file"))
            out += [(f, None) for f in found]
        elif not path.exists():
            out.append((str(item), "no such file"))
        elif not path.is_file():
            out.append((str(item), "not a file"))
        else:
            out.append((str(item), None))
    return out


def predict_files(model, paths, *, top=1):
    """Predict every head of image files and of the images in folders.

    Each image is read on its own: one that cannot be read (a missing file,
    a file that is not an image) gets a row with its error, and the others
    are still predicted.

    Parameters
    ----------
    model : Pipeline
        A fitted ``Pipeline(ImageFlattener, MultiHeadMLPClassifier)``, as
        saved by ``skoffice31 train`` and loaded with
        :func:`skoffice31.persistence.load_model`.
    paths : str, path-like or sequence of them
        Image files and folders. A folder stands for the image files under
        it (recursively, in sorted order; hidden files and files that are
        not images are left out).
    top : int, default=1
        How many of the most probable labels of each head to report.

    Returns
    -------
    rows : list of dict
        One per image, in order. ``"path"``; for every head ``<head>``, the
        most probable label (a str), and ``<head>_probability``, its
        probability (rounded to 6 decimals); with ``top > 1`` also
        ``<head>_top``, a list of the ``top`` best ``{"label",
        "probability"}``; ``"error"``, ``None`` or why the image could not
        be read (then the labels and probabilities are ``None``). The heads
        are named as in training (``skoffice31_info_["heads"]``, else the
        classifier's ``head_names_``).

    Raises
    ------
    TypeError
        ``model`` is not a fitted pipeline ending in a
        :class:`~skoffice31.MultiHeadMLPClassifier`.
    ValueError
        ``top`` is not a positive integer.

    See Also
    --------
    skoffice31.persistence.load_model : Load a model saved by ``skoffice31 train``.
    """
    what = _not_an_image_model(model)
    if what is not None:
        raise TypeError(
            f"model must be a fitted Pipeline(ImageFlattener, MultiHeadMLPClassifier), as "
            f"saved by 'skoffice31 train'; got a {what}"
        )
    if isinstance(top, (bool, np.bool_)) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"top must be a positive integer; got {top!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return _predict_rows(model, _expand_inputs(paths), _head_names(model), int(top))


def _predict_rows(model, inputs, heads, top):
    """One dict per ``(path, error)`` input: path, each head's label and probability, error.

    The inputs come from :func:`_expand_inputs`; ``heads`` names the heads.
    """
    transformer, clf = model[:-1], model[-1]
    error_of = {p: why for p, why in inputs if why is not None}
    good, parts = [], []
    for path, why in inputs:
        if why is not None:
            continue
        try:  # one image at a time: a bad one costs only its own row
            parts.append(transformer.transform([path]))
            good.append(path)
        except Exception as exc:
            error_of[path] = _first_line(exc)
    proba = []
    if good:
        proba = clf.predict_proba(np.concatenate(parts))
        if not isinstance(proba, list):
            proba = [proba]
    classes = clf.classes_ if isinstance(clf.classes_, list) else [clf.classes_]
    where = {p: i for i, p in enumerate(good)}
    rows = []
    for path, _ in inputs:
        row = {"path": path}
        i = where.get(path) if path not in error_of else None
        for h, name in enumerate(heads):
            if i is None:
                row[name], row[f"{name}_probability"] = None, None
                continue
            order = np.argsort(proba[h][i])[::-1][:top]
            row[name] = str(classes[h][order[0]])
            row[f"{name}_probability"] = round(float(proba[h][i][order[0]]), 6)
            if top > 1:
                row[f"{name}_top"] = [{"label": str(classes[h][j]),
                                       "probability": round(float(proba[h][i][j]), 6)}
                                      for j in order]
        row["error"] = error_of.get(path)
        rows.append(row)
    return rows


def _format_predictions(rows, heads, format="table", top=1):
    """The rows of :func:`predict_files` as text: ``"table"``, ``"csv"`` or ``"json"``."""
    if format == "csv":
        return _format_csv(rows, heads)
    if format == "json":
        import json

        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    return _format_table(rows, heads, top)


def _format_table(rows, heads, top):
    """Aligned columns ``path``, one per head (``label (probability)``, top K).

    The row of an unreadable image holds ``error: ...`` after its path (it
    does not widen the heads' columns).
    """
    header = ["path", *heads]
    lines = []
    for r in rows:
        if r["error"] is not None:
            lines.append([r["path"], f"error: {r['error']}"])
            continue
        cells = [r["path"]]
        for h in heads:
            best = r.get(f"{h}_top") or [{"label": r[h], "probability": r[f"{h}_probability"]}]
            cells.append(", ".join(f"{b['label']} ({b['probability']:.2f})" for b in best[:top]))
        lines.append(cells)
    widths = [len(c) for c in header]
    for cells in lines:
        full = len(cells) == len(header)
        for k, c in enumerate(cells if full else cells[:1]):
            widths[k] = max(widths[k], len(c))
    out = []
    for cells in [header, *lines]:
        out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    return "\n".join(out) + "\n"


def _format_csv(rows, heads):
    """Columns ``path``, ``<head>`` and ``<head>_probability`` per head, ``error``."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    cols = ["path"] + [c for h in heads for c in (h, f"{h}_probability")] + ["error"]
    writer.writerow(cols)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r[c] for c in cols])
    return buf.getvalue()
