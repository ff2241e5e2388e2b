"""Plain SGD of the first layer in sample space (the "dual" form).

Plain SGD (no momentum) only ever adds multiples of the training rows to the
first layer's weights: a step on the minibatch ``b`` is
``W <- c W - lr X[b].T @ delta`` with ``c = 1 - lr * l2``. So after any
number of steps

    ``W = s (W0 + X.T @ R)``

for the weights ``W0`` the fit started from, a scalar ``s`` (the product of
the ``c``) and an ``(n_samples, n_units)`` matrix ``R`` whose row ``i``
collects the steps sample ``i`` took part in. The first layer's forward
product of a minibatch is then

    ``X[b] @ W = s (P[b] + G[b] @ R)``,  ``P = X @ W0``,  ``G = X @ X.T``,

and a step only writes the rows ``R[b] -= lr / s' * delta``. With 3,288
photos of 30,000 pixels and 384 units, a step reads 10 rows of ``G`` and
the 5 MB ``R`` instead of streaming the 46 MB ``W`` (and computing two GEMMs
over 30,000 inputs); ``G`` and ``P`` are computed once per fit (about two
epochs' worth of the wide GEMMs) and ``W`` once at the end.

This is the same SGD, step for step: the same minibatches, gradients and
learning rates, so the same weights up to floating-point rounding (the
sums run over samples instead of pixels). It applies to plain SGD only:
momentum would add a second such matrix, and Adam's element-wise scaling
leaves the span of the rows. :func:`skoffice31._plan.plan_training`
decides when it pays (``TrainingPlan.sample_space``); the environment
variable ``SKOFFICE31_SAMPLE_SPACE=0`` switches it off.
"""

import numpy as np
from scipy.linalg import blas

from ._environment import switch_on

#: The environment switch: "0" (or "false", "no", "off") keeps every fit on
#: the weights themselves.
ENV_VAR = "SKOFFICE31_SAMPLE_SPACE"

#: Below this scale the factor ``s`` is folded into ``W0``, ``P`` and ``R``
#: (so ``lr / s`` cannot overflow; ``s`` only shrinks by ``1 - lr * l2``).
_FOLD_BELOW = 1e-6

_GEMM = {np.dtype(np.float32): blas.sgemm, np.dtype(np.float64): blas.dgemm}


def sample_space_enabled():
    """Whether ``SKOFFICE31_SAMPLE_SPACE`` allows sample-space training (default yes)."""
    return switch_on(ENV_VAR)


