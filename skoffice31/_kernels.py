"""Fused compiled update kernels for wide dense layers (optional, numba).

A training step of a wide first layer (30,000 x 384 float32 weights, 46 MB)
is bound by memory traffic: the NumPy path of :mod:`skoffice31._optimizers`
computes the weight gradient ``A.T @ delta + l2 * W`` in row blocks and
updates the block with about ten ufunc passes. The kernels here do the same
mathematics in one compiled loop per row of ``W``:

1. the gradient row ``g = A[:, r] @ delta (+ l2 * W[r])`` is computed into a
   small buffer that stays in the L1 cache,
2. it is consumed at once by the optimizer's update (Adam with the subnormal
   flush, SGD with momentum or Nesterov's momentum, plain SGD), with the
   operations in the same order as the NumPy path, so that for the same
   gradient row the update is the same to the last bit,
3. optionally, the updated row is multiplied into the *next* minibatch's
   forward product ``X_next @ W`` (the rows of the next batch are known in
   advance), so that ``W`` is streamed from memory once per step instead of
   twice.

The full gradient is never materialised. Each kernel returns ``||W||^2`` of
the weights as they were read (before the update) when ``l2 > 0`` -- the loss's
L2 term -- and 0 otherwise.

The rows are split into at most :data:`N_PARTS` contiguous parts of at
least :data:`PART_MIN_SIZE` weights, run by ``n_threads`` threads (the
caller and the helper threads of :mod:`skoffice31._team`, which spin
between steps instead of sleeping; the compiled code releases the GIL),
each claiming the next part, with an atomic counter, when done with one.
The partition depends on the shape only, not on the number of threads, so
every result (the forward product's summation order included) is the same
with one thread or two. A layer of one part runs in the caller's thread
alone.

Switching the kernels off
-------------------------
numba is an optional dependency (the ``fast`` extra). Importing
``skoffice31`` never imports numba; it is imported, and the kernels compiled
(once per machine, then loaded from numba's on-disk cache), on the first
call of :func:`kernels_available` that finds them enabled. To force the
pure NumPy path, set the environment variable ``SKOFFICE31_KERNELS=0``
(also ``false``, ``no`` or ``off``); it is read at every call of
:func:`kernels_available`, so it can be changed inside a session.

Compiled code is cached next to this file (``__pycache__``) or, when the
package folder is read-only, in numba's per-user cache folder; the
``NUMBA_CACHE_DIR`` environment variable overrides both.
"""

import numpy as np

from skoffice31 import _environment, _team
from skoffice31._team import claim as _claim
from skoffice31._team import finish as _finish
from skoffice31._team import post as _post
from skoffice31._team import wait_done as _wait_done
from skoffice31._team import wait_post as _wait_post

#: Environment variable that switches the kernels off ("0", "false", "no", "off").
ENV_VAR = "SKOFFICE31_KERNELS"

#: Upper bound on the number of row parts of one call (see the module docstring).
N_PARTS = 16

#: Fewest weights of a row part: when the product of the next minibatch is
#: fused, each part adds one partial product, and the partition fixes the
#: product's summation order (so results recorded with it stay as they
#: are); a small layer (384 x 192, say) is one part instead of sixteen.
PART_MIN_SIZE = 1 << 16

#: Optimizer kinds understood by the kernels (momentum covers Nesterov's,
#: told apart by the kernels' ``flag``).
ADAM, SGD, MOMENTUM = 0, 1, 2

#: Environment variable setting how many threads share a step's update
#: (row blocks and kernel parts), whatever BLAS's thread limit is.
THREADS_ENV_VAR = "SKOFFICE31_UPDATE_THREADS"

_STATE = {}


def update_threads_from_environment():
    """``SKOFFICE31_UPDATE_THREADS`` as a positive int, or None when unset/empty.

    Raises
    ------
    ValueError
        When it is set to anything but a positive integer.
    """
    return _environment.integer(
        THREADS_ENV_VAR,
        minimum=1,
        default=None,
        hint="give a positive number of threads, or unset it to let the training plan choose.",
    )


def kernels_enabled():
    """Whether the kernels are switched on (``SKOFFICE31_KERNELS`` is not "0").

    Returns
    -------
    enabled : bool
    """
    return _environment.switch_on(ENV_VAR)


def kernels_available():
    """Whether the compiled kernels can be used: enabled and numba importable.

    The first call that finds them enabled imports numba (0.5-1 s) and
    prepares the kernels; compilation itself happens at the first update of
    each dtype (about 3 s for Adam in float32, once per machine) and is
    cached on disk (0.2 s to load in a new process).

    Returns
    -------
    available : bool
    """
    return kernels_enabled() and _kernel() is not None


def warm_up(dtypes=(np.float32,), solvers=("adam", "sgd")):
    """Compile (or load from the on-disk cache) the kernels of these dtypes
    and solvers now (row kernels, transposed kernels and block updates),
    with a tiny call.

    Worth calling in the parent process before starting parallel workers
    (joblib/loky, dask): with a cold cache every worker would otherwise
    compile the same kernels at the same time.

    Parameters
    ----------
    dtypes : tuple of dtype, default=(np.float32,)
    solvers : tuple of {"adam", "sgd", "momentum"}, default=("adam", "sgd")

    Returns
    -------
    available : bool
        Whether the kernels are available (nothing is done otherwise).
    """
    if not kernels_available():
        return False
    for dtype in dtypes:
        W = np.zeros((2, 2), dtype)
        A = np.zeros((2, 3), dtype)
        for solver in solvers:
            for layer in (np.zeros((3, 2), dtype, order=order) for order in "CF"):
                # a C-ordered layer compiles the row kernels, a Fortran-ordered
                # one the transposed kernels (skoffice31._plan.transposes)
                state = (np.zeros_like(layer), np.zeros_like(layer))
                if solver == "adam":
                    adam_update(layer, A, W, *state, lr=0.0, eps=1.0, n_threads=1)
                else:
                    sgd_update(layer, A, W, lr=0.0, velocity=state[0],
                               momentum=0.5 if solver == "momentum" else 0.0, n_threads=1)
            if solver == "adam":
                adam_block(W, W, np.zeros_like(W), np.zeros_like(W), lr=0.0, eps=1.0)
            else:
                momentum = 0.5 if solver == "momentum" else 0.0
                if momentum:
                    momentum_block(W, W, np.zeros_like(W), lr=0.0, momentum=momentum,
                                   nesterov=True)
    return True


