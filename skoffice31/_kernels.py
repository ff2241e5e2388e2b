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

The rows are split into at most :data:`N_PARTS` contiguous parts, run by
``n_threads`` numba threads (``prange``). The partition depends on the shape
only, not on the number of threads, so every result (the forward product's
summation order included) is the same with one thread or two.

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

import os
import threading

import numpy as np

#: Environment variable that switches the kernels off ("0", "false", "no", "off").
ENV_VAR = "SKOFFICE31_KERNELS"

#: Upper bound on the number of row parts of one call (see the module docstring).
N_PARTS = 8

#: Optimizer kinds understood by the kernel.
ADAM, SGD, MOMENTUM, NESTEROV = 0, 1, 2, 3

_STATE = {}
_LAUNCH_LOCK = threading.Lock()

# ``prange`` is ``range`` until :func:`_build` swaps in ``numba.prange``: the
# kernel's source below is plain Python (it even runs, slowly, without numba).
prange = range


def kernels_enabled():
    """Whether the kernels are switched on (``SKOFFICE31_KERNELS`` is not "0").

    Returns
    -------
    enabled : bool
    """
    value = os.environ.get(ENV_VAR, "1").strip().lower()
    return value not in ("0", "false", "no", "off")


def kernels_available():
    """Whether the compiled kernels can be used: enabled and numba importable.

    The first call that finds them enabled imports numba (about 0.3 s) and
    prepares the kernels; compilation itself happens at the first update of
    each dtype and is cached on disk.

    Returns
    -------
    available : bool
    """
    return kernels_enabled() and _kernel() is not None


def _kernel():
    """The compiled kernel, or None when numba cannot be imported."""
    if "kernel" not in _STATE:
        try:
            import numba
        except ImportError:
            _STATE["kernel"] = None
        else:
            _STATE["kernel"] = _build(numba)
    return _STATE["kernel"]


def _build(numba):
    global prange
    prange = numba.prange
    return numba.njit(parallel=True, cache=True, fastmath=False, nogil=True)(_fused_rows)


def _fused_rows(kind, W, A, delta, S1, S2, l2, coef, flush, X_next, out_parts, sq_parts, bounds):
    """The kernel (compiled by numba; see :func:`adam_update` for the maths).

    ``coef`` holds, in ``W``'s dtype: Adam ``(beta_1, 1 - beta_1, beta_2,
    1 - beta_2, lr_t, eps_t, tiny, 0)``; SGD ``(lr, momentum)``. ``S1, S2`` are
    Adam's ``m, v`` or SGD's velocity (and a dummy). Part ``p`` handles rows
    ``bounds[p]:bounds[p + 1]``, writes its share of ``X_next @ W`` (after
    the update) to ``out_parts[p]`` and its ``||W||^2`` to ``sq_parts[p]``.
    """
    n_out = W.shape[1]
    n = A.shape[0]
    n_next = X_next.shape[0]
    for p in prange(bounds.shape[0] - 1):
        g = np.empty(n_out, W.dtype)
        sq = np.zeros(n_out, np.float64)
        acc = out_parts[p]
        for k in range(n_next):
            for j in range(n_out):
                acc[k, j] = 0
        for r in range(bounds[p], bounds[p + 1]):
            w = W[r]
            # gradient row: g = A[:, r] @ delta
            for j in range(n_out):
                g[j] = 0
            for k in range(n):
                a = A[k, r]
                if a != 0:
                    d = delta[k]
                    for j in range(n_out):
                        g[j] += a * d[j]
            if l2 != 0:  # g += l2 * W[r]; count ||W[r]||^2 before the update
                for j in range(n_out):
                    wj = w[j]
                    sq[j] += np.float64(wj) * np.float64(wj)
                    g[j] += l2 * wj
            if kind == 0:  # Adam (same operation order as AdamOptimizer._update_block)
                m = S1[r]
                v = S2[r]
                b1, c1, b2, c2, lr, eps, tiny, zero = (
                    coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6], coef[7]
                )
                if flush:
                    for j in range(n_out):
                        gj = g[j]
                        mj = m[j] * b1 + gj * c1
                        vj = v[j] * b2 + (gj * gj) * c2
                        if abs(mj) < tiny:
                            mj = zero
                        if vj < tiny:
                            vj = zero
                        m[j] = mj
                        v[j] = vj
                        w[j] = w[j] - (mj / (np.sqrt(vj) + eps)) * lr
                else:
                    for j in range(n_out):
                        gj = g[j]
                        mj = m[j] * b1 + gj * c1
                        vj = v[j] * b2 + (gj * gj) * c2
                        m[j] = mj
                        v[j] = vj
                        w[j] = w[j] - (mj / (np.sqrt(vj) + eps)) * lr
            elif kind == 1:  # plain SGD
                lr = coef[0]
                for j in range(n_out):
                    w[j] = w[j] - g[j] * lr
            else:  # momentum (2) or Nesterov (3), as SGDOptimizer._update_block
                vel = S1[r]
                lr = coef[0]
                mu = coef[1]
                if kind == 3:
                    for j in range(n_out):
                        step = g[j] * lr
                        vj = vel[j] * mu - step
                        vel[j] = vj
                        w[j] = (w[j] - step) + vj * mu
                else:
                    for j in range(n_out):
                        vj = vel[j] * mu - g[j] * lr
                        vel[j] = vj
                        w[j] = w[j] + vj
            # next batch's forward product, from the updated row
            for k in range(n_next):
                a = X_next[k, r]
                if a != 0:
                    o = acc[k]
                    for j in range(n_out):
                        o[j] += a * w[j]
        sq_parts[p] = sq.sum()


