"""The training loop's speed decisions, made in one place.

:func:`plan_training` is a pure function: it reads nothing but its arguments
(the caller asks threadpoolctl how many BLAS threads there are), changes
nothing, and returns a frozen :class:`TrainingPlan` that the estimator gives
to the optimizer when it builds it. The reasons for each choice are measured
in ``benchmarks/`` and explained in ``docs/performance.rst``.
"""

import functools
from dataclasses import dataclass

import numpy as np

#: Minibatches of up to this many rows train with one BLAS thread: their
#: GEMMs are too small for two threads, the second one only spins (and, on a
#: loaded machine, fights the ufuncs for the core). Wider minibatches do
#: too when the kernel threads take every large layer
#: (:data:`NARROW_KERNEL_MAX_COLUMNS`).
SMALL_BATCH = 64

#: Parameters of at least this many elements can have their update shared by
#: two Python threads, each on its own rows (NumPy ufuncs release the GIL).
PARALLEL_MIN_SIZE = 1 << 20

#: Smallest layer whose kernel call is shared by the plan's kernel threads:
#: two row parts (``skoffice31._kernels.PART_MIN_SIZE`` weights each); a
#: layer of one part runs in the caller's thread. Until 2026-12-04 it was
#: 2**20 (the NumPy update threads' PARALLEL_MIN_SIZE), which kept the
#: ``(10)`` layout's 300,000-weight first layer on one thread: its helper,
#: a pool thread, slept between steps, and waking it cost more than it
#: saved on a virtual machine whose host took the second core. The helpers
#: of skoffice31._team spin between steps and the caller backs off to
#: working alone after a call that waited for a helper longer than it
#: worked. Paired whole fits, ``python benchmarks/bench_kernels.py --part
#: fit_threads`` (``benchmarks/results/kernels_fit_threads_team.json``):
#: docs/performance.rst, *Threads*.
KERNEL_PARALLEL_MIN_SIZE = 2 * (1 << 16)

#: Most threads the update of one parameter is split over.
MAX_UPDATE_THREADS = 2

#: Elements per row block of the NumPy update above :data:`SMALL_BATCH` rows.
#: A block's gradient is one GEMM ``A[:, rows].T @ delta``; at wide
#: minibatches small blocks make it inefficient. ``python
#: benchmarks/bench_kernels.py --part blocks`` (quiet 2-core AMD EPYC,
#: 2026-12-01; 256 x 30,000 float32 inputs, two BLAS threads, ms per update,
#: blocks of 2**16 / 2**18 / 2**20 elements): 384 columns plain SGD 62 / 52 /
#: 53, Adam 83 / 75 / 73; 64 and 10 columns within 10 % of each other.
#: 2**18 (1 MB in float32) keeps Adam's scratch blocks in L2/L3.
LARGE_BATCH_BLOCK_SIZE = 1 << 18

#: Largest minibatch at which the compiled kernels (:mod:`skoffice31._kernels`)
#: beat the NumPy row blocks for Adam and momentum/Nesterov SGD. Measured on a
#: 30,000 x 384 float32 layer, ms per step, NumPy / kernel: Adam 32.9 / 10.2
#: at 10 rows, faster up to 32, about even at 64, 81.8 / 147.5 at 256 (the kernel's gradient
#: row is a dot product per weight, BLAS's GEMM wins once the batch is wide).
KERNEL_MAX_BATCH = 32

#: Largest minibatch at which the kernel beats plain SGD's one-GEMM step
#: (measured 6.5 ms vs 9.1 ms at 10 rows, 131 ms vs 53 ms at 256 rows; the
#: crossover is kept at the study's batch size, the one measured win).
KERNEL_MAX_BATCH_SGD = 10

#: Smallest weight matrix given to the kernels. Below it (and for every
#: intercept) the NumPy path is as fast or faster (measured crossover: about
#: 70,000 elements for Adam; a 3,072 x 512 plain-SGD layer was 0.81 ms NumPy
#: vs 0.90 ms kernel).
KERNEL_MIN_SIZE = 1 << 16

