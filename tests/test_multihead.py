"""Behaviour of MultiHeadMLPClassifier."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, ShuffleSplit, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skoffice31 import MultiHeadMLPClassifier, TrainingCollapseWarning
from skoffice31.callbacks import EpochReporter
from skoffice31.metrics import exact_match_scorer, head_accuracy_scorer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, d = load_digits(return_X_y=True)
    parity = np.where(d % 2, "odd", "even")
    y = np.empty((len(d), 2), dtype=object)
    y[:, 0], y[:, 1] = d, parity
    return train_test_split(X / 16, y, test_size=0.25, random_state=0)


def _toy(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.empty((n, 2), dtype=object)
    y[:, 0] = np.where(X[:, 0] > 0, "pos", "neg")
    y[:, 1] = (X[:, 1] > 0).astype(int) + (X[:, 2] > 0)
    return X, y


# ------------------------------------------------------------------ learning


@pytest.mark.parametrize("solver,lr", [("adam", 1e-3), ("sgd", 1e-2)])
def test_learns_digits_with_two_heads(digits, solver, lr):
    X_train, X_test, y_train, y_test = digits
    clf = MultiHeadMLPClassifier(
        hidden=(64,), solver=solver, learning_rate_init=lr, max_iter=60, random_state=0
    )
    clf.fit(X_train, y_train)
    scores = clf.score_heads(X_test, y_test)
    assert scores["head0"] > 0.9 and scores["head1"] > 0.9
    assert clf.score(X_test, y_test) == pytest.approx(np.mean(list(scores.values())))
    pred = clf.predict(X_test)
    assert pred.shape == (len(X_test), 2)
    assert set(pred[:, 1]) <= {"even", "odd"}
    assert set(pred[:, 0]) <= set(range(10))


def test_fitted_attributes(digits):
    X_train, _, y_train, _ = digits
    clf = MultiHeadMLPClassifier(hidden=(16, 8), max_iter=3, random_state=0).fit(X_train, y_train)
    assert clf.n_outputs_ == 2 and clf.head_names_ == ("head0", "head1")
    assert [list(c) for c in clf.classes_] == [list(range(10)), ["even", "odd"]]
    assert [W.shape for W in clf.coefs_] == [(64, 16), (16, 8), (8, 12)]
    assert clf.n_layers_ == 4 and clf.n_iter_ == 3 and clf.t_ == 3 * len(X_train)
    assert len(clf.loss_curve_) == 3
    assert set(clf.head_loss_curves_) == {"head0", "head1"}
    assert all(len(v) == 3 for v in clf.head_loss_curves_.values())
    # loss = sum of head losses + L2 penalty (small): close, and at least the heads
    heads = np.array(list(clf.head_loss_curves_.values())).sum(axis=0)
    assert np.all(np.array(clf.loss_curve_) >= heads - 1e-12)
    assert np.allclose(clf.loss_curve_, heads, rtol=1e-2)
    assert clf.best_loss_ == min(clf.loss_curve_)
    proba = clf.predict_proba(X_train[:5])
    assert isinstance(proba, list) and [p.shape for p in proba] == [(5, 10), (5, 2)]
    for p, lp in zip(proba, clf.predict_log_proba(X_train[:5])):
        assert np.allclose(p.sum(axis=1), 1) and np.allclose(np.log(p), lp)


def test_one_head_behaves_like_a_classifier():
    X, d = load_digits(return_X_y=True)
    clf = MultiHeadMLPClassifier(hidden=(16,), max_iter=5, random_state=0).fit(X / 16, d)
    assert clf.predict(X[:4] / 16).shape == (4,)
    assert clf.predict_proba(X[:4] / 16).shape == (4, 10)
    assert np.array_equal(clf.classes_, np.arange(10))
    pred = clf.predict(X / 16)
    assert clf.score(X / 16, d) == pytest.approx(np.mean(pred == d))


def test_dataframe_targets_name_the_heads():
    pd = pytest.importorskip("pandas")
    X, y = _toy()
    frame = pd.DataFrame({"domain": y[:, 0], "object": y[:, 1].astype(int)})
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=2, random_state=0).fit(X, frame)
    assert clf.head_names_ == ("domain", "object")
    assert set(clf.score_heads(X, frame)) == {"domain", "object"}
    assert head_accuracy_scorer("object")(clf, X, frame) == clf.score_heads(X, frame)["object"]
    pred = clf.predict(X)
    assert pred.dtype == object  # strings next to ints
    assert exact_match_scorer(clf, X, frame) == pytest.approx(
        np.mean((pred[:, 0] == y[:, 0]) & (pred[:, 1] == y[:, 1]))
    )
    with pytest.raises(ValueError, match="Unknown head 'colour'"):
        head_accuracy_scorer("colour")(clf, X, frame)
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", clf)]).fit(X, frame)
    expected = pipe[-1].score_heads(pipe[:-1].transform(X), frame)["object"]
    assert head_accuracy_scorer("object")(pipe, X, frame) == expected


def test_float32_is_trained_in_float32_and_float64_in_float64():
    X, y = _toy()
    for dtype in (np.float32, np.float64):
        clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=2, random_state=0)
        clf.fit(X.astype(dtype), y)
        assert all(W.dtype == dtype for W in clf.coefs_ + clf.intercepts_)
        assert clf.predict_proba(X)[0].dtype == dtype


def test_raw_pixel_scale_does_not_overflow():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(40, 300)).astype(np.float32)
    y = np.column_stack([np.arange(40) % 3, np.arange(40) % 5])
    clf = MultiHeadMLPClassifier(hidden=(10,), solver="sgd", momentum=0, alpha=0,
                                 init="normal", init_scale=0.03, learning_rate_init=1e-4,
                                 batch_size=10, max_iter=3, random_state=0)
    clf.fit(X, y)
    assert np.all(np.isfinite(clf.loss_curve_))
    assert all(np.all(np.isfinite(p)) for p in clf.predict_proba(X))


def test_normal_init_uses_init_scale_and_zero_intercepts():
    X = np.random.default_rng(0).normal(size=(20, 400))
    y = np.arange(20) % 3
    clf = MultiHeadMLPClassifier(hidden=(300,), init="normal", init_scale=0.03, max_iter=1,
                                 learning_rate_init=1e-12, random_state=0).fit(X, y)
    assert np.std(clf.coefs_[0]) == pytest.approx(0.03, rel=0.02)
    assert np.all(np.abs(clf.intercepts_[0]) < 1e-9)


# ---------------------------------------------- agreement with scikit-learn


def _sklearn_pair(solver, momentum, nesterov, alpha, dtype=np.float64, activation="relu",
                  verbose=False):
    X, d = load_digits(return_X_y=True)
    X = (X[:150] / 16).astype(dtype)
    d = d[:150] % 4  # four classes
    common = dict(solver=solver, momentum=momentum, nesterovs_momentum=nesterov, alpha=alpha,
                  activation=activation,
                  batch_size=len(X), shuffle=False, learning_rate_init=0.05 if solver == "sgd"
                  else 0.01, tol=0, n_iter_no_change=1000, random_state=0, max_iter=1,
                  warm_start=True)
    if solver == "adam":
        # scikit-learn adds epsilon to sqrt(v) before bias correction (the
        # paper's "efficient" variant), we add it to sqrt(v_hat) (Algorithm 1).
        # A negligible epsilon makes both the same update.
        common["epsilon"] = 1e-30
    sk = MLPClassifier(hidden_layer_sizes=(7, 5), **common).fit(X, d)
    ours = MultiHeadMLPClassifier(hidden=(7, 5), **common).fit(X, d)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        a[...] = b  # same starting weights (the first epoch is discarded)
    sk.set_params(max_iter=25, verbose=verbose)
    ours.set_params(max_iter=25, verbose=verbose)
    sk.fit(X, d)
    ours.fit(X, d)
    return sk, ours


@pytest.mark.parametrize("solver,momentum,nesterov", [
    ("sgd", 0.0, False), ("sgd", 0.9, False), ("sgd", 0.9, True), ("adam", 0.9, True),
])
@pytest.mark.parametrize("alpha", [0.0, 1e-2])
def test_agrees_with_sklearn_mlpclassifier(solver, momentum, nesterov, alpha):
    sk, ours = _sklearn_pair(solver, momentum, nesterov, alpha)
    rtol = 1e-9
    np.testing.assert_allclose(ours.loss_curve_[1:], sk.loss_curve_[1:], rtol=rtol)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol * 100, atol=1e-9)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("solver,momentum,nesterov,alpha", [
    ("sgd", 0.0, False, 0.0), ("sgd", 0.9, True, 1e-2), ("adam", 0.9, True, 1e-2),
])
def test_every_activation_agrees_with_sklearn(activation, solver, momentum, nesterov, alpha):
    sk, ours = _sklearn_pair(solver, momentum, nesterov, alpha, activation=activation)
    assert ours.loss_curve_[-1] < ours.loss_curve_[1]  # it learned something
    np.testing.assert_allclose(ours.predict_proba(np.eye(64)), sk.predict_proba(np.eye(64)),
                               rtol=1e-7, atol=1e-12)
    rtol = 1e-9
    np.testing.assert_allclose(ours.loss_curve_[1:], sk.loss_curve_[1:], rtol=rtol)
    for a, b in zip(ours.coefs_ + ours.intercepts_, sk.coefs_ + sk.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol * 100, atol=1e-9)


def test_agrees_with_sklearn_in_float32():
    sk, ours = _sklearn_pair("adam", 0.9, True, 1e-3, dtype=np.float32)
    assert ours.coefs_[0].dtype == np.float32
    np.testing.assert_allclose(ours.loss_curve_[1:], sk.loss_curve_[1:], rtol=1e-4)
    for a, b in zip(ours.coefs_, sk.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


# ------------------------------------------------------ fit semantics


def test_determinism_with_random_state(digits):
    X_train, _, y_train, _ = digits
    a = MultiHeadMLPClassifier(hidden=(8,), max_iter=3, random_state=7).fit(X_train, y_train)
    b = MultiHeadMLPClassifier(hidden=(8,), max_iter=3, random_state=7).fit(X_train, y_train)
    c = MultiHeadMLPClassifier(hidden=(8,), max_iter=3, random_state=8).fit(X_train, y_train)
    assert all(np.array_equal(p, q) for p, q in zip(a.coefs_, b.coefs_))
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_warm_start_keeps_weights_and_starts_a_fresh_optimizer():
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=3, warm_start=True, random_state=0)
    clf.fit(X, y)
    weights, opt = [W.copy() for W in clf.coefs_], clf._optimizer
    clf.set_params(max_iter=1, learning_rate_init=1e-12)
    clf.fit(X, y)
    assert clf._optimizer is not opt and clf._optimizer.t == 1  # one full batch of 60
    assert all(np.allclose(a, b, atol=1e-9) for a, b in zip(weights, clf.coefs_))
    assert len(clf.loss_curve_) == 4 and clf.n_iter_ == 1


def test_warm_start_with_another_layout_is_refused():
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=1, warm_start=True).fit(X, y)
    clf.set_params(hidden=(6,))
    with pytest.raises(ValueError, match=r"hidden=\(6,\) differs from the fitted layout \(5,\)"):
        clf.fit(X, y)
    assert clf.coefs_[0].shape == (4, 5)


def test_partial_fit_keeps_the_optimizer_state():
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(5,), batch_size=20, random_state=0)
    classes = [np.array(["neg", "pos"]), np.array([0, 1, 2])]
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:30], y[:30], classes=classes)
    opt = clf._optimizer
    clf.partial_fit(X[30:], y[30:])
    assert clf._optimizer is opt and opt.t == 4 and clf.n_iter_ == 2
    with pytest.raises(ValueError, match="labels not among its classes"):
        bad = y.copy()
        bad[0, 1] = 7
        clf.partial_fit(X, bad)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_partial_fit_epochs_with_a_random_state_stream_are_fits_epochs():
    """An integer seed reseeds every partial_fit call (scikit-learn's behaviour); a
    RandomState of that seed makes the calls the epochs of fit, bit for bit."""
    X, y = _toy()
    classes = [np.array(["neg", "pos"]), np.array([0, 1, 2])]
    kw = dict(hidden=(5,), solver="adam", batch_size=20, max_iter=3, n_iter_no_change=3)
    fitted = MultiHeadMLPClassifier(random_state=0, **kw).fit(X, y)
    stream = MultiHeadMLPClassifier(random_state=np.random.RandomState(0), **kw)
    reseeded = MultiHeadMLPClassifier(random_state=0, **kw)
    for _ in range(3):
        stream.partial_fit(X, y, classes=classes)
        reseeded.partial_fit(X, y, classes=classes)
    for a, b in zip(fitted.coefs_ + fitted.intercepts_, stream.coefs_ + stream.intercepts_):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(fitted.coefs_, reseeded.coefs_))


def test_partial_fit_with_other_classes_later_raises_naming_the_head():
    X, y = _toy()
    classes = [np.array(["neg", "pos"]), np.array([0, 1, 2])]
    clf = MultiHeadMLPClassifier(hidden=(5,), random_state=0).partial_fit(X, y, classes=classes)
    clf.partial_fit(X, y, classes=[np.array(["pos", "neg"]), np.array([2, 1, 0, 0])])  # same sets
    with pytest.raises(ValueError, match=r"head 'head1' differ .*\[0, 1, 2\].*new \[3\], "
                                         r"missing \[\]"):
        clf.partial_fit(X, y, classes=[classes[0], np.array([0, 1, 2, 3])])
    with pytest.raises(ValueError, match=r"head 'head0' .*new \['zero'\], missing \['pos'\]"):
        clf.partial_fit(X, y, classes=[np.array(["neg", "zero"]), classes[1]])
    assert clf.n_iter_ == 2  # the failed calls changed nothing
    one = MultiHeadMLPClassifier(hidden=(3,)).partial_fit(X, y[:, 1], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="head 'head0'"):
        one.partial_fit(X, y[:, 1], classes=[0, 1])
    # scikit-learn raises too
    y1 = y[:, 1].astype(int)
    sk = MLPClassifier(hidden_layer_sizes=(3,)).partial_fit(X, y1, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="classes"):
        sk.partial_fit(X, y1, classes=[0, 1])


def test_partial_fit_classes_not_yet_seen_are_kept():
    X, y = _toy()
    classes = [np.array(["neg", "pos", "zero"]), np.array([0, 1, 2])]
    clf = MultiHeadMLPClassifier(hidden=(5,), random_state=0).partial_fit(X, y, classes=classes)
    assert list(clf.classes_[0]) == ["neg", "pos", "zero"]
    assert clf.coefs_[-1].shape[1] == 6


def test_max_iter_warns_and_verbose_prints(capsys):
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=2, tol=0, verbose=True, random_state=0)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        clf.fit(X, y)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[1].startswith(f"Iteration 2, loss = {clf.loss_curve_[1]:.8f}, ")
    assert out[1].endswith(" s")


def test_verbose_lines_start_like_sklearns(capsys):
    _sklearn_pair("sgd", 0.9, True, 1e-2, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    sk = [line for line in lines if line.startswith("Iteration") and "," not in line[20:]]
    ours = [line for line in lines if line.startswith("Iteration") and line.endswith(" s")]
    assert len(sk) == len(ours) == 25
    # scikit-learn's "Iteration %d, loss = %.8f", then our extra field
    assert all(o.startswith(s + ", ") for s, o in zip(sk, ours))


def test_early_stopping_verbose_prints_the_validation_score(capsys):
    X, d = load_digits(return_X_y=True)
    clf = MultiHeadMLPClassifier(hidden=(8,), max_iter=2, early_stopping=True, verbose=True,
                                 random_state=0).fit(X / 16, d)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == f"Validation score: {clf.validation_scores_[0]:f}"


def test_n_iter_no_change_inf_never_stops_on_a_plateau():
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=12, tol=10.0, n_iter_no_change=np.inf,
                                 random_state=0)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        clf.fit(X, y)
    assert clf.n_iter_ == 12  # with n_iter_no_change=3 it stops after 5 (test below)
    MLPClassifier(n_iter_no_change=np.inf, max_iter=2).fit(X, y[:, 0])  # same constraint
    with pytest.raises(ValueError, match="n_iter_no_change"):
        MultiHeadMLPClassifier(n_iter_no_change=-np.inf).fit(X, y)


def test_stops_when_the_loss_stops_improving():
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=500, tol=10.0, n_iter_no_change=3,
                                 random_state=0).fit(X, y)
    assert clf.n_iter_ == 5  # first epoch sets best_loss_, then 4 without improvement


def test_early_stopping_restores_the_best_weights(digits):
    X_train, _, y_train, _ = digits
    snapshots = []
    clf = MultiHeadMLPClassifier(hidden=(16,), max_iter=15, early_stopping=True, tol=0.5,
                                 n_iter_no_change=2, random_state=0, learning_rate_init=0.01)
    clf.set_callbacks(EpochReporter(lambda _: snapshots.append([W.copy() for W in clf.coefs_])))
    clf.fit(X_train, y_train)
    assert clf.best_loss_ is None and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    best = int(np.argmax(clf.validation_scores_))
    assert clf.n_iter_ < 15
    assert all(np.array_equal(a, b) for a, b in zip(clf.coefs_, snapshots[best]))
    with pytest.raises(ValueError, match="early_stopping"):
        clf.partial_fit(X_train, y_train)


def test_sample_weight_equals_repeating_rows_in_full_batch():
    X, y = _toy(30)
    w = np.arange(30) % 3 + 1
    params = dict(hidden=(5,), batch_size=200, shuffle=False, max_iter=5, random_state=0,
                  solver="sgd", learning_rate_init=0.1)
    a = MultiHeadMLPClassifier(**params).fit(X, y, sample_weight=w)
    b = MultiHeadMLPClassifier(**params)
    b.fit(np.repeat(X, w, axis=0)[: 0 or None], np.repeat(y, w, axis=0))
    # same initial weights (same random_state and shapes), same full-batch gradients
    assert all(np.allclose(p, q) for p, q in zip(a.coefs_, b.coefs_))


def test_zero_sample_weights_are_ignored_and_negative_ones_refused():
    X, y = _toy()
    params = dict(hidden=(5,), batch_size=10, shuffle=False, max_iter=2, random_state=0)
    w = np.ones(len(X))
    w[:20] = 0  # two whole batches without weight
    a = MultiHeadMLPClassifier(**params).fit(X, y, sample_weight=w)
    b = MultiHeadMLPClassifier(**params).fit(X[20:], y[20:])
    assert all(np.allclose(p, q) for p, q in zip(a.coefs_, b.coefs_))
    with pytest.raises(ValueError, match="[Nn]egative"):
        MultiHeadMLPClassifier(**params).fit(X, y, sample_weight=-w)


def test_head_weights_zero_ignores_a_head():
    X, y = _toy()
    params = dict(hidden=(5,), max_iter=3, random_state=0, alpha=0)
    y2 = y.copy()
    y2[:, 1] = np.random.default_rng(3).permutation(y2[:, 1])
    a = MultiHeadMLPClassifier(head_weights=[1, 0], **params).fit(X, y)
    b = MultiHeadMLPClassifier(head_weights=[1, 0], **params).fit(X, y2)
    # the trunk and the first head never see the second head's labels
    assert np.allclose(a.coefs_[0], b.coefs_[0]) and np.allclose(a.coefs_[1][:, :2], b.coefs_[1][:, :2])
    with pytest.raises(ValueError, match="head_weights must be 2"):
        MultiHeadMLPClassifier(head_weights=[1, 2, 3], **params).fit(X, y)


# ------------------------------------------------------------ bad input


@pytest.mark.parametrize("case,match", [
    ("nan", "NaN"), ("inf", "infinity"), ("rows", "samples"), ("single", "only one class"),
    ("empty", "0 sample"), ("3d", "dim 3"), ("y3d", "1-D .* 2-D"),
    ("mixed", "mixes label types"), ("ynan", "Every label of head 'head1' .* missing"),
    ("yinf", "infinity"),
])
def test_bad_input_raises_value_error_naming_the_problem(case, match):
    X, y = _toy()
    if case == "nan":
        X[3, 1] = np.nan
    elif case == "inf":
        X[3, 1] = np.inf
    elif case == "rows":
        y = y[:-1]
    elif case == "single":
        y[:, 0] = "pos"
    elif case == "empty":
        X, y = X[:0], y[:0]
    elif case == "3d":
        X = X.reshape(60, 2, 2)
    elif case == "y3d":
        y = y.reshape(60, 2, 1)
    elif case == "mixed":
        y[0, 0] = 3
    elif case == "ynan":  # a NaN label is missing; a head of nothing but NaN raises
        y = np.zeros((60, 2)) + (np.arange(60) % 2)[:, None]
        y[:, 1] = np.nan
    elif case == "yinf":
        y = np.zeros((60, 2)) + (np.arange(60) % 2)[:, None]
        y[4, 0] = np.inf
    with pytest.raises(ValueError, match=match):
        MultiHeadMLPClassifier(hidden=(3,), max_iter=1).fit(X, y)


def test_messages_name_the_labels_not_their_indices():
    X, _ = _toy()
    y = np.zeros(60, dtype=bool)
    y[7] = True
    with pytest.raises(ValueError, match=r"head 'head0' has only 1 sample of class\(es\) "
                                         r"\[True\]") as info:
        MultiHeadMLPClassifier(hidden=(3,), early_stopping=True).fit(X, y)
    assert "[1]" not in str(info.value)
    labels = np.array(["a"] * 30 + ["b"] * 29 + ["lonely"])
    with pytest.raises(ValueError, match=r"\['lonely'\]"):
        MultiHeadMLPClassifier(hidden=(3,), early_stopping=True).fit(X, labels)
    with pytest.raises(ValueError, match=r"only one class \('pos'\)"):
        MultiHeadMLPClassifier(hidden=(3,)).fit(X, np.array(["pos"] * 60))


@pytest.mark.parametrize("params,match", [
    ({"solver": "lbfgs"}, "solver"), ({"hidden": (10, 0)}, "positive"),
    ({"hidden": (10, -3)}, "positive"), ({"hidden": ("a",)}, "positive"),
    ({"learning_rate_init": 0}, "learning_rate_init"), ({"batch_size": 0}, "batch_size"),
])
def test_bad_parameters(params, match):
    X, y = _toy()
    with pytest.raises(ValueError, match=match):
        MultiHeadMLPClassifier(**params).fit(X, y)


def test_wrong_number_of_features_at_predict():
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(3,), max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(NotFittedError):
        MultiHeadMLPClassifier().predict(X)


def test_failed_fit_leaves_the_previous_model_untouched():
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(3,), max_iter=2, random_state=0).fit(X, y)
    before = clf.predict_proba(X)
    state = {k: v for k, v in vars(clf).items()}
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        clf.fit(bad, y)
    with pytest.raises(ValueError):
        single = y.copy()
        single[:, 0] = "pos"
        clf.fit(np.hstack([X, X]), single)  # fails after n_features_in_ was reset
    assert clf.n_features_in_ == 4 and set(vars(clf)) == set(state)
    for a, b in zip(before, clf.predict_proba(X)):
        assert np.array_equal(a, b)


def test_diverging_training_raises_and_leaves_no_half_fitted_model():
    X, y = _toy()
    huge = dict(hidden=(3,), solver="sgd", momentum=0, learning_rate_init=1e30, max_iter=20,
                random_state=0)
    clf = MultiHeadMLPClassifier(**huge)
    with pytest.raises(ValueError, match="diverged"):
        clf.fit(X * 1e15, y)
    assert not hasattr(clf, "coefs_")
    # with weights changed in place (warm start), the model is clearly unfitted afterwards
    clf = MultiHeadMLPClassifier(hidden=(3,), max_iter=1, warm_start=True).fit(X, y)
    clf.set_params(**huge)
    with pytest.raises(ValueError, match="diverged"):
        clf.fit(X * 1e15, y)
    with pytest.raises(NotFittedError):
        clf.predict(X)


# ---------------------------------------------------------- integration


def test_clone_params_pipeline_and_persistence(tmp_path, digits):
    X_train, X_test, y_train, _ = digits
    clf = MultiHeadMLPClassifier(hidden=(12,), max_iter=4, random_state=0)
    assert clone(clf).get_params() == clf.get_params()
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", clf)]).fit(X_train, y_train)
    path = tmp_path / "model.joblib"
    joblib.dump(pipe, path)
    loaded = joblib.load(path)
    assert np.array_equal(loaded.predict(X_test), pipe.predict(X_test))
    for a, b in zip(loaded.predict_proba(X_test), pipe.predict_proba(X_test)):
        assert np.array_equal(a, b)


def test_unfitted_estimator_pickles_small_and_fitted_without_buffers():
    assert len(pickle.dumps(MultiHeadMLPClassifier())) < 2000
    X = np.random.default_rng(0).normal(size=(500, 100))
    y = np.arange(500) % 3
    clf = MultiHeadMLPClassifier(hidden=(50,), max_iter=1, solver="adam").fit(X, y)
    weights = sum(W.nbytes for W in clf.coefs_ + clf.intercepts_)
    # the weights and Adam's two moments; no training data, no batch buffers
    assert len(pickle.dumps(clf)) < 3 * weights + 5000
    loaded = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(loaded.predict(X), clf.predict(X))
    loaded.partial_fit(X, y)  # continues with the saved optimizer
    assert loaded._optimizer.t == 6 and loaded.n_iter_ == 2


@pytest.mark.parametrize("solver,momentum", [("adam", 0.9), ("sgd", 0.9), ("sgd", 0.0)])
@pytest.mark.parametrize("how", ["pickle", "joblib", "deepcopy"])
def test_partial_fit_continues_exactly_after_a_copy(tmp_path, solver, momentum, how):
    X, y = _toy(80)
    classes = [np.array(["neg", "pos"]), np.array([0, 1, 2])]
    twin = MultiHeadMLPClassifier(hidden=(6,), solver=solver, momentum=momentum, batch_size=20,
                                  learning_rate_init=0.01, random_state=0)
    twin.partial_fit(X, y, classes=classes)
    original = copy.deepcopy(twin)
    if how == "pickle":
        restored = pickle.loads(pickle.dumps(original))
    elif how == "joblib":
        joblib.dump(original, tmp_path / "m.joblib")
        restored = joblib.load(tmp_path / "m.joblib")
    else:
        restored = copy.deepcopy(original)
    # the copy did not change the original either
    assert hasattr(original, "_optimizer")
    for _ in range(5):
        for clf in (twin, original, restored):
            clf.partial_fit(X, y)
    for clf in (original, restored):
        assert clf.n_iter_ == twin.n_iter_ == 6
        for a, b in zip(clf.coefs_ + clf.intercepts_, twin.coefs_ + twin.intercepts_):
            assert np.array_equal(a, b)


_COPIES = []


def _keep_a_pickled_copy(estimator):
    _COPIES.append(pickle.loads(pickle.dumps(estimator)))


class _OnEpoch:
    """A sklearn FitCallback calling ``fn(estimator)`` after every epoch."""

    def __init__(self, fn):
        self.fn = fn

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, **kwargs):
        pass

    def on_fit_task_end(self, estimator, context, **kwargs):
        if context.task_name == "epoch":
            self.fn(estimator)


def test_pickling_from_inside_a_fit_changes_nothing():
    X, y = _toy()
    params = dict(hidden=(5,), max_iter=4, tol=0, random_state=0)
    reference = MultiHeadMLPClassifier(**params).fit(X, y)
    _COPIES.clear()
    clf = MultiHeadMLPClassifier(**params).set_callbacks(_OnEpoch(_keep_a_pickled_copy)).fit(X, y)
    copies = list(_COPIES)
    assert len(copies) == 4 and copies[1].n_iter_ == 2
    for attr in ("_in_place", "_callback_epoch_ctx", "_callback_fit_ctx"):
        assert not hasattr(copies[1], attr)  # fit-only bookkeeping stays out
    for a, b in zip(clf.coefs_, reference.coefs_):
        assert np.array_equal(a, b)
    # early stopping keeps its best weights while being pickled
    es = dict(params, early_stopping=True, n_iter_no_change=100)
    reference = MultiHeadMLPClassifier(**es).fit(X, y)
    clf = MultiHeadMLPClassifier(**es).set_callbacks(_OnEpoch(copy.deepcopy)).fit(X, y)
    for a, b in zip(clf.coefs_, reference.coefs_):
        assert np.array_equal(a, b)


def test_grid_search_over_layouts_and_solvers_with_string_labels(digits):
    X_train, X_test, y_train, y_test = digits
    y_str = y_train.astype(str)
    search = GridSearchCV(
        MultiHeadMLPClassifier(max_iter=5, random_state=0),
        {"hidden": [(10,), (64, 32, 10)], "solver": ["sgd", "adam"]},
        cv=ShuffleSplit(1, test_size=0.25, random_state=0),
        scoring={"head0": head_accuracy_scorer("head0"), "head1": head_accuracy_scorer(1),
                 "both": exact_match_scorer},
        refit="head1",
        n_jobs=2,
    )
    search.fit(X_train, y_str)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(search.cv_results_["mean_test_head1"] > 0.5)
    assert search.predict(X_test).shape == (len(X_test), 2)
    assert search.best_estimator_.predict(X_test).dtype.kind == "U"


def test_small_batches_train_with_one_blas_thread_and_restore_it():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    X, y = _toy()
    seen = []
    before = blas_threads()
    clf = MultiHeadMLPClassifier(hidden=(5,), batch_size=10, max_iter=1)
    clf.set_callbacks(EpochReporter(lambda _: seen.append(blas_threads()))).fit(X, y)
    assert seen and all(n == 1 for n in seen[0])
    assert blas_threads() == before


@pytest.mark.parametrize("solver,momentum", [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.9)])
def test_every_plan_trains_the_same_model(monkeypatch, solver, momentum):
    # The speed plan changes how a step runs, never what it computes: the
    # serial plan and a plan with every path switched on (one BLAS thread,
    # two update threads on every matrix, the fused SGD step) give the same
    # weights and the same loss, L2 term included.
    from skoffice31 import _multihead
    from skoffice31._plan import TrainingPlan

    X, y = _toy(90)
    params = dict(hidden=(7, 5), solver=solver, momentum=momentum, alpha=0.1, batch_size=20,
                  max_iter=4, learning_rate_init=0.01, random_state=0)
    plans = {
        "serial": TrainingPlan(),
        "all": TrainingPlan(blas_threads=1, update_threads=2, fused_gemm_sgd=True,
                            parallel_min_size=1),
    }
    fitted = {}
    for name, plan in plans.items():
        monkeypatch.setattr(_multihead, "plan_training", lambda *a, plan=plan, **k: plan)
        fitted[name] = MultiHeadMLPClassifier(**params).fit(X, y)
        assert fitted[name]._optimizer.plan is plan
    a, b = fitted["serial"], fitted["all"]
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-12)
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-12)
    # the L2 term is in the loss: without alpha the curve is lower
    c = MultiHeadMLPClassifier(**dict(params, alpha=0.0)).fit(X, y)
    assert c.loss_curve_[0] < a.loss_curve_[0]


# ------------------------------------------------------ collapse and overflow


@pytest.mark.parametrize("scale", [1.0, 1e300])
def test_sample_weights_near_the_float_maximum(scale):
    X, y = _toy()
    w = np.random.default_rng(0).uniform(0.5, 1.5, len(X))
    params = dict(hidden=(5,), batch_size=20, max_iter=3, alpha=0.0, random_state=0)
    a = MultiHeadMLPClassifier(**params).fit(X, y, sample_weight=w)
    b = MultiHeadMLPClassifier(**params).fit(X, y, sample_weight=w * scale)
    np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-12)
    assert all(np.allclose(p, q, rtol=1e-10) for p, q in zip(a.coefs_, b.coefs_))


def test_sample_weight_1e308_learns_in_float32_and_float64():
    X, y = _toy()
    for dtype in (np.float64, np.float32):
        w = np.full(len(X), 1e308)
        w[::3] = 1.5e308
        params = dict(hidden=(5,), batch_size=20, max_iter=5, random_state=0, alpha=1e-4)
        clf = MultiHeadMLPClassifier(**params).fit(X.astype(dtype), y, sample_weight=w)
        assert np.all(np.isfinite(clf.loss_curve_)) and min(clf.loss_curve_) > 0
        assert clf.loss_curve_[-1] < clf.loss_curve_[0]  # something was learned
        ref = MultiHeadMLPClassifier(**params).fit(X.astype(dtype), y, sample_weight=w / 1e308)
        # alpha / (sum of weights) is 0 in the limit: nearly the alpha-free fit
        assert np.allclose(clf.coefs_[0], ref.coefs_[0], rtol=1e-2, atol=1e-3)
    es = MultiHeadMLPClassifier(hidden=(5,), early_stopping=True, max_iter=3, random_state=0)
    es.fit(X, y[:, 0], sample_weight=np.full(len(X), 1e308))
    assert np.all(np.isfinite(es.validation_scores_))


def _raw_pixels(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(n, 300)).astype(np.float32)
    y = np.column_stack([np.arange(n) % 3, np.arange(n) % 5])
    return X, y


def test_collapsing_training_warns_naming_the_layer_and_what_to_try():
    X, y = _raw_pixels()
    clf = MultiHeadMLPClassifier(hidden=(20, 10), learning_rate_init=10, batch_size=10,
                                 max_iter=4, random_state=0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        clf.fit(X, y)  # finite loss: no error
    collapse = [str(w.message) for w in seen if w.category is TrainingCollapseWarning]
    assert len(collapse) == 2, collapse  # once per kind, not once per epoch
    loss_msg, dead_msg = collapse
    assert "times the" in loss_msg and "learning_rate_init" in loss_msg
    assert "scale" in loss_msg
    assert max(clf.loss_curve_) > 10 * clf.loss_curve_[-1] or clf.loss_curve_[0] > 1e3
    assert "hidden layer 1 (20 units)" in dead_msg and "learning_rate_init" in dead_msg
    assert issubclass(TrainingCollapseWarning, ConvergenceWarning)


def test_healthy_training_and_other_activations_do_not_warn(digits):
    X_train, _, y_train, _ = digits
    for activation in ("relu", "tanh"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", TrainingCollapseWarning)
            MultiHeadMLPClassifier(hidden=(16, 8), activation=activation, max_iter=5,
                                   batch_size=10, random_state=0).fit(X_train, y_train)
    # a dead trunk without a growing loss is still reported
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(4,), max_iter=2, random_state=0).fit(X, y)
    clf.intercepts_[0][:] = -1e6  # every unit of the first layer is dead
    clf.set_params(warm_start=True, max_iter=2)
    with pytest.warns(TrainingCollapseWarning, match=r"hidden layer 1 \(4 units\)"):
        clf.fit(X, y)
    clf.set_params(activation="identity")  # "dead" means nothing for identity units
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingCollapseWarning)
        clf.fit(X, y)