def _kernel():
    """The compiled kernels by kind, or None when numba cannot be imported."""
    if "kernels" not in _STATE:
        try:
            import numba
        except ImportError:
            _STATE["kernels"] = None
        else:
            _STATE["kernels"] = _build(numba)
    return _STATE["kernels"]


#: The functions compiled by :func:`_build`, helpers first.
_COMPILED = ("_grad_row", "_l2_row", "_adam_row", "_sgd_row", "_momentum_row", "_update_rows",
             "_enter", "_next_part", "_leave", "_forward_rows", "_start_part", "_update_part",
             "_grad_columns", "_grad_quad", "_grad_units", "_forward_pair", "_forward_quad",
             "_forward_columns", "_update_tpart", "_gather_part")


#: Floating-point freedoms per compiled function: only the sums of products
#: (the gradient row and the forward product, whose summation order differs
#: from BLAS's anyway) may fuse a multiply and an add into one FMA
#: instruction. The optimizer updates get none, so that for the same
#: gradient row they equal the NumPy path to the last bit.
_FASTMATH = {"_grad_row": {"contract"}, "_forward_rows": {"contract"},
             "_grad_columns": {"contract"}, "_grad_quad": {"contract"},
             "_forward_pair": {"contract", "reassoc"},
             "_forward_quad": {"contract", "reassoc"}}


#: Functions numba inlines into their callers (``inline="always"``) instead
#: of compiling them alone: numba links a compiled callee into each caller
#: and LLVM optimises it again there, at every level of calls, which had
#: doubled the cold compile. The sums with their own ``fastmath`` flags
#: stay separate functions (inlined, they would take their caller's).
_INLINED = frozenset({"_l2_row", "_adam_row", "_sgd_row", "_momentum_row", "_update_rows",
                      "_grad_units", "_forward_columns", "_enter", "_next_part", "_leave",
                      "_start_part"})


def _build(numba):
    """Compile lazily (at the first call of each dtype) with the on-disk cache.

    The compiled functions replace their Python versions in this module's
    namespace, so that a kernel calls the compiled helpers. They are serial
    and release the GIL: the two threads of a step are Python threads, each
    running parts of the rows (no numba threading layer, no ``parallel=True``
    whose compilation alone took ~3 s).
    """
    module = globals()
    if "sync" not in _STATE:
        _STATE["sync"] = _team.compile_sync(numba)
    for name, fn in _STATE["sync"].items():
        module["_" + name] = fn
    for name in _COMPILED:
        if not isinstance(module[name], numba.core.dispatcher.Dispatcher):
            module[name] = numba.njit(
                cache=True, fastmath=_FASTMATH.get(name, False), nogil=True,
                error_model="numpy", inline="always" if name in _INLINED else "never",
            )(module[name])
    return {"rows": module["_update_part"], "T": module["_update_tpart"]}


# ------------------------------------------------------------------ kernels
# Plain Python (NumPy scalars and loops) that numba compiles; the Python
# interpreter runs it too, very slowly (the tests do, on tiny arrays).


def _grad_row(A, delta, r, g):
    """``g = A[:, r] @ delta``, summed over the samples in order, four at a time."""
    n = A.shape[0]
    n_out = g.shape[0]
    for j in range(n_out):
        g[j] = 0
    k = 0
    while k + 4 <= n:
        a0, a1, a2, a3 = A[k, r], A[k + 1, r], A[k + 2, r], A[k + 3, r]
        d0, d1, d2, d3 = delta[k], delta[k + 1], delta[k + 2], delta[k + 3]
        for j in range(n_out):
            g[j] = g[j] + a0 * d0[j] + a1 * d1[j] + a2 * d2[j] + a3 * d3[j]
        k += 4
    while k < n:
        a = A[k, r]
        d = delta[k]
        for j in range(n_out):
            g[j] += a * d[j]
        k += 1


def _l2_row(w, g, l2, sq):
    """``g += l2 * w``; ``sq += w**2`` (float64, per column) before the update."""
    for j in range(g.shape[0]):
        wj = w[j]
        sq[j] += np.float64(wj) * np.float64(wj)
        g[j] += l2 * wj


def _adam_row(w, g, m, v, coef, flush):
    """Adam on one row, in the operation order of ``AdamOptimizer._update_block``."""
    b1, c1, b2, c2, lr, eps, tiny, zero = (
        coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6], coef[7]
    )
    # Two loops, the flush's selects without branches: a conditional
    # assignment inside the loop kept LLVM from vectorising it (scalar
    # sqrt and division, measured 2-3x slower on a 384-wide row).
    if flush:
        for j in range(g.shape[0]):
            gj = g[j]
            mj = m[j] * b1 + gj * c1
            vj = v[j] * b2 + (gj * gj) * c2
            mj = zero if abs(mj) < tiny else mj
            vj = zero if vj < tiny else vj
            m[j] = mj
            v[j] = vj
            w[j] = w[j] - (mj / (np.sqrt(vj) + eps)) * lr
    else:
        for j in range(g.shape[0]):
            gj = g[j]
            mj = m[j] * b1 + gj * c1
            vj = v[j] * b2 + (gj * gj) * c2
            m[j] = mj
            v[j] = vj
            w[j] = w[j] - (mj / (np.sqrt(vj) + eps)) * lr


def _sgd_row(w, g, lr):
    for j in range(g.shape[0]):
        w[j] = w[j] - g[j] * lr


