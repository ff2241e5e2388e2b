"""A transfer run's outputs: summary, table, transfer.csv / transfer.json, figure."""

import json
import math
from pathlib import Path

import numpy as np

from .._fileio import atomic_path, atomic_write_text
from ..study._output import _pyplot, csv_text

__all__ = ["CSV_COLUMNS", "format_transfer_table", "plot_transfer", "summarize_transfer",
           "write_transfer"]

#: Columns of ``transfer.csv``: one row per task, k, method and seed.
CSV_COLUMNS = ["task", "source", "target", "k", "method", "seed", "accuracy", "fit_seconds",
               "n_labelled", "n_test", "status"]


def _ordered(values):
    return list(dict.fromkeys(values))


def _method_order(summary):
    """Methods in the order of the run at its largest k (where every method runs)."""
    return _ordered(e["method"] for e in sorted(summary, key=lambda e: -e["k"]))


def summarize_transfer(rows):
    """Mean and standard deviation over seeds of each (task, k, method).

    Parameters
    ----------
    rows : iterable of dict
        Rows of :func:`~skoffice31.transfer.run_transfer`.

    Returns
    -------
    summary : list of dict
        ``task``, ``k``, ``method``, ``n_seeds`` (successful ones),
        ``mean``, ``std`` (population, over seeds; NaN without a success)
        and ``fit_seconds`` (mean), in the order of the rows; then, when there
        are several tasks, the same with ``task="mean"``: the mean over tasks
        of each seed's accuracy (for a (k, method) that ran on every task).
    """
    rows = [r for r in rows]
    groups = {}
    for r in rows:
        groups.setdefault((r["task"], r["k"], r["method"]), []).append(r)
    out = []
    for (task, k, method), members in groups.items():
        ok = [r for r in members if r.get("status") == "ok"]
        acc = np.array([r["accuracy"] for r in ok], dtype=float)
        sec = np.array([r["fit_seconds"] for r in ok], dtype=float)
        out.append(dict(task=task, k=k, method=method, n_seeds=len(ok),
                        mean=float(acc.mean()) if len(ok) else math.nan,
                        std=float(acc.std()) if len(ok) else math.nan,
                        fit_seconds=float(sec.mean()) if len(ok) else math.nan))
    tasks = _ordered(r["task"] for r in rows)
    if len(tasks) > 1:
        for k, method in _ordered((r["k"], r["method"]) for r in rows):
            per_seed = {}
            for r in rows:
                if r["k"] == k and r["method"] == method and r.get("status") == "ok":
                    per_seed.setdefault(r["seed"], {})[r["task"]] = r
            # a seed counts when its accuracy is known on every task
            full = [v for v in per_seed.values() if len(v) == len(tasks)]
            acc = np.array([np.mean([r["accuracy"] for r in v.values()]) for v in full])
            sec = np.array([np.mean([r["fit_seconds"] for r in v.values()]) for v in full])
            out.append(dict(task="mean", k=k, method=method, n_seeds=len(full),
                            mean=float(acc.mean()) if full else math.nan,
                            std=float(acc.std()) if full else math.nan,
                            fit_seconds=float(sec.mean()) if full else math.nan))
    return out


def _cell(entry):
    if entry is None:
        return ""
    if entry["n_seeds"] == 0:
        return "failed"
    return f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def format_transfer_table(summary):
    """The summary as a Markdown table: one row per task and method, one column per k.

    Cells are ``mean ± std`` over seeds; a method that does not apply to a
    ``k`` (it needs labelled target images) has an empty cell.

    Parameters
    ----------
    summary : list of dict
        From :func:`summarize_transfer`.

    Returns
    -------
    table : str
    """
    shots = sorted(_ordered(e["k"] for e in summary))
    tasks = _ordered(e["task"] for e in summary)
    methods = _method_order(summary)
    at = {(e["task"], e["k"], e["method"]): e for e in summary}
    header = ["task", "method"] + [f"k={k}" for k in shots]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for task in tasks:
        for method in methods:
            cells = [_cell(at.get((task, k, method))) for k in shots]
            if any(cells):
                lines.append("| " + " | ".join([task, method, *cells]) + " |")
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_transfer(out, info, rows, *, partial=False):
    """Write ``transfer.csv`` (the rows) and ``transfer.json`` (info, rows, summary).

    Each file is replaced in one step, so a reader never sees half a file;
    call it after every finished fit.

    Parameters
    ----------
    out : path-like
        An existing folder.
    info : dict
        Provenance (command, data, settings, ...), written as is.
    rows : list of dict
        Rows of :func:`~skoffice31.transfer.run_transfer`.
    partial : bool, default=False
        Mark the JSON as a snapshot of a run still going on.

    Returns
    -------
    files : list of str
        ``["transfer.csv", "transfer.json"]``.
    """
    out = Path(out)
    atomic_write_text(out / "transfer.csv", csv_text(rows, CSV_COLUMNS))
    doc = dict(_jsonable(info))
    if partial:
        doc["partial"] = True
    doc["results"] = _jsonable(list(rows))
    doc["summary"] = _jsonable(summarize_transfer(rows))
    atomic_write_text(out / "transfer.json", json.dumps(doc, indent=2) + "\n")
    return ["transfer.csv", "transfer.json"]



def plot_transfer(out, summary, *, name="transfer.png"):
    """Accuracy on the target against labelled target images per class, one line per method.

    One panel per task (and one for the mean over tasks), error bars the
    standard deviation over seeds. Methods defined at ``k = 0`` only
    without labels are drawn from ``k = 0``; the others from the first
    ``k > 0``.

    Parameters
    ----------
    out : path-like
        An existing folder.
    summary : list of dict
        From :func:`summarize_transfer`.
    name : str, default="transfer.png"

    Returns
    -------
    files : list of str
        ``[name]``, or ``[]`` when matplotlib is not installed (the ``plot``
        extra).
    """
    plt = _pyplot()
    if plt is None:
        return []
    tasks = _ordered(e["task"] for e in summary)
    methods = _method_order(summary)
    shots = sorted(_ordered(e["k"] for e in summary))
    at = {(e["task"], e["k"], e["method"]): e for e in summary}
    n = len(tasks)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False,
                             sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, task in zip(axes.flat, tasks):
        for j, method in enumerate(methods):
            pts = [(k, at[(task, k, method)]) for k in shots
                   if (task, k, method) in at and at[(task, k, method)]["n_seeds"]]
            if not pts:
                continue
            ks = [k for k, _ in pts]
            ax.errorbar(ks, [e["mean"] for _, e in pts], yerr=[e["std"] for _, e in pts],
                        marker="o", ms=4, capsize=2, color=colours(j % 10),
                        label=method if ax is axes.flat[0] else None)
        ax.set_title(task)
        ax.set_xticks(shots)
        ax.set_xlabel("labelled target images per class")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("target accuracy")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.legend(loc="lower center", ncol=min(len(methods), 4), fontsize="small",
               bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.06 + 0.03 * math.ceil(len(methods) / 4) / rows, 1, 1))
    with atomic_path(Path(out) / name, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return [name]
