"""Threads that share a compiled kernel's parts without sleeping between steps.

A training step of a small first layer (30,000 x 10 weights) takes about a
quarter of a millisecond in the kernels of :mod:`skoffice31._kernels`. Handing
half of it to a sleeping thread costs more than that on a virtual machine:
waking a thread on an idle core is a call into the host (30 us for the
caller, 60 us before the thread runs, measured on the development VM), and
the caller, blocked at the end until the helper is done, is woken the same
way. So the helpers here do not sleep between steps:

- a helper that finished its parts *spins* -- in compiled code, without the
  GIL, on the x86 ``pause`` instruction -- for :func:`spin_microseconds`
  (``SKOFFICE31_SPIN_US``, default 1000 us) waiting for the next job, and
  only then sleeps on a condition variable. It spins only when one of the
  caller's last two calls came within that time of the one before: the
  helper of a large layout, whose steps are longer, sleeps at once instead
  of taking a core from BLAS's threads;
- the caller *posts* a job (an atomic store of its sequence number) from
  inside its own compiled call, after releasing the GIL, so that the helper
  who sees it finds the GIL free, reads the job and enters the kernel
  without waiting for the caller;
- the parts of a job are claimed with an atomic counter, and the caller,
  when no part is left to claim, spins (without the GIL) until every
  claimed part is finished. Nothing ever waits for a helper that did not
  claim a part: a helper that is asleep, descheduled or gone (in a forked
  child) leaves the whole job to the caller, whose results are the same
  (the partition does not depend on who runs a part);
- a helper that claimed a part and then lost its core (to the host of a
  virtual machine, or to another process) makes the caller wait. A call
  whose caller waited longer than it worked -- slower than the caller alone
  -- sends the team's next :data:`BACKOFF_CALLS` calls (doubling while it
  happens again, up to :data:`MAX_BACKOFF_CALLS`) to the caller alone.

The compiled functions below (``claim``, ``finish``, ``post``,
``wait_done``, ``wait_post``) have plain Python versions with the same
meaning for one thread, which the interpreter runs when numba is missing or
blocked (the tests check the kernels' logic that way).
"""

import itertools
import os
import threading
import time

import numpy as np

from skoffice31 import _environment

#: Environment variable: how long (microseconds) an idle helper spins for
#: the next job before it sleeps; 0 makes it sleep at once (every job then
#: wakes it). Read when the team is built.
SPIN_ENV_VAR = "SKOFFICE31_SPIN_US"

#: Default of :data:`SPIN_ENV_VAR`: longer than the rest of a small layout's
#: training step (about 0.5 ms at batch 10), so the helper is awake for the
#: next step; a step of a large layout outlasts it, and its helper sleeps.
SPIN_US = 1000

#: Calls run by the caller alone after one that waited longer for a helper
#: than it worked, and the most after repeated ones (then halved per good call).
BACKOFF_CALLS, MAX_BACKOFF_CALLS = 16, 4096

#: Who runs a kernel call: the caller alone, the caller of a shared job, a helper.
SOLO, MAIN, HELPER = 0, 1, 2

#: The job's counters: next part to claim, parts finished.
NEXT, DONE = 0, 1

#: The team's flags: the sequence number of the last posted job.
POST = 0


def spin_microseconds():
    """``SKOFFICE31_SPIN_US`` as a non-negative int (default :data:`SPIN_US`).

    Raises
    ------
    ValueError
        When it is set to anything but a non-negative integer.
    """
    return _environment.integer(
        SPIN_ENV_VAR,
        minimum=0,
        default=SPIN_US,
        hint=(
            "give the microseconds an idle kernel thread spins before it sleeps "
            f"(0 or more), or unset it for {SPIN_US}."
        ),
    )


# ------------------------------------------------------------ one thread
# The meaning of the compiled versions, for a single thread (no atomics).


def claim(counters, n_parts):
    """The next part to run, or -1 when all ``n_parts`` are claimed."""
    p = counters[NEXT]
    counters[NEXT] = p + 1
    return p if p < n_parts else -1


def finish(counters):
    """Count one claimed part as finished (its results written)."""
    counters[DONE] += 1


def post(flags, seq):
    """Announce job ``seq`` to the spinning helpers."""
    flags[POST] = seq


def wait_done(counters, n_parts):
    """Return, when all ``n_parts`` are finished, how many times the compiled
    version spun for them (one thread: they are, 0)."""
    if counters[DONE] != n_parts:
        raise RuntimeError(f"{counters[DONE]} of {n_parts} parts finished by one thread.")
    return 0


def wait_post(flags, seq, spins):
    """Whether a job other than ``seq`` is posted (spinning up to ``spins``
    times for one in the compiled version)."""
    return flags[POST] != seq


_SYNC = ("claim", "finish", "post", "wait_done", "wait_post")


def compile_sync(numba):
    """The compiled versions of :data:`_SYNC`, by name (from
    :mod:`skoffice31._atomics`, which imports numba)."""
    from skoffice31 import _atomics

    return {name: getattr(_atomics, name) for name in _SYNC}


# ------------------------------------------------------------ the team