class SampleSpaceLayer:
    """The first dense layer of a plain-SGD fit, trained in sample space.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Every row a minibatch can hold (the fit's training matrix), float32
        or float64. Kept by reference: it must not change during the fit.
    W : ndarray of shape (n_features, n_units)
        The layer's weights, same dtype. Not read again until
        :meth:`write_weights`, which overwrites it in place.
    batch_size : int
        Most rows of a minibatch (sizes the buffers).
    track_norm : bool, default=False
        Keep ``||W||^2`` up to date for the loss's L2 term (a few small dot
        products per step).

    Notes
    -----
    Memory: ``G`` (``n_samples**2``) and ``P``, ``R`` (``n_samples x
    n_units`` each); the plan only chooses this form when ``G`` is no
    larger than ``W``.
    """

    def __init__(self, X, W, batch_size, track_norm=False):
        if X.dtype != W.dtype or X.dtype not in _GEMM:
            raise ValueError(
                f"Sample-space training needs X and W of one float dtype, got {X.dtype} "
                f"and {W.dtype}."
            )
        n = X.shape[0]
        self.X, self.W = X, W
        self.gram = np.matmul(X, X.T)  # NumPy runs A @ A.T as one symmetric BLAS call
        self.P = np.matmul(X, W)
        self.R = np.zeros((n, W.shape[1]), W.dtype)
        self.scale = 1.0
        self.track_norm = track_norm
        # ||W||^2 = s^2 (||W0||^2 + 2 <R, P> + <R, G R>), the two inner
        # products updated step by step (float64)
        self._w0_sq = float(np.dot(W.reshape(-1), W.reshape(-1))) if track_norm else 0.0
        self._rp = self._rgr = 0.0
        self._g_rows = np.empty((batch_size, n), W.dtype)
        self._gr = np.empty((batch_size, W.shape[1]), W.dtype)  # G[b] @ R
        self._p_rows = np.empty((batch_size, W.shape[1]), W.dtype)
        self._d_rows = np.empty((batch_size, W.shape[1]), W.dtype)  # the step's rows of R
        self._rows = None

    def forward(self, rows, out):
        """Write the minibatch's product ``X[rows] @ W`` into ``out``.

        Parameters
        ----------
        rows : ndarray of int or slice
            The minibatch's rows of ``X`` (no row twice).
        out : ndarray of shape (n_rows, n_units)

        Returns
        -------
        out : ndarray
        """
        n = out.shape[0]
        g_rows, p_rows, gr = self._g_rows[:n], self._p_rows[:n], self._gr[:n]
        if isinstance(rows, slice):
            g_rows[...] = self.gram[rows]
            p_rows[...] = self.P[rows]
        else:
            np.take(self.gram, rows, axis=0, out=g_rows, mode="clip")
            np.take(self.P, rows, axis=0, out=p_rows, mode="clip")
        np.matmul(g_rows, self.R, out=gr)
        np.add(p_rows, gr, out=out)
        out *= self.scale
        self._rows = rows
        return out

    def sq_norm(self):
        """``||W||^2`` now (with ``track_norm``; else 0.0)."""
        if not self.track_norm:
            return 0.0
        return max(0.0, self.scale**2 * (self._w0_sq + 2 * self._rp + self._rgr))

    def step(self, rows, delta, lr, l2):
        """One SGD step ``W <- (1 - lr l2) W - lr X[rows].T @ delta``.

        Parameters
        ----------
        rows : ndarray of int or slice
            The rows of the last :meth:`forward` (the same minibatch).
        delta : ndarray of shape (n_rows, n_units)
            The loss gradient with respect to the layer's output (sample
            weights included), as for :class:`~skoffice31._optimizers.OuterGradient`.
        lr, l2 : float
            Learning rate and L2 coefficient of the step.
        """
        if rows is not self._rows:
            raise ValueError("step() must follow forward() on the same minibatch.")
        n = delta.shape[0]
        p_rows, gr = self._p_rows[:n], self._gr[:n]
        scale = self.scale * (1.0 - lr * l2)
        if abs(scale) < _FOLD_BELOW:
            self._fold(scale, p_rows, gr)
            scale = 1.0
        self.scale = scale
        d_rows = np.multiply(delta, -lr / scale, out=self._d_rows[:n])
        if self.track_norm:
            # <R + D, P> and <R + D, G (R + D)> with D nonzero on the rows only
            g_bb = self._g_rows[:n][:, rows]
            self._rp += float(np.vdot(d_rows, p_rows))
            self._rgr += 2.0 * float(np.vdot(d_rows, gr)) + float(np.vdot(d_rows, g_bb @ d_rows))
        self.R[rows] += d_rows
        self._rows = None

    def _fold(self, factor, p_rows, gr):
        """Multiply ``W0``, ``P``, ``R`` (and the batch's buffers) by ``factor``; ``s = 1``."""
        self.W *= factor
        self.P *= factor
        self.R *= factor
        p_rows *= factor
        gr *= factor
        self._w0_sq *= factor**2
        self._rp *= factor**2
        self._rgr *= factor**2

    def weights(self):
        """The layer's weights now, as a new array (``W`` is left as it was)."""
        W = self.W.copy()
        self._add_rows_into(W)
        return W

    def write_weights(self):
        """Write the weights now into ``W`` (the estimator's array), once, at
        the end of the fit; the object is not used after it."""
        if self.W is None:
            return
        self._add_rows_into(self.W)
        self.W = self.X = self.gram = self.P = self.R = None

    def _add_rows_into(self, W):
        """``W <- s (W + X.T @ R)`` in place (one BLAS call when the layout allows)."""
        s, X, R = self.scale, self.X, self.R
        if W.flags.c_contiguous and X.flags.c_contiguous:
            # W.T is W's memory in Fortran order: C <- s R.T @ X + s C
            _GEMM[W.dtype](s, R.T, X.T, beta=s, c=W.T, trans_b=1, overwrite_c=1)
        else:
            W += X.T @ R
            W *= s