def _momentum_row(w, g, vel, lr, mu, nesterov):
    """Momentum / Nesterov, in the operation order of ``SGDOptimizer._update_block``."""
    if nesterov:
        for j in range(g.shape[0]):
            step = g[j] * lr
            vj = vel[j] * mu - step
            vel[j] = vj
            w[j] = (w[j] - step) + vj * mu
    else:
        for j in range(g.shape[0]):
            vj = vel[j] * mu - g[j] * lr
            vel[j] = vj
            w[j] = w[j] + vj


def _forward_rows(W, X_next, acc, r0, r1):
    """``acc += X_next[:, r0:r1] @ W[r0:r1]``, summed over the rows in order,
    eight rows at a time (a group of eight rows costs one pass over ``acc``)."""
    n_out = W.shape[1]
    if r1 - r0 == 8:
        w0, w1, w2, w3 = W[r0], W[r0 + 1], W[r0 + 2], W[r0 + 3]
        w4, w5, w6, w7 = W[r0 + 4], W[r0 + 5], W[r0 + 6], W[r0 + 7]
        for k in range(X_next.shape[0]):
            x = X_next[k]
            x0, x1, x2, x3 = x[r0], x[r0 + 1], x[r0 + 2], x[r0 + 3]
            x4, x5, x6, x7 = x[r0 + 4], x[r0 + 5], x[r0 + 6], x[r0 + 7]
            o = acc[k]
            for j in range(n_out):
                o[j] = (o[j] + x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j]
                        + x4 * w4[j] + x5 * w5[j] + x6 * w6[j] + x7 * w7[j])
    else:
        for r in range(r0, r1):
            w = W[r]
            for k in range(X_next.shape[0]):
                a = X_next[k, r]
                o = acc[k]
                for j in range(n_out):
                    o[j] += a * w[j]


# A kernel call runs a *job*: ``(out_parts, sq_parts, bounds, counters, flags,
# seq, role, spins)``. Its parts (rows ``bounds[p]:bounds[p + 1]``, or inputs
# of a transposed layer) are claimed one by one from ``counters`` by every
# thread running the job (see :mod:`skoffice31._team`); part ``p`` writes its
# share of the next forward product into ``out_parts[p]`` and ``||W||^2`` of
# its rows into ``sq_parts[p]``. Nothing after a kernel's first claim
# allocates or raises, so a claimed part is always finished.


def _enter(job):
    """Post the job (when this thread is its caller); claim a first part."""
    out_parts, sq_parts, bounds, counters, flags, seq, role, spins = job
    if role == _team.MAIN:
        _post(flags, seq)
    return _claim(counters, len(bounds) - 1)


def _next_part(job, p, sq):
    """Record part ``p``'s ``||W||^2`` and count it finished; claim the next."""
    out_parts, sq_parts, bounds, counters, flags, seq, role, spins = job
    sq_parts[p] = sq
    _finish(counters)
    return _claim(counters, len(bounds) - 1)


def _leave(job):
    """No part left to claim: a helper spins for the next job (1 when it was
    posted, else 0); the caller waits until every claimed part is finished
    (returns how many times it spun for them)."""
    out_parts, sq_parts, bounds, counters, flags, seq, role, spins = job
    if role == _team.HELPER:
        return 1 if _wait_post(flags, seq, spins) else 0
    return _wait_done(counters, len(bounds) - 1)


def _start_part(job, p, sq):
    """Part ``p``'s product accumulator (zeroed) and bounds; ``sq`` zeroed."""
    acc, bounds = job[0][p], job[2]
    for k in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            acc[k, j] = 0
    for j in range(sq.shape[0]):
        sq[j] = 0
    return acc, bounds[p], bounds[p + 1]


# One kernel for every optimizer (``kind``, a branch per group of rows, so
# that a second solver compiles nothing): for each claimed part, gradient
# row, L2 term, update, and the forward product of each group of eight
# updated rows. ``s0, s1`` are the optimizer's state arrays, Adam's ``m, v``
# (for momentum the velocity and ``W``, for plain SGD ``W`` twice: arrays of
# ``W``'s shape and layout that are not read, so that one call site updates
# for every solver), ``coef`` its scalars (:func:`_adam_coef`; ``[lr]``;
# ``[lr, momentum]``) and ``flag`` Adam's flush or Nesterov's momentum.


def _update_rows(kind, w, g, s0, s1, coef, flag):
    """``kind``'s update of the weights ``w`` with the gradient ``g`` and
    the states ``s0, s1`` (those the solver does not have are not read)."""
    if kind == ADAM:
        _adam_row(w, g, s0, s1, coef, flag)
    elif kind == SGD:
        _sgd_row(w, g, coef[0])
    else:
        _momentum_row(w, g, s0, coef[0], coef[1], flag)


def _update_part(W, A, delta, s0, s1, l2, kind, coef, flag, X_next, job):
    # The gradient rows of a group of eight go into one buffer, and the
    # update runs on the group's rows (contiguous in W and its states) in
    # one loop: one loop's overhead per eight rows instead of one per row,
    # and the same operations on every weight.
    n_out = W.shape[1]
    g8 = np.empty(8 * n_out, W.dtype)
    sq = np.empty(n_out, np.float64)
    p = _enter(job)
    while p >= 0:
        acc, lo, hi = _start_part(job, p, sq)
        for r0 in range(lo, hi, 8):
            r1 = min(r0 + 8, hi)
            for r in range(r0, r1):
                g = g8[(r - r0) * n_out:(r - r0 + 1) * n_out]
                _grad_row(A, delta, r, g)
                if l2 != 0:
                    _l2_row(W[r], g, l2, sq)
            k = (r1 - r0) * n_out
            _update_rows(kind, W[r0:r1].reshape(k), g8[:k], s0[r0:r1].reshape(k),
                         s1[r0:r1].reshape(k), coef, flag)
            if X_next.shape[0]:
                _forward_rows(W, X_next, acc, r0, r1)
        p = _next_part(job, p, sq.sum())
    return _leave(job)


