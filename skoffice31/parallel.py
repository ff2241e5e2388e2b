"""Run scikit-learn searches on a dask cluster through joblib.

This module is the only place in skoffice31 that touches :mod:`distributed`,
and it imports it lazily: ``import skoffice31`` never needs dask.  The one
public entry point is :func:`parallel_context`, a context manager used around
a :class:`~sklearn.model_selection.GridSearchCV` (or anything else that uses
joblib)::

    from skoffice31.parallel import parallel_context

    with parallel_context("local:2", scatter=[X, y]):
        search.fit(X, y)                      # runs on 2 local worker processes

    with parallel_context("tcp://10.0.0.5:8786", scatter=[X, y]):
        search.fit(X, y)                      # runs on an existing cluster

Nothing here is a scheduler of its own: scheduling, retries after a lost
worker and data placement are dask's; the joblib ``"dask"`` backend is what
scikit-learn documents for scaling a search out.
"""

# Owner: dask helper (issue 6); public as skoffice31.parallel since issue 9.

import asyncio
import contextlib
import logging
import os
import re

from skoffice31 import _environment

__all__ = [
    "DistributedError",
    "SchedulerConnectionError",
    "SchedulerLostError",
    "as_scheduler_lost",
    "parallel_context",
    "parse_scheduler",
]

#: Environment variables that size the BLAS / OpenMP thread pools.
BLAS_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: Environment variable overriding the default number of BLAS threads per
#: worker (default 1).
BLAS_THREADS_ENV = "SKOFFICE31_WORKER_BLAS_THREADS"

_INSTALL_HINT = (
    "running on a dask cluster needs the optional 'distributed' package; "
    "install it with: pip install 'skoffice31[distributed]'"
)

_SCHEDULER_SYNTAX = "expected 'tcp://HOST:PORT' (an existing dask scheduler) or 'local:N' (N local worker processes)"


class DistributedError(RuntimeError):
    """Base class of the errors raised by :func:`parallel_context`."""


class SchedulerConnectionError(DistributedError):
    """The dask scheduler could not be reached, or it has no workers."""


class SchedulerLostError(DistributedError):
    """The connection to the dask scheduler was lost while work was running.

    Results that were already returned to the caller (for example the
    configurations a command line run has already written out) are valid;
    the computation that was running when the scheduler went away is not.
    """


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching
        raise ImportError(_INSTALL_HINT) from exc
    return distributed


def parse_scheduler(scheduler):
    """Parse a ``--scheduler`` value.

    Parameters
    ----------
    scheduler : str
        ``"tcp://HOST:PORT"`` for an existing dask scheduler (``tls://`` is
        accepted too), or ``"local:N"`` for a cluster of ``N`` worker
        processes on this machine (plain ``"local"``: one per CPU).

    Returns
    -------
    kind : {"address", "local"}
    value : str or int
        The scheduler address, or the number of local workers.

    Raises
    ------
    ValueError
        If the value has neither form; the message is one line, fit for a
        command line error.
    """
    if not isinstance(scheduler, str):
        raise ValueError(f"invalid scheduler {scheduler!r}: {_SCHEDULER_SYNTAX}")
    spec = scheduler.strip()
    match = re.fullmatch(r"local(?::(\d+))?", spec)
    if match:
        n_workers = int(match.group(1)) if match.group(1) else (os.cpu_count() or 1)
        if n_workers < 1:
            raise ValueError(f"invalid scheduler {scheduler!r}: 'local:N' needs N >= 1")
        return "local", n_workers
    match = re.fullmatch(r"(tcp|tls)://(\[[0-9a-fA-F:.]+\]|[^\s/:]+):(\d{1,5})/?", spec)
    if match and 0 < int(match.group(3)) < 65536:
        return "address", spec.rstrip("/")
    raise ValueError(f"invalid scheduler {scheduler!r}: {_SCHEDULER_SYNTAX}")


def _default_blas_threads():
    return _environment.integer(
        BLAS_THREADS_ENV,
        minimum=1,
        default=1,
        hint="give a positive number of BLAS threads per worker, or unset it for 1.",
    )


