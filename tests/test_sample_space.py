"""Plain SGD's first layer in sample space (skoffice31._dual) equals SGD on the weights."""

import numpy as np
import pytest

from skoffice31 import MultiHeadMLPClassifier, _dual
from skoffice31._dual import SampleSpaceLayer
from skoffice31._plan import plan_training, wants_sample_space

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# 60 rows of 200 features into 24 units: the Gram matrix (3,600) is smaller
# than the first layer (4,800), so the plan trains it in sample space.
N, D, K = 60, 200, 24


def _data(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((N, D)).astype(dtype)
    y = np.column_stack([rng.integers(0, 3, N), rng.integers(0, 4, N)])
    return X, y


def _make(**params):
    defaults = dict(hidden=(K, 8), solver="sgd", momentum=0.0, learning_rate_init=0.05,
                    batch_size=7, max_iter=6, tol=0, random_state=0)
    return MultiHeadMLPClassifier(**{**defaults, **params})


def _fit(monkeypatch, switch, X, y, sample_weight=None, **params):
    monkeypatch.setenv(_dual.ENV_VAR, switch)
    return _make(**params).fit(X, y, sample_weight=sample_weight)


def _spy(monkeypatch):
    """Count the sample-space steps of the fits that follow."""
    calls = []
    step = SampleSpaceLayer.step

    def counting(self, *args, **kwargs):
        calls.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(SampleSpaceLayer, "step", counting)
    return calls


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"alpha": 0.3},
        {"shuffle": False, "alpha": 0.1},
        {"learning_rate": "invscaling", "power_t": 0.3},
        {"learning_rate": "adaptive", "n_iter_no_change": 1, "tol": 10.0},
        {"batch_size": 60},  # one batch, no ragged end
        {"adversarial_heads": {0: 0.5}},
    ],
    ids=["plain", "l2", "unshuffled", "invscaling", "adaptive", "full-batch", "adversarial"],
)
def test_fit_equals_sgd_on_the_weights_float64(monkeypatch, params):
    X, y = _data()
    calls = _spy(monkeypatch)
    dual = _fit(monkeypatch, "1", X, y, **params)
    assert calls, "the plan did not train the first layer in sample space"
    n_calls = len(calls)
    primal = _fit(monkeypatch, "0", X, y, **params)
    assert len(calls) == n_calls  # the switch turned it off
    for a, b in zip(dual.coefs_ + dual.intercepts_, primal.coefs_ + primal.intercepts_):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dual.loss_curve_, primal.loss_curve_, rtol=1e-12)
    assert dual.n_iter_ == primal.n_iter_


