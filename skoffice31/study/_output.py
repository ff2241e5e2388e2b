"""The study's outputs: provenance, results.csv / results.json, the table, figures."""

import csv
import io
import json
import math
import os
import platform
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .._fileio import atomic_path, atomic_write_text
from ._settings import HEADS

__all__ = [
    "CSV_COLUMNS", "PER_CLASS_COLUMNS", "format_table", "head_baselines", "head_confusion",
    "per_class_accuracies", "plot_confusion_matrices", "plot_results", "run_info",
    "write_per_class", "write_results",
]

PER_CLASS_COLUMNS = ["hidden", "solver", "head", "class", "support", "correct", "accuracy"]

CSV_COLUMNS = [
    "hidden", "solver", "learning_rate_init", "batch_size", "epochs", "n_iter",
    "domain_acc", "object_acc", "both_acc", "train_domain_acc", "train_object_acc",
    "train_both_acc", "fit_seconds", "final_loss", "study_domain_acc", "study_object_acc",
    "study_seconds", "status",
]


def _iso(t):
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")


def run_info(settings, data, *, command=None, started=None, scheduler=None):
    """The provenance of a run (``results.json`` without its results).

    Parameters
    ----------
    settings : StudySettings
    data : StudyData
    command : list of str, default=None
        The command line, if any.
    started : float, default=None
        ``time.time()`` of the start; default now.
    scheduler : str, default=None
        The dask scheduler, if any.

    Returns
    -------
    info : dict
        ``command``, ``started``, ``data``, ``split``, ``settings``,
        ``versions``, ``machine`` (and ``scheduler``).
    """
    import time

    started = time.time() if started is None else started
    size = [int(data.images.shape[2]), int(data.images.shape[1])]
    out_settings = settings.to_dict()
    out_settings["size"] = size
    out_settings["estimator"] = "skoffice31.MultiHeadMLPClassifier"
    out_settings["runner"] = (
        "skoffice31.study.run_study (longest fit first; scorers head_accuracy_scorer "
        "and exact_match_scorer on one ShuffleSplit)"
    )
    info = {
        "command": list(command) if command else None,
        "started": _iso(started),
        "started_time": started,
        "data": {
            "source": data.source,
            "description": data.description,
            "n_samples": int(len(data.X)),
            "n_features": int(data.X.shape[1]),
            "image_size": size,
            "heads": list(HEADS),
            "classes": {name: [str(c) for c in data.classes[h]] for h, name in enumerate(HEADS)},
        },
        "split": {
            "cv": "ShuffleSplit(n_splits=1)",
            "train_size": settings.train_size,
            "test_size": settings.test_size,
            "random_state": settings.seed,
            "n_train": int(len(data.train)),
            "n_test": int(len(data.test)),
        },
        "settings": out_settings,
        "versions": _versions(),
        "machine": _machine(),
    }
    if scheduler:
        info["scheduler"] = scheduler
    return info


def _versions():
    import importlib.metadata as md

    from .. import __version__

    out = {"python": platform.python_version()}
    for dist in ("scikit-learn", "numpy", "scipy", "joblib", "pillow", "matplotlib",
                 "threadpoolctl"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    out["skoffice31"] = __version__
    return out


def _machine():
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: d.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
            for d in threadpool_info()
        ]
    except Exception:  # pragma: no cover - informational only
        pass
    return info


def fmt_hidden(hidden):
    """``(64,32,10)``."""
    return "(" + ",".join(str(int(h)) for h in hidden) + ")"


def fmt_acc(v):
    """Three decimals, ``-`` for a missing value."""
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def fmt_augment(copies, shift_each_epoch=False):
    """What the ``copies`` versions of a training photo are, in words (``augment`` > 1).

    ``"the photo, its mirror image"`` for 2, with ``", shifted copies"`` for
    3 and more (:class:`~skoffice31.augmentation.AugmentedClassifier`), and
    ``" drawn anew every epoch"`` with ``shift_each_epoch``.
    """
    shifted = ", shifted copies" + (" drawn anew every epoch" if shift_each_epoch else "")
    return "the photo, its mirror image" + (shifted if copies > 2 else "")