class Team:
    """Helper threads that run the parts of posted kernel jobs.

    Parameters
    ----------
    sync : dict
        The compiled :data:`_SYNC` functions (:func:`compile_sync`).
    spin_us : int
        Microseconds an idle helper spins before it sleeps.
    """

    def __init__(self, sync, spin_us):
        self.flags = np.zeros(8, np.int64)  # padded: POST alone on its cache line's start
        self._sync = sync
        self.spin_us = int(spin_us)
        self.spins_per_s = self._calibrate()
        self.spins = int(self.spin_us * 1e-6 * self.spins_per_s)
        self._solo_flags = np.zeros(1, np.int64)
        self.backoff = BACKOFF_CALLS  # the next back-off's length, in calls
        self.solo_calls = 0  # calls still to run alone
        self._gaps = (float("inf"), float("inf"))  # seconds between the last shared calls
        self._last_end = -float("inf")
        self._seq = itertools.count(1)
        self._job = None
        self._cond = threading.Condition()
        self._asleep = 0
        self._helpers = []

    def _calibrate(self):
        """Spin-loop iterations per second on this machine."""
        wait_post = self._sync["wait_post"]
        wait_post(self.flags, 0, 1)  # compile (or load) first
        n = 20_000
        best = min(self._time(wait_post, n) for _ in range(3))
        return n / max(best, 1e-9)

    def _time(self, wait_post, n):
        t0 = time.perf_counter()
        wait_post(self.flags, self.flags[POST], n)  # nobody posts: spins n times
        return time.perf_counter() - t0

    def run(self, kernel, head, tail, last, n_helpers):
        """Run ``kernel(*head, job, *last)`` in the caller's thread, shared
        with up to ``n_helpers`` helpers; ``job`` is ``(*tail, flags, seq,
        role, spins)`` with ``tail = (out_parts, sq_parts, bounds, counters)``.

        Returns when every part is finished (the kernel's caller waits for
        them), whatever the helpers do.
        """
        if self.solo_calls:  # backing off after a call that waited for a helper
            self.solo_calls -= 1
            kernel(*head, (*tail, self._solo_flags, 0, SOLO, 0), *last)
            return
        self._grow(n_helpers)
        seq = next(self._seq)
        start = time.perf_counter()
        # the helpers spin for the next call if one of the last two came soon
        self._gaps = (self._gaps[1], start - self._last_end)
        spins = self.spins if min(self._gaps) * 1e6 <= self.spin_us else 0
        self._job = (kernel, head, tail, last, seq, n_helpers, spins)
        if self._asleep:
            with self._cond:
                self._cond.notify_all()
        try:
            waited = kernel(*head, (*tail, self.flags, seq, MAIN, 0), *last)
            self._last_end = time.perf_counter()
            self._judge(self._last_end - start, waited / self.spins_per_s)
        finally:  # a helper that has not read the job finds none (and keeps no arrays alive)
            self._job = None

    def _judge(self, elapsed, waited):
        """Back off (run the next calls alone) when the caller waited for
        helpers longer than it worked itself: it would have been faster alone."""
        if waited > elapsed - waited:
            self.solo_calls = self.backoff
            self.backoff = min(2 * self.backoff, MAX_BACKOFF_CALLS)
        else:
            self.backoff = max(BACKOFF_CALLS, self.backoff // 2)

    def _grow(self, n_helpers):
        while len(self._helpers) < n_helpers:
            index = len(self._helpers)
            thread = threading.Thread(target=self._serve, args=(index,), daemon=True,
                                      name=f"skoffice31-kernel-{index}")
            self._helpers.append(thread)
            thread.start()

    @staticmethod
    def _new_job(job, done, index):
        """Whether ``job`` is one other than ``done`` shared with helper ``index``."""
        return job is not None and job[4] != done and index < job[5]

    def _serve(self, index):
        wait_post = self._sync["wait_post"]
        done = 0  # the sequence number of the last job this helper took
        while True:
            job = self._job
            if self._new_job(job, done, index):
                kernel, head, tail, last, done, _, spins = job
                job = None
                try:  # the kernel's allocations come before its first claim
                    # out of parts, it spins for the next post (or not, see run)
                    posted = kernel(*head, (*tail, self.flags, done, HELPER, spins), *last)
                except Exception:  # pragma: no cover - claimed nothing, the caller runs it
                    posted = False
                # a waiting helper holds no arrays of the job it finished: they
                # would outlive the fit that made them (run clears _job likewise)
                kernel = head = tail = last = None
                if posted:
                    continue
            else:
                job = None
                if self.spins and wait_post(self.flags, int(self.flags[POST]), self.spins):
                    continue  # something was posted (not necessarily for this helper)
            with self._cond:
                self._asleep += 1
                while not self._new_job(self._job, done, index):
                    self._cond.wait()
                self._asleep -= 1


_TEAM = {}


def team(sync):
    """The process's :class:`Team` (built at the first shared call, again in
    a forked child, whose helper threads did not survive the fork)."""
    pid = os.getpid()
    current = _TEAM.get("team")
    if current is None or _TEAM.get("pid") != pid:
        current = Team(sync, spin_microseconds())
        _TEAM.update(team=current, pid=pid)
    return current
