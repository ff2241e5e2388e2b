"""The compiled fast path inside whole fits: same weights as the NumPy path.

``SKOFFICE31_KERNELS=0`` forces the NumPy path (read at every fit); the
plan sends the first layer (600 x 160 = 96,000 weights, above
``KERNEL_MIN_SIZE`` and ``KERNEL_MIN_COLUMNS``, wider than
``TRANSPOSED_MAX_COLUMNS``) to the row kernels at batch 10, the small layers and the
intercepts stay on NumPy. The two fits must agree to float rounding (the
kernel sums ``A.T @ delta`` in another order than BLAS), and the plan must
say which path ran, so that the comparison cannot pass with the kernels
silently off. Sample-space SGD (``skoffice31._dual``), which would take
these small plain-SGD fits' first layer off the kernels, is switched off
here; tests/test_sample_space.py compares it with the weights.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skoffice31 import MultiHeadMLPClassifier, _dual, _kernels
from skoffice31._plan import KERNEL_MIN_COLUMNS, KERNEL_MIN_SIZE, TRANSPOSED_MAX_COLUMNS



@pytest.fixture(autouse=True)
def _weights_not_sample_space(monkeypatch):
    monkeypatch.setenv(_dual.ENV_VAR, "0")


needs_numba = pytest.mark.skipif(
    not _kernels.kernels_available(), reason="numba not installed or kernels switched off"
)

N_FEATURES = 600
HIDDEN = 160  # the row kernels; the transposed ones are tested at the end
SOLVERS = {
    "adam": dict(solver="adam"),
    "sgd": dict(solver="sgd", momentum=0.0),
    "momentum": dict(solver="sgd", momentum=0.9, nesterovs_momentum=False),
    "nesterov": dict(solver="sgd", momentum=0.9, nesterovs_momentum=True),
}
# float32: a few ulps of |W| ~ 0.05 after 3 epochs of 6 steps; an L2 term
# (alpha=1, l2=0.1 per step) moves a weight ~5e-6 per SGD step, an error in it shows
ATOL = {np.float32: 5e-7, np.float64: 1e-12}
# Adam divides by sqrt(v): where a gradient is tiny, its rounding moves the
# step by up to a fraction of lr=1e-3 (measured 9e-7 at most); the L2 term
# moves Adam's weights by ~1e-2.
ATOL_ADAM = {np.float32: 1e-5, np.float64: 1e-12}


def _data(dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, N_FEATURES)).astype(dtype)
    y = np.c_[rng.integers(0, 3, 60), rng.integers(0, 5, 60)]
    return X, y


def _fit(X, y, solver, alpha, batch_size=10):
    est = MultiHeadMLPClassifier(
        hidden=(HIDDEN,), alpha=alpha, batch_size=batch_size, max_iter=3, random_state=0,
        learning_rate_init=1e-3, **SOLVERS[solver],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        return est.fit(X, y)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_fit_with_and_without_kernels_gives_the_same_weights(monkeypatch, solver, alpha, dtype):
    assert N_FEATURES * HIDDEN >= KERNEL_MIN_SIZE and HIDDEN >= KERNEL_MIN_COLUMNS
    assert HIDDEN > TRANSPOSED_MAX_COLUMNS
    X, y = _data(dtype)
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    fast = _fit(X, y, solver, alpha)
    monkeypatch.setenv(_kernels.ENV_VAR, "0")
    slow = _fit(X, y, solver, alpha)
    assert fast._optimizer.plan.kernels and not slow._optimizer.plan.kernels
    assert fast.coefs_[0].dtype == dtype
    for a, b in zip(fast.coefs_ + fast.intercepts_, slow.coefs_ + slow.intercepts_):
        assert_allclose(a, b, rtol=0, atol=(ATOL_ADAM if solver == "adam" else ATOL)[dtype])
    # the loss's L2 term comes from the kernel's ||W||^2
    assert_allclose(fast.loss_curve_, slow.loss_curve_, rtol=1e-5 if dtype == np.float32 else 1e-10)


@needs_numba
def test_large_batches_and_small_layers_stay_on_numpy(monkeypatch):
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    X, y = _data(np.float32)
    assert not _fit(X, y, "adam", 0.0, batch_size=60)._optimizer.plan.kernels
    assert not _fit(X[:, :100], y, "adam", 0.0)._optimizer.plan.kernels  # 12,800 weights


def test_switch_forces_the_numpy_path(monkeypatch):
    monkeypatch.setenv(_kernels.ENV_VAR, "0")
    X, y = _data(np.float32)
    assert not _fit(X, y, "adam", 0.0)._optimizer.plan.kernels


def test_study_warms_up_the_kernels_its_fits_will_use(monkeypatch):
    import types

    from skoffice31.study import StudySettings, _run
    from skoffice31.study._settings import Configuration

    calls = []
    monkeypatch.setattr(_kernels, "warm_up", lambda *args: calls.append(args))
    data = types.SimpleNamespace(X=np.zeros((2, 30_000), np.float32), n_outputs=34)
    configs = [Configuration((384, 10), "adam"), Configuration((10,), "adam"),
               Configuration((200,), "sgd")]
    study = StudySettings.from_preset("study")  # batch 10, no momentum
    _run._warm_up_kernels(study, configs, data)
    assert calls == [((np.float32,), ("adam", "sgd"))]
    calls.clear()
    _run._warm_up_kernels(study, [Configuration((1,), "sgd")], data)  # one unit: no kernel
    assert calls == []
    _run._warm_up_kernels(study, [Configuration((64,), "sgd")], data)  # the transposed kernel
    assert calls == [((np.float32,), ("sgd",))]
    calls.clear()
    wide = StudySettings(batch_size=256)
    _run._warm_up_kernels(wide, configs, data)
    # batch 256: no row kernels, but Adam's block updates are compiled
    assert calls == [((np.float32,), ("adam",))]
    calls.clear()
    _run._warm_up_kernels(wide, [Configuration((384,), "sgd")], data)
    assert calls == []  # plain SGD at batch 256 compiles nothing


# ------------------------------------------------------------ forward fusion
# With the kernels, the first layer's step also computes the next batch's
# first-layer product (X_next @ W through the updated W), and the next
# backprop skips that GEMM. Same mathematics: the weights match a fit where
# fusion is switched off, to the rounding of the kernel's summation order.


def _record_first_layer(monkeypatch):
    """Count the first layer's forward GEMMs and the fused kernel calls."""
    from skoffice31 import _multihead

    counts = {"gemm0": 0, "fused": 0}
    real_matmul = np.matmul

    def matmul(a, b, *args, **kwargs):
        if b.shape == (N_FEATURES, HIDDEN):
            counts["gemm0"] += 1
        return real_matmul(a, b, *args, **kwargs)

    monkeypatch.setattr(_multihead.np, "matmul", matmul, raising=True)
    for name in ("adam_update", "sgd_update"):
        real = getattr(_kernels, name)

        def wrapped(*args, _real=real, **kwargs):
            if kwargs.get("X_next") is not None:
                counts["fused"] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(_kernels, name, wrapped)
    return counts