def fmt_seconds(sec):
    """``12.3s``, ``4m05s``, ``1h02m``; ``-`` when missing."""
    if sec is None or (isinstance(sec, float) and math.isnan(sec)):
        return "-"
    sec = float(sec)
    if sec < 60:
        return f"{sec:.1f}s"
    if sec < 3600:
        return f"{int(sec // 60)}m{int(sec % 60):02d}s"
    return f"{int(sec // 3600)}h{int(sec % 3600 // 60):02d}m"


def _jsonable(obj):
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_results(out, info, rows, *, partial=False, summary=None):
    """Write ``results.csv`` and ``results.json`` to the folder ``out``.

    Each file is replaced in one step (:mod:`skoffice31._fileio`), so a
    reader, or a run killed meanwhile, never sees half a file; call it after
    every finished configuration.

    Parameters
    ----------
    out : path-like
        An existing folder.
    info : dict
        From :func:`run_info`, plus ``finished``, ``wall_seconds``,
        ``interrupted`` or ``error`` as known.
    rows : list of dict
        Result rows (:func:`~skoffice31.study.fit_and_evaluate`).
    partial : bool, default=False
        Mark the JSON as a snapshot of a run still going on.
    summary : list of dict, default=None
        The mean and standard deviation over seeds
        (:func:`~skoffice31.study.aggregate_seeds`): written to
        ``results_summary.csv`` and to the ``summary`` key of the JSON.
        Default: computed from ``rows`` when they carry a ``seed`` (rows of
        :func:`~skoffice31.study.run_seeds`), whose ``seed`` is then the first
        column of ``results.csv``; none for rows without one.
    """
    from ._seeds import aggregate_seeds

    out = Path(out)
    seeded = any("seed" in r for r in rows)
    if summary is None and seeded:
        summary = aggregate_seeds(rows)
    columns = ["seed", *CSV_COLUMNS] if seeded else CSV_COLUMNS
    atomic_write_text(out / "results.csv", csv_text(rows, columns))
    doc = {k: v for k, v in info.items() if k != "started_time"}
    if partial:
        doc["partial"] = True
    if summary is not None:
        atomic_write_text(out / "results_summary.csv", _summary_csv(summary))
        doc["summary"] = [_jsonable(s) for s in summary]
    doc["results"] = [_jsonable(r) for r in rows]
    atomic_write_text(out / "results.json", json.dumps(doc, indent=2) + "\n")


def _summary_csv(summary):
    from ._seeds import SEED_METRICS

    columns = ["hidden", "solver", "n_seeds", "n_failed", "seeds"]
    columns += [f"{m}_{s}" for m in SEED_METRICS for s in ("mean", "std")]
    return csv_text(summary, columns)


