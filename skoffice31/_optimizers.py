"""Stochastic optimizers: plain/momentum SGD and Adam.

As in scikit-learn, an optimizer is a small object created at the start of
``fit`` with the parameter arrays, holding its own state (velocities or
moments), and exposing one method, :meth:`BaseOptimizer.update_params`, which
changes the parameters in place.

Two things differ, both for speed on wide layers (a 30,000 x 384 first layer
is 46 MB in float32 and must be streamed from memory at every step):

* A gradient may be given as a :class:`OuterGradient` (``A.T @ delta + l2 * W``)
  instead of an array. The optimizer then computes it in row blocks of about
  ``block_size`` elements and updates the parameter, the gradient block
  still being in the CPU cache: the full gradient matrix never exists.
* Every update works in place (``out=``), so a step allocates nothing large.
* How a step uses the machine (update threads, the fused one-GEMM SGD step,
  the compiled kernels of :mod:`skoffice31._kernels`) is decided once by
  :func:`skoffice31._plan.plan_training` and given to the optimizer as its
  ``plan``. With ``plan.kernels``, a large dense layer's gradient and update
  are one compiled pass (same mathematics, same order of operations); the
  other parameters, and every parameter without the kernels, take the NumPy
  path below.

The mathematics is unchanged: :meth:`update_params` with plain arrays gives
the textbook update, which the tests compare with a hand computation.
"""

import numpy as np
from scipy.linalg import blas

from . import _kernels
from ._plan import MAX_UPDATE_THREADS, SERIAL_PLAN

#: Elements per row block of a parameter update (256 KB in float32).
BLOCK_SIZE = 1 << 16

_POOL = []


def _thread_pool():
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(
            ThreadPoolExecutor(MAX_UPDATE_THREADS, thread_name_prefix="skoffice31-update")
        )
    return _POOL[0]


def _sq_norm(W_part):
    """``||W_part||^2`` as a Python float (``W_part`` contiguous)."""
    flat = W_part.reshape(-1)
    return float(np.dot(flat, flat))


class OuterGradient:
    """The gradient ``A.T @ delta + l2 * W`` of a dense layer, computed lazily.

    Parameters
    ----------
    A : ndarray of shape (n_samples, n_in)
        The layer's input activations.
    delta : ndarray of shape (n_samples, n_out)
        The loss gradient with respect to the layer's output, already scaled
        by the sample weights (see :mod:`skoffice31._losses`).
    W : ndarray of shape (n_in, n_out)
        The layer's weights (only read for the L2 term).
    l2 : float
        L2 coefficient; 0 skips the term.
    next_input : ndarray of shape (n_next, n_in), default=None
        The next minibatch's input, when the step that consumes this gradient
        may also compute the next forward product through ``W`` (see
        :meth:`BaseOptimizer.fuses_forward`).
    next_output : ndarray of shape (n_next, n_out), default=None
        Where that product ``next_input @ W`` (``W`` *after* the step) goes.

    Attributes
    ----------
    next_done : bool
        Whether the step wrote ``next_output``. Only the compiled kernels do;
        the NumPy path leaves it False and the caller computes the product
        itself.
    """

    def __init__(self, A, delta, W, l2, next_input=None, next_output=None):
        self.A, self.delta, self.W, self.l2 = A, delta, W, l2
        if (next_input is None) != (next_output is None):
            raise ValueError("next_input and next_output go together: pass both or neither.")
        self.next_input, self.next_output = next_input, next_output
        self.next_done = False

    @property
    def shape(self):
        return self.W.shape

    def rows(self, start, stop, out):
        """Write rows ``start:stop`` of the gradient into ``out`` and return it."""
        np.matmul(self.A[:, start:stop].T, self.delta, out=out)
        if self.l2:
            out += self.l2 * self.W[start:stop]
        return out

    def toarray(self):
        """The whole gradient as an array (for tests and small layers)."""
        return self.rows(0, self.W.shape[0], np.empty_like(self.W))