def _unfused(monkeypatch):
    from skoffice31._optimizers import BaseOptimizer

    monkeypatch.setattr(BaseOptimizer, "fuses_forward", lambda self, param: False)


@needs_numba
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_forward_fusion_skips_the_first_gemm_and_keeps_the_weights(monkeypatch, solver):
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    X, y = _data(np.float32)  # 60 rows, batch 10: 6 steps per epoch, 3 epochs
    with monkeypatch.context() as patch:
        counts = _record_first_layer(patch)
        fused = _fit(X, y, solver, 1.0)
    # one forward GEMM per epoch (its first batch), 5 fused steps per epoch
    assert counts == {"gemm0": 3, "fused": 15}
    with monkeypatch.context() as patch:
        _unfused(patch)
        counts = _record_first_layer(patch)
        plain = _fit(X, y, solver, 1.0)
    assert counts == {"gemm0": 18, "fused": 0}
    atol = (ATOL_ADAM if solver == "adam" else ATOL)[np.float32]
    for a, b in zip(fused.coefs_ + fused.intercepts_, plain.coefs_ + plain.intercepts_):
        assert_allclose(a, b, rtol=0, atol=atol)
    assert_allclose(fused.loss_curve_, plain.loss_curve_, rtol=1e-5)


@needs_numba
@pytest.mark.parametrize("case", ["no shuffle", "early stopping", "zero-weight batch",
                                  "ragged last batch", "float64"])
