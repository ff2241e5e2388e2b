"""The training plan: every speed decision, tested as the pure function it is."""

import dataclasses

import numpy as np
import pytest

from skoffice31._plan import (
    KERNEL_MAX_BATCH,
    KERNEL_MAX_BATCH_SGD,
    KERNEL_MIN_COLUMNS,
    KERNEL_MIN_COLUMNS_SGD,
    KERNEL_MIN_SIZE,
    LARGE_BATCH_BLOCK_SIZE,
    NARROW_KERNEL_MAX_BATCH,
    NARROW_KERNEL_MAX_COLUMNS,
    PARALLEL_MIN_SIZE,
    SERIAL_PLAN,
    SMALL_BATCH,
    TRANSPOSED_MAX_COLUMNS,
    TrainingPlan,
    narrow_only,
    plan_training,
    transposes,
)

STUDY = [(30000, 384), (384, 192), (192, 64), (64, 32), (32, 34)]  # the largest layout
SMALL = [(64, 16), (16, 12)]


def _plan(batch_size=10, solver="sgd", momentum=0.0, dtype=np.float32, n_blas_threads=2,
          layer_shapes=STUDY, kernels_available=False):
    return plan_training(batch_size, solver, momentum, dtype, n_blas_threads, layer_shapes,
                         kernels_available)


def test_small_batches_run_blas_on_one_thread_and_share_the_update():
    plan = _plan(solver="adam", momentum=0.9)
    assert plan == TrainingPlan(blas_threads=1, update_threads=2, fused_gemm_sgd=False)
    assert _plan(batch_size=SMALL_BATCH).blas_threads == 1


def test_large_batches_leave_blas_alone():
    for solver in ("sgd", "adam"):
        plan = _plan(batch_size=SMALL_BATCH + 1, solver=solver)
        assert plan == TrainingPlan(block_size=LARGE_BATCH_BLOCK_SIZE)
        assert plan.blas_threads is None and plan.update_threads == 1 and not plan.kernels
    assert SERIAL_PLAN.block_size is None  # the optimizer's own block size
    assert SERIAL_PLAN == TrainingPlan(blas_threads=None, update_threads=1,
                                       fused_gemm_sgd=False, kernels=False)


def test_fused_sgd_step_only_for_plain_sgd_in_blas_dtypes():
    assert _plan().fused_gemm_sgd
    assert _plan(dtype=np.float64).fused_gemm_sgd
    assert not _plan(momentum=0.9).fused_gemm_sgd
    assert not _plan(solver="adam", momentum=0.0).fused_gemm_sgd
    assert not _plan(dtype=np.float16).fused_gemm_sgd
    assert not _plan(batch_size=200).fused_gemm_sgd  # with several BLAS threads


@pytest.mark.parametrize("n_blas_threads,expected", [(0, 1), (1, 1), (2, 2), (8, 2)])
def test_update_threads_follow_the_cores_blas_gives_up(n_blas_threads, expected):
    assert _plan(n_blas_threads=n_blas_threads).update_threads == expected


