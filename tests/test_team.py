"""The kernel threads of skoffice31._team: atomic claims, spinning and
sleeping helpers, and the rule that no call ever waits for a helper that did
not claim a part (absent, asleep, or lost in a fork)."""

import gc
import multiprocessing
import threading
import weakref

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from skoffice31 import _kernels, _team

needs_numba = pytest.mark.skipif(
    not _kernels.kernels_available(), reason="numba not installed or kernels switched off"
)

# a Fortran-ordered 40,000 x 5 layer: the transposed kernels, several parts
SHAPE = (40_000, 5)


def _sync():
    _kernels._kernel()
    return _kernels._STATE["sync"]


def _steps(n_threads, n_steps=4, seed=0):
    """Adam steps with the next batch's product fused: (W, m, v, out, sq)."""
    rng = np.random.default_rng(seed)
    n_in, n_out = SHAPE
    W = np.asfortranarray(rng.normal(0, 0.1, SHAPE).astype(np.float32))
    m, v = np.zeros_like(W), np.zeros_like(W)
    A = rng.normal(size=(7, n_in)).astype(np.float32)
    X_next = rng.normal(size=(3, n_in)).astype(np.float32)
    out = np.empty((3, n_out), np.float32)
    sq = []
    for step in range(n_steps):
        delta = rng.normal(size=(7, n_out)).astype(np.float32)
        sq.append(_kernels.adam_update(W, A, delta, m, v, lr=1e-3, eps=1e-8, l2=0.1,
                                       flush=step % 2 == 1, X_next=X_next, out=out,
                                       n_threads=n_threads))
    return W, m, v, out, sq


def _assert_same(a, b):
    for x, y in zip(a[:4], b[:4]):
        assert_array_equal(x, y)
    assert a[4] == b[4]


@pytest.fixture
def fresh_team(monkeypatch):
    """Install a new team built with a given spin time; returns a maker."""
    def make(spin_us):
        team = _team.Team(_sync(), spin_us)
        monkeypatch.setitem(_team._TEAM, "team", team)
        monkeypatch.setitem(_team._TEAM, "pid", __import__("os").getpid())
        return team
    return make


def test_one_thread_versions():
    counters = np.zeros(2, np.int64)
    assert [_team.claim(counters, 2) for _ in range(3)] == [0, 1, -1]
    _team.finish(counters)
    with pytest.raises(RuntimeError, match="1 of 2 parts"):
        _team.wait_done(counters, 2)
    _team.finish(counters)
    assert _team.wait_done(counters, 2) == 0
    flags = np.zeros(1, np.int64)
    assert not _team.wait_post(flags, 0, 10)
    _team.post(flags, 3)
    assert _team.wait_post(flags, 0, 10)


@pytest.mark.parametrize("value", ["-1", "soon", "1.5"])
def test_spin_setting_is_checked(monkeypatch, value):
    monkeypatch.setenv(_team.SPIN_ENV_VAR, value)
    with pytest.raises(ValueError, match="SKOFFICE31_SPIN_US"):
        _team.spin_microseconds()


def test_spin_setting(monkeypatch):
    monkeypatch.delenv(_team.SPIN_ENV_VAR, raising=False)
    assert _team.spin_microseconds() == _team.SPIN_US
    monkeypatch.setenv(_team.SPIN_ENV_VAR, " 0 ")
    assert _team.spin_microseconds() == 0