def test_sample_weights_and_a_skipped_zero_weight_batch(monkeypatch):
    X, y = _data()
    sw = np.ones(N)
    sw[:7] = 0.0  # unshuffled: the whole first batch weighs nothing and is skipped
    sw[20:30] = 3.0
    calls = _spy(monkeypatch)
    dual = _fit(monkeypatch, "1", X, y, sw, shuffle=False, alpha=0.2)
    assert len(calls) == 6 * (N // 7)  # 6 epochs of 9 batches, the first one skipped
    primal = _fit(monkeypatch, "0", X, y, sw, shuffle=False, alpha=0.2)
    for a, b in zip(dual.coefs_, primal.coefs_):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_float32_fit_is_as_close_to_float64_as_sgd_on_the_weights(monkeypatch):
    X, y = _data()
    reference = _fit(monkeypatch, "0", X, y, alpha=0.1)
    X32 = X.astype(np.float32)
    dual = _fit(monkeypatch, "1", X32, y, alpha=0.1)
    primal = _fit(monkeypatch, "0", X32, y, alpha=0.1)
    assert dual.coefs_[0].dtype == np.float32
    err_dual = max(np.abs(a - r).max() for a, r in zip(dual.coefs_, reference.coefs_))
    err_primal = max(np.abs(a - r).max() for a, r in zip(primal.coefs_, reference.coefs_))
    assert err_dual < 1e-4 and err_dual <= 10 * err_primal


def test_warm_start_continues_from_the_fitted_weights(monkeypatch):
    X, y = _data()
    dual = _fit(monkeypatch, "1", X, y, warm_start=True)
    primal = _fit(monkeypatch, "0", X, y, warm_start=True)
    calls = _spy(monkeypatch)
    monkeypatch.setenv(_dual.ENV_VAR, "1")
    dual.fit(X, y)
    assert calls
    monkeypatch.setenv(_dual.ENV_VAR, "0")
    primal.fit(X, y)
    np.testing.assert_allclose(dual.coefs_[0], primal.coefs_[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "params",
    [
        {"momentum": 0.9},
        {"solver": "adam"},
        {"early_stopping": True, "validation_fraction": 0.2},
        {"n_frozen_layers": 1},
        {"max_iter": 2},  # the one-off Gram matrix would not pay
        {"hidden": (8,)},  # the Gram matrix would be larger than the first layer
    ],
    ids=["momentum", "adam", "early-stopping", "frozen", "few-epochs", "narrow"],
)
def test_fits_that_keep_the_weights(monkeypatch, params):
    X, y = _data()
    calls = _spy(monkeypatch)
    _fit(monkeypatch, "1", X, y, **params)
    assert not calls


def test_partial_fit_keeps_the_weights(monkeypatch):
    X, y = _data()
    calls = _spy(monkeypatch)
    est = MultiHeadMLPClassifier(hidden=(K,), solver="sgd", momentum=0.0, batch_size=7)
    est.partial_fit(X, y, classes=[np.arange(3), np.arange(4)])
    assert not calls


class _Snapshots:
    """A FitCallback keeping the fitted estimator of every epoch."""

    def setup(self, estimator, context):
        self.coefs = []

    def on_fit_task_begin(self, estimator, context, *, X=None):
        pass

    def on_fit_task_end(self, estimator, context, *, X=None, fitted_estimator=None):
        if context.task_name == "epoch" and fitted_estimator is not None:
            self.coefs.append(fitted_estimator.coefs_[0])

    def teardown(self, estimator, context):
        pass


def test_callbacks_get_each_epochs_weights(monkeypatch):
    X, y = _data()
    snapshots = {}
    for switch in "10":
        rec = _Snapshots()
        monkeypatch.setenv(_dual.ENV_VAR, switch)
        est = _make().set_callbacks(rec).fit(X, y)
        snapshots[switch] = rec.coefs
        assert "_first_layer_weights" not in vars(est)
    assert len(snapshots["1"]) == 6
    for a, b in zip(snapshots["1"], snapshots["0"]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert not np.allclose(snapshots["1"][0], snapshots["1"][-1])


def test_an_interrupted_fit_writes_the_steps_taken(monkeypatch):
    X, y = _data()
    monkeypatch.setenv(_dual.ENV_VAR, "1")
    step, seen = SampleSpaceLayer.step, []

    def interrupting(self, *args, **kwargs):
        if not seen:
            seen.append((self, self.W.copy()))  # the weights the fit started from
        seen.append(None)
        if len(seen) == 20:
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    monkeypatch.setattr(SampleSpaceLayer, "step", interrupting)
    est = _make()
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    layer, start = seen[0]
    assert layer.W is None  # written and released
    assert np.all(np.isfinite(est.coefs_[0])) and not np.allclose(est.coefs_[0], start)
    assert "_first_layer_weights" not in vars(est)


# ------------------------------------------------------------ the layer itself


def _layer(seed, n_rows, n_in, n_out, batch_size):
    """Random float64 ``X``, ``W`` and their layer (with the norm tracked)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_in))
    W = rng.normal(size=(n_in, n_out))
    return rng, X, W, SampleSpaceLayer(X, W, batch_size=batch_size, track_norm=True)


@pytest.mark.parametrize("l2", [0.0, 0.4])
def test_layer_forward_step_and_norm_against_the_weights(l2):
    rng, X, W, layer = _layer(3, 30, 50, 9, batch_size=8)
    W_true = W.copy()
    for step in range(12):
        rows = rng.permutation(30)[:8] if step % 3 else slice(5, 12)
        Z = layer.forward(rows, np.empty((X[rows].shape[0], 9)))
        np.testing.assert_allclose(Z, X[rows] @ W_true, atol=1e-10)
        np.testing.assert_allclose(layer.sq_norm(), np.sum(W_true**2), rtol=1e-10)
        delta = rng.normal(size=Z.shape)
        lr = 0.01 * (step + 1)
        layer.step(rows, delta, lr, l2)
        W_true = (1 - lr * l2) * W_true - lr * X[rows].T @ delta
    np.testing.assert_allclose(layer.weights(), W_true, atol=1e-10)
    np.testing.assert_array_equal(W, layer.W)  # weights() did not write
    layer.write_weights()
    np.testing.assert_allclose(W, W_true, atol=1e-10)


@pytest.mark.parametrize("shrink", [0.5, 1.0], ids=["fold", "zero"])
def test_layer_folds_a_vanishing_scale(shrink):
    """``lr * l2`` near 1 shrinks ``s`` below the fold threshold (or to 0)."""
    rng, X, W, layer = _layer(4, 20, 40, 5, batch_size=4)
    W_true = W.copy()
    lr, l2 = 0.1, shrink / 0.1 * (1 - 1e-2 if shrink < 1 else 1)
    for step in range(30):
        rows = rng.permutation(20)[:4]
        layer.forward(rows, np.empty((4, 5)))
        np.testing.assert_allclose(layer.sq_norm(), np.sum(W_true**2), rtol=1e-8, atol=1e-300)
        delta = rng.normal(size=(4, 5))
        layer.step(rows, delta, lr, l2)
        W_true = (1 - lr * l2) * W_true - lr * X[rows].T @ delta
        assert np.isfinite(layer.scale) and abs(layer.scale) >= _dual._FOLD_BELOW
    np.testing.assert_allclose(layer.weights(), W_true, rtol=1e-8, atol=1e-12)


def test_layer_refuses_a_step_on_other_rows_and_mixed_dtypes():
    X = np.ones((6, 10))
    layer = SampleSpaceLayer(X, np.zeros((10, 3)), batch_size=2)
    with pytest.raises(ValueError, match="must follow forward"):
        layer.step(np.array([0, 1]), np.zeros((2, 3)), 0.1, 0.0)
    layer.forward(np.array([0, 1]), np.empty((2, 3)))
    with pytest.raises(ValueError, match="must follow forward"):
        layer.step(np.array([0, 1]), np.zeros((2, 3)), 0.1, 0.0)  # another array
    with pytest.raises(ValueError, match="one float dtype"):
        SampleSpaceLayer(X.astype(np.float32), np.zeros((10, 3)), batch_size=2)


# ------------------------------------------------------------------ the plan


def test_plan_conditions():
    shape = (30_000, 384)
    ok = dict(solver="sgd", momentum=0.0, dtype=np.float32, first_shape=shape, n_rows=3288,
              epochs=50)
    assert wants_sample_space(**ok)
    assert not wants_sample_space(**{**ok, "momentum": 0.9})
    assert not wants_sample_space(**{**ok, "solver": "adam"})
    assert not wants_sample_space(**{**ok, "dtype": np.float16})
    assert not wants_sample_space(**{**ok, "first_shape": None})
    assert not wants_sample_space(**{**ok, "n_rows": None})
    assert not wants_sample_space(**{**ok, "n_rows": 3400})  # Gram larger than W
    assert not wants_sample_space(**{**ok, "first_shape": (30_000, 64)})
    assert not wants_sample_space(**{**ok, "epochs": 9})  # (3288 + 384) / 384 = 9.6
    assert wants_sample_space(**{**ok, "epochs": 10})
    # more rows than inputs: an epoch in sample space costs more than on the weights
    assert not wants_sample_space(**{**ok, "first_shape": (100, 200_000), "n_rows": 150})


def test_plan_leaves_the_first_layer_to_sample_space():
    shapes = [(30_000, 384), (384, 192), (192, 10)]
    plan = plan_training(10, "sgd", 0.0, np.float32, 2, shapes, kernels_available=True,
                         sample_space_rows=3288, epochs=50)
    assert plan.sample_space
    # the rest is small: no kernels (NumPy's one-GEMM step), no update threads
    assert not plan.kernels and plan.fused_gemm_sgd and plan.update_threads == 1
    assert not plan_training(10, "sgd", 0.0, np.float32, 2, shapes,
                             sample_space_rows=None, epochs=50).sample_space
    big = plan_training(256, "sgd", 0.0, np.float32, 2, shapes, sample_space_rows=3288,
                        epochs=12)
    assert big.sample_space and big.blas_threads is None


def test_switch_values(monkeypatch):
    for value, on in [("0", False), ("off", False), ("False", False), ("1", True), ("", True)]:
        monkeypatch.setenv(_dual.ENV_VAR, value)
        assert _dual.sample_space_enabled() is on
    monkeypatch.delenv(_dual.ENV_VAR)
    assert _dual.sample_space_enabled()
