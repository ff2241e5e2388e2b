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

__all__ = ["CSV_COLUMNS", "format_table", "plot_results", "run_info", "write_results"]

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


def write_results(out, info, rows, *, partial=False):
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
    """
    out = Path(out)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = []
        for col in CSV_COLUMNS:
            v = row.get(col, "")
            if col == "hidden":
                v = fmt_hidden(v)
            elif isinstance(v, float):
                v = "" if math.isnan(v) else round(v, 6)
            values.append(v)
        writer.writerow(values)
    atomic_write_text(out / "results.csv", buf.getvalue())
    doc = {k: v for k, v in info.items() if k != "started_time"}
    if partial:
        doc["partial"] = True
    doc["results"] = [_jsonable(r) for r in rows]
    atomic_write_text(out / "results.json", json.dumps(doc, indent=2) + "\n")


def format_table(rows, study=False):
    """The study's table (Markdown) from result rows; ``study`` adds its own figures."""
    head = ["hidden", "solver", "domain acc", "object acc", "both right", "train s"]
    if study:
        head += ["study domain", "study object", "study s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [fmt_hidden(r["hidden"]), r["solver"], fmt_acc(r["domain_acc"]),
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


def plot_results(out, rows, images, *, study=False):
    """``accuracy.png``, ``loss_curves.png`` and ``samples.png`` (needs matplotlib).

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

    Returns
    -------
    written : list of str
        The file names written (none without matplotlib or finished rows).
    """
    ok_rows = [r for r in rows if r.get("status") == "ok"]
    if not ok_rows:
        return []
    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    figures = [("accuracy.png", lambda: _plot_accuracy(plt, ok_rows, study))]
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
    return written


def _plot_accuracy(plt, rows, study):
    labels = [f"{fmt_hidden(r['hidden'])}\n{r['solver']}" for r in rows]
    series = [("domain", "domain_acc", "C0"), ("object", "object_acc", "C1"),
              ("both right", "both_acc", "C2")]
    if study:
        series += [("study domain", "study_domain_acc", "C0"),
                   ("study object", "study_object_acc", "C1")]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 2.0 * len(rows)), 4.2))
    x = np.arange(len(rows))
    for j, (name, key, color) in enumerate(series):
        vals = [r.get(key, np.nan) for r in rows]
        hatch = "//" if name.startswith("study") else None
        ax.bar(x + (j - (len(series) - 1) / 2) * width, vals, width, label=name, color=color,
               alpha=0.5 if hatch else 1.0, hatch=hatch, edgecolor="k" if hatch else None)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.18)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy per configuration and head"
                 + (" (hatched: the study's Office-31 figures)" if study else ""))
    ax.legend(fontsize="small", ncol=len(series), loc="upper center")
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
