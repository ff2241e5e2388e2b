"""Where does a training step's time go?  Phase breakdown of our training loop.

    python benchmarks/profile_training.py [--layout 384,192,64,32,10] [--batch 10] [--steps 60]

Re-runs the estimator's own step (skoffice31._multihead._Network and the
optimizers of skoffice31._optimizers) with a timer around every phase:
gather of the batch rows, forward GEMMs (first layer / the rest, with bias
and ReLU), softmax + cross-entropy + its gradient, backward GEMMs for the
deltas (with the ReLU derivative), intercept gradients, and the optimizer
update (first layer: weight-gradient GEMM in row blocks + update; the
rest).  Medians over steps, in ms per step and s per epoch (3,288 rows),
for SGD and Adam, BLAS with 1 and 2 threads.  The phase code mirrors
``_Network.backprop``; if that changes, update ``timed_step`` here.
"""

import argparse
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
from skoffice31 import MultiHeadMLPClassifier  # noqa: E402
from skoffice31._losses import head_slices, multihead_cross_entropy  # noqa: E402
from skoffice31._multihead import _Network  # noqa: E402
from skoffice31._optimizers import OuterGradient  # noqa: E402


class Timer:
    """Laps of wall time (perf_counter) or, with ``clock=time.process_time``, CPU
    time: on a loaded machine the CPU time of single-threaded code (BLAS 1
    thread) estimates its idle wall time better than the wall time does."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.times = defaultdict(list)
        self._t = None
        self._cur = {}

    def start(self):
        self._cur = defaultdict(float)
        self._t = self.clock()

    def lap(self, name):
        now = self.clock()
        self._cur[name] += now - self._t
        self._t = now

    def end_step(self):
        for name, t in self._cur.items():
            self.times[name].append(t)

    def medians(self):
        return {name: float(np.median(t)) for name, t in self.times.items()}


def make_state(layout, solver, batch, X, y):
    """A fitted-for-2-batches estimator: initialised coefs, optimizer, network."""
    est = MultiHeadMLPClassifier(
        hidden=layout, solver=solver, momentum=0.0, nesterovs_momentum=False, alpha=0.0,
        learning_rate_init=1e-4, batch_size=batch, max_iter=1, init="normal", init_scale=0.03,
        random_state=0, warm_start=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[: 2 * batch], y[: 2 * batch])
    opt = est._optimizer
    net = _Network(est.coefs_, est.intercepts_, batch)
    slices = head_slices([len(c) for c in est.classes_])
    return est, opt, net, slices


def timed_step(timer, net, opt, params, X, y_idx, rows, slices, head_weights):
    """One step, mirroring _Network.backprop + update_params, with laps."""
    timer.start()
    xb = net.gather(X, rows)
    yb = y_idx[rows]
    sw = np.full(len(rows), 1.0 / len(rows), dtype=xb.dtype)
    timer.lap("gather batch")
    n = xb.shape[0]
    activations = [xb]
    last = len(net.coefs) - 1
    for i, (W, b) in enumerate(zip(net.coefs, net.intercepts)):
        Z = net.z_bufs[i][:n]
        np.matmul(activations[-1], W, out=Z)
        Z += b
        if i < last:
            net.relu(Z)
        activations.append(Z)
        timer.lap("forward layer 1" if i == 0 else "forward other layers")
    deltas = [buf[:n] for buf in net.delta_bufs]
    multihead_cross_entropy(activations[-1], yb, slices, head_weights, sw, deltas[last])
    timer.lap("softmax + CE + gradient")
    for i in range(last, 0, -1):
        np.matmul(deltas[i], net.coefs[i].T, out=deltas[i - 1])
        net.relu_derivative(activations[i], deltas[i - 1])
    timer.lap("backward delta GEMMs")
    coef_grads = [OuterGradient(activations[i], deltas[i], net.coefs[i], 0.0) for i in range(last + 1)]
    intercept_grads = [d.sum(axis=0) for d in deltas]
    timer.lap("intercept gradients")
    # update: first layer alone, then the rest (one optimizer step in total)
    opt._start_step()
    _update_one(opt, 0, params[0], coef_grads[0])
    timer.lap("layer 1 weight grad GEMM + update")
    for i in range(1, len(params)):
        grad = coef_grads[i] if i < len(coef_grads) else intercept_grads[i - len(coef_grads)]
        _update_one(opt, i, params[i], grad)
    timer.lap("update other params")
    timer.end_step()


def _update_one(opt, i, param, grad):
    """BaseOptimizer.update_params for one parameter (without _start_step)."""
    rows_per_block = param.shape[0] if param.ndim == 1 else max(1, opt.block_size // param.shape[1])
    for start in range(0, param.shape[0], rows_per_block):
        stop = min(param.shape[0], start + rows_per_block)
        g_buf, tmp = opt._buffers(param, stop - start)
        g = grad[start:stop] if isinstance(grad, np.ndarray) else grad.rows(start, stop, g_buf)
        opt._update_block(i, start, stop, param[start:stop], g, tmp)


def split_layer1_update(opt, param, grad, steps=20, clock=time.perf_counter):
    """Within layer 1: weight-gradient GEMM blocks alone vs the whole update."""
    rows_per_block = max(1, opt.block_size // param.shape[1])
    g_buf, _ = opt._buffers(param, rows_per_block)
    t = []
    for _ in range(steps):
        t0 = clock()
        for start in range(0, param.shape[0], rows_per_block):
            stop = min(param.shape[0], start + rows_per_block)
            grad.rows(start, stop, g_buf[: stop - start])
        t.append(clock() - t0)
    return float(np.median(t))


def profile(layout, solver, batch, X, y, steps, n_threads, clock=time.perf_counter):
    est, opt, net, slices = make_state(layout, solver, batch, X, y)
    y_idx = np.column_stack([np.searchsorted(c, y[:, h]) for h, c in enumerate(est.classes_)])
    params = est.coefs_ + est.intercepts_
    head_weights = np.ones(y_idx.shape[1])
    timer = Timer(clock)
    rng = np.random.default_rng(0)
    with threadpool_limits(n_threads, user_api="blas"):
        for k in range(steps + 3):
            rows = rng.choice(X.shape[0], batch, replace=False)
            timed_step(timer, net, opt, params, X, y_idx, rows, slices, head_weights)
            if k == 2:  # drop warm-up steps
                timer.times.clear()
        xb = net.x_buf[:batch]
        gemm_only = split_layer1_update(opt, params[0], OuterGradient(xb, net.delta_bufs[0][:batch],
                                                                            params[0], 0.0), clock=clock)
    med = timer.medians()
    med["  (of which layer 1 weight-grad GEMM blocks)"] = gemm_only
    return med


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", default="384,192,64,32,10")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--solvers", nargs="+", default=["sgd", "adam"])
    p.add_argument("--threads", nargs="+", type=int, default=[2, 1])
    p.add_argument("--cpu", action="store_true", help="lap CPU time (process_time) instead of wall time")
    args = p.parse_args(argv)
    layout = tuple(int(h) for h in args.layout.split(","))
    X, y = common.load_synthetic(*common.ensure_synthetic())
    steps_per_epoch = common.steps_per_epoch(X.shape[0], args.batch)
    for solver in args.solvers:
        for n_threads in args.threads:
            load = os.getloadavg()[0]
            clock = time.process_time if args.cpu else time.perf_counter
            med = profile(layout, solver, args.batch, X, y, args.steps, n_threads, clock)
            total = sum(v for k, v in med.items() if not k.startswith(" "))
            print(f"\n{layout} {solver} batch {args.batch}, BLAS {n_threads} thread(s), load {load:.1f}: "
                  f"{total * 1e3:.1f} ms/step = {total * steps_per_epoch:.2f} s/epoch ({'CPU' if args.cpu else 'wall'})")
            for name, t in med.items():
                print(f"  {name:45s} {t * 1e3:8.2f} ms  {100 * t / total:5.1f} %")


if __name__ == "__main__":
    main()
