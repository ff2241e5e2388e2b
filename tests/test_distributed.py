"""Tests of skoffice31.parallel: grid searches on dask through joblib.

Every server is started and stopped here, on 127.0.0.1 only.  Searches are
tiny (the built-in office-digits data at 12x12 grey pixels) so the module
runs in well under a minute and a half on two cores.
"""

# Owner: dask helper (issue 6).

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.model_selection import GridSearchCV, ShuffleSplit

from skoffice31 import MultiHeadMLPClassifier
from skoffice31.parallel import (
    SchedulerConnectionError,
    SchedulerLostError,
    as_scheduler_lost,
    parallel_context,
    parse_scheduler,
)

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------
# helpers


def _data(size=12):
    from skoffice31.datasets import load_office_digits

    X, y = load_office_digits(size=size, mode="L", return_X_y=True)
    return np.ascontiguousarray(X, dtype=np.float32), np.asarray(y).astype(str)


@pytest.fixture(scope="module")
def data():
    return _data()


def _search(n_jobs=None, max_iter=8, hidden=((16,), (32, 16)), solvers=("sgd", "adam")):
    est = MultiHeadMLPClassifier(
        hidden=(16,), max_iter=max_iter, batch_size=32, learning_rate_init=0.01,
        random_state=0, tol=0.0, n_iter_no_change=max_iter + 1,
    )
    grid = {"hidden": list(hidden), "solver": list(solvers)}
    cv = ShuffleSplit(n_splits=1, train_size=0.8, test_size=0.15, random_state=0)
    return GridSearchCV(est, grid, cv=cv, refit=False, return_train_score=True, n_jobs=n_jobs)