def test_no_update_threads_without_a_large_layer():
    assert _plan(layer_shapes=SMALL).update_threads == 1
    edge = [(PARALLEL_MIN_SIZE // 4, 4)]
    assert _plan(layer_shapes=edge).update_threads == 2
    assert _plan(layer_shapes=[(PARALLEL_MIN_SIZE // 4 - 1, 4)]).update_threads == 1


def test_no_kernels_unless_available():
    assert not _plan().kernels and not _plan(solver="adam").kernels
    assert not _plan(kernels_available=lambda: False).kernels


@pytest.mark.parametrize("solver,momentum,limit", [
    ("adam", 0.0, KERNEL_MAX_BATCH),
    ("sgd", 0.9, KERNEL_MAX_BATCH),
    ("sgd", 0.0, KERNEL_MAX_BATCH_SGD),
])
def test_kernels_exactly_up_to_the_measured_batch_size(solver, momentum, limit):
    assert (KERNEL_MAX_BATCH, KERNEL_MAX_BATCH_SGD) == (32, 10)  # the measured crossovers
    for batch_size in (1, limit):
        plan = _plan(batch_size, solver, momentum, kernels_available=True)
        assert plan.kernels and plan.kernel_threads == 2
        assert plan.kernel_min_size == KERNEL_MIN_SIZE
    for batch_size in (limit + 1, 256):
        plan = _plan(batch_size, solver, momentum, kernels_available=True)
        assert not plan.kernels and plan.kernel_threads == 1


@pytest.mark.parametrize("solver,momentum", [("adam", 0.0), ("sgd", 0.0), ("sgd", 0.9)])
@pytest.mark.parametrize("batch_size", [KERNEL_MAX_BATCH_SGD + 1, SMALL_BATCH + 1, 256, 1024])
def test_narrow_layers_take_the_transposed_kernels_up_to_the_measured_batch(solver, momentum, batch_size):
    # measured: 10 and 16 columns win, 32 even; at batch 64, 256 and 1024
    assert (NARROW_KERNEL_MAX_COLUMNS, NARROW_KERNEL_MAX_BATCH) == (16, 1024)
    calls = []

    def available():
        calls.append(1)
        return True

    for width in (3, 10, NARROW_KERNEL_MAX_COLUMNS):
        shapes = [(30_000, width), (width, 34)]
        assert narrow_only(shapes)
        plan = _plan(batch_size, solver, momentum, layer_shapes=shapes,
                     kernels_available=available)
        # planned as a small minibatch: BLAS on one thread beside the kernel threads
        assert plan.kernels and plan.blas_threads == 1 and plan.kernel_threads == 2
        assert transposes(plan, shapes[0]) and not transposes(plan, shapes[1])
        assert plan.block_size is None
        # without the kernels: the wide minibatch's NumPy plan, as before
        plan = _plan(batch_size, solver, momentum, layer_shapes=shapes)
        if batch_size > SMALL_BATCH:
            assert plan == TrainingPlan(block_size=LARGE_BATCH_BLOCK_SIZE)
        else:
            assert not plan.kernels and plan.blas_threads == 1
    assert calls  # asked
    not_narrow = (
        [(30_000, NARROW_KERNEL_MAX_COLUMNS + 1), (17, 34)],
        [(30_000, 10), (10, 10_000)],  # a wide large layer: BLAS's GEMM takes it
        [(30_000, 1), (1, 34)],  # one column, no layout to choose
        [(1_000, 10), (10, 34)],  # nothing large
    )
    for shapes in not_narrow:
        assert not narrow_only(shapes)
        if batch_size > SMALL_BATCH:
            plan = _plan(batch_size, solver, momentum, layer_shapes=shapes,
                         kernels_available=True)
            assert not plan.kernels and plan.blas_threads is None
    # above the largest measured minibatch (its next-batch buffer grows with it)
    plan = _plan(NARROW_KERNEL_MAX_BATCH + 1, solver, momentum,
                 layer_shapes=[(30_000, 10), (10, 34)], kernels_available=True)
    assert not plan.kernels and plan.blas_threads is None
    for dtype in (np.float16, np.longdouble):  # no kernels for these dtypes
        plan = _plan(batch_size, solver, momentum, dtype=dtype,
                     layer_shapes=[(30_000, 10), (10, 34)], kernels_available=True)
        assert not plan.kernels


def test_kernels_only_with_a_large_float_layer():
    assert (KERNEL_MIN_SIZE, KERNEL_MIN_COLUMNS, KERNEL_MIN_COLUMNS_SGD) == (65_536, 32, 128)
    assert TRANSPOSED_MAX_COLUMNS == 128
    yes = [(KERNEL_MIN_SIZE // 32, 32), (32, 10)]
    small = [(KERNEL_MIN_SIZE // 32 - 1, 32), (32, 10)]
    narrow = [(30_000, 31), (31, 10)]
    study_64 = [(30_000, 64), (64, 32), (32, 10)]  # the study's (64, 32, 10)
    study_10 = [(30_000, 10), (10, 3)]
    for solver, momentum in (("adam", 0.0), ("sgd", 0.9)):
        assert _plan(solver=solver, momentum=momentum, layer_shapes=yes,
                     kernels_available=True).kernels
        for shapes in (study_64, narrow, study_10):
            plan = _plan(solver=solver, momentum=momentum, layer_shapes=shapes,
                         kernels_available=True)
            assert plan.kernels and plan.kernel_min_columns == KERNEL_MIN_COLUMNS
            assert plan.transposed_max_columns == TRANSPOSED_MAX_COLUMNS
            # the narrow first layer is stored transposed, the small ones are not
            assert transposes(plan, shapes[0]) and not transposes(plan, shapes[1])
        assert not transposes(plan, (30_000, 384)) and not transposes(plan, (30_000, 1))
        assert not _plan(solver=solver, momentum=momentum, layer_shapes=small,
                         kernels_available=True).kernels
        assert not _plan(solver=solver, momentum=momentum, layer_shapes=[(70_000, 1)],
                         kernels_available=True).kernels  # one column: no layout to choose
    # plain SGD: a C-ordered layer needs 128 columns (below, its one-GEMM step
    # wins over the row kernels), but narrow layers take the transposed kernels
    for shapes in (study_64, narrow, study_10):
        plan = _plan(solver="sgd", momentum=0.0, layer_shapes=shapes, kernels_available=True)
        assert plan.kernels and plan.kernel_min_columns == KERNEL_MIN_COLUMNS_SGD
        assert plan.transposed_max_columns == TRANSPOSED_MAX_COLUMNS
        assert transposes(plan, shapes[0]) and not transposes(plan, shapes[1])
    for shapes in ([(30_000, 1)], [(1_000, 64)]):  # one column; too small
        assert not _plan(solver="sgd", momentum=0.0, layer_shapes=shapes,
                         kernels_available=True).kernels
    plan = _plan(batch_size=KERNEL_MAX_BATCH_SGD + 1, solver="sgd", momentum=0.0,
                 layer_shapes=study_64, kernels_available=True)
    assert not plan.kernels and plan.transposed_max_columns == 0
    plan = _plan(solver="sgd", momentum=0.0, kernels_available=True)  # the largest layout
    assert plan.kernels and plan.kernel_min_columns == KERNEL_MIN_COLUMNS_SGD
    for dtype in (np.float16, np.longdouble):
        assert not _plan(solver="adam", dtype=dtype, kernels_available=True).kernels
    assert _plan(solver="adam", dtype=np.float64, kernels_available=True).kernels


@pytest.mark.parametrize("n_blas_threads,expected", [(1, 1), (2, 2), (8, 2)])
def test_kernel_threads_follow_the_cores(n_blas_threads, expected):
    # inside a joblib worker of a 2-core machine with n_jobs=2, BLAS has 1 thread
    plan = _plan(solver="adam", n_blas_threads=n_blas_threads, kernels_available=True)
    assert plan.kernels and plan.kernel_threads == expected


@pytest.mark.parametrize("update_cores,expected", [(None, 1), (2, 2), (1, 1), (8, 2)])
def test_update_cores_override_the_blas_threads(update_cores, expected):
    # SKOFFICE31_UPDATE_THREADS: the user's number, whatever joblib gave BLAS
    plan = plan_training(10, "adam", 0.0, np.float32, 1, [(30_000, 384), (384, 10)],
                         kernels_available=True, update_cores=update_cores)
    assert plan.kernel_threads == expected and plan.update_threads == expected
    assert plan.blas_threads == 1  # BLAS itself stays on one thread at small batches


def test_update_threads_from_the_environment(monkeypatch):
    from skoffice31 import _kernels

    monkeypatch.delenv(_kernels.THREADS_ENV_VAR, raising=False)
    assert _kernels.update_threads_from_environment() is None
    monkeypatch.setenv(_kernels.THREADS_ENV_VAR, " 2 ")
    assert _kernels.update_threads_from_environment() == 2
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv(_kernels.THREADS_ENV_VAR, bad)
        with pytest.raises(ValueError, match="SKOFFICE31_UPDATE_THREADS=.*positive number"):
            _kernels.update_threads_from_environment()


def test_availability_is_asked_only_when_the_kernels_would_pay():
    calls = []

    def available():
        calls.append(1)
        return True

    _plan(batch_size=256, solver="sgd", kernels_available=available)
    _plan(solver="sgd", layer_shapes=SMALL, kernels_available=available)
    _plan(solver="sgd", dtype=np.float16, momentum=0.9, kernels_available=available)
    assert calls == []  # such fits never import numba
    assert _plan(solver="adam", kernels_available=available).kernels and calls == [1]
    # Adam and momentum SGD ask (once) for the compiled block updates
    for kwargs in (dict(batch_size=256, solver="adam"), dict(solver="adam", layer_shapes=SMALL),
                   dict(solver="sgd", momentum=0.9, layer_shapes=SMALL)):
        calls.clear()
        plan = _plan(kernels_available=available, **kwargs)
        assert plan.compiled_updates and not plan.kernels and calls == [1]
    assert not _plan(solver="adam", kernels_available=False).compiled_updates
    assert not _plan(solver="sgd", kernels_available=True).compiled_updates  # plain SGD


def test_the_plan_is_frozen_and_pure():
    plan = _plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.update_threads = 3
    shapes = list(STUDY)
    assert _plan(layer_shapes=shapes) == _plan(layer_shapes=shapes) and shapes == STUDY
    assert hash(plan) == hash(_plan())