def test_forward_fusion_on_every_batch_path(monkeypatch, case):
    """Unshuffled slices, a validation split, a skipped all-zero-weight batch
    (its precomputed product must not be used by the batch after it), a short
    last batch, float64: the fused fit equals the unfused one."""
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    dtype = np.float64 if case == "float64" else np.float32
    X, y = _data(dtype)
    params, fit_params = {}, {}
    if case == "no shuffle":
        params["shuffle"] = False
    elif case == "early stopping":
        params.update(early_stopping=True, validation_fraction=0.2, n_iter_no_change=50)
    elif case == "zero-weight batch":
        sample_weight = np.ones(len(X))
        sample_weight[10:20] = 0.0  # the second batch (unshuffled) teaches nothing
        params["shuffle"] = False
        fit_params["sample_weight"] = sample_weight
    elif case == "ragged last batch":
        X, y = X[:57], y[:57]

    def fit():
        est = MultiHeadMLPClassifier(
            hidden=(HIDDEN,), alpha=1e-3, batch_size=10, max_iter=3, random_state=0,
            learning_rate_init=1e-3, **params,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return est.fit(X, y, **fit_params)

    with monkeypatch.context() as patch:
        counts = _record_first_layer(patch)
        fused = fit()
    assert counts["fused"] > 0
    with monkeypatch.context() as patch:
        _unfused(patch)
        plain = fit()
    atol = ATOL_ADAM[dtype]
    for a, b in zip(fused.coefs_ + fused.intercepts_, plain.coefs_ + plain.intercepts_):
        assert_allclose(a, b, rtol=0, atol=atol)
    assert_allclose(fused.loss_curve_, plain.loss_curve_, rtol=1e-5 if dtype == np.float32 else 1e-10)


def test_end_step_without_a_fused_product_keeps_the_forward_buffers():
    """The NumPy path does not compute the product: end_step says so, and the
    gathered next batch still becomes the input of the next step."""
    from skoffice31._multihead import _Network
    from skoffice31._optimizers import OuterGradient, SGDOptimizer

    rng = np.random.default_rng(0)
    coefs = [rng.normal(size=(6, 4)), rng.normal(size=(4, 3))]
    intercepts = [np.zeros(4), np.zeros(3)]
    net = _Network(coefs, intercepts, batch_size=2)
    X = rng.normal(size=(4, 6))
    first_z = net.z_bufs[0]
    nxt = net.gather_next(X, np.array([2, 3]))
    _, grads = net.backprop(X[:2], np.array([[0], [2]]), np.full(2, 0.5), [slice(0, 3)],
                            np.ones(1), 0.0, next_input=nxt)
    assert grads[0].next_input is nxt and grads[0].next_output.shape == (2, 4)
    params = coefs + intercepts
    SGDOptimizer(params, 0.1, momentum=0.0).update_params(params, grads)
    assert not grads[0].next_done
    assert net.end_step() is False
    assert net.z_bufs[0] is first_z
    np.testing.assert_array_equal(net.x_buf[:2], X[2:])
    assert net.end_step() is False  # nothing pending any more
    with pytest.raises(ValueError, match="go together"):
        OuterGradient(X[:2], np.ones((2, 4)), coefs[0], 0.0, next_input=nxt)


@needs_numba
def test_update_threads_switch_reaches_the_plan(monkeypatch):
    from threadpoolctl import threadpool_limits

    X, y = _data(np.float32)
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    with threadpool_limits(1, user_api="blas"):  # as inside a joblib worker
        assert _fit(X, y, "adam", 0.0)._optimizer.plan.kernel_threads == 1
        monkeypatch.setenv(_kernels.THREADS_ENV_VAR, "2")
        assert _fit(X, y, "adam", 0.0)._optimizer.plan.kernel_threads == 2
        monkeypatch.setenv(_kernels.THREADS_ENV_VAR, "many")
        with pytest.raises(ValueError, match="SKOFFICE31_UPDATE_THREADS"):
            _fit(X, y, "adam", 0.0)


@needs_numba
def test_spin_setting_is_checked_at_fit(monkeypatch):
    X, y = _data(np.float32)
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    monkeypatch.setenv("SKOFFICE31_SPIN_US", "forever")
    with pytest.raises(ValueError, match="SKOFFICE31_SPIN_US='forever'"):
        _fit(X, y, "adam", 0.0)
    monkeypatch.setenv("SKOFFICE31_SPIN_US", "0")
    assert _fit(X, y, "adam", 0.0)._optimizer.plan.kernels


# ------------------------------------------------------- transposed layers
# A narrow first layer (7,000 x 10 = 70,000 weights, above KERNEL_MIN_SIZE,
# at most TRANSPOSED_MAX_COLUMNS columns) is stored in Fortran order for the
# transposed kernels when they are planned, and in C order otherwise.


def _narrow_fit(X, y, solver, alpha=1e-2, hidden=(10,), batch_size=10, **params):
    est = MultiHeadMLPClassifier(
        hidden=hidden, alpha=alpha, batch_size=batch_size, max_iter=3, random_state=0,
        learning_rate_init=1e-3, **SOLVERS[solver], **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached
        return est.fit(X, y)


def _narrow_data(dtype=np.float32, n_rows=60):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n_rows, 7_000)).astype(dtype)
    y = np.c_[rng.integers(0, 3, n_rows), rng.integers(0, 5, n_rows)]
    return X, y


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", ["adam", "sgd", "momentum", "nesterov"])
def test_a_narrow_layer_takes_the_transposed_kernels_with_the_same_weights(
        monkeypatch, solver, dtype):
    from skoffice31._plan import transposes

    X, y = _narrow_data(dtype)
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    with monkeypatch.context() as patch:
        counts = _count_kernel_calls(patch)
        fast = _narrow_fit(X, y, solver)
    plan = fast._optimizer.plan
    assert plan.kernels and transposes(plan, fast.coefs_[0].shape)
    assert _kernels.is_transposed(fast.coefs_[0])  # stored transposed ...
    assert counts["transposed"] == 18 and counts["rows"] == 0  # ... and stepped so
    for state in fast._optimizer._state(0):  # Adam's moments, the velocity (none for plain SGD)
        assert _kernels.is_transposed(state)
    assert len(fast._optimizer._state(0)) == {"adam": 2, "sgd": 0}.get(solver, 1)
    assert fast.coefs_[1].flags.c_contiguous  # the small layer is not
    monkeypatch.setenv(_kernels.ENV_VAR, "0")
    slow = _narrow_fit(X, y, solver)
    assert not slow._optimizer.plan.kernels and slow.coefs_[0].flags.c_contiguous
    atol = (ATOL_ADAM if solver == "adam" else ATOL)[dtype]
    for a, b in zip(fast.coefs_ + fast.intercepts_, slow.coefs_ + slow.intercepts_):
        assert_allclose(a, b, rtol=0, atol=atol)
    assert_allclose(fast.loss_curve_, slow.loss_curve_, rtol=1e-5 if dtype == np.float32 else 1e-10)
    assert_allclose(fast.predict_proba(X)[1], slow.predict_proba(X)[1], atol=1e-5)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("solver", ["adam", "sgd", "nesterov"])
