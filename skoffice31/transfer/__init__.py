"""Transfer between domains: train for a new domain from few or no labels.

A model trained on one domain (Office-31's *amazon* product shots) is
reused for another (its *dslr* or *webcam* photos). This module defines the
six Office-31 tasks (:data:`OFFICE31_TASKS`; on the built-in
:func:`~skoffice31.datasets.load_office_digits` data its ``product``,
``dslr`` and ``webcam`` styles), the k-shot split of the target
(:func:`few_shot_split`: ``k`` labelled target images per class, tested on
the rest), the methods (:data:`METHODS`: source only, target only,
fine-tuning all layers or the output layer only, source and target pooled,
a domain-adversarial head, and with :mod:`skada` installed CORAL-aligned
inputs followed by our network) and :func:`run_transfer`, which runs them
over tasks, numbers of shots and seeds and yields one row per fit.
``skoffice31 transfer`` is a thin layer over it.

Examples
--------
>>> from skoffice31.datasets import load_office_digits
>>> from skoffice31.transfer import default_estimator, run_transfer, summarize_transfer
>>> data = load_office_digits(size=(8, 8))
>>> rows = list(run_transfer(data.data, data.target[:, 0], data.target[:, 1],
...                          tasks=[("product", "dslr")], shots=[0, 1], seeds=1,
...                          methods=["source only", "target only"],
...                          estimator=default_estimator(max_iter=2), few_max_iter=2,
...                          features="pixels"))
>>> [(r["task"], r["k"], r["method"]) for r in rows]
[('P->D', 0, 'source only'), ('P->D', 1, 'source only'), ('P->D', 1, 'target only')]
"""

from ._methods import (
    METHODS,
    SKADA_HINT,
    MethodContext,
    TransferMethod,
    TransferProblem,
    default_methods,
    skada_available,
)
from ._data import BUILTIN_TRANSFER_SIZE, OFFICE31_TRANSFER_SIZE, load_transfer_data
from ._folder import finish_transfer, run_transfer_to_folder, transfer_info
from ._output import (
    CSV_COLUMNS,
    format_transfer_table,
    plot_transfer,
    summarize_transfer,
    write_transfer,
)
from ._progress import TransferProgress
from ._run import FEATURES, default_estimator, make_features, plan_transfer, run_transfer
from ._split import check_shots, few_shot_split
from ._tasks import (
    BUILTIN_DOMAINS,
    OFFICE31_DOMAINS,
    OFFICE31_TASKS,
    check_task,
    task_label,
    transfer_tasks,
)

__all__ = [
    "BUILTIN_DOMAINS",
    "BUILTIN_TRANSFER_SIZE",
    "CSV_COLUMNS",
    "FEATURES",
    "METHODS",
    "OFFICE31_DOMAINS",
    "OFFICE31_TASKS",
    "OFFICE31_TRANSFER_SIZE",
    "SKADA_HINT",
    "MethodContext",
    "TransferMethod",
    "TransferProblem",
    "TransferProgress",
    "check_shots",
    "check_task",
    "default_estimator",
    "default_methods",
    "few_shot_split",
    "finish_transfer",
    "format_transfer_table",
    "load_transfer_data",
    "make_features",
    "plan_transfer",
    "plot_transfer",
    "run_transfer",
    "run_transfer_to_folder",
    "skada_available",
    "summarize_transfer",
    "task_label",
    "transfer_info",
    "transfer_tasks",
    "write_transfer",
]
