"""The analytic back-propagation against finite differences (float64)."""

import numpy as np
import pytest

from skoffice31 import MultiHeadMLPClassifier
from skoffice31._activations import ACTIVATIONS, DERIVATIVES
from skoffice31._losses import head_slices
from skoffice31._multihead import _Network


pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _model(hidden, n_classes, alpha, seed=0, activation="relu"):
    rng = np.random.default_rng(seed)
    n, p = 7, 5
    X = rng.normal(size=(n, p))
    y = np.column_stack([rng.integers(0, k, n) for k in n_classes])
    for h, k in enumerate(n_classes):  # every class present
        y[:k, h] = np.arange(k)
    clf = MultiHeadMLPClassifier(hidden=hidden, alpha=alpha, max_iter=1, random_state=seed,
                                 activation=activation)
    clf.fit(X, y)
    # Move away from the initialisation so that no ReLU sits at its kink.
    for W in clf.coefs_ + clf.intercepts_:
        W += rng.normal(scale=0.3, size=W.shape)
    return clf, X, y


def _loss(clf, X, y, sw, head_weights):
    """Loss from the predict path (independent of the training code)."""
    log_proba = clf.predict_log_proba(X)
    if not isinstance(log_proba, list):
        log_proba = [log_proba]
    rows = np.arange(len(X))
    sw_n = sw / sw.sum()
    ce = [-(sw_n * lp[rows, y[:, h]]).sum() for h, lp in enumerate(log_proba)]
    l2 = sum((W**2).sum() for W in clf.coefs_)
    return float(np.dot(head_weights, ce)) + 0.5 * clf.alpha * l2 / sw.sum()


@pytest.mark.parametrize("hidden", [(), (6,), (6, 4)])
@pytest.mark.parametrize("n_classes", [(3, 2), (3, 4, 2)])
@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_backprop_matches_finite_differences(hidden, n_classes, alpha):
    _check_backprop(hidden, n_classes, alpha, "relu")


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("hidden", [(6,), (6, 4)])
def test_backprop_matches_finite_differences_for_each_activation(activation, hidden):
    _check_backprop(hidden, (3, 2), 0.5, activation)


def test_activation_derivatives_are_the_derivatives_from_the_output():
    z = np.linspace(-3, 3, 13) + 0.01  # no ReLU kink on the grid
    eps = 1e-6
    for name, f in ACTIVATIONS.items():
        A = z.copy()
        f(A)
        delta = np.ones_like(z)
        DERIVATIVES[name](A, delta)
        up, down = z + eps, z - eps
        f(up)
        f(down)
        np.testing.assert_allclose(delta, (up - down) / (2 * eps), rtol=1e-6, atol=1e-9,
                                   err_msg=name)
    assert set(ACTIVATIONS) == set(DERIVATIVES) == {"identity", "logistic", "tanh", "relu"}