def test_a_wide_minibatch_through_a_narrow_layer_takes_the_transposed_kernels(
        monkeypatch, solver, dtype):
    # above SMALL_BATCH rows only networks whose large layers are all narrow
    # (skoffice31._plan.narrow_only) take the kernels, with the same weights
    from skoffice31._plan import SMALL_BATCH

    batch = SMALL_BATCH + 36
    X, y = _narrow_data(dtype, n_rows=3 * batch - 7)  # a short last batch
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    with monkeypatch.context() as patch:
        counts = _count_kernel_calls(patch)
        fast = _narrow_fit(X, y, solver, batch_size=batch)
    plan = fast._optimizer.plan
    assert plan.kernels and plan.blas_threads == 1
    assert _kernels.is_transposed(fast.coefs_[0])
    assert counts["transposed"] == 9 and counts["rows"] == 0  # 3 epochs x 3 steps
    monkeypatch.setenv(_kernels.ENV_VAR, "0")
    slow = _narrow_fit(X, y, solver, batch_size=batch)
    assert not slow._optimizer.plan.kernels and slow._optimizer.plan.blas_threads is None
    atol = (ATOL_ADAM if solver == "adam" else ATOL)[dtype]
    for a, b in zip(fast.coefs_ + fast.intercepts_, slow.coefs_ + slow.intercepts_):
        assert_allclose(a, b, rtol=0, atol=atol)
    assert_allclose(fast.loss_curve_, slow.loss_curve_, rtol=1e-5 if dtype == np.float32 else 1e-10)
    # a wider layer at the same minibatch stays on the NumPy path
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    wide = _narrow_fit(X, y, solver, batch_size=batch, hidden=(24,))
    assert not wide._optimizer.plan.kernels and wide.coefs_[0].flags.c_contiguous