# --------------------------------------------------- transposed layers
# A narrow layer (30,000 x 10 weights, say) is stored in Fortran order, so
# that ``WT = W.T`` -- one row of ``n_in`` weights per output unit -- is
# C-contiguous, and so are its optimizer state arrays (allocated like
# ``W``). The parts below take ``WT`` and work along the inputs, in chunks of
# COLUMN_CHUNK inputs: for each unit ``j`` the gradient row
# ``delta[:, j] @ A[:, chunk]`` is a few long multiply-adds along rows of
# ``A``, the update runs on the contiguous ``WT[j, chunk]`` (and state), and
# the next forward product adds the dot products ``X_next[k, chunk] @
# WT[j, chunk]``. Every inner loop is long and contiguous, so it vectorises
# whatever the number of units; the row kernels above loop over rows of
# ``n_out`` weights, too short to vectorise when ``n_out`` is 10.

#: Inputs per chunk of the transposed parts, read at every call (so that a
#: benchmark can compare values in one process): the chunk of ``WT`` and its
#: state (``n_out`` x 1024 weights each, 1.5 MB at the largest transposed
#: layer's 128 units) stays in cache between the update and the forward
#: product. ``python benchmarks/bench_kernels.py --part fit_chunk`` (paired
#: fits, 9 pairs; ``benchmarks/results/kernels_fit_chunk*.json``): 512 took
#: 1.07x (10) and 1.04x (64,32,10) the time of 1024, 2048 took 0.95x and
#: 1.00x -- within this machine's noise; docs/performance.rst, *Chunk size*.
COLUMN_CHUNK = 1024


def _grad_columns(A, delta, j, j1, c0, c1, g, h):
    """``g[:c1 - c0] = delta[:, j] @ A[:, c0:c1]`` and, when ``j1 > j``, the
    same for unit ``j1`` into ``h`` in the same pass over ``A``; summed over
    the samples in order, four at a time (the order of :func:`_grad_row`)."""
    # Slices indexed from 0: an index known to be non-negative needs no
    # wraparound select, which would keep the loop from vectorising.
    n = A.shape[0]
    n_cols = c1 - c0
    two = j1 > j
    for c in range(n_cols):
        g[c] = 0
        h[c] = 0
    k = 0
    while k + 4 <= n:
        d0, d1, d2, d3 = delta[k, j], delta[k + 1, j], delta[k + 2, j], delta[k + 3, j]
        a0, a1 = A[k, c0:c1], A[k + 1, c0:c1]
        a2, a3 = A[k + 2, c0:c1], A[k + 3, c0:c1]
        if two:
            e0, e1 = delta[k, j1], delta[k + 1, j1]
            e2, e3 = delta[k + 2, j1], delta[k + 3, j1]
            for c in range(n_cols):
                p0, p1, p2, p3 = a0[c], a1[c], a2[c], a3[c]
                g[c] = g[c] + p0 * d0 + p1 * d1 + p2 * d2 + p3 * d3
                h[c] = h[c] + p0 * e0 + p1 * e1 + p2 * e2 + p3 * e3
        else:
            for c in range(n_cols):
                g[c] = g[c] + a0[c] * d0 + a1[c] * d1 + a2[c] * d2 + a3[c] * d3
        k += 4
    if k + 2 <= n:  # a pair: the same sums, in the same order, as two singles
        d0, d1, e0, e1 = delta[k, j], delta[k + 1, j], delta[k, j1], delta[k + 1, j1]
        a0, a1 = A[k, c0:c1], A[k + 1, c0:c1]
        for c in range(n_cols):
            p0, p1 = a0[c], a1[c]
            g[c] = g[c] + p0 * d0 + p1 * d1
            h[c] = h[c] + p0 * e0 + p1 * e1
        k += 2
    if k < n:
        d, e = delta[k, j], delta[k, j1]
        a = A[k, c0:c1]
        for c in range(n_cols):
            g[c] += a[c] * d
            h[c] += a[c] * e


def _grad_quad(A, delta, j, c0, c1, gh):
    """``gh[u, :c1 - c0] = delta[:, j + u] @ A[:, c0:c1]`` for the four units
    ``u = 0..3`` in one pass over ``A``: each sum in the order of
    :func:`_grad_columns` (so of :func:`_grad_row`), with half the loads of
    ``A`` and of the sums per multiply-add."""
    n = A.shape[0]
    n_cols = c1 - c0
    g0, g1, g2, g3 = gh[0], gh[1], gh[2], gh[3]
    for c in range(n_cols):
        g0[c] = 0
        g1[c] = 0
        g2[c] = 0
        g3[c] = 0
    k = 0
    while k + 4 <= n:
        a0, a1 = A[k, c0:c1], A[k + 1, c0:c1]
        a2, a3 = A[k + 2, c0:c1], A[k + 3, c0:c1]
        d00, d01, d02, d03 = delta[k, j], delta[k + 1, j], delta[k + 2, j], delta[k + 3, j]
        d10, d11 = delta[k, j + 1], delta[k + 1, j + 1]
        d12, d13 = delta[k + 2, j + 1], delta[k + 3, j + 1]
        d20, d21 = delta[k, j + 2], delta[k + 1, j + 2]
        d22, d23 = delta[k + 2, j + 2], delta[k + 3, j + 2]
        d30, d31 = delta[k, j + 3], delta[k + 1, j + 3]
        d32, d33 = delta[k + 2, j + 3], delta[k + 3, j + 3]
        for c in range(n_cols):
            p0, p1, p2, p3 = a0[c], a1[c], a2[c], a3[c]
            g0[c] = g0[c] + p0 * d00 + p1 * d01 + p2 * d02 + p3 * d03
            g1[c] = g1[c] + p0 * d10 + p1 * d11 + p2 * d12 + p3 * d13
            g2[c] = g2[c] + p0 * d20 + p1 * d21 + p2 * d22 + p3 * d23
            g3[c] = g3[c] + p0 * d30 + p1 * d31 + p2 * d32 + p3 * d33
        k += 4
    if k + 2 <= n:
        a0, a1 = A[k, c0:c1], A[k + 1, c0:c1]
        d00, d01, d10, d11 = delta[k, j], delta[k + 1, j], delta[k, j + 1], delta[k + 1, j + 1]
        d20, d21 = delta[k, j + 2], delta[k + 1, j + 2]
        d30, d31 = delta[k, j + 3], delta[k + 1, j + 3]
        for c in range(n_cols):
            p0, p1 = a0[c], a1[c]
            g0[c] = g0[c] + p0 * d00 + p1 * d01
            g1[c] = g1[c] + p0 * d10 + p1 * d11
            g2[c] = g2[c] + p0 * d20 + p1 * d21
            g3[c] = g3[c] + p0 * d30 + p1 * d31
        k += 2
    if k < n:
        a = A[k, c0:c1]
        d0, d1, d2, d3 = delta[k, j], delta[k, j + 1], delta[k, j + 2], delta[k, j + 3]
        for c in range(n_cols):
            p = a[c]
            g0[c] += p * d0
            g1[c] += p * d1
            g2[c] += p * d2
            g3[c] += p * d3