def _check_backprop(hidden, n_classes, alpha, activation):
    clf, X, y = _model(hidden, n_classes, alpha, activation=activation)
    rng = np.random.default_rng(1)
    sw = rng.uniform(0.5, 2.0, len(X))
    head_weights = rng.uniform(0.5, 1.5, len(n_classes))
    net = _Network(clf.coefs_, clf.intercepts_, len(X), activation)
    slices = head_slices(n_classes)
    losses, grads = net.backprop(X, y, sw / sw.sum(), slices, head_weights, alpha / sw.sum())
    analytic = [g.toarray() for g in grads[: len(clf.coefs_)]] + grads[len(clf.coefs_):]
    # the batch loss reported by backprop is the same loss
    l2 = 0.5 * alpha * sum((W**2).sum() for W in clf.coefs_) / sw.sum()
    assert np.dot(head_weights, losses) + l2 == pytest.approx(_loss(clf, X, y, sw, head_weights))

    params = clf.coefs_ + clf.intercepts_
    eps = 1e-6
    for param, grad in zip(params, analytic):
        numeric = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            old = param[idx]
            param[idx] = old + eps
            up = _loss(clf, X, y, sw, head_weights)
            param[idx] = old - eps
            down = _loss(clf, X, y, sw, head_weights)
            param[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_each_head_gradient_enters_only_its_own_columns():
    clf, X, y = _model((6,), (3, 4), 0.0)
    net = _Network(clf.coefs_, clf.intercepts_, len(X))
    slices = head_slices((3, 4))
    sw = np.full(len(X), 1 / len(X))
    _, grads = net.backprop(X, y, sw, slices, np.array([1.0, 0.0]), 0.0)
    last = grads[len(clf.coefs_) - 1].toarray()
    assert np.all(last[:, slices[1]] == 0)
    assert np.any(last[:, slices[0]] != 0)


def _masked_loss(clf, X, y, sw, head_weights):
    """The loss with missing labels (``y < 0``), from the predict path.

    Each head's cross-entropy is the weighted mean over its labelled rows.
    """
    log_proba = clf.predict_log_proba(X)
    total = 0.0
    for h, lp in enumerate(log_proba):
        lab = y[:, h] >= 0
        w = sw[lab] / sw[lab].sum()
        total += head_weights[h] * -(w * lp[np.flatnonzero(lab), y[lab, h]]).sum()
    l2 = sum((W**2).sum() for W in clf.coefs_)
    return float(total) + 0.5 * clf.alpha * l2 / sw.sum()


def _numeric_gradient(loss, params, eps=1e-6):
    out = []
    for param in params:
        numeric = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            old = param[idx]
            param[idx] = old + eps
            up = loss()
            param[idx] = old - eps
            down = loss()
            param[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        out.append(numeric)
    return out


@pytest.mark.parametrize("hidden", [(), (6,), (6, 4)])
def test_backprop_with_missing_labels_matches_finite_differences(hidden):
    clf, X, y = _model(hidden, (3, 4), 0.5)
    y = y.copy()
    y[[0, 3, 5], 1] = -1  # head 1 unlabelled on three rows, head 0 everywhere
    y[6, 0] = -1
    rng = np.random.default_rng(2)
    sw = rng.uniform(0.5, 2.0, len(X))
    head_weights = np.array([0.7, 1.3])
    net = _Network(clf.coefs_, clf.intercepts_, len(X))
    losses, grads = net.backprop(X, y, sw / sw.sum(), head_slices((3, 4)), head_weights,
                                 clf.alpha / sw.sum())
    n = len(clf.coefs_)
    analytic = [g.toarray() for g in grads[:n]] + grads[n:]
    l2 = 0.5 * clf.alpha * sum((W**2).sum() for W in clf.coefs_) / sw.sum()
    assert np.dot(head_weights, losses) + l2 == pytest.approx(
        _masked_loss(clf, X, y, sw, head_weights))
    numeric = _numeric_gradient(lambda: _masked_loss(clf, X, y, sw, head_weights),
                                clf.coefs_ + clf.intercepts_)
    for a, b in zip(analytic, numeric):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def _head_losses(clf, X, y, sw):
    """Each head's weighted mean cross-entropy, from the predict path."""
    log_proba = clf.predict_log_proba(X)
    rows = np.arange(len(X))
    return [-(sw / sw.sum() * lp[rows, y[:, h]]).sum() for h, lp in enumerate(log_proba)]


@pytest.mark.parametrize("hidden", [(6,), (6, 4)])
@pytest.mark.parametrize("lam", [0.0, 0.7, 2.0])
def test_gradient_reversal_matches_finite_differences_of_the_min_max_objective(hidden, lam):
    # The heads' own parameters (the output layer) descend the usual loss
    # sum_h w_h L_h; the trunk descends w_0 L_0 - lam * w_1 L_1 (head 1 adversarial).
    clf, X, y = _model(hidden, (3, 2), 0.5)
    rng = np.random.default_rng(3)
    sw = rng.uniform(0.5, 2.0, len(X))
    w = np.array([1.2, 0.8])
    slices = head_slices((3, 2))
    reversal = np.ones(5)
    reversal[slices[1]] = -lam
    net = _Network(clf.coefs_, clf.intercepts_, len(X))
    _, grads = net.backprop(X, y, sw / sw.sum(), slices, w, clf.alpha / sw.sum(),
                            reversal=reversal)
    n = len(clf.coefs_)
    analytic = [g.toarray() for g in grads[:n]] + grads[n:]

    def l2():
        return 0.5 * clf.alpha * sum((W**2).sum() for W in clf.coefs_) / sw.sum()

    def heads_loss():
        ce = _head_losses(clf, X, y, sw)
        return w[0] * ce[0] + w[1] * ce[1] + l2()

    def trunk_loss():
        ce = _head_losses(clf, X, y, sw)
        return w[0] * ce[0] - lam * w[1] * ce[1] + l2()

    out_params = [clf.coefs_[-1], clf.intercepts_[-1]]
    trunk_params = clf.coefs_[:-1] + clf.intercepts_[:-1]
    out_analytic = [analytic[n - 1], analytic[-1]]
    trunk_analytic = analytic[: n - 1] + analytic[n:-1]
    for a, b in zip(out_analytic, _numeric_gradient(heads_loss, out_params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
    for a, b in zip(trunk_analytic, _numeric_gradient(trunk_loss, trunk_params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