def _count_kernel_calls(monkeypatch):
    counts = {"transposed": 0, "rows": 0}
    for name in ("adam_update", "sgd_update"):
        real = getattr(_kernels, name)

        def wrapped(W, *args, _real=real, **kwargs):
            counts["transposed" if _kernels.is_transposed(W) else "rows"] += 1
            return _real(W, *args, **kwargs)

        monkeypatch.setattr(_kernels, name, wrapped)
    return counts


@needs_numba
def test_the_layout_follows_each_fit_and_partial_fit_keeps_it(monkeypatch):
    X, y = _narrow_data()
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    est = _narrow_fit(X, y, "adam", warm_start=True)
    assert _kernels.is_transposed(est.coefs_[0])
    before = est.coefs_[0].copy()
    est.partial_fit(X[:20], y[:20])  # goes on with the optimizer and its layout
    assert _kernels.is_transposed(est.coefs_[0]) and not np.array_equal(est.coefs_[0], before)
    # kernels switched off: the next fit (warm start: the same weights) is in C order
    monkeypatch.setenv(_kernels.ENV_VAR, "0")
    weights = est.coefs_[0].copy()
    est.set_params(max_iter=1)
    with monkeypatch.context() as patch:
        seen = []
        from skoffice31._optimizers import AdamOptimizer

        real_init = AdamOptimizer.__init__

        def init(self, params, *args, **kwargs):
            seen.append(params[0].copy())
            real_init(self, params, *args, **kwargs)

        patch.setattr(AdamOptimizer, "__init__", init)
        _narrow_fit_again(est, X, y)
    assert_allclose(seen[0], weights, rtol=0, atol=0)  # re-laid out, values untouched
    assert est.coefs_[0].flags.c_contiguous and not _kernels.is_transposed(est.coefs_[0])
    assert est._optimizer.ms[0].flags.c_contiguous


def _narrow_fit_again(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)


@needs_numba
def test_a_transposed_fit_saves_and_loads(tmp_path, monkeypatch):
    from skoffice31 import persistence

    X, y = _narrow_data()
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    est = _narrow_fit(X, y, "adam")
    assert _kernels.is_transposed(est.coefs_[0])
    path = tmp_path / "narrow.skops"
    persistence.save_model(est, path)
    loaded = persistence.load_model(path)
    assert_allclose(loaded.predict_proba(X)[0], est.predict_proba(X)[0], rtol=0, atol=0)
    assert_allclose(loaded.coefs_[0], est.coefs_[0], rtol=0, atol=0)


