"""Hand the cores of finished fits to the fits still running.

:func:`~skoffice31.study.run_study` fits ``n_jobs`` configurations at
once, longest first. In a worker process of a 2-core machine running two
jobs, BLAS -- and so the training plan -- gets one core, so each fit
updates its weights on one thread. Once the short fits are done, the long
one runs alone and would keep that one thread: on the real photos the
``(384, 192, 64, 32, 10)`` Adam fit ran 13 s per epoch alone on one thread
and 8.5 s on two (``benchmarks/results/study_timing_intel_update_threads``,
2-core Intel Xeon).

:class:`FreeCores` is the runner's side: a small file in a temporary folder
holding how many cores each running fit may use, rewritten whenever a fit
finishes. :class:`FollowFreeCores` is a callback (the protocol of
:mod:`sklearn.callback`) set on each fit; at the end of every epoch it reads
the file and, when it holds a number, calls the estimator's
``_share_update_threads`` (which changes the plan only when the number
differs from its threads). Reading is a file read per epoch; a worker on
another machine (dask) is never given one.

The threads change only how the update is shared out (the kernels' row
parts and the NumPy path's element-wise updates do not depend on it), so
the fitted weights do not depend on when a fit was given a second core.
``SKOFFICE31_UPDATE_THREADS``, when set, wins: the callback then does
nothing.
"""

import os
import shutil
import tempfile
from pathlib import Path

from .._fileio import atomic_write_text
from .._kernels import THREADS_ENV_VAR
from .._plan import MAX_UPDATE_THREADS

__all__ = ["FollowFreeCores", "FreeCores"]


class FreeCores:
    """How many cores each running fit of a parallel run may use.

    A context manager: entering creates the file, leaving removes it.

    Parameters
    ----------
    n_fits : int
        Fits of the run.
    n_workers : int
        Fits at once (the effective ``n_jobs``).
    n_cores : int, default=None
        Cores of the machine; default: :func:`joblib.cpu_count`.
    """

    def __init__(self, n_fits, n_workers, n_cores=None):
        import joblib

        self.n_left = int(n_fits)
        self.n_workers = max(1, int(n_workers))
        self.n_cores = max(1, int(joblib.cpu_count() if n_cores is None else n_cores))
        self._dir = None

    def __enter__(self):
        self._dir = Path(tempfile.mkdtemp(prefix="skoffice31-cores-"))
        self.path = self._dir / "threads"
        self.path.write_text("")  # empty: the fits keep their own plan
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self._dir, ignore_errors=True)
        return False

    def threads(self):
        """Cores per running fit: ``n_cores // running``, at most
        :data:`~skoffice31._plan.MAX_UPDATE_THREADS`; ``None`` while every
        worker is busy (each fit then keeps the cores its plan found)."""
        running = min(self.n_left, self.n_workers)
        if running == 0 or running == self.n_workers:
            return None
        return max(1, min(MAX_UPDATE_THREADS, self.n_cores // running))

    def fit_done(self):
        """One fit finished: write the new share (when there is one)."""
        self.n_left = max(0, self.n_left - 1)
        share = self.threads()
        if share is not None:
            atomic_write_text(self.path, str(share))

    def follower(self):
        """The callback to set on each fit."""
        return FollowFreeCores(str(self.path))


class FollowFreeCores:
    """A fit callback giving the estimator the cores :class:`FreeCores` writes.

    Parameters
    ----------
    path : str
        The file of :class:`FreeCores`. A missing, empty or unreadable file
        changes nothing.
    """

    def __init__(self, path):
        self.path = path

    def setup(self, estimator, context):
        """Nothing to prepare (part of the callback protocol)."""

    def on_fit_task_begin(self, estimator, context):
        """Nothing to do when a task begins (part of the callback protocol)."""

    def on_fit_task_end(self, estimator, context, *, X=None):
        """After an epoch, apply a new share of the cores.

        Returns
        -------
        stop : bool
            Always ``False``.
        """
        if context.task_name != "epoch" or os.environ.get(THREADS_ENV_VAR, "").strip():
            return False
        try:
            text = Path(self.path).read_text().strip()
        except OSError:
            return False
        if not text.isdigit():
            return False
        share_threads = getattr(estimator, "_share_update_threads", None)
        if share_threads is not None:  # a no-op when the plan has these threads already
            share_threads(int(text))
        return False

    def teardown(self, estimator, context):
        """Nothing to release (part of the callback protocol)."""

    def __repr__(self):
        return f"{type(self).__name__}(path={self.path!r})"