class BaseOptimizer:
    """Base class: loop over parameters and row blocks, update in place.

    Parameters
    ----------
    params : list of ndarray
        The parameters (``coefs_ + intercepts_``); used to size the state.
    learning_rate_init : float
        The initial learning rate.
    block_size : int, default=BLOCK_SIZE
        Elements per row block of an update.
    plan : TrainingPlan, default=None
        How a step uses the machine, from
        :func:`skoffice31._plan.plan_training`; ``None`` is one thread and
        the plain path.

    Attributes
    ----------
    plan : TrainingPlan
        The plan given at construction. An estimator that continues with
        this optimizer in a later ``partial_fit`` (or after loading it on
        another machine) plans again and replaces it.
    """

    def __init__(self, params, learning_rate_init=0.1, block_size=BLOCK_SIZE, plan=None):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)
        self.block_size = block_size
        self.plan = SERIAL_PLAN if plan is None else plan
        self._scratch = {}

    def update_params(self, params, grads):
        """Update each parameter in place with its gradient.

        Parameters
        ----------
        params : list of ndarray
            Parameters, changed in place.
        grads : list of ndarray or OuterGradient
            Gradients, aligned with ``params``. Array gradients are not
            modified.

        Returns
        -------
        sq_norm : float
            ``sum ||W||^2`` of the weights of the :class:`OuterGradient`
            gradients with ``l2 > 0``, as they were before this step (what
            the loss's L2 term needs). Each row block is summed while it is
            read for its update, so the loss costs no extra pass over the
            weights. 0.0 when no gradient has an L2 term.
        """
        self._start_step()
        sq_norm, rest = self._kernel_steps(params, grads)
        return sq_norm + self._update_all(rest)

    def _kernel_steps(self, params, grads):
        """Step the parameters the plan gives to the compiled kernels.

        Returns
        -------
        sq_norm : float
            Squared L2 norm read by the kernels (0.0 without an L2 term).
        rest : list of (int, (ndarray, gradient))
            The items left to the NumPy path.
        """
        items = list(enumerate(zip(params, grads)))
        if not self.plan.kernels:
            return 0.0, items
        sq_norm, rest = 0.0, []
        for i, (param, grad) in items:
            if self._takes_kernel(param, grad) and self._state_like(i, param):
                sq_norm += self._kernel_step(i, param, grad)
                grad.next_done = grad.next_input is not None
            else:
                rest.append((i, (param, grad)))
        return sq_norm, rest

    def fuses_forward(self, param):
        """Whether a step of ``param`` (a dense layer's weights) can also
        compute the next minibatch's forward product through it.

        True when the plan gives this layer to the compiled kernels: they
        multiply each updated row of ``W`` into the next batch's product
        while the row is still in cache, so ``W`` is read once per step
        instead of twice (once for the update, once for the next forward
        pass). Ask for it with ``OuterGradient(..., next_input=, next_output=)``.

        Parameters
        ----------
        param : ndarray of shape (n_in, n_out)

        Returns
        -------
        fuses : bool
        """
        return self.plan.kernels and self._kernel_param(param)

    def _takes_kernel(self, param, grad):
        return isinstance(grad, OuterGradient) and self._kernel_param(param)

    def _kernel_param(self, param):
        """A dense layer the plan gives to the row kernels (C-ordered, at
        least ``kernel_min_columns`` columns) or to the transposed kernels
        (Fortran-ordered, at most ``transposed_max_columns``)."""
        if not (
            param.ndim == 2
            and param.size >= self.plan.kernel_min_size
            and param.dtype in (np.float32, np.float64)
            and param.flags.writeable
        ):
            return False
        if _kernels.is_transposed(param):
            return param.shape[1] <= self.plan.transposed_max_columns
        return param.flags.c_contiguous and param.shape[1] >= self.plan.kernel_min_columns

    def _state(self, i):
        """The state arrays of parameter ``i`` (moments, velocity)."""
        return []

    def _state_like(self, i, param):
        """Whether parameter ``i``'s state has ``param``'s memory layout, as
        the kernels need (it has unless the weights were re-laid out after
        this optimizer was built)."""
        transposed = _kernels.is_transposed(param)
        return all(_kernels.is_transposed(s) == transposed for s in self._state(i))

    def _kernel_step(self, i, param, grad):
        """One compiled step of parameter ``i``; returns its ``||W||^2``."""
        raise NotImplementedError

    def _kernel_threads(self, param):
        """Threads sharing a kernel call on ``param``: the plan's
        ``kernel_threads`` for a layer of at least ``kernel_parallel_min_size``
        weights, else one. The row parts do not depend on the number of
        threads, so neither do the results."""
        if param.size >= self.plan.kernel_parallel_min_size:
            return self.plan.kernel_threads
        return 1

    def _update_all(self, items):
        """Update ``(i, (param, grad))`` items; return their squared L2 norm."""
        threads = self.plan.update_threads
        futures = []
        sq_norm = 0.0
        for i, (param, grad) in items:
            n_rows = param.shape[0]
            if threads > 1 and param.ndim == 2 and param.size >= self.plan.parallel_min_size:
                bounds = np.linspace(0, n_rows, threads + 1).astype(int)
                futures += [
                    _thread_pool().submit(self._update_rows, i, param, grad, a, b, k)
                    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
                ]
            else:
                sq_norm += self._update_rows(i, param, grad, 0, n_rows, 0)
        for future in futures:
            sq_norm += future.result()
        return sq_norm

    def _update_rows(self, i, param, grad, first, last, worker):
        """Update rows ``first:last`` of parameter ``i`` block by block.

        Returns the squared norm of the rows read for an L2 term (else 0.0).
        """
        if param.ndim == 1:
            rows_per_block = param.shape[0]
        else:
            block_size = self.plan.block_size or self.block_size
            rows_per_block = max(1, block_size // param.shape[1])
        with_l2 = isinstance(grad, OuterGradient) and bool(grad.l2)
        sq_norm = 0.0
        for start in range(first, last, rows_per_block):
            stop = min(last, start + rows_per_block)
            g_buf, tmp = self._buffers(param, stop - start, worker)
            if isinstance(grad, np.ndarray):
                g = grad[start:stop]
            else:
                if with_l2:  # read just before the step, the block in cache
                    sq_norm += _sq_norm(param[start:stop])
                g = grad.rows(start, stop, g_buf)
            self._update_block(i, start, stop, param[start:stop], g, tmp)
        return sq_norm

    def _buffers(self, param, n_rows, worker=0):
        """Two scratch blocks shaped like ``param[:n_rows]`` (reused per thread)."""
        key = (param.shape[1:], param.dtype.str, worker)
        bufs = self._scratch.get(key)
        if bufs is None or bufs[0].shape[0] < n_rows:
            bufs = tuple(np.empty((n_rows,) + param.shape[1:], param.dtype) for _ in "gt")
            self._scratch[key] = bufs
        return bufs[0][:n_rows], bufs[1][:n_rows]

    def _start_step(self):
        """Hook run once before each step (Adam counts steps here)."""

    def _update_block(self, i, start, stop, param, grad, tmp):
        raise NotImplementedError

    def iteration_ends(self, time_step):
        """Hook called at the end of each epoch (learning-rate schedules)."""

    def trigger_stopping(self, msg, verbose):
        """Decide whether training stops when the loss stopped improving.

        Returns
        -------
        is_stopping : bool
        """
        if verbose:
            print(msg + " Stopping.")
        return True

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_scratch"] = {}
        return state


class SGDOptimizer(BaseOptimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    ``momentum=0`` is plain SGD, ``param -= lr * grad``. Otherwise the
    velocity is ``v = momentum * v - lr * grad`` and the step is ``v`` (or
    ``momentum * v - lr * grad`` with Nesterov's momentum), as in
    scikit-learn.

    Parameters
    ----------
    params : list of ndarray
    learning_rate_init : float, default=0.1
    lr_schedule : {"constant", "adaptive", "invscaling"}, default="constant"
        ``"invscaling"`` sets ``lr = lr_init / (t + 1) ** power_t`` at the end
        of each epoch (``t`` samples seen); ``"adaptive"`` divides the rate
        by 5 when the loss stops improving, until it is below 1e-6.
    momentum : float, default=0.9
    nesterov : bool, default=True
    power_t : float, default=0.5
    block_size : int, default=BLOCK_SIZE
    plan : TrainingPlan, default=None
        With ``momentum=0`` and ``plan.fused_gemm_sgd``, a dense layer's
        whole step is one BLAS call through SciPy (see ``_gemm_step``).
    """

    def __init__(
        self,
        params,
        learning_rate_init=0.1,
        lr_schedule="constant",
        momentum=0.9,
        nesterov=True,
        power_t=0.5,
        block_size=BLOCK_SIZE,
        plan=None,
    ):
        super().__init__(params, learning_rate_init, block_size, plan)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocities = [np.zeros_like(p) for p in params] if momentum else None

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            return super().trigger_stopping(msg, verbose)
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False

    def update_params(self, params, grads):
        if self.momentum or not self.plan.fused_gemm_sgd:
            return super().update_params(params, grads)
        # Plain SGD: a dense layer's whole update is one BLAS call (below);
        # what it cannot take goes through the row blocks.
        self._start_step()
        sq_norm, items = self._kernel_steps(params, grads)
        rest = []
        for i, (param, grad) in items:
            done = _gemm_step(param, grad, self.learning_rate)
            if done is None:
                rest.append((i, (param, grad)))
            else:
                sq_norm += done
        return sq_norm + self._update_all(rest)

    def _state(self, i):
        return [self.velocities[i]] if self.momentum else []

    def _kernel_step(self, i, param, grad):
        return _kernels.sgd_update(
            param, grad.A, grad.delta, lr=self.learning_rate,
            velocity=self.velocities[i] if self.momentum else None,
            momentum=self.momentum, nesterov=self.nesterov, l2=grad.l2,
            n_threads=self._kernel_threads(param),
            X_next=grad.next_input, out=grad.next_output,
        )

    def _update_block(self, i, start, stop, param, grad, tmp):
        step = np.multiply(grad, self.learning_rate, out=tmp)  # lr * g
        if not self.momentum:
            param -= step
            return
        v = self.velocities[i][start:stop]
        if self.plan.compiled_updates and _kernels.momentum_block(
            param, grad, v, lr=self.learning_rate, momentum=self.momentum,
            nesterov=self.nesterov,
        ):
            return
        v *= self.momentum
        v -= step  # v = momentum * v - lr * g
        if self.nesterov:
            param -= step
            step = np.multiply(v, self.momentum, out=tmp)
            param += step  # param += momentum * v - lr * g
        else:
            param += v


class AdamOptimizer(BaseOptimizer):
    """Adam (Kingma & Ba, 2015, Algorithm 1).

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
    ``param -= lr * m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected
    ``m_hat = m / (1 - b1**t)`` and ``v_hat = v / (1 - b2**t)``; epsilon is
    added after the square root. The step is computed in the equivalent form
    ``lr_t * m / (sqrt(v) + eps * sqrt(1 - b2**t))`` with
    ``lr_t = lr * sqrt(1 - b2**t) / (1 - b1**t)``, which needs no extra pass.

    In float32, moments of weights whose gradient stays zero decay into
    subnormal numbers, on which the CPU is many times slower. Every
    ``flush_every`` steps, moments smaller than the smallest normal number
    are set to zero while their block is in cache; their contribution to a
    step (at most ``lr * 1e-38 / eps``) is far below float noise.

    Parameters
    ----------
    params : list of ndarray
    learning_rate_init : float, default=0.001
    beta_1 : float, default=0.9
    beta_2 : float, default=0.999
    epsilon : float, default=1e-8
    flush_every : int, default=8
    block_size : int, default=BLOCK_SIZE
    plan : TrainingPlan, default=None
    """

    def __init__(
        self,
        params,
        learning_rate_init=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        flush_every=8,
        block_size=BLOCK_SIZE,
        plan=None,
    ):
        super().__init__(params, learning_rate_init, block_size, plan)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.flush_every = flush_every
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def _start_step(self):
        # Python floats, not NumPy float64 scalars: under NumPy 2's promotion
        # rules a float64 scalar would make every float32 ufunc below compute
        # in float64 and cast back (measured ~40 % slower).
        self.t += 1
        correction_2 = float(np.sqrt(1 - self.beta_2**self.t))
        self.learning_rate = float(
            self.learning_rate_init * correction_2 / (1 - self.beta_1**self.t)
        )
        self._eps_t = float(self.epsilon * correction_2)
        self._flush = self.flush_every and self.t % self.flush_every == 0

    def _state(self, i):
        return [self.ms[i], self.vs[i]]

    def _kernel_step(self, i, param, grad):
        return _kernels.adam_update(
            param, grad.A, grad.delta, self.ms[i], self.vs[i], lr=self.learning_rate,
            eps=self._eps_t, beta_1=self.beta_1, beta_2=self.beta_2, l2=grad.l2,
            flush=bool(self._flush), n_threads=self._kernel_threads(param),
            X_next=grad.next_input, out=grad.next_output,
        )

    def _update_block(self, i, start, stop, param, grad, tmp):
        m = self.ms[i][start:stop]
        v = self.vs[i][start:stop]
        if self.plan.compiled_updates and _kernels.adam_block(
            param, grad, m, v, lr=self.learning_rate, eps=self._eps_t,
            beta_1=self.beta_1, beta_2=self.beta_2, flush=bool(self._flush),
        ):
            return
        m *= self.beta_1
        np.multiply(grad, 1 - self.beta_1, out=tmp)
        m += tmp
        v *= self.beta_2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1 - self.beta_2
        v += tmp
        if self._flush:
            tiny = np.finfo(m.dtype).tiny
            m *= np.abs(m, out=tmp) >= tiny
            v *= v >= tiny
        np.sqrt(v, out=tmp)
        tmp += self._eps_t
        np.divide(m, tmp, out=tmp)
        tmp *= self.learning_rate
        param -= tmp


_GEMM = {np.dtype(np.float32): blas.sgemm, np.dtype(np.float64): blas.dgemm}


def _gemm_step(W, grad, lr):
    """``W <- (1 - lr * l2) W - lr * A.T @ delta`` in place, as one BLAS call.

    In Fortran order ``W.T`` is ``W``'s own memory, so BLAS's
    ``C <- alpha * op(A) @ op(B) + beta * C`` with ``C = W.T`` writes the
    step straight into ``W``: no gradient array, two passes over ``W`` (read
    and write), and BLAS's threads share the work.

    Returns
    -------
    sq_norm : float or None
        ``||W||^2`` before the step when ``grad.l2 > 0`` (else 0.0), or
        ``None`` when the arrays do not allow the fused step (then nothing
        was changed).
    """
    if not isinstance(grad, OuterGradient):
        return None
    A, D = grad.A, grad.delta
    gemm = _GEMM.get(W.dtype)
    if (
        gemm is None
        or A.dtype != W.dtype
        or D.dtype != W.dtype
        or not (W.flags.c_contiguous and A.flags.c_contiguous and D.flags.c_contiguous)
    ):
        return None
    sq_norm = _sq_norm(W) if grad.l2 else 0.0  # the loss's L2 term reads W before the step
    gemm(-lr, D.T, A.T, beta=1.0 - lr * grad.l2, c=W.T, trans_b=1, overwrite_c=1)
    return sq_norm
