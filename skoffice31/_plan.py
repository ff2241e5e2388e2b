"""The training loop's speed decisions, made in one place.

:func:`plan_training` is a pure function: it reads nothing but its arguments
(the caller asks threadpoolctl how many BLAS threads there are), changes
nothing, and returns a frozen :class:`TrainingPlan` that the estimator gives
to the optimizer when it builds it. The reasons for each choice are measured
in ``benchmarks/`` and explained in ``docs/performance.rst``.
"""

from dataclasses import dataclass

import numpy as np

#: Minibatches of up to this many rows train with one BLAS thread: their
#: GEMMs are too small for two threads, the second one only spins (and, on a
#: loaded machine, fights the ufuncs for the core).
SMALL_BATCH = 64

#: Parameters of at least this many elements can have their update shared by
#: two Python threads, each on its own rows (NumPy ufuncs release the GIL).
PARALLEL_MIN_SIZE = 1 << 20

#: Most threads the update of one parameter is split over.
MAX_UPDATE_THREADS = 2


@dataclass(frozen=True)
class TrainingPlan:
    """How one fit uses the machine; see :func:`plan_training`.

    Parameters
    ----------
    blas_threads : int or None, default=None
        BLAS threads while training (``threadpool_limits``), or ``None`` to
        leave BLAS as it is.
    update_threads : int, default=1
        Python threads that share the row blocks of the update of each
        parameter of at least ``parallel_min_size`` elements.
    fused_gemm_sgd : bool, default=False
        Plain SGD (no momentum) does a dense layer's whole step as one BLAS
        call through SciPy, writing into the weights. SciPy's BLAS may be a
        second library beside NumPy's: when both run several threads their
        spinning threads fight for the cores (measured 0.2-0.8x the speed),
        so this is planned only together with ``blas_threads=1``.
    kernels : bool, default=False
        Reserved for compiled kernels of the dense layers' update (none yet).
    parallel_min_size : int, default=PARALLEL_MIN_SIZE
        Smallest parameter whose update is split over ``update_threads``.
    """

    blas_threads: int | None = None
    update_threads: int = 1
    fused_gemm_sgd: bool = False
    kernels: bool = False
    parallel_min_size: int = PARALLEL_MIN_SIZE


#: The plan of an optimizer built without one: one thread, the plain path.
SERIAL_PLAN = TrainingPlan()


def plan_training(batch_size, solver, momentum, dtype, n_blas_threads, layer_shapes):
    """Choose the BLAS threads, update threads and SGD step of one fit.

    Parameters
    ----------
    batch_size : int
        Rows per minibatch (after ``"auto"`` and clipping are resolved).
    solver : {"sgd", "adam"}
        The optimizer.
    momentum : float
        SGD's momentum (ignored for Adam).
    dtype : dtype
        The parameters' dtype.
    n_blas_threads : int
        BLAS threads available before training (the most any loaded BLAS
        library uses, as threadpoolctl reports it; 1 when there is none).
    layer_shapes : sequence of tuple of int
        Shapes of the weight matrices, input layer first.

    Returns
    -------
    plan : TrainingPlan
        Small minibatches (at most :data:`SMALL_BATCH` rows) run BLAS on one
        thread; the cores BLAS would have used then share the update of
        large layers (at most :data:`MAX_UPDATE_THREADS`, and only when a
        layer has at least :data:`PARALLEL_MIN_SIZE` weights), and plain SGD
        in float32/float64 takes the fused one-GEMM step. Larger minibatches
        leave BLAS alone and update on one thread.
    """
    n_blas_threads = max(1, int(n_blas_threads))
    if batch_size > SMALL_BATCH:
        return TrainingPlan()
    big_layer = any(int(np.prod(shape)) >= PARALLEL_MIN_SIZE for shape in layer_shapes)
    update_threads = min(MAX_UPDATE_THREADS, n_blas_threads) if big_layer else 1
    fused = (
        solver == "sgd"
        and not momentum
        and np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))
    )
    return TrainingPlan(blas_threads=1, update_threads=update_threads, fused_gemm_sgd=fused)
