"""The study runner hands the cores of finished fits to the fits still running.

skoffice31.study._threads: FreeCores writes the share, FollowFreeCores (a
fit callback) applies it at the end of an epoch through the estimator's
``_share_update_threads``; the weights must not depend on when a fit got
its second core.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from threadpoolctl import threadpool_limits

from skoffice31 import MultiHeadMLPClassifier, _dual, _kernels, study
from skoffice31._plan import PARALLEL_MIN_SIZE
from skoffice31.study import StudySettings
from skoffice31.study._threads import FollowFreeCores, FreeCores

needs_numba = pytest.mark.skipif(
    not _kernels.kernels_available(), reason="numba not installed or kernels switched off"
)


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    monkeypatch.delenv(_kernels.THREADS_ENV_VAR, raising=False)
    monkeypatch.setenv(_dual.ENV_VAR, "0")  # the weights, not sample space


def test_the_share_is_written_once_workers_fall_idle(tmp_path):
    with FreeCores(n_fits=4, n_workers=2, n_cores=2) as share:
        path = share.path
        assert path.read_text() == ""  # every worker busy: the fits keep their plan
        assert share.threads() is None
        share.fit_done()  # 3 left, 2 running
        assert path.read_text() == "" and share.threads() is None
        share.fit_done()  # 2 left, 2 running
        assert path.read_text() == ""
        share.fit_done()  # 1 left: it gets both cores
        assert path.read_text() == "2" and share.threads() == 2
    assert not path.exists()  # leaving removes the folder
    with FreeCores(n_fits=3, n_workers=3, n_cores=8) as share:
        share.fit_done()  # 2 running on 8 cores: at most MAX_UPDATE_THREADS each
        assert share.path.read_text() == "2"
    with FreeCores(n_fits=3, n_workers=3, n_cores=2) as share:
        share.fit_done()  # 2 running on 2 cores: one each
        assert share.path.read_text() == "1"


class _Estimator:
    def __init__(self):
        self.calls = []

    def _share_update_threads(self, n):
        self.calls.append(n)
        return True


class _Context:
    def __init__(self, task_name):
        self.task_name = task_name


def test_the_follower_passes_the_share_on_after_each_epoch(tmp_path, monkeypatch):
    path = tmp_path / "threads"
    follower, est = FollowFreeCores(str(path)), _Estimator()
    epoch = _Context("epoch")
    assert follower.on_fit_task_end(est, epoch) is False  # no file yet: nothing
    for text in ("", "two", "-1"):  # empty or unreadable: nothing
        path.write_text(text)
        follower.on_fit_task_end(est, epoch)
    assert est.calls == []
    path.write_text("2")
    follower.on_fit_task_end(est, _Context("fit"))  # only epochs
    assert est.calls == []
    follower.on_fit_task_end(est, epoch)
    follower.on_fit_task_end(est, epoch)
    assert est.calls == [2, 2]  # every epoch; the estimator ignores an unchanged share
    path.write_text("1")
    monkeypatch.setenv(_kernels.THREADS_ENV_VAR, "1")  # the user's choice wins
    follower.on_fit_task_end(est, epoch)
    assert est.calls == [2, 2]
    monkeypatch.delenv(_kernels.THREADS_ENV_VAR)
    follower.on_fit_task_end(est, epoch)
    assert est.calls == [2, 2, 1]
    assert "threads" in repr(follower)


def _data():
    # 7,000 x 200 = 1.4 M first-layer weights: past PARALLEL_MIN_SIZE, so the
    # update is shared when there are threads to share it
    assert 7_000 * 200 >= PARALLEL_MIN_SIZE
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 7_000)).astype(np.float32)
    y = np.c_[rng.integers(0, 3, 40), rng.integers(0, 5, 40)]
    return X, y


def _fit(X, y, callbacks=()):
    est = MultiHeadMLPClassifier(hidden=(200,), batch_size=10, max_iter=3, random_state=0,
                                 learning_rate_init=1e-3)
    if callbacks:
        est.set_callbacks(*callbacks)
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):  # a worker's one core
        warnings.simplefilter("ignore")  # max_iter reached
        return est.fit(X, y)


class _PlanSpy:
    """Records the optimizer's thread counts at the end of every epoch."""

    def __init__(self):
        self.seen = []

    def setup(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context, *, X=None):
        if context.task_name == "epoch" and X is not None:
            plan = estimator._optimizer.plan
            self.seen.append((plan.update_threads, plan.kernel_threads))
        return False

    def teardown(self, estimator, context):
        pass


