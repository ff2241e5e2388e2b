"""The training plan: every speed decision, tested as the pure function it is."""

import dataclasses

import numpy as np
import pytest

from skoffice31._plan import (
    PARALLEL_MIN_SIZE,
    SERIAL_PLAN,
    SMALL_BATCH,
    TrainingPlan,
    plan_training,
)

STUDY = [(30000, 384), (384, 192), (192, 64), (64, 32), (32, 34)]  # the largest layout
SMALL = [(64, 16), (16, 12)]


def _plan(batch_size=10, solver="sgd", momentum=0.0, dtype=np.float32, n_blas_threads=2,
          layer_shapes=STUDY):
    return plan_training(batch_size, solver, momentum, dtype, n_blas_threads, layer_shapes)


def test_small_batches_run_blas_on_one_thread_and_share_the_update():
    plan = _plan(solver="adam", momentum=0.9)
    assert plan == TrainingPlan(blas_threads=1, update_threads=2, fused_gemm_sgd=False)
    assert _plan(batch_size=SMALL_BATCH).blas_threads == 1


def test_large_batches_leave_blas_alone():
    for solver in ("sgd", "adam"):
        assert _plan(batch_size=SMALL_BATCH + 1, solver=solver) == SERIAL_PLAN
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


def test_kernels_are_reserved_and_off():
    assert not _plan().kernels and not _plan(batch_size=500).kernels


def test_the_plan_is_frozen_and_pure():
    plan = _plan()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.update_threads = 3
    shapes = list(STUDY)
    assert _plan(layer_shapes=shapes) == _plan(layer_shapes=shapes) and shapes == STUDY
    assert hash(plan) == hash(_plan())