def _fit(search, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the short fits
        return search.fit(X, y)


def _scores(search):
    res = search.cv_results_
    keys = sorted(k for k in res if k.startswith(("split", "mean_test", "mean_train")))
    return {k: np.asarray(res[k]) for k in keys}


def _assert_same_scores(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert_array_equal(a[k], b[k], err_msg=k)
        assert not np.isnan(a[k]).any(), k


def _new_cluster(n_workers=2):
    from distributed import LocalCluster

    return LocalCluster(
        processes=True, n_workers=n_workers, threads_per_worker=1, host="127.0.0.1",
        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed")
    cluster = _new_cluster()
    try:
        cluster.wait_for_workers(2, timeout=60)
        yield cluster
    finally:
        cluster.close(timeout=20)


@pytest.fixture(scope="module")
def reference(data):
    """The serial search: what every parallel run must reproduce."""
    X, y = data
    return _scores(_fit(_search(), X, y))


# ---------------------------------------------------------------------------
# no dask needed


def test_none_changes_nothing():
    import joblib

    before = joblib.parallel.get_active_backend()
    with parallel_context(None) as client:
        assert client is None
        now = joblib.parallel.get_active_backend()
        assert type(now[0]) is type(before[0]) and now[1] == before[1]


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("tcp://127.0.0.1:8786", ("address", "tcp://127.0.0.1:8786")),
        ("tcp://scheduler.example.org:8786/", ("address", "tcp://scheduler.example.org:8786")),
        ("tls://10.0.0.5:8786", ("address", "tls://10.0.0.5:8786")),
        ("local:3", ("local", 3)),
        (" local:1 ", ("local", 1)),
    ],
)
def test_parse_scheduler(spec, expected):
    assert parse_scheduler(spec) == expected


@pytest.mark.parametrize(
    "spec", ["", "local:0", "local:x", "127.0.0.1:8786", "tcp://host", "http://h:1", "tcp://h:99999", 3]
)
def test_parse_scheduler_rejects(spec):
    with pytest.raises(ValueError, match="tcp://HOST:PORT.*local:N|N >= 1"):
        parse_scheduler(spec)


def test_nothing_imports_distributed_unless_asked():
    code = textwrap.dedent(
        """
        import sys, importlib, pkgutil
        import skoffice31
        for m in pkgutil.walk_packages(skoffice31.__path__, "skoffice31."):
            if m.name != "skoffice31.__main__":
                importlib.import_module(m.name)
        bad = sorted(m for m, mod in sys.modules.items()
                     if mod is not None and m.split(".")[0] in ("distributed", "dask"))
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_missing_distributed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"skoffice31\[distributed\]"):
        with parallel_context("local:1"):
            pass  # pragma: no cover


def test_loky_all_cores_and_cheap_pickles(data):
    """GridSearchCV(n_jobs=-1) with loky; what it ships per task is small."""
    X, y = data
    search = _fit(_search(n_jobs=-1, hidden=[(8,)], max_iter=2), X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()

    est = MultiHeadMLPClassifier(hidden=(128,), solver="adam")
    assert len(pickle.dumps(est)) < 4000

    # Fitted with Adam: the pickle holds the weights and the optimizer's two
    # moment buffers (so partial_fit continues after loading, as with
    # MLPClassifier), and no training data or scratch buffers.
    big_X = np.random.default_rng(0).random((len(X), 512), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.set_params(max_iter=2).fit(big_X, y)
    n_weight_bytes = sum(a.nbytes for a in est.coefs_ + est.intercepts_)
    blob = pickle.dumps(est)
    assert len(blob) < 3.2 * n_weight_bytes + 64_000, (len(blob), n_weight_bytes)
    again = pickle.loads(blob)
    assert_array_equal(again.predict(big_X[:50]), est.predict(big_X[:50]))


# ---------------------------------------------------------------------------
# on a cluster


def test_unreachable_scheduler_is_one_clear_error():
    pytest.importorskip("distributed")
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(SchedulerConnectionError, match=f"127.0.0.1:{port}"):
        with parallel_context(f"tcp://127.0.0.1:{port}", timeout=1):
            pass  # pragma: no cover
    assert time.monotonic() - t0 < 20


@pytest.mark.timeout(90)
def test_same_scores_serial_loky_and_cluster(data, reference, cluster):
    X, y = data
    _assert_same_scores(_scores(_fit(_search(n_jobs=2), X, y)), reference)
    with parallel_context(cluster.scheduler_address, scatter=[X, y]) as client:
        assert sum(client.nthreads().values()) == 2
        _assert_same_scores(_scores(_fit(_search(), X, y)), reference)


@pytest.mark.timeout(90)
def test_local_cluster_one_blas_thread_per_worker(data, reference):
    pytest.importorskip("distributed")
    X, y = data

    def pools():
        from threadpoolctl import threadpool_info

        return (
            {i["user_api"]: i["num_threads"] for i in threadpool_info()},
            {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        )

    with parallel_context("local:2") as client:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        info = client.scheduler_info()["workers"]
        assert len(info) == 2 and all(w["nthreads"] == 1 for w in info.values())
        assert all(w["host"] == "127.0.0.1" for w in info.values())
        for limits, env in client.run(pools).values():
            assert limits.get("blas", 1) == 1 and limits.get("openmp", 1) == 1
            assert set(env.values()) == {"1"}
        # Ctrl-C in the terminal is for the command, not for its workers
        assert set(client.run(lambda: signal.getsignal(signal.SIGINT) == signal.SIG_IGN).values()) == {True}
        _assert_same_scores(_scores(_fit(_search(), X, y)), reference)
    assert client.status == "closed"


@pytest.mark.timeout(60)
def test_blas_threads_can_be_raised_and_are_restored(cluster):
    from threadpoolctl import threadpool_info

    def blas_threads():
        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    from distributed import Client

    with parallel_context(cluster.scheduler_address, blas_threads=2) as client:
        assert set(client.run(blas_threads).values()) == {2}
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        # the context's worker plugin has been removed and undone
        assert set(client.run(blas_threads).values()) == {1}
    with parallel_context(cluster.scheduler_address) as client:
        assert set(client.run(blas_threads).values()) == {1}


def _count_big_frames(monkeypatch, nbytes):
    """Count the messages leaving this process that carry >= nbytes in one frame.

    The LocalCluster's scheduler runs in this process too, so this sees what
    the client sends and what the scheduler forwards to the workers.
    """
    import distributed.comm.tcp as tcp

    counter = {"n": 0}
    original = tcp.to_frames

    async def to_frames(msg, *args, **kwargs):
        frames = await original(msg, *args, **kwargs)
        if any(memoryview(f).nbytes >= nbytes for f in frames):
            counter["n"] += 1
        return frames

    monkeypatch.setattr(tcp, "to_frames", to_frames)
    return counter


def _copies_on_workers(client, shape):
    def count(dask_worker):
        return sum(getattr(v, "shape", None) == shape for v in dask_worker.data.values())

    return client.run(count)


@pytest.mark.timeout(90)
def test_image_matrix_travels_once(data, cluster, monkeypatch):
    """The CLI's pattern: one GridSearchCV per configuration, X scattered once."""
    _, y = data
    # Incompressible stand-in for the image matrix (so frames keep its size).
    X = np.random.default_rng(0).random((len(y), 1024), dtype=np.float32)
    configs = [{"hidden": [(8,)], "solver": [s]} for s in ("sgd", "adam", "sgd")]
    counter = _count_big_frames(monkeypatch, X.nbytes)

    def run_configs():
        for grid in configs:
            search = _search(max_iter=1)
            search.set_params(param_grid=grid)
            _fit(search, X, y)

    with parallel_context(cluster.scheduler_address, scatter=[X, y]) as client:
        at_entry = counter["n"]
        # the one scatter: at most one send per worker (2 here)
        assert 1 <= at_entry <= len(client.nthreads())
        run_configs()
        assert counter["n"] == at_entry, "the image matrix was sent again with the tasks"
        # every worker holds it once, also after the memory manager's
        # interval (2 s) with no task waiting for it: it is paused
        assert set(_copies_on_workers(client, X.shape).values()) == {1}
        assert not client.amm.running()
        time.sleep(2.5)
        assert set(_copies_on_workers(client, X.shape).values()) == {1}
    from distributed import Client

    with Client(cluster.scheduler_address, set_as_default=False) as other:
        assert other.amm.running()  # started again at exit

    # Control: without scatter joblib ships X again for every GridSearchCV.fit.
    counter["n"] = 0
    with parallel_context(cluster.scheduler_address) as client:
        run_configs()
        assert counter["n"] >= len(configs)


@pytest.mark.timeout(90)
def test_worker_killed_mid_search_is_survived(data, reference, cluster):
    X, y = data
    killed = []
    with parallel_context(cluster.scheduler_address, scatter=[X, y]) as client:
        pids = client.run(os.getpid)

        def kill_a_busy_worker():
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not killed:
                busy = [w for w, keys in client.processing().items() if keys]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.01)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        search = _fit(_search(), X, y)
        killer.join(5)
        assert killed, "no worker was busy"
        # the nanny has restarted the worker (or is doing so)
        client.wait_for_workers(2, timeout=30)
    # Complete and identical to the serial run: the lost task was run again.
    _assert_same_scores(_scores(search), reference)


@pytest.fixture()
def scheduler_process(tmp_path):
    """A `dask scheduler` + one `dask worker` in subprocesses, so the test can kill it."""
    pytest.importorskip("distributed")
    sched_file = tmp_path / "scheduler.json"
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)  # the workers import skoffice31, installed or not
    common = dict(cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sched = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(sched_file)],
        **common,
    )
    procs = [sched]
    try:
        deadline = time.monotonic() + 30
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)
        import json

        address = json.loads(sched_file.read_text())["address"]
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
             "--nthreads", "2", "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "5"],
            **common,
        )
        procs.append(worker)
        yield address, sched
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)