def _grad_units(A, delta, j0, c0, c1, gh):
    """The gradient rows of units ``j0 .. j0 + 3`` (those that exist) over
    inputs ``c0:c1`` into ``gh[0], gh[1], ...``: four at once
    (:func:`_grad_quad`), else a pair and the last one alone
    (:func:`_grad_columns`). Returns how many."""
    n_left = delta.shape[1] - j0
    if n_left >= 4:
        _grad_quad(A, delta, j0, c0, c1, gh)
        return 4
    if n_left >= 2:
        _grad_columns(A, delta, j0, j0 + 1, c0, c1, gh[0], gh[1])
    if n_left != 2:  # one or three: the last unit alone (gh[3] is scratch)
        last = n_left - 1
        _grad_columns(A, delta, j0 + last, j0 + last, c0, c1, gh[last], gh[3])
    return n_left


def _forward_columns(WT, X_next, acc, c0, c1):
    """``acc += X_next[:, c0:c1] @ WT[:, c0:c1].T``: dot products along the
    inputs, four samples by four units per pass (:func:`_forward_quad`),
    then the samples left in pairs by four units (:func:`_forward_pair`;
    eight sums, then a pair of units, then one; an odd last sample alone).
    These two helpers are the only functions allowed to reassociate
    (``fastmath`` ``reassoc``), so that the dot products
    vectorise; the summation order of a forward product is not the NumPy
    path's anyway (BLAS chooses its own)."""
    n_next = X_next.shape[0]
    n_quads = n_next // 4
    for q in range(n_quads):
        _forward_quad(WT, X_next, acc, 4 * q, c0, c1)
    for k in range(4 * n_quads, n_next, 2):  # range: one signature of _forward_pair (int64 k)
        k1 = k + 1 if k + 1 < n_next else k  # an odd last sample: its sums twice
        _forward_pair(WT, X_next[k, c0:c1], X_next[k1, c0:c1], acc, k, k1, c0, c1)


def _forward_quad(WT, X_next, acc, k, c0, c1):
    """The products of samples ``k .. k + 3``: four samples by four units
    per pass over the chunk (sixteen sums; then one unit at a time)."""
    n_out = WT.shape[0]
    n_cols = c1 - c0
    x0, x1 = X_next[k, c0:c1], X_next[k + 1, c0:c1]
    x2, x3 = X_next[k + 2, c0:c1], X_next[k + 3, c0:c1]
    j = 0
    while j + 4 <= n_out:
        w0, w1 = WT[j, c0:c1], WT[j + 1, c0:c1]
        w2, w3 = WT[j + 2, c0:c1], WT[j + 3, c0:c1]
        s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = WT.dtype.type(0)
        s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = WT.dtype.type(0)
        for i in range(n_cols):
            a, b, c, d = w0[i], w1[i], w2[i], w3[i]
            e = x0[i]
            s00 += e * a
            s01 += e * b
            s02 += e * c
            s03 += e * d
            e = x1[i]
            s10 += e * a
            s11 += e * b
            s12 += e * c
            s13 += e * d
            e = x2[i]
            s20 += e * a
            s21 += e * b
            s22 += e * c
            s23 += e * d
            e = x3[i]
            s30 += e * a
            s31 += e * b
            s32 += e * c
            s33 += e * d
        acc[k, j] += s00
        acc[k, j + 1] += s01
        acc[k, j + 2] += s02
        acc[k, j + 3] += s03
        acc[k + 1, j] += s10
        acc[k + 1, j + 1] += s11
        acc[k + 1, j + 2] += s12
        acc[k + 1, j + 3] += s13
        acc[k + 2, j] += s20
        acc[k + 2, j + 1] += s21
        acc[k + 2, j + 2] += s22
        acc[k + 2, j + 3] += s23
        acc[k + 3, j] += s30
        acc[k + 3, j + 1] += s31
        acc[k + 3, j + 2] += s32
        acc[k + 3, j + 3] += s33
        j += 4
    while j < n_out:
        w0 = WT[j, c0:c1]
        s00 = s10 = s20 = s30 = WT.dtype.type(0)
        for i in range(n_cols):
            a = w0[i]
            s00 += x0[i] * a
            s10 += x1[i] * a
            s20 += x2[i] * a
            s30 += x3[i] * a
        acc[k, j] += s00
        acc[k + 1, j] += s10
        acc[k + 2, j] += s20
        acc[k + 3, j] += s30
        j += 1