@needs_numba
def test_every_part_is_claimed_once_by_two_threads():
    import numba

    claim, finish = _sync()["claim"], _sync()["finish"]

    @numba.njit(nogil=True)
    def claim_all(counters, n_parts, owner, me):
        p = claim(counters, n_parts)
        while p >= 0:
            owner[p] += me
            finish(counters)
            p = claim(counters, n_parts)

    n_parts = 2_000_000
    counters = np.zeros(2, np.int64)
    owner = np.zeros(n_parts, np.int64)
    claim_all(counters, 1, np.zeros(1, np.int64), 1)  # compile first
    counters[:] = 0
    threads = [threading.Thread(target=claim_all, args=(counters, n_parts, owner, me))
               for me in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # a part claimed twice would hold 2, 3 or 4; one never claimed, 0
    assert set(np.unique(owner)) <= {1, 2}
    assert counters[1] == n_parts
    assert counters[0] == n_parts + 2  # one failed claim per thread


@needs_numba
def test_wait_post_gives_up_after_its_spins_and_sees_a_post():
    wait_post, post = _sync()["wait_post"], _sync()["post"]
    flags = np.zeros(8, np.int64)
    assert not wait_post(flags, 0, 1000)
    timer = threading.Timer(0.05, post, args=(flags, 5))
    timer.start()
    assert wait_post(flags, 0, 1 << 62)  # returns once the other thread posts
    timer.join()
    assert flags[0] == 5


@needs_numba
@pytest.mark.parametrize("spin_us", [0, 1000])
def test_shared_steps_equal_one_thread(fresh_team, spin_us):
    one = _steps(1)
    team = fresh_team(spin_us)
    two = _steps(2)
    _assert_same(one, two)
    assert len(team._helpers) == 1 and team._helpers[0].is_alive()
    assert team._job is None  # no arrays kept alive after a call


@needs_numba
def test_helper_asleep_is_woken_by_the_next_job(fresh_team):
    team = fresh_team(0)  # no spinning: the helper sleeps after every job
    one = _steps(1)
    _steps(2, n_steps=1)
    for _ in range(200):  # the helper goes to sleep
        if team._asleep:
            break
        threading.Event().wait(0.01)
    assert team._asleep == 1
    _assert_same(one, _steps(2))


@needs_numba
def test_a_helper_keeps_no_arrays_of_a_finished_job_alive(fresh_team):
    # A sleeping helper must not hold the last job's arrays: they would stay
    # in memory after the fit that made them (a finished fit's Adam moments,
    # or a warm-up fit's whole network beside the real fit).
    team = fresh_team(0)  # no spinning: the helper sleeps after every job
    W, m, v, out, _ = _steps(2, n_steps=3)
    refs = [weakref.ref(a) for a in (W, m, v, out)]
    del W, m, v, out
    for _ in range(200):
        if team._asleep:
            break
        threading.Event().wait(0.01)
    assert team._asleep == 1
    gc.collect()
    assert [ref() for ref in refs] == [None] * 4


@needs_numba
def test_a_job_without_its_helpers_is_done_by_the_caller(fresh_team, monkeypatch):
    team = fresh_team(1000)
    monkeypatch.setattr(team, "_grow", lambda n: None)  # no helper ever starts
    _assert_same(_steps(1), _steps(2))
    assert team._helpers == []


@needs_numba
def test_concurrent_callers_share_one_team(fresh_team):
    fresh_team(1000)
    expected = [_steps(1, seed=s) for s in range(3)]
    results = [None] * 3
    errors = []

    def fit(s):
        try:
            results[s] = _steps(2, n_steps=4, seed=s)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fit, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    for a, b in zip(expected, results):
        _assert_same(a, b)


def _child(queue):
    W, m, v, out, sq = _steps(2)
    queue.put((W.sum(), out.tolist(), sq, _team._TEAM["pid"]))


@needs_numba
def test_a_forked_child_builds_its_own_team():
    _steps(2, n_steps=1)  # the parent's team and helper exist
    parent = _team._TEAM["team"]
    assert parent._helpers
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue,))
    proc.start()
    got = queue.get(timeout=120)
    proc.join(60)
    assert proc.exitcode == 0
    W, m, v, out, sq = _steps(1)
    assert got[0] == W.sum() and got[1] == out.tolist() and got[2] == sq
    assert got[3] == proc.pid


@needs_numba
def test_a_call_that_waited_longer_than_it_worked_backs_off(fresh_team):
    """A helper that claimed a part and lost its core makes the caller wait;
    when it waited longer than it worked, the next calls run alone, and
    longer after each such call; good calls shorten the next back-off."""
    team = fresh_team(0)
    roles = []
    waits = iter([10.0, 10.0, 0.0, 0.0, 0.0, 0.0])  # seconds the fake call "waited"

    def kernel(job):
        role = job[-2]
        if role == _team.HELPER:
            return 0
        roles.append(role)
        return int(next(waits) * team.spins_per_s) if role == _team.MAIN else 0

    def calls(n):
        for _ in range(n):
            team.run(kernel, (), (), (), 1)

    calls(1)  # waited: the next 16 calls alone
    assert roles == [_team.MAIN] and team.solo_calls == _team.BACKOFF_CALLS
    calls(_team.BACKOFF_CALLS)
    assert roles[1:] == [_team.SOLO] * _team.BACKOFF_CALLS
    calls(1)  # shared again, waited again: twice as long alone
    assert roles[-1] == _team.MAIN and team.solo_calls == 2 * _team.BACKOFF_CALLS
    calls(2 * _team.BACKOFF_CALLS + 3)  # then three good shared calls
    assert roles[-3:] == [_team.MAIN] * 3 and team.solo_calls == 0
    assert team.backoff == _team.BACKOFF_CALLS  # halved back to the shortest


@needs_numba
def test_helpers_spin_only_when_calls_come_soon(fresh_team):
    team = fresh_team(1000)
    spins = []

    def kernel(job):
        if job[-2] == _team.MAIN:
            spins.append(team._job[6])  # what the helpers get to spin for
        return 0

    team.run(kernel, (), (), (), 1)  # the first call: no gap known, no spinning
    team.run(kernel, (), (), (), 1)  # right after it
    threading.Event().wait(0.01)
    team.run(kernel, (), (), (), 1)  # one of the last two gaps was short: still spins
    threading.Event().wait(0.01)
    team.run(kernel, (), (), (), 1)  # two gaps of 10 ms: the helper sleeps at once
    assert spins == [0, team.spins, team.spins, 0] and team.spins > 0
