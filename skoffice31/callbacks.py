"""Callbacks for :class:`~skoffice31.MultiHeadMLPClassifier`.

:class:`MultiHeadMLPClassifier` supports scikit-learn's callback API
(:mod:`sklearn.callback`): ``clf.set_callbacks(ProgressBar())`` shows its
epochs, and :class:`~sklearn.pipeline.Pipeline` and
:class:`~sklearn.model_selection.GridSearchCV` nest them under their own
tasks. Each fit is one task with one subtask per epoch (``task_name``
``"epoch"``).

:class:`EpochReporter` is the package's own small callback on that API: it
hands one plain record per epoch (loss of each head, elapsed seconds) to a
function of yours, which may live in another process.

Examples
--------
>>> import numpy as np
>>> from skoffice31 import MultiHeadMLPClassifier
>>> from skoffice31.callbacks import EpochReporter
>>> X = np.random.default_rng(0).normal(size=(40, 3))
>>> y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
>>> records = []
>>> clf = MultiHeadMLPClassifier(hidden=(4,), max_iter=3, tol=0, random_state=0)
>>> _ = clf.set_callbacks(EpochReporter(records.append, tag="toy")).fit(X, y)
>>> [(r["tag"], r["epoch"], r["max_iter"]) for r in records]
[('toy', 1, 3), ('toy', 2, 3), ('toy', 3, 3)]
>>> sorted(records[0]["head_losses"])
['head0', 'head1']
"""

from datetime import datetime, timezone

__all__ = ["EpochReporter"]


class EpochReporter:
    """Report every training epoch of a MultiHeadMLPClassifier to a function.

    A :class:`sklearn.callback.FitCallback`: set it with
    ``clf.set_callbacks(EpochReporter(report))``. After each epoch it calls
    ``report(record)`` with a dict:

    - ``epoch``: epochs done so far (``n_iter_``);
    - ``max_iter``: the estimator's ``max_iter``;
    - ``loss``: the epoch's mean training loss (``loss_curve_[-1]``);
    - ``head_losses``: head name -> the epoch's mean cross-entropy;
    - ``elapsed``: seconds since the fit began (since its first epoch's
      ``partial_fit`` when the epochs come one call each, as in
      :class:`~skoffice31.augmentation.AugmentedClassifier` with
      ``shift_each_epoch``);
    - ``tag``: the ``tag`` given here (to tell concurrent fits apart).

    The callback travels with the estimator: when the estimator is fitted in
    a worker process (``joblib``, ``GridSearchCV(n_jobs=2)``), ``report``
    runs there, so it must be picklable and deliver the record itself, e.g.
    the ``put`` method of a ``multiprocessing.Manager().Queue()`` that the
    parent process reads.

    Parameters
    ----------
    report : callable
        Called with one dict per epoch; its return value is ignored.
    tag : object, default=None
        Copied into every record.

    See Also
    --------
    sklearn.callback.ProgressBar : progress bars of nested estimators.
    """

    def __init__(self, report, tag=None):
        if not callable(report):
            raise TypeError(
                f"report must be a callable taking one dict, got {type(report).__name__}; "
                "pass e.g. a list's append method or a queue's put method"
            )
        self.report = report
        self.tag = tag
        self._first_epoch_began = {}  # id(estimator) -> when its epoch 1 began

    def setup(self, estimator, context):
        """Nothing to prepare (part of the callback protocol)."""

    def on_fit_task_begin(self, estimator, context):
        """Nothing to do when a task begins (part of the callback protocol)."""

    def on_fit_task_end(self, estimator, context, *, X=None):
        """Report the epoch that just ended; other tasks are ignored.

        The task begun after the last epoch is ended empty (no ``X``), like
        the last L-BFGS iteration of scikit-learn's LogisticRegression, and
        is not reported.

        Returns
        -------
        stop : bool
            Always ``False``: reporting never stops the fit.
        """
        curve = getattr(estimator, "loss_curve_", None)
        if context.task_name != "epoch" or X is None or not curve:
            return False
        started = context.parent.init_time if context.parent is not None else context.init_time
        epoch = int(estimator.n_iter_)
        if epoch == 1:  # a new fit, or the first of one-epoch partial_fit calls
            self._first_epoch_began[id(estimator)] = started
        else:
            started = min(started, self._first_epoch_began.get(id(estimator), started))
        heads = getattr(estimator, "head_loss_curves_", {}) or {}
        self.report(
            {
                "tag": self.tag,
                "epoch": epoch,
                "max_iter": int(estimator.max_iter),
                "loss": float(curve[-1]),
                "head_losses": {str(k): float(v[-1]) for k, v in heads.items() if len(v)},
                "elapsed": (datetime.now(timezone.utc) - started).total_seconds(),
            }
        )
        return False

    def teardown(self, estimator, context):
        """Nothing to release (part of the callback protocol)."""

    def __repr__(self):
        return f"{type(self).__name__}(report={self.report!r}, tag={self.tag!r})"