def csv_text(rows, columns):
    """The CSV text of result rows (dicts): a header, then one line per row.

    A missing value is empty, a ``hidden`` layout is written ``(64,32,10)``,
    a ``seeds`` list space-separated, a float rounded to 6 digits (NaN:
    empty).
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = []
        for col in columns:
            v = row.get(col, "")
            if col == "hidden":
                v = fmt_hidden(v)
            elif col == "seeds":
                v = " ".join(str(x) for x in v)
            elif isinstance(v, float):
                v = "" if math.isnan(v) else round(v, 6)
            values.append(v)
        writer.writerow(values)
    return buf.getvalue()


def head_confusion(y_true, y_pred, classes, heads):
    """The confusion matrix of every head, over all of its classes, as lists.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples, n_heads)
        True and predicted labels.
    classes : list of array-like
        The classes of each head (``classes_`` of the model): the order of
        the matrix's rows and columns, classes absent from the test rows
        included.
    heads : list of str
        The head names.

    Returns
    -------
    confusion : dict
        ``{head: {"labels": [str, ...], "matrix": [[int, ...], ...]}}``;
        ``matrix[i][j]`` counts the rows of true class ``labels[i]``
        predicted as ``labels[j]`` (:func:`sklearn.metrics.confusion_matrix`).
    """
    from sklearn.metrics import confusion_matrix

    y_true = np.asarray(y_true, dtype=object).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred, dtype=object).reshape(len(y_pred), -1)
    out = {}
    for h, name in enumerate(heads):
        labels = [str(c) for c in classes[h]]
        m = confusion_matrix(y_true[:, h].astype(str), y_pred[:, h].astype(str), labels=labels)
        out[str(name)] = {"labels": labels, "matrix": m.astype(int).tolist()}
    return out


def per_class_accuracies(confusion):
    """Per-class accuracy (recall) of each head from :func:`head_confusion`.

    Returns
    -------
    rows : list of dict
        ``head``, ``class``, ``support`` (test rows of that class),
        ``correct`` and ``accuracy`` (``correct / support``; NaN without
        support), one per head and class.
    """
    rows = []
    for head, cm in confusion.items():
        m = np.asarray(cm["matrix"], dtype=np.int64).reshape(len(cm["labels"]), -1)
        for i, label in enumerate(cm["labels"]):
            support, correct = int(m[i].sum()), int(m[i, i])
            rows.append({"head": head, "class": label, "support": support, "correct": correct,
                         "accuracy": correct / support if support else math.nan})
    return rows


def write_per_class(path, entries):
    """Write the per-class accuracies of one or more fits to a CSV file.

    Parameters
    ----------
    path : path-like
        The CSV file (written atomically), columns :data:`PER_CLASS_COLUMNS`.
    entries : list of (hidden, solver, confusion)
        A configuration and its :func:`head_confusion`.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PER_CLASS_COLUMNS)
    for hidden, solver, confusion in entries:
        for r in per_class_accuracies(confusion):
            acc = "" if math.isnan(r["accuracy"]) else round(r["accuracy"], 6)
            writer.writerow([fmt_hidden(hidden), solver, r["head"], r["class"], r["support"],
                             r["correct"], acc])
    atomic_write_text(path, buf.getvalue())


def head_baselines(y_train, y_test, heads):
    """Majority-class and chance accuracy of every head on the test rows.

    Parameters
    ----------
    y_train, y_test : array-like of shape (n_samples, n_heads)
        Labels of the training and test rows.
    heads : list of str

    Returns
    -------
    baselines : dict
        ``{head: {"majority": float, "chance": float, "majority_class": str}}``:
        the test accuracy of always predicting the most frequent training
        class (what :class:`sklearn.dummy.DummyClassifier` gives), and
        ``1 / n_classes`` over the classes seen in training or test.
    """
    y_train = np.asarray(y_train, dtype=object).reshape(len(y_train), -1).astype(str)
    y_test = np.asarray(y_test, dtype=object).reshape(len(y_test), -1).astype(str)
    out = {}
    for h, name in enumerate(heads):
        values, counts = np.unique(y_train[:, h], return_counts=True)
        top = values[np.argmax(counts)]  # ties: the first in sorted order, as DummyClassifier
        n_classes = len(set(y_train[:, h]) | set(y_test[:, h]))
        out[str(name)] = {"majority": float(np.mean(y_test[:, h] == top)) if len(y_test) else
                          math.nan, "chance": 1.0 / n_classes, "majority_class": str(top)}
    return out


