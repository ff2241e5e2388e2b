"""Optimizer steps against hand computations."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skoffice31 import _kernels

from skoffice31._optimizers import AdamOptimizer, OuterGradient, SGDOptimizer
from skoffice31._plan import PARALLEL_MIN_SIZE, TrainingPlan

FUSED = TrainingPlan(blas_threads=1, fused_gemm_sgd=True)


def _params():
    W = np.array([[0.5, -1.0, 2.0], [0.25, 0.0, -0.75]])
    b = np.array([0.1, -0.2, 0.3])
    return [W, b]


def _grads(k):
    W_g = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]) * (k + 1)
    b_g = np.array([0.5, 0.25, -1.0]) / (k + 1)
    return [W_g, b_g]


def test_plain_sgd_step_matches_hand_computation():
    params = _params()
    opt = SGDOptimizer(params, learning_rate_init=0.1, momentum=0)
    opt.update_params(params, _grads(0))
    # W - 0.1 * g, computed by hand
    assert np.allclose(params[0], [[0.4, -0.8, 1.95], [0.25, -0.3, -0.65]])
    assert np.allclose(params[1], [0.05, -0.225, 0.4])


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_sgd_two_steps(nesterov):
    params = _params()
    start = [p.copy() for p in params]
    opt = SGDOptimizer(params, learning_rate_init=0.1, momentum=0.9, nesterov=nesterov)
    for k in range(2):
        opt.update_params(params, _grads(k))
    for i in range(2):
        g0, g1 = _grads(0)[i], _grads(1)[i]
        v1 = -0.1 * g0
        v2 = 0.9 * v1 - 0.1 * g1
        if nesterov:
            expected = start[i] + (0.9 * v1 - 0.1 * g0) + (0.9 * v2 - 0.1 * g1)
        else:
            expected = start[i] + v1 + v2
        assert np.allclose(params[i], expected)


def test_three_adam_steps_match_kingma_ba_algorithm_1():
    params = _params()
    start = [p.copy() for p in params]
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = AdamOptimizer(params, lr, b1, b2, eps)
    for k in range(3):
        opt.update_params(params, _grads(k))
    for i in range(2):
        theta, m, v = start[i].copy(), 0.0, 0.0
        for t in (1, 2, 3):
            g = _grads(t - 1)[i]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        assert np.allclose(params[i], theta, rtol=1e-12, atol=1e-12)


def test_adam_first_step_moves_each_weight_by_the_learning_rate():
    # After one step m_hat = g and v_hat = g**2: the step is lr * sign(g).
    params = _params()
    start = params[0].copy()
    opt = AdamOptimizer(params, 0.01, epsilon=1e-12)
    opt.update_params(params, _grads(0))
    assert np.allclose(start - params[0], 0.01 * np.sign(_grads(0)[0]))


@pytest.mark.parametrize("make_opt", [
    lambda p: SGDOptimizer(p, 0.05, momentum=0, block_size=4),
    lambda p: SGDOptimizer(p, 0.05, momentum=0, block_size=4, plan=FUSED),  # one BLAS call
    lambda p: SGDOptimizer(p, 0.05, momentum=0.9, block_size=4),
    lambda p: AdamOptimizer(p, 0.05, block_size=4),
])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_blocked_outer_gradient_equals_full_gradient(make_opt, l2):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 9))
    delta = rng.normal(size=(5, 3))
    W1 = rng.normal(size=(9, 3))
    W2 = W1.copy()
    opt_blocked, opt_full = make_opt([W1]), make_opt([W2])
    for _ in range(3):
        full = A.T @ delta + l2 * W2
        opt_full.update_params([W2], [full])
        opt_blocked.update_params([W1], [OuterGradient(A, delta, W1, l2)])
    assert np.allclose(W1, W2, rtol=1e-12, atol=1e-12)


def test_array_gradients_are_not_modified():
    params = _params()
    grads = _grads(0)
    before = [g.copy() for g in grads]
    AdamOptimizer(params).update_params(params, grads)
    for g, g0 in zip(grads, before):
        assert np.array_equal(g, g0)


def test_float32_adam_moments_never_stay_subnormal():
    # A weight whose gradient becomes exactly zero: its moments decay
    # geometrically and would pass through the subnormal range.
    W = np.ones((4, 64), dtype=np.float32)
    opt = AdamOptimizer([W], 1e-3, flush_every=8)
    tiny = np.finfo(np.float32).tiny
    opt.update_params([W], [np.full_like(W, 1e-3)])
    zero = np.zeros_like(W)
    seen_flush_check = 0
    for _ in range(3000):
        opt.update_params([W], [zero])
        if opt.t % opt.flush_every == 0:
            for state in (opt.ms[0], opt.vs[0]):
                a = np.abs(state)
                assert not np.any((a > 0) & (a < tiny))
            seen_flush_check += 1
    assert seen_flush_check > 300
    # the first moment did reach zero instead of lingering as a subnormal
    assert np.all(opt.ms[0] == 0)


def test_adam_flush_does_not_change_normal_values():
    rng = np.random.default_rng(1)
    W1 = rng.normal(size=(6, 5)).astype(np.float32)
    W2 = W1.copy()
    a, b = AdamOptimizer([W1], flush_every=1), AdamOptimizer([W2], flush_every=0)
    for _ in range(5):
        g = rng.normal(size=W1.shape).astype(np.float32)
        a.update_params([W1], [g])
        b.update_params([W2], [g])
    assert np.array_equal(W1, W2)


def test_sgd_schedules():
    params = _params()
    opt = SGDOptimizer(params, 0.1, lr_schedule="invscaling", power_t=0.5)
    opt.iteration_ends(99)
    assert opt.learning_rate == pytest.approx(0.01)
    opt = SGDOptimizer(params, 0.1, lr_schedule="adaptive")
    assert opt.trigger_stopping("no improvement.", False) is False
    assert opt.learning_rate == pytest.approx(0.02)
    assert SGDOptimizer(params, 0.1).trigger_stopping("x", False) is True


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("contiguous", [True, False])
def test_plain_sgd_outer_gradient_step_in_place(dtype, contiguous):
    rng = np.random.default_rng(2)
    A = rng.normal(size=(6, 20)).astype(dtype)
    if not contiguous:  # a strided view takes the row-block path
        A = np.asfortranarray(A)
    delta = rng.normal(size=(6, 4)).astype(dtype)
    W = rng.normal(size=(20, 4)).astype(dtype)
    expected = W - 0.1 * (A.T @ delta + 0.5 * W)
    memory = W.__array_interface__["data"][0]
    W0 = W.copy()
    opt = SGDOptimizer([W], 0.1, momentum=0, plan=FUSED)
    sq_norm = opt.update_params([W], [OuterGradient(A, delta, W, 0.5)])
    assert sq_norm == pytest.approx(float((W0.astype(np.float64) ** 2).sum()), rel=1e-5)
    assert W.__array_interface__["data"][0] == memory
    np.testing.assert_allclose(W, expected, rtol=1e-12, atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_two_update_threads_give_the_same_step(solver):
    rng = np.random.default_rng(3)
    n_in = PARALLEL_MIN_SIZE // 64 + 7
    A = rng.normal(size=(4, n_in)).astype(np.float32)
    delta = rng.normal(size=(4, 64)).astype(np.float32)
    W1 = rng.normal(size=(n_in, 64)).astype(np.float32)
    W2 = W1.copy()
    make = {"adam": lambda p, plan: AdamOptimizer(p, 0.01, plan=plan),
            "sgd": lambda p, plan: SGDOptimizer(p, 0.01, momentum=0.9, plan=plan)}[solver]
    one, two = make([W1], None), make([W2], TrainingPlan(update_threads=2))
    for _ in range(3):
        sq_one = one.update_params([W1], [OuterGradient(A, delta, W1, 0.1)])
        sq_two = two.update_params([W2], [OuterGradient(A, delta, W2, 0.1)])
        assert sq_two == pytest.approx(sq_one, rel=1e-6)
    np.testing.assert_allclose(W1, W2, rtol=1e-6, atol=1e-7)
    assert {key[-1] for key in two._scratch} == {0, 1}  # both threads worked


@pytest.mark.parametrize("make_opt", [
    lambda p: SGDOptimizer(p, 0.05, momentum=0, block_size=4),
    lambda p: SGDOptimizer(p, 0.05, momentum=0, block_size=4, plan=FUSED),
    lambda p: SGDOptimizer(p, 0.05, momentum=0.9, block_size=4,
                           plan=TrainingPlan(update_threads=2, parallel_min_size=1)),
    lambda p: AdamOptimizer(p, 0.05, block_size=4),
])
def test_update_params_returns_the_squared_norm_it_read(make_opt):
    # ||W||^2 of the weights *before* the step, summed over the matrices with
    # an L2 term; array gradients and l2=0 add nothing
    rng = np.random.default_rng(4)
    A = rng.normal(size=(5, 9))
    W1, W2, W3 = rng.normal(size=(9, 3)), rng.normal(size=(3, 2)), rng.normal(size=(9, 3))
    b = rng.normal(size=3)
    delta1, delta2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    opt = make_opt([W1, W2, W3, b])
    for _ in range(2):
        expected = float((W1**2).sum() + (W2**2).sum())
        grads = [OuterGradient(A, delta1, W1, 0.3), OuterGradient(A[:, :3], delta2, W2, 0.2),
                 OuterGradient(A, delta1, W3, 0.0), rng.normal(size=3)]
        assert opt.update_params([W1, W2, W3, b], grads) == pytest.approx(expected, rel=1e-12)
    assert make_opt([b]).update_params([b], [np.ones(3)]) == 0.0


def test_outer_gradient_has_no_side_effects():
    rng = np.random.default_rng(5)
    A, delta, W = rng.normal(size=(4, 6)), rng.normal(size=(4, 2)), rng.normal(size=(6, 2))
    grad = OuterGradient(A, delta, W, 0.5)
    before = set(vars(grad))
    np.testing.assert_allclose(grad.toarray(), A.T @ delta + 0.5 * W, rtol=1e-12)
    np.testing.assert_allclose(grad.toarray(), A.T @ delta + 0.5 * W, rtol=1e-12)
    assert set(vars(grad)) == before


def test_optimizer_pickles_its_state_and_plan_but_not_its_scratch():
    import pickle

    rng = np.random.default_rng(6)
    W = rng.normal(size=(9, 3))
    opt = AdamOptimizer([W], 0.01, plan=FUSED)
    opt.update_params([W], [rng.normal(size=W.shape)])
    assert opt._scratch
    copy = pickle.loads(pickle.dumps(opt))
    assert copy.plan == FUSED and copy.t == 1 and copy._scratch == {} and opt._scratch
    np.testing.assert_array_equal(copy.ms[0], opt.ms[0])


@pytest.mark.skipif(not _kernels.kernels_available(), reason="numba not installed")
@pytest.mark.parametrize("make", [
    lambda p, plan: AdamOptimizer(p, 0.01, flush_every=2, plan=plan),
    lambda p, plan: SGDOptimizer(p, 0.05, momentum=0, plan=plan),
    lambda p, plan: SGDOptimizer(p, 0.05, momentum=0.9, nesterov=False, plan=plan),
    lambda p, plan: SGDOptimizer(p, 0.05, momentum=0.9, nesterov=True, plan=plan),
])
def test_kernel_plan_steps_like_the_numpy_path(make):
    """Weights (OuterGradient, 2-D) to the kernels, intercepts (arrays) to NumPy."""
    rng = np.random.default_rng(3)
    W0, b0 = rng.normal(size=(23, 5)), rng.normal(size=5)
    A = rng.normal(size=(4, 23))
    kernel_plan = TrainingPlan(blas_threads=1, fused_gemm_sgd=True, kernels=True,
                               kernel_min_size=1, kernel_min_columns=1,
                               kernel_threads=2)
    results = []
    for plan in (kernel_plan, TrainingPlan(blas_threads=1, fused_gemm_sgd=True)):
        W, b = W0.copy(), b0.copy()
        opt = make([W, b], plan)
        sq = [opt.update_params([W, b], [OuterGradient(A, rng_delta, W, 0.1), rng_delta[0]])
              for rng_delta in np.random.default_rng(4).normal(size=(3, 4, 5))]
        results.append((W, b, sq))
    (Wk, bk, sqk), (Wn, bn, sqn) = results
    assert not np.allclose(Wk, W0)
    assert_allclose(Wk, Wn, rtol=1e-12)
    assert_array_equal(bk, bn)
    assert_allclose(sqk, sqn, rtol=1e-12)


def test_plan_block_size_sets_the_row_blocks():
    """A plan's block_size replaces the optimizer's own: the gradient rows are
    asked for in blocks of that many elements, and the step is the same."""
    from skoffice31._plan import TrainingPlan

    rng = np.random.default_rng(0)
    A, delta = rng.normal(size=(8, 40)), rng.normal(size=(8, 6))
    W0 = rng.normal(size=(40, 6))
    results = {}
    for block in (None, 60):
        W = W0.copy()
        grad = OuterGradient(A, delta, W, 0.1)
        calls = []
        real_rows = grad.rows
        grad.rows = lambda start, stop, out: calls.append(stop - start) or real_rows(start, stop, out)
        opt = AdamOptimizer([W], 1e-2, block_size=24, plan=TrainingPlan(block_size=block))
        opt.update_params([W], [grad])
        results[block] = W
        assert calls == ([4] * 10 if block is None else [10] * 4)
    assert_allclose(results[None], results[60], rtol=0, atol=1e-15)
