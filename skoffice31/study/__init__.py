"""The Office-31 two-head study as a library.

The study trains a two-head :class:`~skoffice31.MultiHeadMLPClassifier`
(domain: 3 classes, object: 31) on raw 100x100 RGB pixels for a grid of
hidden layouts x solvers. This module holds everything that defines it --
the presets, the study's own published table, the default grid, a frozen
settings object -- and the functions that run it: :func:`load_study_data`,
:func:`fit_and_evaluate` (one configuration -> one result row) and
:func:`run_study` (a grid, longest fit first, rows streamed as they finish).
The ``skoffice31 reproduce`` command, the benchmarks and the examples are
thin layers over it.

It stays a grid of scikit-learn estimators: the same numbers come out of
:class:`~sklearn.model_selection.GridSearchCV` with
``settings.param_grid()``, ``cv=data.cv()`` and the scorers of
:mod:`skoffice31.metrics`.

Examples
--------
>>> from skoffice31.study import StudySettings, load_study_data, run_study
>>> settings = StudySettings.from_preset("study", epochs=1, hidden=[(4,)],
...                                      solvers=["sgd"], size=(8, 8))
>>> data = load_study_data(settings)  # the built-in stand-in for Office-31
>>> rows = list(run_study(settings, data, n_samples=1))
>>> [(r["hidden"], r["solver"], r["status"], len(r["loss_curve"])) for r in rows]
[([4], 'sgd', 'ok', 1)]
"""

from ._display import StudyProgress
from ._output import (
    CSV_COLUMNS,
    PER_CLASS_COLUMNS,
    format_table,
    head_baselines,
    head_confusion,
    per_class_accuracies,
    plot_confusion_matrices,
    plot_results,
    run_info,
    write_per_class,
    write_results,
)
from ._run import (
    LAYOUTS,
    StudyData,
    detect_layout,
    empty_row,
    fit_and_evaluate,
    load_study_data,
    order_by_cost,
    run_study,
)
from ._seeds import aggregate_seeds, format_seed_table, resplit, run_seeds
from ._settings import (
    BUILTIN_SIZE,
    DEFAULT_HIDDEN,
    DEFAULT_SOLVERS,
    HEADS,
    OFFICE31_SIZE,
    PRESETS,
    STUDY_RESULTS,
    TUNED_HIDDEN,
    Configuration,
    StudySettings,
    expected_cost,
    final_classifier,
)

__all__ = [
    "BUILTIN_SIZE",
    "CSV_COLUMNS",
    "DEFAULT_HIDDEN",
    "DEFAULT_SOLVERS",
    "HEADS",
    "LAYOUTS",
    "OFFICE31_SIZE",
    "PER_CLASS_COLUMNS",
    "PRESETS",
    "STUDY_RESULTS",
    "TUNED_HIDDEN",
    "Configuration",
    "StudyData",
    "StudyProgress",
    "StudySettings",
    "aggregate_seeds",
    "detect_layout",
    "empty_row",
    "expected_cost",
    "final_classifier",
    "fit_and_evaluate",
    "format_seed_table",
    "format_table",
    "head_baselines",
    "head_confusion",
    "load_study_data",
    "order_by_cost",
    "per_class_accuracies",
    "plot_confusion_matrices",
    "plot_results",
    "resplit",
    "run_info",
    "run_seeds",
    "run_study",
    "write_per_class",
    "write_results",
]
