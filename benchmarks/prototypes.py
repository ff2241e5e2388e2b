"""Prototype optimizers for the lead (drop-in subclasses of skoffice31's), and an
A/B timing of whole fits with the estimator's optimizer swapped.

    python benchmarks/prototypes.py [--layout 384,192,64,32,10] [--batch 10] [--epochs 3]

FastSGDOptimizer (momentum 0)
    The weight update of a dense layer  W <- (1 - lr*l2) W - lr * A.T @ delta
    is ONE BLAS call: ``gemm(-lr, delta.T, A.T, beta=1 - lr*l2, c=W.T,
    trans_b=1, overwrite_c=1)``.  W.T of a C-ordered W is Fortran-ordered, so
    BLAS writes straight into W: no gradient array, no temporaries, no Python
    loop over row blocks, 2 passes over W (read + write), and BLAS's own
    threads do it.  delta.T and A.T are Fortran-ordered views: nothing is
    copied.
FastAdamOptimizer
    The current blocked update with Python-float step scalars (see its
    docstring).  (Folding m = b1 m + (1-b1) g into the gradient GEMM by
    sgemm's beta was tried in micro_update.py and is not faster.)

Caution: scipy.linalg.blas uses SciPy's own OpenBLAS, a second library next
to NumPy's.  With 2 BLAS threads each, the two pools' busy-waiting threads
fight over the 2 cores and the SGD prototype gets 2-5x SLOWER; with BLAS
limited to one thread (``--threads 1``) it is faster.

Both give the same results as the current optimizers up to float rounding;
``compare`` checks the coefficients after the fits.
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.linalg import blas

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_common as common  # noqa: E402
from skoffice31 import MultiHeadMLPClassifier  # noqa: E402
from skoffice31._optimizers import AdamOptimizer, OuterGradient, SGDOptimizer  # noqa: E402

_GEMM = {np.dtype(np.float32): blas.sgemm, np.dtype(np.float64): blas.dgemm}


def gemm_sgd_update(W, grad, lr):
    """W <- (1 - lr*l2) W - lr * A.T @ delta in place, one BLAS call.

    Returns False (nothing done) when the arrays do not allow an in-place call.
    """
    gemm = _GEMM.get(W.dtype)
    A, D = grad.A, grad.delta
    if gemm is None or not (W.flags.c_contiguous and A.flags.c_contiguous and D.flags.c_contiguous):
        return False
    if A.dtype != W.dtype or D.dtype != W.dtype:
        return False
    if grad.l2 and hasattr(grad, "sq_norm"):  # the loss's L2 term needs ||W||^2 before the step
        flat = W.reshape(-1)
        grad.sq_norm += float(np.dot(flat, flat))
    out = gemm(-lr, D.T, A.T, beta=1.0 - lr * grad.l2, c=W.T, trans_b=1, overwrite_c=1)
    if not np.shares_memory(out, W):  # pragma: no cover - BLAS wrapper copied
        W[...] = out.T
    return True


class FastSGDOptimizer(SGDOptimizer):
    def update_params(self, params, grads):
        if self.momentum:
            return super().update_params(params, grads)
        self._start_step()
        for i, (param, grad) in enumerate(zip(params, grads)):
            if isinstance(grad, OuterGradient) and gemm_sgd_update(param, grad, self.learning_rate):
                continue
            if isinstance(grad, OuterGradient):
                grad = grad.toarray()
            param -= self.learning_rate * grad  # intercepts: tiny


class FastAdamOptimizer(AdamOptimizer):
    """The current AdamOptimizer with its per-step scalars as Python floats.

    ``np.sqrt(...)`` makes ``learning_rate`` and ``_eps_t`` NumPy float64
    scalars; under NumPy 2's promotion rules (NEP 50) ``tmp *= np.float64(x)``
    on a float32 array computes in float64 and casts back (buffered), which
    made the whole blocked update ~40 % slower. Python floats are "weak"
    scalars: the ufuncs stay in float32.
    """

    def _start_step(self):
        super()._start_step()
        self.learning_rate = float(self.learning_rate)
        self._eps_t = float(self._eps_t)


class TwoThreadAdamOptimizer(FastAdamOptimizer):
    """FastAdamOptimizer whose large parameters are updated by two Python
    threads, each on half of the rows with its own scratch blocks (NumPy
    releases the GIL inside ufuncs and matmul).  Meant to run with ONE BLAS
    thread (threadpool_limits), otherwise the spinning BLAS threads take the
    second core."""

    min_size = 1 << 20

    def update_params(self, params, grads):
        self._start_step()
        pool = _pool()
        futures = []
        for i, (param, grad) in enumerate(zip(params, grads)):
            if param.size >= self.min_size and param.ndim == 2:
                mid = param.shape[0] // 2
                futures += [pool.submit(self._rows, i, param, grad, 0, mid, 0),
                            pool.submit(self._rows, i, param, grad, mid, param.shape[0], 1)]
            else:
                self._rows(i, param, grad, 0, param.shape[0], 0)
        for f in futures:
            f.result()

    def _rows(self, i, param, grad, first, last, worker):
        rows_per_block = param.shape[0] if param.ndim == 1 else max(1, self.block_size // param.shape[1])
        key = (param.shape[1:], param.dtype.str, worker)
        bufs = self._scratch.get(key)
        if bufs is None or bufs[0].shape[0] < rows_per_block:
            bufs = tuple(np.empty((rows_per_block,) + param.shape[1:], param.dtype) for _ in "gt")
            self._scratch[key] = bufs
        for start in range(first, last, rows_per_block):
            stop = min(last, start + rows_per_block)
            g_buf, tmp = bufs[0][: stop - start], bufs[1][: stop - start]
            g = grad[start:stop] if isinstance(grad, np.ndarray) else grad.rows(start, stop, g_buf)
            self._update_block(i, start, stop, param[start:stop], g, tmp)


_POOL = []


def _pool():
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(2))
    return _POOL[0]


# ------------------------------------------------------------- A/B of fits ----


def estimator(layout, solver, batch, epochs):
    return MultiHeadMLPClassifier(
        hidden=layout, solver=solver, momentum=0.0, nesterovs_momentum=False, alpha=0.0,
        learning_rate_init=1e-4, batch_size=batch, max_iter=epochs, n_iter_no_change=epochs + 1,
        tol=0.0, init="normal", init_scale=0.03, random_state=0,
    )


PROTOTYPES = {"fast": (FastSGDOptimizer, FastAdamOptimizer), "2threads": (FastSGDOptimizer, TwoThreadAdamOptimizer)}


def fit_timed(est, X, y, fast):
    from skoffice31._progress import epoch_callback

    if fast:
        original = est._make_optimizer

        def patched():
            opt = original()
            sgd_cls, adam_cls = PROTOTYPES[fast if isinstance(fast, str) else "fast"]
            cls = sgd_cls if isinstance(opt, SGDOptimizer) else adam_cls
            opt.__class__ = cls
            return opt

        est._make_optimizer = patched
    stamps, cpu = [], []

    def stamp(info):
        stamps.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0, c0 = time.perf_counter(), time.process_time()
        with epoch_callback(stamp):
            est.fit(X, y)
    return np.diff([0.0, *stamps]), np.diff([0.0, *cpu])


def compare(layout, solver, batch, epochs, X, y, n_threads=None, variant="fast"):
    """Median wall and CPU seconds per epoch (epochs 2..), current vs prototype."""
    from threadpoolctl import threadpool_limits

    times, cpus, coefs = {}, {}, {}
    for fast in (False, True, False, True):  # interleaved A/B/A/B
        est = estimator(layout, solver, batch, epochs)
        with threadpool_limits(n_threads, user_api="blas"):
            t, c = fit_timed(est, X, y, variant if fast else False)
        times.setdefault(fast, []).extend(t[1:] if len(t) > 1 else t)
        cpus.setdefault(fast, []).extend(c[1:] if len(c) > 1 else c)
        coefs[fast] = est.coefs_
    diff = max(float(np.max(np.abs(a - b)) / np.max(np.abs(a))) for a, b in zip(coefs[False], coefs[True]))
    med = {k: (float(np.median(times[k])), float(np.median(cpus[k]))) for k in times}
    return med[False], med[True], diff


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", default="384,192,64,32,10")
    p.add_argument("--batch", type=int, nargs="+", default=[10])
    p.add_argument("--solvers", nargs="+", default=["sgd", "adam"])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rows", type=int, default=common.N_ROWS)
    p.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    p.add_argument("--variant", choices=sorted(PROTOTYPES), default="fast")
    args = p.parse_args(argv)
    layout = tuple(int(h) for h in args.layout.split(","))
    X, y = common.load_synthetic(*common.ensure_synthetic())
    X, y = X[: args.rows], y[: args.rows]
    for solver in args.solvers:
        for batch in args.batch:
            load = os.getloadavg()[0]
            cur, fast, diff = compare(layout, solver, batch, args.epochs, X, y, args.threads, args.variant)
            print(f"[{args.variant}] {layout} {solver} b{batch} BLAS threads {args.threads or 'all'} (load {load:.1f}): "
                  f"wall s/epoch current {cur[0]:.2f} prototype {fast[0]:.2f} ({cur[0] / fast[0]:.2f}x); "
                  f"CPU s/epoch current {cur[1]:.2f} prototype {fast[1]:.2f} ({cur[1] / fast[1]:.2f}x); "
                  f"max rel. coef difference {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()
