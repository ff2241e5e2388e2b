"""init="he": He (Kaiming) normal weights for ReLU trunks."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skoffice31 import MultiHeadMLPClassifier


def _initial(init, hidden=(300, 50), n_features=400, seed=0):
    X = np.random.default_rng(0).normal(size=(20, n_features))
    y = np.column_stack([np.arange(20) % 3, np.arange(20) % 5])
    clf = MultiHeadMLPClassifier(hidden=hidden, init=init, max_iter=1, solver="sgd",
                                 momentum=0.0, learning_rate_init=1e-12, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(X, y)


def test_he_weights_have_variance_2_over_fan_in_and_zero_intercepts():
    clf = _initial("he")
    fans = [400, 300, 50]  # inputs of the two hidden layers and of the output layer
    for W, b, fan_in in zip(clf.coefs_, clf.intercepts_, fans):
        assert W.shape[0] == fan_in
        # 400x300 / 300x50 / 50x8 draws: the variance estimate is within 15%
        # (at least ~7 standard errors on the smallest layer)
        assert np.var(W) == pytest.approx(2.0 / fan_in, rel=0.15)
        assert abs(np.mean(W)) < 4 * np.sqrt(2.0 / fan_in / W.size)
        assert np.all(np.abs(b) < 1e-9)
    # the first layer, 120,000 draws: within 2%
    assert np.var(clf.coefs_[0]) == pytest.approx(2.0 / 400, rel=0.02)


def test_he_differs_from_glorot_and_follows_the_seed():
    he, glorot = _initial("he"), _initial("glorot")
    # Glorot-uniform: variance 2 / (fan_in + fan_out) = 2 / 700, not 2 / 400
    assert np.var(glorot.coefs_[0]) == pytest.approx(2.0 / 700, rel=0.02)
    assert np.var(he.coefs_[0]) > 1.5 * np.var(glorot.coefs_[0])
    np.testing.assert_array_equal(he.coefs_[0], _initial("he").coefs_[0])
    assert not np.allclose(he.coefs_[0], _initial("he", seed=1).coefs_[0])


def test_he_keeps_the_relu_signal_through_a_deep_narrow_trunk():
    """The second moment of the pre-activations stays of the same order
    through the study's deepest layout, where N(0, 0.03) shrinks it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 400))
    for init, ok in (("he", True), ("normal", False)):
        clf = _initial(init, hidden=(384, 192, 64, 32, 10))
        a = X
        moments = []
        for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
            z = a @ W + b
            moments.append(np.mean(z ** 2))
            a = np.maximum(z, 0)
        ratio = moments[-1] / moments[0]
        assert bool(0.1 < ratio < 10) is ok, (init, moments)