def _forward_pair(WT, x, y, acc, k, k1, c0, c1):
    """The products of samples ``x`` (row ``k`` of ``acc``) and ``y`` (row
    ``k1``; ``k1 == k`` adds ``x``'s only)."""
    n_out = WT.shape[0]
    n_cols = c1 - c0
    j = 0
    while j + 4 <= n_out:
        w0, w1 = WT[j, c0:c1], WT[j + 1, c0:c1]
        w2, w3 = WT[j + 2, c0:c1], WT[j + 3, c0:c1]
        s0, s1, s2, s3 = x[0] * w0[0], x[0] * w1[0], x[0] * w2[0], x[0] * w3[0]
        t0, t1, t2, t3 = y[0] * w0[0], y[0] * w1[0], y[0] * w2[0], y[0] * w3[0]
        for i in range(1, n_cols):
            xi, yi = x[i], y[i]
            a, b, c, d = w0[i], w1[i], w2[i], w3[i]
            s0 += xi * a
            s1 += xi * b
            s2 += xi * c
            s3 += xi * d
            t0 += yi * a
            t1 += yi * b
            t2 += yi * c
            t3 += yi * d
        acc[k, j] += s0
        acc[k, j + 1] += s1
        acc[k, j + 2] += s2
        acc[k, j + 3] += s3
        if k1 != k:
            acc[k1, j] += t0
            acc[k1, j + 1] += t1
            acc[k1, j + 2] += t2
            acc[k1, j + 3] += t3
        j += 4
    while j < n_out:
        w0 = WT[j, c0:c1]
        s0, t0 = x[0] * w0[0], y[0] * w0[0]
        for i in range(1, n_cols):
            a = w0[i]
            s0 += x[i] * a
            t0 += y[i] * a
        acc[k, j] += s0
        if k1 != k:
            acc[k1, j] += t0
        j += 1


# The transposed kernel: the parts are ranges of inputs (columns of WT), in
# chunks of ``chunk`` inputs; the other arguments as in :func:`_update_part`
# (the states transposed like ``WT``).


def _update_tpart(WT, A, delta, s0, s1, l2, kind, coef, flag, X_next, job, chunk):
    gh = np.empty((4, chunk), WT.dtype)
    sq = np.empty(chunk, np.float64)
    n_out = WT.shape[0]
    p = _enter(job)
    while p >= 0:
        acc, lo, hi = _start_part(job, p, sq)
        for c0 in range(lo, hi, chunk):
            c1 = min(c0 + chunk, hi)
            n_cols = c1 - c0
            # range: an int64 j0 (``j0 = 0`` would also compile _grad_units
            # for the literal 0, a second signature of the same code)
            for j0 in range(0, n_out, 4):  # up to four units per pass over A
                n_units = _grad_units(A, delta, j0, c0, c1, gh)
                for j in range(j0, j0 + n_units):
                    g = gh[j - j0, :n_cols]
                    if l2 != 0:
                        _l2_row(WT[j, c0:c1], g, l2, sq)
                    # a branch per unit slicing only the state rows the
                    # solver has (slicing both for every unit, as
                    # _update_rows' caller does per group of rows, took
                    # plain SGD's step 4-11 % longer)
                    w = WT[j, c0:c1]
                    if kind == ADAM:
                        _adam_row(w, g, s0[j, c0:c1], s1[j, c0:c1], coef, flag)
                    elif kind == SGD:
                        _sgd_row(w, g, coef[0])
                    else:
                        _momentum_row(w, g, s0[j, c0:c1], coef[0], coef[1], flag)
            if X_next.shape[0]:
                _forward_columns(WT, X_next, acc, c0, c1)
        p = _next_part(job, p, sq.sum())
    return _leave(job)


def _gather_part(X, rows, out, job):
    """``out[i] = X[rows[i]]`` for the claimed parts (ranges of ``i``)."""
    bounds = job[2]
    n_cols = X.shape[1]
    p = _enter(job)
    while p >= 0:
        for i in range(bounds[p], bounds[p + 1]):
            src, dst = X[rows[i]], out[i]
            for c in range(n_cols):
                dst[c] = src[c]
        p = _next_part(job, p, 0.0)
    return _leave(job)


#: Most parts of a row gather (rows per part: at least one).
GATHER_PARTS = 16