def _make_blas_plugin_class():
    from distributed import WorkerPlugin

    class _BlasThreadsPlugin(WorkerPlugin):
        """Cap the BLAS/OpenMP thread pools of every worker, now and after restarts.

        The environment variables are set for libraries loaded later, and
        :func:`threadpoolctl.threadpool_limits` resizes the pools of those
        already loaded.  ``teardown`` (run when the plugin is unregistered at
        the end of :func:`parallel_context`) restores the previous state, so a
        shared cluster is left as it was found.
        """

        name = "skoffice31-blas-threads"

        def __init__(self, n_threads):
            self.n_threads = int(n_threads)
            self._limiter = None
            self._old_env = {}

        def setup(self, worker):
            from threadpoolctl import threadpool_limits

            self._old_env = {var: os.environ.get(var) for var in BLAS_ENV_VARS}
            for var in BLAS_ENV_VARS:
                os.environ[var] = str(self.n_threads)
            self._limiter = threadpool_limits(limits=self.n_threads)

        def teardown(self, worker):
            if self._limiter is not None:
                self._limiter.restore_original_limits()
                self._limiter = None
            for var, value in self._old_env.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value

    _BlasThreadsPlugin.__module__ = __name__
    _BlasThreadsPlugin.__qualname__ = "_BlasThreadsPlugin"
    return _BlasThreadsPlugin


def __getattr__(name):
    # The worker plugin class subclasses distributed.WorkerPlugin, so it is
    # created on first use (keeping `distributed` a lazy import) and cached
    # here; pickle finds it by name on the workers the same way.
    if name == "_BlasThreadsPlugin":
        cls = _make_blas_plugin_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# (client, address) of the parallel_context blocks active in this process.
_ACTIVE = []


def _is_scheduler_loss(client, exc):
    """Whether ``exc`` means the scheduler went away (not a failing task)."""
    from distributed.comm.core import CommClosedError

    if getattr(exc, "reason", None) == "scheduler-connection-lost":
        return True  # FutureCancelledError of the tasks that were running
    if isinstance(exc, CommClosedError):
        return True
    if client.status not in ("running", "newly-created"):
        return True
    scheduler_comm = getattr(client, "scheduler_comm", None)
    comm = getattr(scheduler_comm, "comm", None)
    return comm is not None and comm.closed()


def _lost_error(address, exc):
    err = SchedulerLostError(f"lost the connection to the dask scheduler at {address}")
    err.__cause__ = exc
    return err


def as_scheduler_lost(exc):
    """Turn an exception caused by a lost dask scheduler into :class:`SchedulerLostError`.

    For code that catches exceptions *inside* a :func:`parallel_context`
    block (the context manager itself converts those that escape it): when
    the scheduler of an active context has gone away, returns a
    :class:`SchedulerLostError` (with ``exc`` as its ``__cause__``);
    otherwise returns ``exc`` unchanged.  Never raises.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    BaseException
    """
    if isinstance(exc, SchedulerLostError) or not isinstance(exc, Exception):
        return exc
    for client, address in reversed(_ACTIVE):
        try:
            lost = _is_scheduler_loss(client, exc)
        except Exception:  # pragma: no cover - defensive
            lost = False
        if lost:
            return _lost_error(address, exc)
    return exc