def plot_confusion_matrices(out, confusion, *, prefix="confusion_", title=""):
    """One confusion-matrix figure per head, ``<prefix><head>.png`` (needs matplotlib).

    Parameters
    ----------
    out : path-like
        Folder to write to.
    confusion : dict
        From :func:`head_confusion`.
    prefix : str, optional
        File name prefix; default ``"confusion_"``.
    title : str, default=""
        Added to each figure's title (e.g. the configuration).

    Returns
    -------
    written : list of str
        The file names written (none without matplotlib).
    """
    plt = _pyplot()
    if plt is None:
        return []
    from sklearn.metrics import ConfusionMatrixDisplay

    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for head, cm in confusion.items():
            labels = cm["labels"]
            m = np.asarray(cm["matrix"], dtype=np.int64).reshape(len(labels), -1)
            k = len(labels)
            side = min(16.0, max(4.5, 0.32 * k + 2.5))
            fig, ax = plt.subplots(figsize=(side, side * 0.9))
            ConfusionMatrixDisplay(m, display_labels=labels).plot(
                ax=ax, include_values=k <= 12, xticks_rotation="vertical", colorbar=k <= 12,
                cmap="Blues")
            acc = np.trace(m) / m.sum() if m.sum() else math.nan
            ax.set_title(f"{head}: test accuracy {fmt_acc(acc)}" + (f" ({title})" if title else ""))
            if k > 12:
                ax.tick_params(labelsize=7)
            fig.tight_layout()
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in head)
            name = f"{prefix}{safe}.png"
            with atomic_path(Path(out) / name, suffix=".png") as tmp:
                fig.savefig(tmp, dpi=100)
            plt.close(fig)
            written.append(name)
    return written


def _pyplot():
    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def format_table(rows, study=False):
    """The study's table (Markdown) from result rows; ``study`` adds its own figures.

    Rows of several seeds (:func:`~skoffice31.study.run_seeds`) get a
    ``seed`` column after the solver.
    """
    seeded = any("seed" in r for r in rows)
    head = ["hidden", "solver", *(["seed"] if seeded else []), "domain acc", "object acc",
            "both right", "train s"]
    if study:
        head += ["study domain", "study object", "study s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [fmt_hidden(r["hidden"]), r["solver"],
                 *([str(r.get("seed", ""))] if seeded else []), fmt_acc(r["domain_acc"]),
                 fmt_acc(r["object_acc"]), fmt_acc(r["both_acc"]),
                 "-" if math.isnan(r["fit_seconds"]) else f"{r['fit_seconds']:.1f}"]
        if study:
            if "study_domain_acc" in r:
                cells += [f"{r['study_domain_acc']:.3f}", f"{r['study_object_acc']:.3f}",
                          f"{r['study_seconds']:,}"]
            else:
                cells += ["", "", ""]
        if r.get("status", "ok") != "ok":
            cells[1] += " (" + r["status"] + ")"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(out, rows, images, *, study=False, baselines=None):
    """``accuracy.png``, ``loss_curves.png``, ``samples.png``, confusion matrices.

    Needs matplotlib. The confusion matrices (``confusion_<head>.png``, see
    :func:`plot_confusion_matrices`) are those of the configuration with the
    best exact-match (both heads right) test accuracy.

    Parameters
    ----------
    out : path-like
        Folder to write to.
    rows : list of dict
        Result rows; failed ones are left out.
    images : ndarray
        The images the rows' ``samples`` refer to.
    study : bool, default=False
        Show the study's own accuracies next to ours.
    baselines : dict, default=None
        From :func:`head_baselines`: the accuracy figure draws each head's
        majority-class level (dashed) and chance level (dotted).

    Returns
    -------
    written : list of str
        The file names written (none without matplotlib or finished rows).
    """
    ok_rows = [r for r in rows if r.get("status") == "ok"]
    if not ok_rows:
        return []
    plt = _pyplot()
    if plt is None:
        return []
    figures = [("accuracy.png", lambda: _plot_accuracy(plt, ok_rows, study, baselines))]
    if any(r.get("loss_curve") for r in ok_rows):
        figures.append(("loss_curves.png", lambda: _plot_losses(plt, ok_rows)))
    if any(r.get("samples") for r in ok_rows):
        figures.append(("samples.png", lambda: _plot_samples(plt, ok_rows, images)))
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make in figures:
            fig = make()
            with atomic_path(Path(out) / name, suffix=".png") as tmp:
                fig.savefig(tmp, dpi=100)
            plt.close(fig)
            written.append(name)
    with_cm = [r for r in ok_rows if r.get("confusion")]
    if with_cm:
        best = max(with_cm, key=lambda r: -1.0 if math.isnan(r["both_acc"]) else r["both_acc"])
        written += plot_confusion_matrices(
            out, best["confusion"], title=f"hidden {fmt_hidden(best['hidden'])} {best['solver']}")
    return written


