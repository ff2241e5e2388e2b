"""The compiled fast path inside whole fits: same weights as the NumPy path.

``SKOFFICE31_KERNELS=0`` forces the NumPy path (read at every fit); the
plan sends the first layer (600 x 128 = 76,800 weights, above
``KERNEL_MIN_SIZE`` and ``KERNEL_MIN_COLUMNS``) to the kernels at batch 10, the small layers and the
intercepts stay on NumPy. The two fits must agree to float rounding (the
kernel sums ``A.T @ delta`` in another order than BLAS), and the plan must
say which path ran, so that the comparison cannot pass with the kernels
silently off.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skoffice31 import MultiHeadMLPClassifier, _kernels
from skoffice31._plan import KERNEL_MIN_COLUMNS, KERNEL_MIN_SIZE

needs_numba = pytest.mark.skipif(
    not _kernels.kernels_available(), reason="numba not installed or kernels switched off"
)

N_FEATURES = 600
HIDDEN = 128
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
    _run._warm_up_kernels(study, [Configuration((64,), "sgd")], data)  # too narrow
    assert calls == []
    wide = StudySettings(batch_size=256)
    _run._warm_up_kernels(wide, configs, data)
    assert calls == []  # batch 256: the fits take the NumPy path