@contextlib.contextmanager
def parallel_context(
    scheduler, n_jobs=None, *, scatter=None, blas_threads=None, timeout=30, silence_logs=logging.CRITICAL
):
    """Make joblib (and so scikit-learn's ``n_jobs``) run on a dask cluster.

    Parameters
    ----------
    scheduler : str or None
        ``None``: nothing changes (the context is a no-op and yields ``None``).
        ``"tcp://HOST:PORT"``: connect to an existing dask scheduler, started
        with ``dask scheduler``, whose workers were started with
        ``dask worker tcp://HOST:PORT``.
        ``"local:N"``: start a :class:`distributed.LocalCluster` of ``N``
        worker processes with one thread each, listening on 127.0.0.1 only,
        and shut it down on exit.
    n_jobs : int or None, default=None
        Default ``n_jobs`` of the joblib calls inside the context that do not
        set their own (``GridSearchCV(n_jobs=None)``).  joblib's dask backend
        runs as many tasks at once as the cluster has worker threads whatever
        the value, and inside this context even ``n_jobs=1`` runs on the
        cluster, not in this process.
    scatter : list of objects, optional
        Large arguments, typically ``[X, y]``, to send to every worker once
        when the context is entered.  Tasks that receive one of these *very
        objects* (same identity: pass the arrays you then give to ``fit``)
        refer to the copy already on the workers.  Every other argument
        travels inside the tasks, so without ``scatter`` the data is sent
        again with every task.  While the context is active the scheduler's
        active memory manager is paused (and started again at exit if it was
        running): it would otherwise drop all but one worker's copy whenever
        no task waits for it, and a worker killed while holding the last
        copy would take the scattered data with it, failing the search.
    blas_threads : int or None, default=None
        BLAS/OpenMP threads per worker process.  ``None`` means the value of
        the environment variable ``SKOFFICE31_WORKER_BLAS_THREADS``, or 1, so
        that N single-threaded workers on N cores do not oversubscribe them.
    timeout : float, default=30
        Seconds to wait for the scheduler to answer and for at least one
        worker to be connected.
    silence_logs : int or None, default=logging.CRITICAL
        While the context is active, ``distributed``'s loggers in this
        process (and in the workers of a ``local:N`` cluster) only report
        records of this level or above, so that a restarted worker or a lost
        scheduler does not print pages of tracebacks; what matters surfaces
        as an exception.  ``None`` leaves logging alone.

    Yields
    ------
    client : distributed.Client or None
        The client in use (``None`` when ``scheduler`` is ``None``).

    Raises
    ------
    ValueError
        If ``scheduler`` is not of one of the forms above.
    ImportError
        If :mod:`distributed` is not installed (the message names the
        ``skoffice31[distributed]`` extra).
    SchedulerConnectionError
        If the scheduler cannot be reached or has no worker.
    SchedulerLostError
        If the scheduler goes away while the body of the ``with`` block runs.
        The context manager's own clean-up never raises on top of it.
    """
    if scheduler is None:
        yield None
        return

    kind, value = parse_scheduler(scheduler)
    if blas_threads is None:
        blas_threads = _default_blas_threads()
    blas_threads = int(blas_threads)
    if blas_threads < 1:
        raise ValueError(f"blas_threads must be >= 1, got {blas_threads}")

    distributed = _import_distributed()
    import joblib

    with contextlib.ExitStack() as stack:
        if silence_logs is not None:
            stack.enter_context(_logger_level("distributed", silence_logs))
        if kind == "local":
            env = {var: str(blas_threads) for var in BLAS_ENV_VARS}
            with _sigint_ignored():  # inherited by the worker processes
                cluster = distributed.LocalCluster(
                    n_workers=value,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    # no dashboard; the scheduler's small HTTP server (health,
                    # metrics) on a free port of 127.0.0.1, not on 8787
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    env=env,
                    silence_logs=silence_logs if silence_logs is not None else logging.WARNING,
                )
            stack.callback(_quiet_close, cluster)
            address = cluster.scheduler_address
        else:
            address = value

        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            raise SchedulerConnectionError(
                f"cannot reach the dask scheduler at {address} within {timeout:g} s "
                f"(is `dask scheduler` running there?): {exc}"
            ) from exc
        stack.callback(_quiet_close, client)

        try:
            # all N workers of a local cluster, so that `scatter` reaches them all
            client.wait_for_workers(value if kind == "local" else 1, timeout=timeout)
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            raise SchedulerConnectionError(
                f"the dask scheduler at {address} has no worker after {timeout:g} s; "
                f"start some with: dask worker {address}"
            ) from exc

        _check_workers(client, address)
        plugin = __getattr__("_BlasThreadsPlugin")(blas_threads)
        client.register_plugin(plugin)
        stack.callback(_quiet_unregister, client, plugin.name)

        if scatter:
            _pause_memory_manager(stack, client)
        entry = (client, address)
        _ACTIVE.append(entry)
        try:
            backend = _dask_backend(client, list(scatter) if scatter else None)
            with joblib.parallel_backend(backend, n_jobs=-1 if n_jobs is None else n_jobs):
                yield client
        except Exception as exc:
            if _is_scheduler_loss(client, exc):
                raise _lost_error(address, exc) from exc
            raise
        finally:
            _ACTIVE.remove(entry)


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore Ctrl-C while the local worker processes are started.

    A process started with SIGINT ignored keeps ignoring it, so a Ctrl-C in
    the terminal reaches only the command (which stops cleanly, closing the
    cluster) and not the workers, which would each print a traceback.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _worker_version():
    # Run on each worker: pickled by reference, so it fails to load (and
    # says so) where skoffice31 is not installed.
    from skoffice31 import __version__

    return __version__


