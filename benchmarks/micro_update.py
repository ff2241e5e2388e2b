"""Micro-benchmarks of one training step's first-layer work (the hot spot).

The (30000 x 384) float32 first layer of (384,192,64,32,10) at batch 10:
forward GEMM, weight gradient and SGD / Adam update.  Each variant is timed
per step, interleaved round-robin with the others (so a change in machine
load hits all variants alike), median over steps; each variant's result is
compared with a plain NumPy reference step.

    python benchmarks/micro_update.py [--steps 40] [--hidden 384] [--batch 10]

Variants (see the functions below):
  current*       skoffice31._optimizers as it is (OuterGradient, row blocks)
  sgd_sgemm      W.T += -lr * D.T @ X  in ONE scipy.linalg.blas.sgemm call (beta=1):
                 no gradient array, 2 passes over W, both BLAS threads
  adam_sgemm_m   per row block: m.T = b1*m.T + (1-b1)*(D.T @ Xb) by sgemm's beta,
                 g block by a second small GEMM, v and W by NumPy
  adam_ne_block  per row block: g by GEMM, m, v, W by 3 numexpr expressions
                 (2 threads), flush-to-zero inside the expressions
  adam_ne_full   full gradient by one GEMM, then 3 numexpr passes on whole arrays
  adam_fold      per row block: m by sgemm's beta, g' = sqrt(1-b2) g by sgemm's alpha
                 (so v = b2 v + g'^2 needs no scaling pass): 2 GEMMs + 8 ufuncs
  two threads    two Python threads, each running a blocked update on half
                 the rows (BLAS 1 thread inside; NumPy releases the GIL)
  forward*       forward X @ W (BLAS 1 / 2 threads, or 2 Python threads over column
                 halves); "+ next forward" variants: the update followed by the next
                 batch's forward, vs that forward accumulated block by block inside
                 the blocked update while each updated W block is in cache ("folded")
"""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy.linalg import blas
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skoffice31._optimizers import AdamOptimizer, OuterGradient, SGDOptimizer  # noqa: E402

LR, B1, B2, EPS = 1e-4, 0.9, 0.999, 1e-8
TINY = np.finfo(np.float32).tiny
BLOCK = 1 << 16