def gather_rows(X, rows, out, n_threads=2):
    """``out[:] = X[rows]`` shared by ``n_threads`` kernel threads (the
    caller and :mod:`skoffice31._team`'s helpers): a minibatch's rows are
    scattered over a large matrix, and two threads keep twice as many
    memory reads in flight.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        C-contiguous float32 or float64.
    rows : ndarray of int of shape (n_rows,)
        Valid row indices of ``X`` (not checked).
    out : ndarray of shape (n_rows, n_features)
        C-contiguous, of ``X``'s dtype.
    n_threads : int, default=2

    Returns
    -------
    done : bool
        False (and nothing written) when numba is missing or an array does
        not qualify: the caller takes ``np.take``.
    """
    kernels = _kernel()
    if (kernels is None or not isinstance(X, np.ndarray) or X.ndim != 2
            or X.dtype not in (np.float32, np.float64) or not X.flags.c_contiguous
            or not isinstance(out, np.ndarray) or out.dtype != X.dtype
            or not out.flags.c_contiguous or out.shape != (len(rows), X.shape[1])):
        return False
    rows = np.asarray(rows, np.int64)
    n_parts = max(1, min(GATHER_PARTS, len(rows)))
    bounds = np.array([p * len(rows) // n_parts for p in range(n_parts + 1)], np.int64)
    tail = (_NO_PARTS[X.dtype.type], np.zeros(n_parts), bounds, np.zeros(2, np.int64))
    head = (X, rows, out)
    # (the module's _gather_part is the compiled one once _kernel() ran)
    _call(_gather_part, head, tail, (), min(int(n_threads), n_parts) - 1)
    return True


#: The (unused) partial products of a job without any, per dtype.
_NO_PARTS = {np.float32: np.empty((0, 0, 0), np.float32),
             np.float64: np.empty((0, 0, 0), np.float64)}


# Whole-block updates: the row functions above on a flattened block, for the
# parameters the row kernels do not take (small or narrow layers, intercepts)
# -- one compiled pass instead of about ten ufunc calls.


def _adam_coef(dtype, beta_1, beta_2, lr, eps):
    """The scalars of :func:`_adam_row` as one array of ``dtype``."""
    tiny = np.finfo(dtype).tiny
    return np.array([beta_1, 1 - beta_1, beta_2, 1 - beta_2, lr, eps, tiny, 0.0], dtype)


def _flat_operands(param, *others):
    """Flat views of ``param`` and ``others``, or None when one is not a
    C-contiguous array of ``param``'s shape and float32/float64 dtype, or
    numba is missing."""
    if _kernel() is None or param.dtype not in (np.float32, np.float64):
        return None
    if not (param.flags.c_contiguous and param.flags.writeable):
        return None
    flats = []
    for arr in (param, *others):
        if not (isinstance(arr, np.ndarray) and arr.dtype == param.dtype
                and arr.shape == param.shape and arr.flags.c_contiguous):
            return None
        flats.append(arr.reshape(-1))
    return flats


def adam_block(param, grad, m, v, *, lr, eps, beta_1=0.9, beta_2=0.999, flush=False):
    """Adam on a whole block with its gradient given, in one compiled pass.

    The same operations in the same order as ``AdamOptimizer``'s NumPy
    block update, so the result is the same to the last bit.

    Parameters
    ----------
    param, grad, m, v : ndarray of the same shape and dtype, C-contiguous
        ``param``, ``m`` and ``v`` are updated in place.
    lr, eps, beta_1, beta_2, flush
        As in :func:`adam_update`.

    Returns
    -------
    done : bool
        False (and nothing changed) when an operand is not a C-contiguous
        float32/float64 array of ``param``'s shape and dtype, or numba is
        missing: the caller takes the NumPy path.
    """
    flats = _flat_operands(param, grad, m, v)
    if flats is None:
        return False
    _adam_row(*flats, _adam_coef(param.dtype, beta_1, beta_2, lr, eps), bool(flush))
    return True


def momentum_block(param, grad, velocity, *, lr, momentum, nesterov):
    """SGD with momentum or Nesterov's momentum on a whole block, gradient
    given, in one compiled pass (the operation order of ``SGDOptimizer``).

    Parameters
    ----------
    param, grad, velocity : ndarray of the same shape and dtype, C-contiguous
    lr, momentum : float
    nesterov : bool

    Returns
    -------
    done : bool
        As in :func:`adam_block`.
    """
    flats = _flat_operands(param, grad, velocity)
    if flats is None:
        return False
    t = param.dtype.type
    _momentum_row(*flats, t(lr), t(momentum), bool(nesterov))
    return True


def row_bounds(n_rows, n_cols=1):
    """The row partition of a kernel call on an ``(n_rows, n_cols)`` layer.

    Parameters
    ----------
    n_rows : int
    n_cols : int, default=1

    Returns
    -------
    bounds : list of int
        ``n_parts + 1`` increasing row bounds from 0 to ``n_rows``, with
        ``n_parts = min(N_PARTS, n_rows, n_rows * n_cols // PART_MIN_SIZE)``
        (at least 1).
    """
    n_rows = int(n_rows)
    n_parts = max(1, min(N_PARTS, n_rows, n_rows * int(n_cols) // PART_MIN_SIZE))
    return [p * n_rows // n_parts for p in range(n_parts + 1)]


def is_transposed(W):
    """Whether ``W`` takes the transposed kernels: Fortran-ordered (``W.T``
    C-contiguous) and not C-contiguous, a narrow layer's layout (see
    :func:`skoffice31._plan.transposes`).

    Parameters
    ----------
    W : ndarray of shape (n_in, n_out)

    Returns
    -------
    transposed : bool
    """
    return W.ndim == 2 and W.flags.f_contiguous and not W.flags.c_contiguous


def _check(name, arr, shape, dtype, transposed=False):
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
        got = (getattr(arr, "shape", None), getattr(arr, "dtype", type(arr).__name__))
        raise ValueError(
            f"{name} must be an array of shape {shape} and dtype {dtype}, got {got}."
        )
    contiguous = arr.flags.f_contiguous if transposed else arr.flags.c_contiguous
    if not (contiguous and arr.flags.writeable):
        layout, make = (
            ("Fortran-ordered like W", "np.asfortranarray(...)") if transposed
            else ("C-contiguous", "np.ascontiguousarray(...)")
        )
        raise ValueError(
            f"{name} must be {layout} and writeable (it is updated in place); "
            f"pass {make} of it (np.zeros_like(W) for a state array)."
        )


def _operand(name, arr, n_cols, dtype):
    """A read-only operand (A, delta, X_next) as a C-contiguous array of ``dtype``."""
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.ndim != 2 or arr.shape[1] != n_cols:
        raise ValueError(f"{name} must have shape (n, {n_cols}), got {arr.shape}.")
    return arr


def _run(kind, W, A, delta, states, coef, flag, l2, X_next, out, n_threads):
    """Check the operands; run the kernel as ``(W, A, delta, s0, s1, l2,
    kind, coef, flag, X_next, job)`` (``s0, s1``: the states, then ``W``
    for the missing ones, not read) in the caller's thread, with up to
    ``n_threads - 1`` helpers of :mod:`skoffice31._team` claiming parts of
    the job -- with ``W.T`` and the states transposed when ``W`` is
    Fortran-ordered (:func:`is_transposed`), the parts then being ranges of
    inputs (columns of ``W.T``) instead of rows of ``W``, and
    :data:`COLUMN_CHUNK` the last argument."""
    kernels = _kernel()
    if kernels is None:
        raise RuntimeError(
            "The compiled kernels need numba: pip install 'skoffice31[fast]' "
            "(or check kernels_available() and use the NumPy optimizers)."
        )
    dtype = W.dtype
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"W must be float32 or float64, got {dtype}.")
    if not isinstance(W, np.ndarray) or W.ndim != 2:
        raise ValueError(f"W must be a 2-D array, got {getattr(W, 'shape', W)!r}.")
    transposed = is_transposed(W)
    _check("W", W, W.shape, dtype, transposed)
    for name, state in states:
        _check(name, state, W.shape, dtype, transposed)
    n_in, n_out = W.shape
    A = _operand("A", A, n_in, dtype)
    delta = _operand("delta", delta, n_out, dtype)
    if A.shape[0] != delta.shape[0]:
        raise ValueError(
            f"A and delta must have the same number of rows (samples), got "
            f"{A.shape[0]} and {delta.shape[0]}."
        )
    if (X_next is None) != (out is None):
        raise ValueError("X_next and out go together: pass both or neither.")
    if X_next is None:
        X_next = np.empty((0, n_in), dtype)
        n_next = 0
    else:
        X_next = _operand("X_next", X_next, n_in, dtype)
        n_next = X_next.shape[0]
        _check("out", out, (n_next, n_out), dtype)
    bounds = np.array(row_bounds(n_in, n_out), np.int64)
    n_parts = len(bounds) - 1
    arrays = [state for _, state in states] + [W] * (2 - len(states))
    if transposed:
        arrays = [state.T for state in arrays]
        kernel, W, last = kernels["T"], W.T, (int(COLUMN_CHUNK),)
    else:
        kernel, last = kernels["rows"], ()
    scalars = (dtype.type(l2), kind, np.asarray(coef, dtype), bool(flag))
    head = (W, A, delta, *arrays, *scalars, X_next)
    out_parts = np.empty((n_parts, n_next, n_out), dtype)
    sq_parts = np.zeros(n_parts, np.float64)
    tail = (out_parts, sq_parts, bounds, np.zeros(2, np.int64))
    _call(kernel, head, tail, last, min(int(n_threads), n_parts) - 1)
    if n_next:
        np.sum(out_parts, axis=0, out=out)
    return float(sq_parts.sum()) if l2 else 0.0


#: The flags of a job run by its caller alone (read by nobody).
_SOLO_FLAGS = np.zeros(1, np.int64)


def _call(kernel, head, tail, last, n_helpers):
    """Run ``kernel(*head, job, *last)`` on the job ``(*tail, flags, seq,
    role, spins)``: shared with up to ``n_helpers`` threads of the process's
    :class:`skoffice31._team.Team` when ``n_helpers > 0``, else by the
    caller's thread alone."""
    if n_helpers > 0:
        _team.team(_STATE["sync"]).run(kernel, head, tail, last, n_helpers)
    else:
        kernel(*head, (*tail, _SOLO_FLAGS, 0, _team.SOLO, 0), *last)


def adam_update(W, A, delta, m, v, *, lr, eps, beta_1=0.9, beta_2=0.999, l2=0.0,
                flush=False, X_next=None, out=None, n_threads=2):
    """One Adam step of a dense layer's weights, fused with its gradient.

    With ``g = A.T @ delta + l2 * W`` (row by row, never materialised)::

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        W -= lr * m / (sqrt(v) + eps)

    where ``lr`` and ``eps`` are the step's bias-corrected values
    (``AdamOptimizer.learning_rate`` and ``AdamOptimizer._eps_t`` after its
    ``_start_step``).

    Parameters
    ----------
    W, m, v : ndarray of shape (n_in, n_out)
        Weights and moments, float32 or float64, updated in place; all
        C-contiguous, or all Fortran-ordered (a narrow layer's layout: the
        transposed kernels then work along the inputs, see
        :func:`is_transposed`).
    A : ndarray of shape (n_samples, n_in)
        The layer's input activations.
    delta : ndarray of shape (n_samples, n_out)
        Loss gradient with respect to the layer's output.
    lr, eps : float
        Bias-corrected learning rate and epsilon of this step.
    beta_1, beta_2 : float, default=0.9, 0.999
    l2 : float, default=0.0
        L2 coefficient (0 skips the term).
    flush : bool, default=False
        Set moments below the smallest normal number to zero (after their
        update, in the same pass), as ``AdamOptimizer`` does every
        ``flush_every`` steps.
    X_next : ndarray of shape (n_next, n_in), default=None
        The next minibatch's input; with ``out``, receives its forward
        product through the *updated* weights.
    out : ndarray of shape (n_next, n_out), default=None
        Written with ``X_next @ W`` (``W`` after this step).
    n_threads : int, default=2
        Threads sharing the rows: the caller plus ``n_threads - 1`` Python
        threads of a pool kept by this module.

    Returns
    -------
    sq_norm : float
        ``||W||^2`` before the step when ``l2 > 0``, else 0.
    """
    dtype = getattr(W, "dtype", None)
    coef = _adam_coef(dtype, beta_1, beta_2, lr, eps) if dtype in (np.float32, np.float64) else None
    return _run(ADAM, W, A, delta, (("m", m), ("v", v)), coef, flush, l2, X_next, out,
                n_threads)


def sgd_update(W, A, delta, *, lr, velocity=None, momentum=0.0, nesterov=False, l2=0.0,
               X_next=None, out=None, n_threads=2):
    """One SGD step (plain, momentum or Nesterov) of a dense layer's weights.

    With ``g = A.T @ delta + l2 * W`` (row by row): plain SGD
    ``W -= lr * g``; with momentum ``velocity = momentum * velocity - lr * g``
    then ``W += velocity``, or with Nesterov's momentum
    ``W += momentum * velocity - lr * g`` (as ``SGDOptimizer``).

    Parameters
    ----------
    W : ndarray of shape (n_in, n_out)
        Weights, float32 or float64, C-contiguous or Fortran-ordered (as in
        :func:`adam_update`); updated in place.
    A : ndarray of shape (n_samples, n_in)
    delta : ndarray of shape (n_samples, n_out)
    lr : float
        Learning rate.
    velocity : ndarray of shape (n_in, n_out), default=None
        Required when ``momentum > 0``, in ``W``'s layout; updated in place.
    momentum : float, default=0.0
    nesterov : bool, default=False
    l2 : float, default=0.0
    X_next, out : ndarray, default=None
        As in :func:`adam_update`.
    n_threads : int, default=2

    Returns
    -------
    sq_norm : float
        ``||W||^2`` before the step when ``l2 > 0``, else 0.
    """
    if momentum:
        if velocity is None:
            raise ValueError("momentum > 0 needs the velocity array (velocity=...).")
        kind, states, coef = MOMENTUM, (("velocity", velocity),), (lr, momentum)
    else:
        kind, states, coef = SGD, (), (lr,)
    return _run(kind, W, A, delta, states, coef, nesterov, l2, X_next, out, n_threads)