#: Narrowest weight matrix (output columns) given to the kernels for Adam and
#: momentum/Nesterov SGD: they work row by row, and a short row does not pay
#: for the per-row overhead. ``python benchmarks/bench_kernels.py --part
#: columns`` (30,000-row float32 layers at batch 10, quiet 2-core AMD EPYC,
#: 2026-12-01, ms per step, NumPy / kernel on two threads): Adam 10 columns
#: 1.18 / 2.52, 32 columns 3.47 / 2.64, 64 columns 8.68 / 3.45, 384 columns
#: 45.0 / 13.8; Nesterov 10 columns 0.87 / 2.20, 32 columns 2.28 / 2.22, 64
#: columns 5.47 / 2.82.
KERNEL_MIN_COLUMNS = 32

#: Widest weight matrix (output columns) stored in Fortran order and given to
#: the transposed kernels (:func:`skoffice31._kernels.is_transposed`) for
#: every solver: their loops run along the inputs, long and
#: contiguous whatever the number of columns, where the row kernels' loops
#: over a row of 10 weights are too short to vectorise. ``python
#: benchmarks/bench_kernels.py --part columns`` (2-core Intel Xeon,
#: 2026-12-03; 30,000-row float32 layers, batch 10, update and next forward
#: product, ms per step, NumPy path / row kernels / transposed kernels):
#: Adam 10 columns 2.05 / 5.55 / 1.12, 64 columns 7.09 / 5.78 / 4.65, 128
#: columns 13.85 / 9.85 / 9.10, 384 columns 54.4 / 23.1 / 28.9; plain SGD
#: 10 columns 1.25 / 4.55 / 0.83, 64 columns 3.61 / 4.04 / 3.07, 128 columns
#: 8.27 / 7.06 / 5.78. Plain SGD's narrow layers take them since 2026-12-06
#: (whole fits: ``python benchmarks/run.py --layouts 10 64,32,10 --solvers sgd
#: adam --batches 10 --impl ours ours_numpy torch torch_ftz torch_fused
#: torch_fused_ftz --name small_b10_quad_model207``, docs/performance.rst).
TRANSPOSED_MAX_COLUMNS = 128

#: Widest weight matrix (output columns) that takes the transposed kernels
#: at minibatches of up to :data:`NARROW_KERNEL_MAX_BATCH` rows, not only up
#: to :data:`KERNEL_MAX_BATCH` / :data:`KERNEL_MAX_BATCH_SGD` rows: when every layer of at least
#: :data:`KERNEL_MIN_SIZE` weights is this narrow, the step is one pass
#: along the inputs with the next batch's forward product (and its rows
#: gathered by the kernel threads), BLAS on one thread. Whole fits of the
#: study's shape, the plan with this rule against it switched off, taking
#: turns in one process (``python benchmarks/bench_narrow_plan.py --json
#: benchmarks/results/narrow_plan_model207.json``, 2-core Intel Xeon model
#: 207, 2026-12-06, synthetic data; ratio of the medians of three fits,
#: plain SGD and Adam): 10
#: columns 0.47-0.50 at batch 64, 0.54-0.58 at 256, 0.71-0.72 at 1024; 16
#: columns 0.67-0.69, 0.77-0.82, 0.84-0.91; the wider layouts, for which
#: both make the same plan, 0.96-1.02 (the noise). With the limit raised to
#: 64 (``--layouts 32 64,32,10 --batches 256 --max-columns 64``,
#: ``narrow_plan_wider_model207.json``): 32 columns 0.97-0.99, the
#: (64,32,10) layout 1.15-1.16 (BLAS's two-thread GEMMs win there). The
#: study's batch-256 rows against PyTorch: ``python benchmarks/run.py
#: --layouts 10 64,32,10 --batches 256 --impl ours ours_numpy torch
#: torch_ftz torch_fused torch_fused_ftz --name b256_narrow_model207``.
NARROW_KERNEL_MAX_COLUMNS = 16

#: Largest minibatch at which :data:`NARROW_KERNEL_MAX_COLUMNS` applies: the
#: largest measured. The forward fusion keeps a second input buffer for the
#: next batch's rows (batch x inputs: 123 MB at 1024 rows of the study's
#: 30,000 float32 inputs), which grows with the minibatch.
NARROW_KERNEL_MAX_BATCH = 1024

#: The same for plain SGD's row kernels (C-ordered layers), whose NumPy step
#: is one GEMM into the weights (same run): 32 columns 0.63 / 1.91, 64 columns
#: 2.31 / 2.37, 128 columns 3.13 / 2.77, 384 columns 14.2 / 8.7; with the
#: kernels the next forward product also comes with the step. Narrower
#: layers take the transposed kernels (:data:`TRANSPOSED_MAX_COLUMNS`).
KERNEL_MIN_COLUMNS_SGD = 128