class State:
    """First-layer weight, Adam moments, a batch and its output delta."""

    def __init__(self, n_features, hidden, batch, seed=0):
        rng = np.random.default_rng(seed)
        self.X = (rng.random((batch, n_features), dtype=np.float32) * 255).round()
        self.X_next = (rng.random((batch, n_features), dtype=np.float32) * 255).round()
        self.D = rng.normal(0, 1e-3, (batch, hidden)).astype(np.float32)
        self.D[:, : hidden // 2] = 0  # dead units: exactly zero gradient columns
        self.W = rng.normal(0, 0.03, (n_features, hidden)).astype(np.float32)
        self.m = np.zeros_like(self.W)
        self.v = np.zeros_like(self.W)
        self.t = 0

    def copy(self):
        new = State.__new__(State)
        new.__dict__ = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        return new

    def adam_scalars(self):
        self.t += 1
        c2 = np.sqrt(1 - B2**self.t)
        return LR * c2 / (1 - B1**self.t), EPS * c2


def rows_per_block(s):
    return max(1, BLOCK // s.W.shape[1])


# ---------------------------------------------------------------- reference ----


def reference(s, solver):
    g = s.X.T.astype(np.float64) @ s.D.astype(np.float64)
    if solver == "sgd":
        s.W -= (LR * g).astype(np.float32)
        return
    lr_t, eps_t = s.adam_scalars()
    s.m[:] = B1 * s.m + (1 - B1) * g
    s.v[:] = B2 * s.v + (1 - B2) * g * g
    s.W -= (lr_t * s.m / (np.sqrt(s.v) + eps_t)).astype(np.float32)


# ----------------------------------------------------------------- current ----


def make_current(solver):
    opt = {}

    def step(s):
        if id(s) not in opt:
            opt.clear()
            if solver == "sgd":
                opt[id(s)] = SGDOptimizer([s.W], LR, momentum=0)
            else:
                o = AdamOptimizer([s.W], LR)
                o.ms, o.vs = [s.m], [s.v]
                opt[id(s)] = o
        opt[id(s)].update_params([s.W], [OuterGradient(s.X, s.D, s.W, 0.0)])

    return step


def make_current_then_forward(solver):
    update = make_current(solver)

    def step(s):
        update(s)
        np.matmul(s.X_next, s.W)

    return step


def with_blas_threads(n, fn):
    def step(s):
        with threadpool_limits(n, user_api="blas"):
            fn(s)

    return step


# ----------------------------------------------------------------- proposals ----


def sgd_sgemm(s):
    """W -= lr * X.T @ D as one BLAS call writing into W (W.T is Fortran-ordered)."""
    blas.sgemm(-LR, s.D, s.X, beta=1.0, c=s.W.T, trans_a=1, overwrite_c=1)


def adam_sgemm_m(s):
    lr_t, eps_t = s.adam_scalars()
    rows = rows_per_block(s)
    XT = s.X.T
    tmp = np.empty((rows, s.W.shape[1]), np.float32)
    for start in range(0, s.W.shape[0], rows):
        stop = min(start + rows, s.W.shape[0])
        xb = np.asfortranarray(XT[start:stop])  # (rows, batch), tiny copy
        m, v, W, t = s.m[start:stop], s.v[start:stop], s.W[start:stop], tmp[: stop - start]
        blas.sgemm(1 - B1, s.D, xb, beta=B1, c=m.T, trans_a=1, trans_b=1, overwrite_c=1)
        np.matmul(xb, s.D, out=t)  # g
        t *= t
        t *= 1 - B2
        v *= B2
        v += t
        np.sqrt(v, out=t)
        t += eps_t
        np.divide(m, t, out=t)
        t *= lr_t
        W -= t


def adam_fold(s, start=0, stop=None, scal=None):
    """Blocked Adam, 2 GEMMs + 8 ufuncs per block instead of 1 GEMM + 12:
    m.T = b1*m.T + (1-b1) D.T@Xb via sgemm's beta; g' = sqrt(1-b2) g via alpha,
    so v = b2*v + g'*g' needs no separate scaling pass."""
    lr_t, eps_t = scal or s.adam_scalars()
    stop = s.W.shape[0] if stop is None else stop
    rows = rows_per_block(s)
    XT = s.X.T
    tmp = np.empty((rows, s.W.shape[1]), np.float32)
    c2 = float(np.sqrt(1 - B2))
    for a in range(start, stop, rows):
        b = min(a + rows, stop)
        xb = np.asfortranarray(XT[a:b])
        m, v, W = s.m[a:b], s.v[a:b], s.W[a:b]
        blas.sgemm(1 - B1, s.D, xb, beta=B1, c=m.T, trans_a=1, trans_b=1, overwrite_c=1)
        t = blas.sgemm(c2, s.D, xb, c=tmp[: b - a].T, trans_a=1, trans_b=1, overwrite_c=1).T
        t *= t
        v *= B2
        v += t
        np.sqrt(v, out=t)
        t += eps_t
        np.divide(m, t, out=t)
        t *= lr_t
        W -= t


def make_two_threads_fold():
    pool = ThreadPoolExecutor(2)

    def step(s):
        scal = s.adam_scalars()
        mid = s.W.shape[0] // 2
        with threadpool_limits(1, user_api="blas"):
            fs = [pool.submit(adam_fold, s, 0, mid, scal), pool.submit(adam_fold, s, mid, None, scal)]
            for f in fs:
                f.result()

    return step


def make_sgd_sgemm_halves():
    """sgd_sgemm on two Python threads, each on half the rows, BLAS 1 thread."""
    pool = ThreadPoolExecutor(2)

    def half(s, a, b):
        blas.sgemm(-LR, s.D, s.X[:, a:b], beta=1.0, c=s.W[a:b].T, trans_a=1, overwrite_c=1)

    def step(s):
        mid = s.W.shape[0] // 2
        with threadpool_limits(1, user_api="blas"):
            fs = [pool.submit(half, s, 0, mid), pool.submit(half, s, mid, s.W.shape[0])]
            for f in fs:
                f.result()

    return step


def _ne():
    import numexpr as ne

    return ne


ADAM_M = "where(abs(b1 * m + c1 * g) < tiny, 0, b1 * m + c1 * g)"
ADAM_V = "where(b2 * v + c2 * g * g < tiny, 0, b2 * v + c2 * g * g)"
ADAM_W = "W - lr * m / (sqrt(v) + eps)"


def _adam_ne(ne, W, m, v, g, lr_t, eps_t):
    common = {"b1": np.float32(B1), "c1": np.float32(1 - B1), "b2": np.float32(B2),
              "c2": np.float32(1 - B2), "tiny": np.float32(TINY)}
    ne.evaluate(ADAM_M, local_dict={**common, "m": m, "g": g}, out=m)
    ne.evaluate(ADAM_V, local_dict={**common, "v": v, "g": g}, out=v)
    ne.evaluate(ADAM_W, local_dict={"W": W, "m": m, "v": v, "lr": np.float32(lr_t),
                                    "eps": np.float32(eps_t)}, out=W)


def make_adam_ne_block(block_rows=None):
    def step(s):
        ne = _ne()
        lr_t, eps_t = s.adam_scalars()
        rows = block_rows or rows_per_block(s)
        g = np.empty((rows, s.W.shape[1]), np.float32)
        XT = s.X.T
        for start in range(0, s.W.shape[0], rows):
            stop = min(start + rows, s.W.shape[0])
            gb = np.matmul(XT[start:stop], s.D, out=g[: stop - start])
            _adam_ne(ne, s.W[start:stop], s.m[start:stop], s.v[start:stop], gb, lr_t, eps_t)

    return step


def adam_ne_full(s):
    ne = _ne()
    lr_t, eps_t = s.adam_scalars()
    g = np.matmul(s.X.T, s.D)
    _adam_ne(ne, s.W, s.m, s.v, g, lr_t, eps_t)


def make_two_threads(solver):
    """Two Python threads over halves of the rows, NumPy blocked update in each."""
    pool = ThreadPoolExecutor(2)

    def half(s, start, stop, lr_t, eps_t):
        rows = rows_per_block(s)
        g = np.empty((rows, s.W.shape[1]), np.float32)
        t = np.empty_like(g)
        XT = s.X.T
        for a in range(start, stop, rows):
            b = min(a + rows, stop)
            gb, tb = g[: b - a], t[: b - a]
            np.matmul(XT[a:b], s.D, out=gb)
            W = s.W[a:b]
            if solver == "sgd":
                gb *= LR
                W -= gb
                continue
            m, v = s.m[a:b], s.v[a:b]
            m *= B1
            np.multiply(gb, 1 - B1, out=tb)
            m += tb
            v *= B2
            np.multiply(gb, gb, out=tb)
            tb *= 1 - B2
            v += tb
            np.sqrt(v, out=tb)
            tb += eps_t
            np.divide(m, tb, out=tb)
            tb *= lr_t
            W -= tb

    def step(s):
        lr_t, eps_t = s.adam_scalars() if solver == "adam" else (LR, 0)
        n = s.W.shape[0]
        mid = n // 2
        with threadpool_limits(1, user_api="blas"):
            futures = [pool.submit(half, s, 0, mid, lr_t, eps_t), pool.submit(half, s, mid, n, lr_t, eps_t)]
            for f in futures:
                f.result()

    return step


# ----------------------------------------------------------------- forward ----


def make_forward(n_threads):
    def step(s):
        with threadpool_limits(n_threads, user_api="blas"):
            np.matmul(s.X, s.W)

    return step


def make_forward_two_threads():
    """Forward split by output columns over two Python threads, BLAS 1 thread each."""
    pool = ThreadPoolExecutor(2)
    out = {}

    def step(s):
        h = s.W.shape[1]
        Z = out.setdefault("Z", np.empty((s.X.shape[0], h), np.float32))
        with threadpool_limits(1, user_api="blas"):
            fs = [pool.submit(np.matmul, s.X, s.W[:, :h // 2], out=Z[:, :h // 2]),
                  pool.submit(np.matmul, s.X, s.W[:, h // 2:], out=Z[:, h // 2:])]
            for f in fs:
                f.result()

    return step


def make_adam_then_forward(fold):
    """The current blocked Adam update (12 ufuncs per block) followed by the next
    batch's forward X_next @ W (fold=False), or with that forward accumulated
    block by block while each updated W block is still in cache (fold=True)."""

    def step(s):
        lr_t, eps_t = s.adam_scalars()
        rows = rows_per_block(s)
        h = s.W.shape[1]
        g = np.empty((rows, h), np.float32)
        t = np.empty_like(g)
        z = np.zeros((s.X.shape[0], h), np.float32)
        part = np.empty_like(z)
        XT = s.X.T
        with threadpool_limits(1, user_api="blas"):
            for a in range(0, s.W.shape[0], rows):
                b = min(a + rows, s.W.shape[0])
                gb, tb = g[: b - a], t[: b - a]
                np.matmul(XT[a:b], s.D, out=gb)
                m, v, W = s.m[a:b], s.v[a:b], s.W[a:b]
                m *= B1
                np.multiply(gb, 1 - B1, out=tb)
                m += tb
                v *= B2
                np.multiply(gb, gb, out=tb)
                tb *= 1 - B2
                v += tb
                np.sqrt(v, out=tb)
                tb += eps_t
                np.divide(m, tb, out=tb)
                tb *= lr_t
                W -= tb
                if fold:
                    z += np.matmul(s.X_next[:, a:b], W, out=part)
            if not fold:
                np.matmul(s.X_next, s.W, out=z)

    return step


def sgd_update_with_next_forward(s):
    """Blocked SGD update that also accumulates X_next @ W_new block by block."""
    rows = rows_per_block(s)
    g = np.empty((rows, s.W.shape[1]), np.float32)
    z = np.zeros((s.X.shape[0], s.W.shape[1]), np.float32)
    part = np.empty_like(z)
    XT = s.X.T
    with threadpool_limits(1, user_api="blas"):
        for start in range(0, s.W.shape[0], rows):
            stop = min(start + rows, s.W.shape[0])
            gb = np.matmul(XT[start:stop], s.D, out=g[: stop - start])
            gb *= LR
            W = s.W[start:stop]
            W -= gb
            z += np.matmul(s.X_next[:, start:stop], W, out=part)


# -------------------------------------------------------------------- main ----


def variants(solver):
    v = {
        "current (BLAS 2 thr)": make_current(solver),
        "current + next forward, BLAS 1 thr": with_blas_threads(1, make_current_then_forward(solver)),
        "current, BLAS 1 thr": with_blas_threads(1, make_current(solver)),
        "two Python threads": make_two_threads(solver),
    }
    if solver == "sgd":
        v["sgd_sgemm (BLAS 2 thr)"] = sgd_sgemm
        v["sgd_sgemm, BLAS 1 thr"] = with_blas_threads(1, sgd_sgemm)
        v["sgd_sgemm halves on 2 Python threads"] = make_sgd_sgemm_halves()
        v["sgd blocked + next forward folded"] = sgd_update_with_next_forward
    else:
        v["adam update + next forward, BLAS 1 thr"] = make_adam_then_forward(False)
        v["adam update, next forward folded in"] = make_adam_then_forward(True)
        v["adam_sgemm_m, BLAS 1 thr"] = with_blas_threads(1, adam_sgemm_m)
        v["adam_fold, BLAS 1 thr"] = with_blas_threads(1, adam_fold)
        v["adam_fold on 2 Python threads"] = make_two_threads_fold()
        try:
            _ne()
            v["adam_ne_block (numexpr 2 thr)"] = with_blas_threads(1, make_adam_ne_block())
            v["adam_ne_full"] = adam_ne_full
        except ImportError:
            pass
    v["forward X@W, BLAS 1 thr"] = make_forward(1)
    v["forward X@W, BLAS 2 thr"] = make_forward(2)
    v["forward, 2 Python threads x BLAS 1"] = make_forward_two_threads()
    return v


def check(solver, fns, base):
    """Max relative difference of W after 3 steps, each variant vs the reference."""
    ref = base.copy()
    for _ in range(3):
        reference(ref, solver)
    out = {}
    for name, fn in fns.items():
        if name.startswith("forward"):
            continue
        s = base.copy()
        for _ in range(3):
            fn(s)
        dW = np.abs((s.W - base.W).astype(np.float64) - (ref.W - base.W))
        out[name] = float(dW.max() / np.abs(ref.W - base.W).max())
    return out


def time_variants(fns, base, steps):
    """Median wall and CPU (process) seconds per step.  On a loaded machine the CPU
    time of a single-threaded variant is the better estimate of its idle wall time."""
    states = {name: base.copy() for name in fns}
    times = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for name, fn in fns.items():  # warm-up
        fn(states[name])
    for _ in range(steps):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn(states[name])
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {name: (float(np.median(times[name])), float(np.median(cpu[name]))) for name in fns}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--solver", nargs="+", default=["sgd", "adam"])
    args = p.parse_args(argv)
    import os

    base = State(30000, args.hidden, args.batch)
    steps_per_epoch = -(-3288 // args.batch)
    print(f"first layer 30000x{args.hidden}, batch {args.batch}, load avg {os.getloadavg()[0]:.1f}")
    for solver in args.solver:
        fns = variants(solver)
        errors = check(solver, fns, base)
        med = time_variants(fns, base, args.steps)
        print(f"\n{solver}: median of {args.steps} steps: wall ms/step, s/epoch ({steps_per_epoch} steps), "
              "CPU ms/step (all threads), max rel. error of the update vs a float64 reference")
        for name, (t, c) in med.items():
            err = errors.get(name)
            err_s = f"{err:.1e}" if err is not None else "-"
            print(f"  {name:38s} {t * 1e3:8.2f} ms {t * steps_per_epoch:7.2f} s/ep   cpu {c * 1e3:8.2f} ms  err {err_s}")
    print(f"\nload avg after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