def _plot_accuracy(plt, rows, study, baselines=None):
    labels = [f"{fmt_hidden(r['hidden'])}\n{r['solver']}" for r in rows]
    series = [("domain", "domain_acc", "C0"), ("object", "object_acc", "C1"),
              ("both right", "both_acc", "C2")]
    if study:
        series += [("study domain", "study_domain_acc", "C0"),
                   ("study object", "study_object_acc", "C1")]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 2.0 * len(rows)) + 3.2, 4.2))
    x = np.arange(len(rows))
    for j, (name, key, color) in enumerate(series):
        vals = [r.get(key, np.nan) for r in rows]
        hatch = "//" if name.startswith("study") else None
        ax.bar(x + (j - (len(series) - 1) / 2) * width, vals, width, label=name, color=color,
               alpha=0.5 if hatch else 1.0, hatch=hatch, edgecolor="k" if hatch else None)
    for name, color in (("domain", "C0"), ("object", "C1")):
        base = (baselines or {}).get(name)
        if not base:
            continue
        ax.axhline(base["majority"], color=color, linestyle="--", linewidth=1,
                   label=f"{name} majority class ({base['majority']:.2f})")
        ax.axhline(base["chance"], color=color, linestyle=":", linewidth=1,
                   label=f"{name} chance ({base['chance']:.2f})")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy per configuration and head"
                 + (" (hatched: the study's Office-31 figures)" if study else ""), fontsize=10)
    # outside the axes, so that no bar or level line hides behind it
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _plot_losses(plt, rows):
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)
    panels = [("total loss", lambda r: r.get("loss_curve", []))] + [
        (f"{name} cross-entropy", lambda r, n=name: r.get("head_loss_curves", {}).get(n, []))
        for name in HEADS
    ]
    for ax, (title, get) in zip(axes, panels):
        for r in rows:
            curve = get(r)
            if len(curve):
                ax.plot(np.arange(1, len(curve) + 1), curve,
                        label=f"{fmt_hidden(r['hidden'])} {r['solver']}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("training loss")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def _plot_samples(plt, rows, images):
    k = max(len(r.get("samples", [])) for r in rows)
    fig, axes = plt.subplots(len(rows), k, figsize=(2.3 * k, 2.5 * len(rows)), squeeze=False)
    for i, r in enumerate(rows):
        for j in range(k):
            ax = axes[i, j]
            ax.axis("off")
            if j >= len(r.get("samples", [])):
                continue
            smp = r["samples"][j]
            img = np.asarray(images[smp["row"]])
            if img.dtype != np.uint8 and img.max() > 1.0:
                img = np.clip(img / 255.0, 0, 1)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            t, p = smp["true"], smp["predicted"]
            n_ok = (t[0] == p[0]) + (t[1] == p[1])
            color = {2: "green", 1: "darkorange", 0: "red"}[n_ok]
            ax.set_title(f"true {t[0]}, {t[1]}\npred {p[0]}, {p[1]}", fontsize=8, color=color)
            if j == 0:
                ax.text(-0.1, 0.5, f"{fmt_hidden(r['hidden'])}\n{r['solver']}", fontsize=8,
                        transform=ax.transAxes, ha="right", va="center")
    fig.suptitle("Sample test predictions (green: both heads right, orange: one, red: none)",
                 fontsize=9)
    fig.tight_layout()
    return fig