def row_bounds(n_rows):
    """The row partition of a kernel call: ``min(n_rows, N_PARTS)`` parts.

    Parameters
    ----------
    n_rows : int

    Returns
    -------
    bounds : ndarray of shape (n_parts + 1,)
    """
    n_parts = max(1, min(int(n_rows), N_PARTS))
    return np.linspace(0, n_rows, n_parts + 1).astype(np.intp)


def _check(name, arr, shape, dtype):
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
        got = (getattr(arr, "shape", None), getattr(arr, "dtype", type(arr).__name__))
        raise ValueError(
            f"{name} must be an array of shape {shape} and dtype {dtype}, got {got}."
        )
    if not (arr.flags.c_contiguous and arr.flags.writeable):
        raise ValueError(
            f"{name} must be C-contiguous and writeable (it is updated in place); "
            "pass np.ascontiguousarray(...) of it."
        )


def _operand(name, arr, n_cols, dtype):
    """A read-only operand (A, delta, X_next) as a C-contiguous array of ``dtype``."""
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.ndim != 2 or arr.shape[1] != n_cols:
        raise ValueError(f"{name} must have shape (n, {n_cols}), got {arr.shape}.")
    return arr


def _run(kind, W, A, delta, S1, S2, l2, coef, flush, X_next, out, n_threads):
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError(
            "The compiled kernels need numba: pip install 'skoffice31[fast]' "
            "(or check kernels_available() and use the NumPy optimizers)."
        )
    dtype = W.dtype
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"W must be float32 or float64, got {dtype}.")
    _check("W", W, W.shape, dtype)
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
    bounds = row_bounds(n_in)
    n_parts = len(bounds) - 1
    out_parts = np.empty((n_parts, n_next, n_out), dtype)
    sq_parts = np.zeros(n_parts, np.float64)
    coef = np.asarray(coef, dtype=dtype)
    import numba

    with _LAUNCH_LOCK:  # the workqueue threading layer must not be entered twice
        old = numba.get_num_threads()
        numba.set_num_threads(max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS)))
        try:
            kernel(kind, W, A, delta, S1, S2, dtype.type(l2), coef, bool(flush),
                   X_next, out_parts, sq_parts, bounds)
        finally:
            numba.set_num_threads(old)
    if n_next:
        np.sum(out_parts, axis=0, out=out)
    return float(sq_parts.sum()) if l2 else 0.0


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
        Weights and moments, float32 or float64, C-contiguous; updated in place.
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
        numba threads (clipped to ``numba.config.NUMBA_NUM_THREADS``).

    Returns
    -------
    sq_norm : float
        ``||W||^2`` before the step when ``l2 > 0``, else 0.
    """
    _check("m", m, W.shape, W.dtype)
    _check("v", v, W.shape, W.dtype)
    tiny = np.finfo(W.dtype).tiny
    coef = (beta_1, 1 - beta_1, beta_2, 1 - beta_2, lr, eps, tiny, 0.0)
    return _run(ADAM, W, A, delta, m, v, l2, coef, flush, X_next, out, n_threads)


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
        Weights, float32 or float64, C-contiguous; updated in place.
    A : ndarray of shape (n_samples, n_in)
    delta : ndarray of shape (n_samples, n_out)
    lr : float
        Learning rate.
    velocity : ndarray of shape (n_in, n_out), default=None
        Required when ``momentum > 0``; updated in place.
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
        _check("velocity", velocity, W.shape, W.dtype)
        kind = NESTEROV if nesterov else MOMENTUM
        S1 = velocity
    else:
        kind = SGD
        S1 = np.empty((0, W.shape[1]), W.dtype)
    return _run(kind, W, A, delta, S1, S1, l2, (lr, momentum), False, X_next, out, n_threads)
