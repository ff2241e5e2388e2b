"""A process-wide hook called after every training epoch.

The command line uses it to show progress (configuration, epoch, loss,
elapsed time, ETA) while ``GridSearchCV`` fits estimators in this process.
It is deliberately not an estimator parameter: a parameter would take part
in ``clone``, ``get_params`` and pickling, a display callback should not.

Examples
--------
>>> from skoffice31._progress import epoch_callback
>>> seen = []
>>> with epoch_callback(seen.append):
...     pass  # fit estimators here; ``seen`` gets one dict per epoch
"""

from contextlib import contextmanager

_CALLBACKS = []


@contextmanager
def epoch_callback(fn):
    """Call ``fn(info)`` after each epoch of every fit inside the block.

    ``info`` is a dict with keys ``epoch`` (1-based, equal to ``n_iter_``),
    ``max_iter``, ``loss`` (mean training loss of the epoch), ``head_losses``
    (dict head name -> cross-entropy), ``elapsed`` (seconds since the fit
    started) and ``estimator``.

    Parameters
    ----------
    fn : callable
        Receives the info dict; its return value is ignored.
    """
    _CALLBACKS.append(fn)
    try:
        yield fn
    finally:
        _CALLBACKS.remove(fn)


def report_epoch(info):
    """Send ``info`` to every registered callback (used by the estimator)."""
    for fn in list(_CALLBACKS):
        fn(info)


def has_callbacks():
    """Whether any callback is registered (saves building the info dict)."""
    return bool(_CALLBACKS)