def _check_workers(client, address):
    """Every worker must be able to import skoffice31 to run the fits."""
    answers = client.run(_worker_version, on_error="return")
    bad = {w: a for w, a in answers.items() if isinstance(a, BaseException)}
    if bad:
        worker, exc = sorted(bad.items())[0]
        raise SchedulerConnectionError(
            f"{len(bad)} of the {len(answers)} workers of {address} cannot import skoffice31 "
            f"(install it on every worker machine); {worker}: {type(exc).__name__}: {exc}"
        )


def _pause_memory_manager(stack, client):
    """Stop the scheduler's active memory manager until ``stack`` closes.

    Its ``ReduceReplicas`` policy (on by default, every 2 s) drops the
    replicas of a key no task waits for, broadcast data included, and
    nothing makes them again: between two searches, or before the first
    task is queued, the scattered ``X`` can be left on one worker, and that
    worker's death loses it.  Paused, every worker keeps its copy.
    """
    try:
        running = client.amm.running()
    except Exception:  # an old or restricted scheduler: nothing to pause
        return
    if running:
        client.amm.stop()
        stack.callback(_quiet_amm_start, client)


def _quiet_amm_start(client):
    try:
        client.amm.start()
    except Exception:  # the scheduler is gone: nothing to restore
        pass


def _dask_backend(client, scatter):
    """joblib's dask backend, without its per-call automatic scatter.

    joblib scatters every large argument of a ``Parallel`` call that was not
    listed in ``scatter`` (for a search: the train/test indices of each
    split) to a *single* worker.  Scattered data has no recipe to recompute
    it, so when that worker dies every task needing it is cancelled and the
    search fails.  Here those arguments travel inside the tasks instead
    (they are small), and only ``scatter`` -- broadcast to every worker when
    the backend is created -- is shared by reference; a killed worker then
    only costs the task it was running, which dask runs again elsewhere.

    It also never lets joblib fall back to running the tasks in this process
    (which joblib does when the cluster has a single thread): its
    ``effective_n_jobs`` is at least 2.
    """
    from joblib._dask import DaskDistributedBackend

    class _NoAutoScatterDaskBackend(DaskDistributedBackend):
        def effective_n_jobs(self, n_jobs):
            # joblib runs a Parallel call in *this* process when it sees a
            # single worker thread; on a one-thread cluster the work must
            # still go to the cluster.
            return max(2, super().effective_n_jobs(n_jobs))

        def start_call(self):
            super().start_call()
            self.call_data_futures = None  # read by _to_func_args: None = no auto-scatter

        def stop_call(self):
            self.call_data_futures = {}
            super().stop_call()

    return _NoAutoScatterDaskBackend(client=client, scatter=scatter)


@contextlib.contextmanager
def _logger_level(prefix, level):
    # distributed configures some of its child loggers (distributed.client,
    # ...) with levels of their own, so set them all, and restore them after.
    manager = logging.Logger.manager
    names = [prefix] + [n for n in list(manager.loggerDict) if n.startswith(prefix + ".")]
    loggers = [logging.getLogger(n) for n in names]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        if lg is loggers[0] or lg.level != logging.NOTSET:
            lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, old):
            lg.setLevel(lvl)


def _quiet_close(obj):
    with contextlib.suppress(Exception):
        obj.close(timeout=10)


def _quiet_unregister(client, name):
    if client.status != "running":
        return
    with contextlib.suppress(Exception):
        client.unregister_worker_plugin(name)
