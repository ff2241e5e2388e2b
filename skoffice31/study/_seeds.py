"""The study over several seeds: one split and one initialisation per seed, mean and spread."""

import dataclasses
import math

import numpy as np

from ._output import fmt_hidden
from ._settings import HEADS

__all__ = ["SEED_METRICS", "aggregate_seeds", "format_seed_table", "resplit", "run_seeds"]

#: The measured columns of a result row that :func:`aggregate_seeds` summarises.
SEED_METRICS = ("domain_acc", "object_acc", "both_acc", "train_domain_acc",
                "train_object_acc", "train_both_acc", "fit_seconds")


def resplit(data, settings):
    """``data`` with the train/test split of ``settings.seed`` (the images are reused).

    Parameters
    ----------
    data : StudyData
        From :func:`~skoffice31.study.load_study_data` (any seed).
    settings : StudySettings
        Split fractions and seed.

    Returns
    -------
    data : StudyData
        The same arrays, with the ``train`` and ``test`` rows that
        :func:`~skoffice31.study.load_study_data` gives for these settings.
    """
    from sklearn.model_selection import ShuffleSplit

    cv = ShuffleSplit(n_splits=1, train_size=settings.train_size,
                      test_size=settings.test_size, random_state=settings.seed)
    train, test = next(cv.split(data.X, data.y))
    return dataclasses.replace(data, train=train, test=test)


def run_seeds(settings, data, *, configs=None, n_jobs=None, n_samples=3, progress=None,
              on_seed=None):
    """Run the grid once per seed of ``settings.seed_values()``; yield every row.

    For each seed, the split (:func:`resplit`) and the weights
    (``random_state``) both follow the seed; the grid of that seed runs with
    :func:`~skoffice31.study.run_study` (longest fit first, ``n_jobs``
    configurations at once), then the next seed starts.

    Parameters
    ----------
    settings : StudySettings
        ``seeds`` seeds from ``seed`` on.
    data : StudyData
        From :func:`~skoffice31.study.load_study_data`.
    configs, n_jobs, n_samples, progress
        As for :func:`~skoffice31.study.run_study`, for every seed.
    on_seed : callable, default=None
        Called as ``on_seed(seed, settings_of_seed, data_of_seed)`` before
        the grid of each seed starts (e.g. to start a new progress display).

    Yields
    ------
    row : dict
        A row of :func:`~skoffice31.study.fit_and_evaluate` with an extra
        ``seed`` key, in the order they finish (seed by seed).
    """
    from ._run import run_study

    for seed in settings.seed_values():
        one = dataclasses.replace(settings, seed=seed, seeds=1)
        seed_data = resplit(data, one)
        if on_seed is not None:
            on_seed(seed, one, seed_data)
        for row in run_study(one, seed_data, configs=configs, n_jobs=n_jobs,
                             n_samples=n_samples, progress=progress):
            row["seed"] = seed
            yield row


def aggregate_seeds(rows):
    """Mean and standard deviation of every configuration over its seeds.

    Parameters
    ----------
    rows : list of dict
        Result rows with a ``seed`` key (:func:`run_seeds`); failed rows
        (``status`` not ``"ok"``) are counted, not averaged.

    Returns
    -------
    summary : list of dict
        One dict per configuration, in the order of its first row:
        ``hidden``, ``solver``, ``seeds`` (of the successful rows),
        ``n_seeds``, ``n_failed``, and for every metric of
        :data:`SEED_METRICS` ``<metric>_mean`` and ``<metric>_std`` (the
        sample standard deviation, ``ddof=1``; NaN with fewer than two
        successful seeds, both NaN with none).

    Examples
    --------
    >>> rows = [{"hidden": [10], "solver": "sgd", "seed": s, "status": "ok",
    ...          "domain_acc": a, "object_acc": 0.5, "both_acc": 0.4,
    ...          "train_domain_acc": 1.0, "train_object_acc": 1.0,
    ...          "train_both_acc": 1.0, "fit_seconds": 2.0}
    ...         for s, a in [(0, 0.8), (1, 0.9)]]
    >>> s = aggregate_seeds(rows)[0]
    >>> round(s["domain_acc_mean"], 3), round(s["domain_acc_std"], 4), s["seeds"]
    (0.85, 0.0707, [0, 1])
    """
    groups = {}
    for row in rows:
        key = (tuple(int(h) for h in row["hidden"]), row["solver"])
        groups.setdefault(key, []).append(row)
    summary = []
    for (hidden, solver), group in groups.items():
        ok = [r for r in group if r.get("status", "ok") == "ok"]
        out = {"hidden": list(hidden), "solver": solver,
               "seeds": [r.get("seed") for r in ok], "n_seeds": len(ok),
               "n_failed": len(group) - len(ok)}
        for metric in SEED_METRICS:
            values = np.array([r[metric] for r in ok], dtype=float)
            out[f"{metric}_mean"] = float(values.mean()) if len(values) else math.nan
            out[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        summary.append(out)
    return summary


def _pm(mean, std, digits=3):
    if math.isnan(mean):
        return "-"
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_seed_table(summary):
    """The table (Markdown) of :func:`aggregate_seeds`: mean ± std over the seeds.

    Parameters
    ----------
    summary : list of dict
        From :func:`aggregate_seeds`.

    Returns
    -------
    table : str
    """
    head = ["hidden", "solver", *(f"{h} acc" for h in HEADS), "both right", "train s",
            "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for s in summary:
        seeds = f"{s['n_seeds']}" + (f" ({s['n_failed']} failed)" if s["n_failed"] else "")
        cells = [fmt_hidden(s["hidden"]), s["solver"],
                 *(_pm(s[f"{h}_acc_mean"], s[f"{h}_acc_std"]) for h in HEADS),
                 _pm(s["both_acc_mean"], s["both_acc_std"]),
                 _pm(s["fit_seconds_mean"], s["fit_seconds_std"], 1), seeds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