@pytest.mark.timeout(90)
def test_scheduler_lost_is_one_catchable_error(data, scheduler_process):
    X, y = data
    address, sched = scheduler_process
    finished, caught = [], []
    t0 = time.monotonic()
    with pytest.raises(SchedulerLostError, match=f"lost the connection to the dask scheduler at {address}"):
        with parallel_context(address, scatter=[X, y], timeout=10):
            for i, solver in enumerate(["sgd", "adam", "sgd"]):
                if i == 1:  # kill the scheduler while the 2nd configuration runs
                    threading.Timer(0.3, sched.kill).start()
                search = _search(max_iter=200, hidden=[(64,)], solvers=[solver])
                try:
                    _fit(search, X, y)
                except Exception as exc:
                    # How the CLI catches inside the block: the helper names it.
                    caught.append(as_scheduler_lost(exc))
                    raise
                finished.append(search.cv_results_["mean_test_score"][0])
    assert len(finished) == 1 and np.isfinite(finished[0])
    assert len(caught) == 1 and isinstance(caught[0], SchedulerLostError)
    assert time.monotonic() - t0 < 60
    assert as_scheduler_lost(KeyError("x")).__class__ is KeyError


@pytest.mark.timeout(90)
def test_cli_scheduler_lost_keeps_finished_rows(tmp_path, scheduler_process):
    """`skoffice31 reproduce --scheduler ...`: one clear last line, finished rows on disk."""
    address, sched = scheduler_process
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "skoffice31", "reproduce", "--scheduler", address, "--out", str(out),
           "--size", "12", "--epochs", "30", "--hidden", "32", "--hidden", "16", "--solver", "sgd",
           "--solver", "adam", "--samples", "0", "-q"]
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "results.csv").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        sched.kill()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None), stderr
    last = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr, stderr
    assert "dask scheduler" in last and address in last, last
    # The results are written after every finished configuration and the
    # scheduler died once the first was written: those rows are kept, whole.
    rows = read_csv_rows(out / "results.csv")
    assert 1 <= len(rows) < 4, rows
    assert all(r["status"] == "ok" and r["domain_acc"] for r in rows), rows


def read_csv_rows(path):
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