#: Sample-space plain SGD (:mod:`skoffice31._dual`) is planned when its
#: one-off cost, ``G = X @ X.T`` and ``P = X @ W0`` (``n**2 d + n d k``
#: multiply-adds for ``n`` rows, ``d`` inputs, ``k`` units), is at most
#: this fraction of the first layer's GEMM work over the whole fit
#: (``2 n d k`` per epoch), and when each epoch's work in sample space
#: (``n**2 k``) is at most this fraction of that epoch's GEMM work.
SAMPLE_SPACE_MAX_COST = 0.5


def _float_weights(dtype):
    """float32 or float64: the dtypes the fused step, the kernels and
    sample-space training take."""
    return np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))


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
        Dense layers of at least ``kernel_min_size`` weights take their step
        (gradient and update in one pass) in the compiled kernels of
        :mod:`skoffice31._kernels`; every other parameter takes the NumPy
        path.
    parallel_min_size : int, default=PARALLEL_MIN_SIZE
        Smallest parameter whose update is split over ``update_threads``.
    kernel_min_size : int, default=KERNEL_MIN_SIZE
        Smallest weight matrix (elements) given to the kernels.
    kernel_min_columns : int, default=KERNEL_MIN_COLUMNS
        Narrowest weight matrix (output columns) given to the kernels.
    kernel_threads : int, default=1
        Threads sharing the rows of one kernel call on a layer of at least
        ``kernel_parallel_min_size`` weights (one thread below).
    kernel_parallel_min_size : int, default=KERNEL_PARALLEL_MIN_SIZE
        Smallest layer whose kernel call ``kernel_threads`` share.
    compiled_updates : bool, default=False
        Adam and momentum/Nesterov SGD update every row block that the
        kernels do not take (small and narrow layers, intercepts) with one
        compiled pass (:func:`skoffice31._kernels.adam_block`,
        :func:`~skoffice31._kernels.momentum_block`) instead of about ten
        ufunc calls; the same operations in the same order.
    block_size : int or None, default=None
        Elements per row block of the NumPy update, or ``None`` for the
        optimizer's own ``block_size``.
    transposed_max_columns : int, default=0
        Dense layers of at least ``kernel_min_size`` weights and at most
        this many columns are stored in Fortran order and take the
        transposed kernels (see :func:`transposes`); 0 for none.
    sample_space : bool, default=False
        Plain SGD trains the first layer in sample space
        (:class:`skoffice31._dual.SampleSpaceLayer`): each step reads a
        few rows of the training rows' Gram matrix instead of the whole
        first weight matrix. See :func:`wants_sample_space`.
    """

    blas_threads: int | None = None
    update_threads: int = 1
    fused_gemm_sgd: bool = False
    kernels: bool = False
    parallel_min_size: int = PARALLEL_MIN_SIZE
    kernel_min_size: int = KERNEL_MIN_SIZE
    kernel_min_columns: int = KERNEL_MIN_COLUMNS
    kernel_threads: int = 1
    kernel_parallel_min_size: int = KERNEL_PARALLEL_MIN_SIZE
    compiled_updates: bool = False
    block_size: int | None = None
    transposed_max_columns: int = 0
    sample_space: bool = False


#: The plan of an optimizer built without one: one thread, the plain path.
SERIAL_PLAN = TrainingPlan()


def transposes(plan, shape):
    """Whether a weight matrix of this shape is stored in Fortran order for
    the transposed kernels under ``plan``.

    Parameters
    ----------
    plan : TrainingPlan
    shape : tuple of int

    Returns
    -------
    transposed : bool
        True when ``plan.kernels`` and the matrix has at least
        ``plan.kernel_min_size`` elements and at most
        ``plan.transposed_max_columns`` columns (and more than one row and
        column: a single row or column is both C- and Fortran-ordered).
    """
    return (
        plan.kernels
        and len(shape) == 2
        and min(shape) > 1
        and int(np.prod(shape)) >= plan.kernel_min_size
        and shape[1] <= plan.transposed_max_columns
    )


def wants_kernels(batch_size, solver, momentum, dtype, layer_shapes):
    """Whether the kernels would pay for this fit (whether they exist aside).

    Parameters
    ----------
    batch_size, solver, momentum, dtype, layer_shapes
        As in :func:`plan_training`.

    Returns
    -------
    wanted : bool
        True for float32/float64 weights with a layer of at least
        :data:`KERNEL_MIN_SIZE` elements and :data:`KERNEL_MIN_COLUMNS`
        columns (:data:`KERNEL_MIN_COLUMNS_SGD` for plain SGD) or at most
        :data:`TRANSPOSED_MAX_COLUMNS` (the transposed kernels), and
        minibatches of at most
        :data:`KERNEL_MAX_BATCH` rows (Adam, momentum SGD) or
        :data:`KERNEL_MAX_BATCH_SGD` rows (plain SGD); up to
        :data:`NARROW_KERNEL_MAX_BATCH` rows when every such layer is
        narrow (:func:`narrow_only`).
    """
    if not _float_weights(dtype):
        return False
    plain_sgd = solver == "sgd" and not momentum
    min_columns = KERNEL_MIN_COLUMNS_SGD if plain_sgd else KERNEL_MIN_COLUMNS
    if not any(
        len(shape) == 2
        and (shape[1] >= min_columns or 1 < shape[1] <= TRANSPOSED_MAX_COLUMNS)
        and int(np.prod(shape)) >= KERNEL_MIN_SIZE
        for shape in layer_shapes
    ):
        return False
    return (batch_size <= (KERNEL_MAX_BATCH_SGD if plain_sgd else KERNEL_MAX_BATCH)
            or (batch_size <= NARROW_KERNEL_MAX_BATCH and narrow_only(layer_shapes)))


def narrow_only(layer_shapes):
    """Whether every weight matrix of at least :data:`KERNEL_MIN_SIZE`
    elements (and there is one) has 2 to :data:`NARROW_KERNEL_MAX_COLUMNS`
    columns: such a network's heavy work is all in the transposed kernels,
    up to :data:`NARROW_KERNEL_MAX_BATCH` rows.

    Parameters
    ----------
    layer_shapes : sequence of tuple of int
        As in :func:`plan_training`.

    Returns
    -------
    narrow : bool
    """
    big = [shape for shape in layer_shapes
           if len(shape) == 2 and int(np.prod(shape)) >= KERNEL_MIN_SIZE]
    return bool(big) and all(1 < shape[1] <= NARROW_KERNEL_MAX_COLUMNS for shape in big)


def wants_sample_space(solver, momentum, dtype, first_shape, n_rows, epochs):
    """Whether plain SGD's first layer would train faster in sample space.

    Parameters
    ----------
    solver, momentum, dtype
        As in :func:`plan_training`.
    first_shape : tuple of int or None
        ``(n_features, n_units)`` of the first layer, or ``None`` when it is
        not trained (frozen).
    n_rows : int or None
        Rows of the training matrix, or ``None`` when the fit cannot train
        in sample space (``partial_fit``, early stopping, the switch off).
    epochs : int
        Most epochs of the fit.

    Returns
    -------
    wanted : bool
        True for plain SGD (no momentum) in float32/float64 when the Gram
        matrix (``n_rows**2`` elements) is no larger than the first weight
        matrix, so memory does not grow, and both costs of
        :data:`SAMPLE_SPACE_MAX_COST` hold: ``n_rows <= 0.5 * 2 d`` (an
        epoch's work) and ``n_rows + k <= 0.5 * 2 k * epochs`` (the one-off
        work).
    """
    if solver != "sgd" or momentum or first_shape is None or n_rows is None:
        return False
    if not _float_weights(dtype):
        return False
    d, k = first_shape
    fits_in_w = n_rows * n_rows <= d * k
    epoch_pays = n_rows <= SAMPLE_SPACE_MAX_COST * 2 * d
    setup_pays = n_rows + k <= SAMPLE_SPACE_MAX_COST * 2 * k * epochs
    return fits_in_w and epoch_pays and setup_pays


def plan_training(batch_size, solver, momentum, dtype, n_blas_threads, layer_shapes,
                  kernels_available=False, sample_space_rows=None, epochs=1,
                  update_cores=None):
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
    kernels_available : bool or callable, default=False
        Whether the compiled kernels can be used (the caller passes
        :func:`skoffice31._kernels.kernels_available`). A callable is called
        only when something would use the kernels (Adam or momentum SGD, or
        :func:`wants_kernels`), so that a plain-SGD fit that would not use
        them never imports numba.
    sample_space_rows : int or None, default=None
        Rows of the training matrix when the first weight matrix (the first
        of ``layer_shapes``) is the network's input layer and the fit may
        train it in sample space; ``None`` otherwise.
    epochs : int, default=1
        Most epochs of the fit.
    update_cores : int or None, default=None
        Cores the update and kernel threads may use, when the user set it
        (``SKOFFICE31_UPDATE_THREADS``); ``None`` takes ``n_blas_threads``
        (inside a joblib worker, joblib's share of the cores).

    Returns
    -------
    plan : TrainingPlan
        Small minibatches (at most :data:`SMALL_BATCH` rows) run BLAS on one
        thread; the cores BLAS would have used then share the update of
        large layers (at most :data:`MAX_UPDATE_THREADS`, and only when a
        layer has at least :data:`PARALLEL_MIN_SIZE` weights), and plain SGD
        in float32/float64 takes the fused one-GEMM step. Larger minibatches
        leave BLAS alone and update on one thread, in row blocks of
        :data:`LARGE_BATCH_BLOCK_SIZE` elements -- except where every
        large layer is narrow (:func:`narrow_only`) and the kernels are
        available: those are planned as small minibatches. Where
        :func:`wants_kernels` and ``kernels_available``, the large dense
        layers take the kernels on ``min(2, n_blas_threads)`` threads (or
        ``update_cores``) -- the narrow ones stored in Fortran order for
        the transposed kernels, see :func:`transposes` -- and with
        ``kernels_available`` Adam and momentum SGD take the compiled
        block updates for every other parameter, at any minibatch size.
        Where :func:`wants_sample_space`, the first layer trains in sample
        space (and takes neither the kernels nor the fused GEMM step).
    """
    n_blas_threads = max(1, int(n_blas_threads))
    cores = n_blas_threads if update_cores is None else max(1, int(update_cores))
    plain_sgd = solver == "sgd" and not momentum
    sample_space = wants_sample_space(
        solver, momentum, dtype, layer_shapes[0] if sample_space_rows else None,
        sample_space_rows, epochs,
    )
    if sample_space:
        layer_shapes = layer_shapes[1:]  # the rest of the network, planned below

    @functools.cache  # asked at most once, and only when something would use them
    def available():
        return bool(kernels_available() if callable(kernels_available) else kernels_available)

    compiled_updates = (
        (solver == "adam" or bool(momentum))
        and _float_weights(dtype)
        and available()
    )
    # KERNEL_MAX_BATCH <= SMALL_BATCH: here the kernels are wanted only when
    # every large layer is narrow (then planned as a small minibatch: BLAS on
    # one thread)
    if batch_size > SMALL_BATCH and not (
        not sample_space
        and wants_kernels(batch_size, solver, momentum, dtype, layer_shapes)
        and available()
    ):
        return TrainingPlan(
            block_size=LARGE_BATCH_BLOCK_SIZE, compiled_updates=compiled_updates,
            sample_space=sample_space,
        )
    # In sample space (plain SGD) the first layer needs no second core and the
    # rest of the network is small: NumPy's one-GEMM SGD step beats the kernel
    # there (the largest layout at batch 10: 0.39 s per epoch with the NumPy
    # path, 0.61 s with its 384 x 192 layer on the kernel;
    # benchmarks/results/largest_sgd.md).
    kernels = (
        not sample_space
        and wants_kernels(batch_size, solver, momentum, dtype, layer_shapes)
        and available()
    )
    big_layer = any(int(np.prod(shape)) >= PARALLEL_MIN_SIZE for shape in layer_shapes)
    update_threads = min(MAX_UPDATE_THREADS, cores) if big_layer else 1
    fused = plain_sgd and _float_weights(dtype)
    return TrainingPlan(
        blas_threads=1,
        update_threads=update_threads,
        fused_gemm_sgd=fused,
        kernels=kernels,
        compiled_updates=compiled_updates,
        kernel_min_columns=KERNEL_MIN_COLUMNS_SGD if plain_sgd else KERNEL_MIN_COLUMNS,
        kernel_threads=min(MAX_UPDATE_THREADS, cores) if kernels else 1,
        kernel_parallel_min_size=KERNEL_PARALLEL_MIN_SIZE,  # read now: benchmarks vary it
        transposed_max_columns=TRANSPOSED_MAX_COLUMNS if kernels else 0,
        sample_space=sample_space,
    )