@needs_numba
@pytest.mark.parametrize("n_units, expected", [(10, 1), (40, 2), (200, 2)])
def test_only_layers_past_the_parallel_size_share_a_kernel_call(monkeypatch, n_units, expected):
    """7,000 x 10 weights (70,000, one row part) run in one thread; 7,000 x
    40 (280,000, four parts) and 7,000 x 200 (1.4 M) are past
    KERNEL_PARALLEL_MIN_SIZE, two parts, and take the plan's two."""
    from skoffice31._plan import KERNEL_PARALLEL_MIN_SIZE

    assert 7_000 * 10 < KERNEL_PARALLEL_MIN_SIZE <= 7_000 * 40
    assert KERNEL_PARALLEL_MIN_SIZE == 2 * _kernels.PART_MIN_SIZE
    assert len(_kernels.row_bounds(7_000, 10)) - 1 == 1
    assert len(_kernels.row_bounds(7_000, 40)) - 1 == 4
    seen = []
    real = _kernels.adam_update

    def adam_update(*args, n_threads, **kwargs):
        seen.append(n_threads)
        return real(*args, n_threads=n_threads, **kwargs)

    monkeypatch.setattr(_kernels, "adam_update", adam_update)
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    monkeypatch.setenv(_kernels.THREADS_ENV_VAR, "2")
    X, y = _narrow_data()
    est = MultiHeadMLPClassifier(hidden=(n_units,), batch_size=10, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    assert est._optimizer.plan.kernel_threads == 2
    assert seen and set(seen) == {expected}


@needs_numba
def test_shared_kernel_calls_and_gathers_give_the_one_thread_weights(monkeypatch):
    """A 7,000 x 40 transposed first layer (four parts): its kernel calls
    and the next batch's row gathers shared by two threads (the team of
    skoffice31._team) give the very weights of a fit on one thread with
    np.take."""
    X, y = _narrow_data()
    monkeypatch.setenv(_kernels.ENV_VAR, "1")
    calls = []
    real = _kernels.gather_rows

    def gather_rows(X, rows, out, n_threads=2):
        calls.append(n_threads)
        return real(X, rows, out, n_threads)

    monkeypatch.setattr(_kernels, "gather_rows", gather_rows)
    monkeypatch.setenv(_kernels.THREADS_ENV_VAR, "2")
    two = _narrow_fit(X, y, "adam", hidden=(40,))
    assert _kernels.is_transposed(two.coefs_[0])
    assert two._optimizer.plan.kernel_threads == 2
    assert calls and set(calls) == {2}
    monkeypatch.setenv(_kernels.THREADS_ENV_VAR, "1")
    monkeypatch.setattr(_kernels, "gather_rows", lambda *args: False)  # np.take
    one = _narrow_fit(X, y, "adam", hidden=(40,))
    for a, b in zip(one.coefs_ + one.intercepts_, two.coefs_ + two.intercepts_):
        assert_array_equal(a, b)


@needs_numba
@pytest.mark.parametrize("n_threads", [1, 2])
def test_gather_rows_copies_the_rows(n_threads):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 333)).astype(np.float32)
    rows = rng.permutation(50)[:23]
    out = np.empty((23, 333), np.float32)
    assert _kernels.gather_rows(X, rows, out, n_threads)
    assert_array_equal(out, X[rows])
    # what it does not take, it leaves to np.take (nothing written)
    out[:] = 0
    assert not _kernels.gather_rows(np.asfortranarray(X), rows, out, n_threads)
    assert not _kernels.gather_rows(X.astype(np.float16), rows, out, n_threads)
    assert not _kernels.gather_rows(X, rows, out[:, ::2], n_threads)
    assert not out.any()