@pytest.mark.parametrize("kernels", [
    pytest.param("1", marks=needs_numba, id="kernels"), pytest.param("0", id="numpy"),
])
def test_a_second_core_mid_fit_leaves_the_weights_unchanged(tmp_path, monkeypatch, kernels):
    monkeypatch.setenv(_kernels.ENV_VAR, kernels)
    X, y = _data()
    alone = _fit(X, y)
    assert (alone._optimizer.plan.update_threads, alone._optimizer.plan.kernel_threads) == (
        1, 1)
    path = tmp_path / "threads"
    path.write_text("")
    spy = _PlanSpy()
    follower = FollowFreeCores(str(path))

    unchanged = []

    class _GiveACoreAfterEpoch1(_PlanSpy):
        def on_fit_task_end(self, estimator, context, *, X=None):
            if context.task_name == "epoch" and estimator.n_iter_ == 1:
                path.write_text("2")
            if context.task_name == "epoch" and estimator.n_iter_ == 3:
                # the share applied at the end of epoch 1: asking again changes nothing
                unchanged.append(estimator._share_update_threads(2))
            return False

    shared = _fit(X, y, (spy, _GiveACoreAfterEpoch1(), follower))
    with_kernels = kernels == "1"
    two = (2, 2 if with_kernels else 1)
    # epoch 1 on one thread; the follower (after the spy) applies "2" at its end
    assert spy.seen == [(1, 1), two, two]
    assert unchanged == [False]
    for a, b in zip(alone.coefs_ + alone.intercepts_, shared.coefs_ + shared.intercepts_):
        assert_array_equal(a, b)
    # outside a fit the hook does nothing, and nothing of it is pickled
    assert shared._share_update_threads(1) is False
    assert not hasattr(shared, "_plan_args")


def test_the_runner_sets_the_follower_and_writes_the_share(monkeypatch):
    """Two fits on two workers: each fit gets a follower of the run's file,
    and the file says "2" once the first fit is done (threading backend, so
    that the fits run here and can be watched)."""
    import joblib

    from skoffice31.study import _run

    settings = StudySettings.from_preset("study", epochs=2, size=(8, 8), solvers=["sgd"],
                                         hidden=[(4,), (6,)])
    data = study.load_study_data(settings)
    given, shares = [], []
    real_fit, real_done = _run.fit_and_evaluate, FreeCores.fit_done

    def fit_and_evaluate(*args, callbacks=(), **kwargs):
        given.append([c for c in callbacks if isinstance(c, FollowFreeCores)])
        return real_fit(*args, callbacks=callbacks, **kwargs)

    def fit_done(self):
        real_done(self)
        shares.append(self.path.read_text())

    monkeypatch.setattr(_run, "fit_and_evaluate", fit_and_evaluate)
    monkeypatch.setattr(FreeCores, "fit_done", fit_done)
    with joblib.parallel_backend("threading", n_jobs=2):
        rows = list(study.run_study(settings, data, n_jobs=2, n_samples=0))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert [len(f) for f in given] == [1, 1] and given[0][0].path == given[1][0].path
    # one fit left after the first: both cores (on a machine of at least two)
    expected = str(min(2, joblib.cpu_count()))
    assert shares == [expected, expected]  # none left after the second: unchanged
    # in one process (n_jobs=1) there is nothing to hand over
    given.clear()
    list(study.run_study(settings, data, n_jobs=1, n_samples=0))
    assert given == [[], []]
