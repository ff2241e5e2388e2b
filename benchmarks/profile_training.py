"""Where does a training epoch's time go?  The estimator's real fit, timed by phase.

    python benchmarks/profile_training.py [--layout 384,192,64,32,10] [--batch 10] [--epochs 2]

Fits a :class:`skoffice31.MultiHeadMLPClassifier` with the study's settings
(from :mod:`skoffice31.study`: raw pixels, lr 1e-4, plain SGD / Adam,
normal(0, 0.03) init) on the benchmark's synthetic data of the study's
shape, through its public ``fit`` -- the same code path as ``skoffice31
reproduce``, including the estimator's own BLAS-thread and SGD-step
choices.  Timers wrap the estimator's own functions while it runs (nothing
is re-implemented here):

- ``gather batch``: ``_Network.gather`` and ``gather_next`` (the minibatch
  rows; with forward fusion the next batch is gathered before the step);
- ``softmax + CE + gradient``: ``multihead_cross_entropy``;
- ``forward + backward GEMMs``: the rest of ``_Network.backprop``;
- ``optimizer step``: ``update_params`` of the optimizer in use (for SGD
  at small batches: the fused weight-gradient GEMM + update);
- ``other``: everything else in the epoch loop (shuffling, bookkeeping).

Per-epoch seconds (median over epochs, the first one dropped when there
are several) and the share of each phase. A phase whose function the
estimator no longer has is reported as missing, not guessed. The machine is
shared: run it on a quiet machine and compare CPU time (``--cpu``) on a
loaded one.
"""

import argparse
import functools
import os
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_common as common  # noqa: E402
from skoffice31 import _multihead, _optimizers  # noqa: E402
from skoffice31.callbacks import EpochReporter  # noqa: E402
from skoffice31.study import StudySettings  # noqa: E402

#: (phase, owner object, attribute): the estimator's functions that are timed.
PHASES = [
    ("gather batch", _multihead._Network, "gather"),
    ("gather batch", _multihead._Network, "gather_next"),  # the next batch (forward fusion)
    ("softmax + CE + gradient", _multihead, "multihead_cross_entropy"),
    ("forward + backward GEMMs", _multihead._Network, "backprop"),
    ("optimizer step", _optimizers.BaseOptimizer, "update_params"),  # Adam's
    ("optimizer step", _optimizers.SGDOptimizer, "update_params"),
]


class PhaseTimer:
    """Wraps functions in place; the time of nested wrapped calls is not counted twice."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.totals = defaultdict(float)
        self.missing = []
        self._stack = []
        self._saved = []

    def wrap(self, phase, owner, name):
        original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if original is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
            return

        @functools.wraps(original)
        def timed(*args, **kwargs):
            t0 = self.clock()
            self._stack.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                inner = self._stack.pop()
                spent = self.clock() - t0
                self.totals[phase] += spent - inner
                if self._stack:
                    self._stack[-1] += spent

        self._saved.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self):
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()


def profile(layout, solver, batch, X, y, epochs, n_threads, clock=time.perf_counter):
    """Per-epoch seconds of each phase of one real fit (first epoch dropped if > 1)."""
    settings = StudySettings.from_preset("study", epochs=epochs, batch_size=batch)
    est = settings.make_estimator((layout, solver))
    timer = PhaseTimer(clock)
    snapshots = []

    def snapshot(_record):
        snapshots.append((clock(), dict(timer.totals)))

    est.set_callbacks(EpochReporter(snapshot))
    for phase, owner, name in PHASES:
        timer.wrap(phase, owner, name)
    try:
        with threadpool_limits(n_threads, user_api="blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = (clock(), {})
            est.fit(X, y)
    finally:
        timer.restore()
    marks = [start, *snapshots]
    per_epoch = []
    for (t0, a), (t1, b) in zip(marks[:-1], marks[1:]):
        phases = {k: b.get(k, 0.0) - a.get(k, 0.0) for k in set(a) | set(b)}
        phases["other"] = (t1 - t0) - sum(phases.values())
        per_epoch.append(phases)
    kept = per_epoch[1:] or per_epoch
    names = [p for p, *_ in PHASES] + ["other"]
    med = {name: float(np.median([e.get(name, 0.0) for e in kept])) for name in dict.fromkeys(names)}
    return med, timer.missing


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", default=",".join(map(str, common.LAYOUTS[-1])))
    p.add_argument("--batch", type=int, default=common.STUDY.batch_size)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rows", type=int, default=common.N_ROWS, help="training rows (default: the study's)")
    p.add_argument("--solvers", nargs="+", default=common.SOLVERS)
    p.add_argument("--threads", nargs="+", type=int, default=[2, 1],
                   help="BLAS thread limits around the fit (the estimator itself uses one "
                        "BLAS thread for minibatches <= 64)")
    p.add_argument("--cpu", action="store_true", help="CPU time (process_time) instead of wall time")
    args = p.parse_args(argv)
    layout = tuple(int(h) for h in args.layout.split(","))
    X, y = common.load_synthetic(*common.ensure_synthetic(args.rows))
    for solver in args.solvers:
        for n_threads in args.threads:
            load = os.getloadavg()[0]
            clock = time.process_time if args.cpu else time.perf_counter
            med, missing = profile(layout, solver, args.batch, X, y, args.epochs, n_threads, clock)
            total = sum(med.values())
            print(f"\n{layout} {solver} batch {args.batch}, {len(X)} rows, BLAS limit {n_threads}, "
                  f"load {load:.1f}: {total:.2f} s/epoch ({'CPU' if args.cpu else 'wall'})")
            for name, t in med.items():
                print(f"  {name:28s} {t:8.3f} s  {100 * t / total:5.1f} %")
            if missing:
                print(f"  not timed (the estimator has no {', '.join(missing)})")


if __name__ == "__main__":
    main()
