"""Transfer-learning features: missing labels, frozen layers, adversarial heads, embed."""

import numpy as np
import pytest

from skoffice31 import MultiHeadMLPClassifier
from skoffice31.metrics import (
    exact_match_accuracy,
    exact_match_scorer,
    head_accuracies,
    head_accuracy_scorer,
    head_log_loss_scorer,
    head_log_losses,
)
from skoffice31._losses import head_slices
from skoffice31 import _kernels
from skoffice31._multihead import _Network, _schedule

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _two_domains(n=120, seed=0):
    """Two heads: ``domain`` (2 classes, shifts the inputs) and ``object`` (3)."""
    rng = np.random.default_rng(seed)
    domain = rng.integers(0, 2, n)
    obj = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 6))
    X[:, 0] += 2.0 * obj
    X[:, 1] += 1.5 * domain
    return X, np.column_stack([domain, obj])


# ------------------------------------------------------------ missing labels


def test_missing_label_rows_fit_like_zero_weight_rows_with_garbage_labels():
    # One head, full batch: leaving a row's label out of the head's mean is
    # exactly giving that row weight 0 (the label it then carries is garbage).
    X, y = _two_domains()
    obj = y[:, 1].copy()
    missing = np.arange(len(obj)) % 3 == 0
    with_gaps = np.where(missing, -1, obj)
    garbage = np.where(missing, (obj + 1) % 3, obj)
    params = dict(hidden=(7,), alpha=0.0, batch_size=len(X), max_iter=15, random_state=0)
    a = MultiHeadMLPClassifier(**params).fit(X, with_gaps)
    b = MultiHeadMLPClassifier(**params).fit(X, garbage, sample_weight=(~missing).astype(float))
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)
    # and the garbage labels do change the fit when they are not left out
    c = MultiHeadMLPClassifier(**params).fit(X, garbage)
    assert not np.allclose(a.coefs_[-1], c.coefs_[-1])


def test_classes_never_hold_the_marker_and_predict_covers_every_row():
    X, y = _two_domains()
    y[:40, 1] = -1
    clf = MultiHeadMLPClassifier(hidden=(8,), max_iter=30, random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_[1], [0, 1, 2])
    pred = clf.predict(X)
    assert pred.shape == (len(X), 2)
    assert set(np.unique(pred[:, 1])) <= {0, 1, 2}
    assert clf.coefs_[-1].shape[1] == 2 + 3


@pytest.mark.parametrize("marker", [None, np.nan, "pd.NA"])
def test_object_and_float_heads_take_none_nan_and_pandas_na(marker):
    X, y = _two_domains()
    names = np.array(["mug", "pen", "stapler"], dtype=object)[y[:, 1]]
    if marker == "pd.NA":
        pd = pytest.importorskip("pandas")
        marker = pd.NA
    names[:30] = marker
    target = np.empty((len(X), 2), dtype=object)
    target[:, 0], target[:, 1] = y[:, 0], names
    clf = MultiHeadMLPClassifier(hidden=(8,), max_iter=5, random_state=0).fit(X, target)
    assert clf.classes_[1].tolist() == ["mug", "pen", "stapler"]
    floats = y[:, 1].astype(float)
    floats[:30] = np.nan
    clf.fit(X, floats)
    np.testing.assert_array_equal(clf.classes_, [0.0, 1.0, 2.0])


def test_nullable_integer_column_keeps_integer_classes():
    pd = pytest.importorskip("pandas")
    X, y = _two_domains()
    obj = pd.array(y[:, 1], dtype="Int64")
    obj[:20] = pd.NA
    frame = pd.DataFrame({"domain": y[:, 0], "object": obj})
    clf = MultiHeadMLPClassifier(hidden=(8,), max_iter=5, random_state=0).fit(X, frame)
    assert clf.classes_[1].dtype.kind == "i"
    np.testing.assert_array_equal(clf.classes_[1], [0, 1, 2])
    scores = clf.score_heads(X, frame)
    expected = np.mean(clf.predict(X)[20:, 1] == y[20:, 1])
    assert scores["object"] == pytest.approx(expected)


def test_head_loss_curve_is_the_mean_over_labelled_rows():
    X, y = _two_domains()
    y[::4, 1] = -1
    # one epoch, full batch: the curve holds the loss of the initial weights,
    # which a learning rate of 1e-12 leaves as they were (to ~1e-12)
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=1, batch_size=len(X),
                                 learning_rate_init=1e-12, random_state=0).fit(X, y)
    _, log_p = clf.predict_log_proba(X)
    labelled = y[:, 1] >= 0
    expected = -np.mean(log_p[labelled, y[labelled, 1]])
    assert clf.head_loss_curves_["head1"][0] == pytest.approx(expected, rel=1e-8)


def test_a_head_without_labelled_rows_in_a_batch_adds_nothing():
    X, y = _two_domains(n=20)
    clf = MultiHeadMLPClassifier(hidden=(4,), max_iter=1, random_state=0).fit(X, y)
    assert [len(c) for c in clf.classes_] == [2, 3]  # y's labels are their own indices
    y_idx = y.copy()
    y_idx[:, 1] = -1  # this batch has no object label
    net = _Network(clf.coefs_, clf.intercepts_, len(X))
    sw = np.full(len(X), 1 / len(X))
    slices = head_slices((2, 3))
    losses, grads = net.backprop(X, y_idx, sw, slices, np.ones(2), 0.0)
    assert losses[1] == 0.0
    out = grads[len(clf.coefs_) - 1].toarray()
    assert np.all(out[:, slices[1]] == 0) and np.all(grads[-1][slices[1]] == 0)
    trunk = grads[0].toarray()  # before the buffers are reused below
    # the domain head alone (object head weighted 0, labels present): same trunk step
    _, only = net.backprop(X, y, sw, slices, np.array([1.0, 0.0]), 0.0)
    np.testing.assert_array_equal(trunk, only[0].toarray())


def test_score_and_scorers_leave_missing_entries_out():
    X, y = _two_domains()
    clf = MultiHeadMLPClassifier(hidden=(8,), max_iter=30, random_state=0).fit(X, y)
    pred = clf.predict(X)
    gaps = y.copy()
    gaps[:50, 1] = -1
    rest = slice(50, None)
    obj_acc = np.mean(pred[rest, 1] == y[rest, 1])
    dom_acc = np.mean(pred[:, 0] == y[:, 0])
    assert clf.score_heads(X, gaps) == pytest.approx({"head0": dom_acc, "head1": obj_acc})
    assert clf.score(X, gaps) == pytest.approx((dom_acc + obj_acc) / 2)
    assert head_accuracy_scorer(1)(clf, X, gaps) == pytest.approx(obj_acc)
    np.testing.assert_allclose(head_accuracies(gaps, pred), [dom_acc, obj_acc])
    # a row counts for the exact match on the heads it has labels for
    right = np.where(np.arange(len(y)) < 50, pred[:, 0] == y[:, 0], np.all(pred == y, axis=1))
    assert exact_match_accuracy(gaps, pred) == pytest.approx(right.mean())
    assert exact_match_scorer(clf, X, gaps) == pytest.approx(right.mean())
    proba = clf.predict_proba(X)
    losses = head_log_losses(gaps, proba, classes=clf.classes_)
    full = head_log_losses(y[rest], [p[rest] for p in proba], classes=clf.classes_)
    assert losses[1] == pytest.approx(full[1])
    assert head_log_loss_scorer(1)(clf, X, gaps) == pytest.approx(-full[1])
    w = np.linspace(0.5, 2.0, len(y))
    assert clf.score_heads(X, gaps, sample_weight=w)["head1"] == pytest.approx(
        np.average(pred[rest, 1] == y[rest, 1], weights=w[rest]))


def test_partial_fit_and_warm_start_accept_missing_labels():
    X, y = _two_domains()
    y[::3, 1] = -1
    clf = MultiHeadMLPClassifier(hidden=(8,), random_state=0)
    clf.partial_fit(X, y, classes=[[0, 1], [0, 1, 2]])
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 2
    warm = MultiHeadMLPClassifier(hidden=(8,), max_iter=3, warm_start=True, random_state=0)
    warm.fit(X, y).fit(X, y)
    assert warm.n_iter_ == 3 and len(warm.loss_curve_) == 6


def test_minus_one_is_missing_and_cannot_hide_among_negative_labels():
    X, y = _two_domains()
    labels = y[:, 1] - 1  # classes -1, 0, 1: -1 would be silently lost
    with pytest.raises(ValueError, match="-1 and other negative labels.*Recode"):
        MultiHeadMLPClassifier(hidden=(4,), max_iter=1).fit(X, labels - 1)
    clf = MultiHeadMLPClassifier(hidden=(4,), max_iter=1).fit(X, labels)
    np.testing.assert_array_equal(clf.classes_, [0, 1])  # -1 is the only negative label
    with pytest.raises(ValueError, match="classes of head .* missing-label marker"):
        MultiHeadMLPClassifier(hidden=(4,)).partial_fit(X, labels, classes=[-1, 0, 1])
    # labels -1 and one other value: scikit-learn's binary convention, -1 a class
    signs = np.where(y[:, 0] == 1, 1, -1)
    clf.fit(X, signs)
    np.testing.assert_array_equal(clf.classes_, [-1, 1])
    assert clf.score(X, signs) == pytest.approx(np.mean(clf.predict(X) == signs))
    clf = MultiHeadMLPClassifier(hidden=(4,)).partial_fit(X[signs == 1], signs[signs == 1],
                                                          classes=[-1, 1])
    clf.partial_fit(X[signs == -1], signs[signs == -1])  # -1 is a class: not all missing
    np.testing.assert_array_equal(clf.classes_, [-1, 1])


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_every_label_of_a_head_missing_raises(method):
    X, y = _two_domains()
    y[:, 1] = -1
    clf = MultiHeadMLPClassifier(hidden=(4,), max_iter=1)
    kwargs = {"classes": [[0, 1], [0, 1, 2]]} if method == "partial_fit" else {}
    with pytest.raises(ValueError, match="Every label of head 'head1' of y is missing"):
        getattr(clf, method)(X, y, **kwargs)


def test_early_stopping_scores_labelled_rows_only():
    X, y = _two_domains(n=200)
    y[::2, 1] = -1
    clf = MultiHeadMLPClassifier(hidden=(8,), early_stopping=True, max_iter=20,
                                 random_state=0).fit(X, y)
    assert all(0 <= s <= 1 for s in clf.validation_scores_)


# ------------------------------------------------------------ frozen layers


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_frozen_layers_stay_bit_identical_and_have_no_optimizer_state(solver):
    X, y = _two_domains()
    clf = MultiHeadMLPClassifier(hidden=(9, 7), max_iter=10, solver=solver,
                                 random_state=0).fit(X, y)
    before = [p.copy() for p in clf.coefs_ + clf.intercepts_]
    clf.set_params(warm_start=True, n_frozen_layers=2, max_iter=10)
    clf.fit(X, y)
    for i in (0, 1):
        np.testing.assert_array_equal(clf.coefs_[i], before[i])
        np.testing.assert_array_equal(clf.intercepts_[i], before[3 + i])
    assert not np.array_equal(clf.coefs_[2], before[2])  # the output layer trained
    opt = clf._optimizer
    state = opt.ms + opt.vs if solver == "adam" else opt.velocities
    trainable = [clf.coefs_[2].shape, clf.intercepts_[2].shape]
    assert [s.shape for s in state] == trainable * (2 if solver == "adam" else 1)
    clf.partial_fit(X, y)  # partial_fit too
    np.testing.assert_array_equal(clf.coefs_[0], before[0])


def test_fresh_fit_keeps_the_random_initialisation_of_frozen_layers():
    X, y = _two_domains()
    clf = MultiHeadMLPClassifier(hidden=(5,), n_frozen_layers=1, max_iter=5,
                                 random_state=0).fit(X, y)
    rng = np.random.RandomState(0)  # the Glorot-uniform draw of _initialize
    bound = np.sqrt(6.0 / (X.shape[1] + 5))
    np.testing.assert_array_equal(clf.coefs_[0], rng.uniform(-bound, bound, (X.shape[1], 5)))
    np.testing.assert_array_equal(clf.intercepts_[0], rng.uniform(-bound, bound, 5))


def test_frozen_trunk_step_equals_the_output_part_of_a_full_step():
    # One full-batch plain-SGD step: the output layer's step does not depend
    # on whether the trunk also moves (the gradient is taken before the step).
    X, y = _two_domains()
    params = dict(hidden=(6,), solver="sgd", momentum=0.0, batch_size=len(X),
                  max_iter=1, learning_rate_init=0.1, random_state=0)
    full = MultiHeadMLPClassifier(**params).fit(X, y)
    frozen = MultiHeadMLPClassifier(n_frozen_layers=1, **params).fit(X, y)
    np.testing.assert_allclose(frozen.coefs_[1], full.coefs_[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(frozen.intercepts_[1], full.intercepts_[1], rtol=1e-12)
    assert frozen.loss_curve_ == pytest.approx(full.loss_curve_, rel=1e-12)
    assert not np.array_equal(frozen.coefs_[0], full.coefs_[0])


def test_no_delta_is_propagated_below_the_lowest_trainable_layer():
    X, y = _two_domains(n=30)
    clf = MultiHeadMLPClassifier(hidden=(6, 4), max_iter=1, random_state=0).fit(X, y)
    assert [len(c) for c in clf.classes_] == [2, 3]  # y's labels are their own indices
    net = _Network(clf.coefs_, clf.intercepts_, len(X))
    for buf in net.delta_bufs:
        buf.fill(np.nan)
    sw = np.full(len(X), 1 / len(X))
    _, grads = net.backprop(X, y, sw, head_slices((2, 3)), np.ones(2), 0.0, n_frozen=2)
    assert len(grads) == 2  # the output layer's weights and intercepts only
    assert np.isnan(net.delta_bufs[0]).all() and np.isnan(net.delta_bufs[1]).all()
    assert np.isfinite(grads[0].toarray()).all()


def test_changing_n_frozen_layers_between_partial_fits_starts_a_fresh_optimizer():
    X, y = _two_domains()
    clf = MultiHeadMLPClassifier(hidden=(6,), random_state=0)
    clf.partial_fit(X, y, classes=[[0, 1], [0, 1, 2]])
    assert len(clf._optimizer.ms) == 4
    first = clf.coefs_[0].copy()
    clf.set_params(n_frozen_layers=1).partial_fit(X, y)
    assert len(clf._optimizer.ms) == 2
    np.testing.assert_array_equal(clf.coefs_[0], first)


@pytest.mark.parametrize("hidden,n_frozen", [((5,), 2), ((5, 3), 3), ((), 1)])
def test_freezing_every_layer_raises(hidden, n_frozen):
    X, y = _two_domains()
    with pytest.raises(ValueError, match=r"n_frozen_layers=.*at least the output layer"):
        MultiHeadMLPClassifier(hidden=hidden, n_frozen_layers=n_frozen, max_iter=1).fit(X, y)


# ------------------------------------------------------------ adversarial heads


def test_dann_schedule_is_the_papers():
    assert _schedule("constant", 0.3) == 1.0
    for p in (0.0, 0.1, 0.5, 1.0):
        assert _schedule("dann", p) == pytest.approx(2 / (1 + np.exp(-10 * p)) - 1)
    assert _schedule("dann", 0.0) == 0.0 and _schedule("dann", 2.0) == _schedule("dann", 1.0)
    X, y = _two_domains()
    clf = MultiHeadMLPClassifier(hidden=(4,), max_iter=1, adversarial_heads={1: 2.0},
                                 adversarial_schedule="dann").fit(X, y)
    assert clf._adversarial_lambdas(0.5) == {"head1": pytest.approx(2.0 * _schedule("dann", 0.5))}


def _one_sgd_step(**params):
    X, y = _two_domains()
    params = {**dict(hidden=(6,), solver="sgd", momentum=0.0, alpha=0.0, batch_size=len(X),
                     max_iter=1, learning_rate_init=0.5, random_state=0), **params}
    return MultiHeadMLPClassifier(**params).fit(X, y)


def test_adversarial_head_with_lambda_zero_sends_nothing_into_the_trunk():
    adv = _one_sgd_step(adversarial_heads={0: 0.0})
    object_only = _one_sgd_step(head_weights=[0.0, 1.0])
    normal = _one_sgd_step()
    # the trunk moved as if the domain head were absent ...
    np.testing.assert_allclose(adv.coefs_[0], object_only.coefs_[0], rtol=1e-13)
    np.testing.assert_allclose(adv.intercepts_[0], object_only.intercepts_[0], rtol=1e-13)
    # ... while the domain head itself trained as usual
    np.testing.assert_allclose(adv.coefs_[1], normal.coefs_[1], rtol=1e-13)
    assert not np.allclose(adv.coefs_[0], normal.coefs_[0])


def test_reversed_step_is_the_normal_step_with_the_domain_trunk_gradient_negated():
    # Trunk step with reversal lambda = normal object part - lambda * domain part.
    lam = 1.5
    normal = _one_sgd_step()
    obj = _one_sgd_step(head_weights=[0.0, 1.0])
    adv = _one_sgd_step(adversarial_heads={"head0": lam})
    init = _one_sgd_step(learning_rate_init=1e-300)  # no step: the initial weights
    step_obj = obj.coefs_[0] - init.coefs_[0]
    step_dom = (normal.coefs_[0] - init.coefs_[0]) - step_obj
    np.testing.assert_allclose(adv.coefs_[0] - init.coefs_[0], step_obj - lam * step_dom,
                               rtol=1e-9, atol=1e-13)


def test_source_plus_unlabelled_target_fits_and_predicts_both_heads():
    # Source domain: object labelled; target domain: object missing, domain labelled.
    X, y = _two_domains(n=300, seed=1)
    target = y[:, 0] == 1
    y_obj = np.where(target, -1, y[:, 1])
    Y = np.column_stack([y[:, 0], y_obj])
    clf = MultiHeadMLPClassifier(hidden=(16,), max_iter=60, random_state=0,
                                 adversarial_heads={"head0": 0.3},
                                 adversarial_schedule="dann").fit(X, Y)
    np.testing.assert_array_equal(clf.classes_[1], [0, 1, 2])
    pred = clf.predict(X)
    assert pred.shape == (300, 2)
    assert set(np.unique(pred[target, 1])) <= {0, 1, 2}
    # the object head learned the source (chance is 1/3) and works on the target
    assert np.mean(pred[~target, 1] == y[~target, 1]) > 0.6
    assert np.mean(pred[target, 1] == y[target, 1]) > 0.5
    assert clf.score_heads(X, Y)["head1"] == pytest.approx(np.mean(pred[~target, 1] == y[~target, 1]))


def test_compiled_and_numpy_paths_reverse_the_same_gradient(monkeypatch):
    # A 256 x 256 trunk layer takes the compiled kernels when numba is there.
    X, y = _two_domains(n=64)
    params = dict(hidden=(256, 256), max_iter=3, batch_size=32, random_state=0,
                  adversarial_heads={0: 0.5})
    fast = MultiHeadMLPClassifier(**params).fit(X, y)
    assert fast._optimizer.plan.kernels == bool(_kernels.kernels_available())
    monkeypatch.setenv(_kernels.ENV_VAR, "0")
    plain = MultiHeadMLPClassifier(**params).fit(X, y)
    assert not plain._optimizer.plan.kernels
    for p, q in zip(fast.coefs_ + fast.intercepts_, plain.coefs_ + plain.intercepts_):
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("spec,match", [
    ({"colour": 1.0}, "adversarial_heads names the head 'colour'"),
    ({0: -0.5}, r"adversarial_heads\[0\] must be a finite weight lambda >= 0"),
    ({0: float("nan")}, r"adversarial_heads\[0\] must be a finite"),
    ({0: "big"}, r"adversarial_heads\[0\] must be a finite"),
    ({5: 1.0}, "head index 5"),
    ({0: 1.0, 1: 1.0}, "every head adversarial"),
    ({0: 1.0, "head0": 2.0}, "twice"),
    ({1.5: 1.0}, "keys must be head names"),
])
def test_bad_adversarial_heads_raise(spec, match):
    X, y = _two_domains()
    with pytest.raises(ValueError, match=match):
        MultiHeadMLPClassifier(hidden=(4,), max_iter=1, adversarial_heads=spec).fit(X, y)


def test_the_only_head_cannot_be_adversarial_and_a_trunk_is_needed():
    X, y = _two_domains()
    with pytest.raises(ValueError, match="the only head adversarial.*nothing to be adversarial"):
        MultiHeadMLPClassifier(hidden=(4,), adversarial_heads={0: 1.0}).fit(X, y[:, 1])
    with pytest.raises(ValueError, match="no trunk"):
        MultiHeadMLPClassifier(hidden=(), adversarial_heads={0: 1.0}).fit(X, y)


def test_new_parameters_round_trip_through_get_params_and_clone():
    from sklearn.base import clone

    clf = MultiHeadMLPClassifier(n_frozen_layers=1, adversarial_heads={"domain": 0.5},
                                 adversarial_schedule="dann")
    params = clf.get_params()
    assert params["n_frozen_layers"] == 1
    assert params["adversarial_heads"] == {"domain": 0.5}
    assert params["adversarial_schedule"] == "dann"
    assert clone(clf).get_params() == params
    with pytest.raises(ValueError, match="adversarial_schedule"):
        MultiHeadMLPClassifier(adversarial_schedule="linear").fit(*_two_domains())
    with pytest.raises(ValueError, match="n_frozen_layers"):
        MultiHeadMLPClassifier(n_frozen_layers=-1).fit(*_two_domains())


# ------------------------------------------------------------ embed


def test_embed_gives_each_hidden_layers_activations():
    X, y = _two_domains()
    clf = MultiHeadMLPClassifier(hidden=(7, 5), activation="tanh", max_iter=5,
                                 random_state=0).fit(X, y)
    first = np.tanh(X @ clf.coefs_[0] + clf.intercepts_[0])
    second = np.tanh(first @ clf.coefs_[1] + clf.intercepts_[1])
    np.testing.assert_allclose(clf.embed(X, layer=0), first, rtol=1e-12)
    np.testing.assert_allclose(clf.embed(X, layer=-2), first, rtol=1e-12)
    np.testing.assert_allclose(clf.embed(X), second, rtol=1e-12)
    np.testing.assert_allclose(clf.embed(X, layer=1), second, rtol=1e-12)
    # the heads are a softmax of the last layer's features
    logits = clf.embed(X) @ clf.coefs_[-1] + clf.intercepts_[-1]
    np.testing.assert_array_equal(clf.predict(X)[:, 0], logits[:, :2].argmax(axis=1))
    assert clf.embed(X.astype(np.float32)).dtype == np.float64
    relu = MultiHeadMLPClassifier(hidden=(6,), max_iter=3, random_state=0).fit(X, y)
    assert relu.embed(X).min() >= 0


@pytest.mark.parametrize("layer", [2, -3, 1.0, "last", True])
def test_embed_bad_layer_raises(layer):
    X, y = _two_domains()
    clf = MultiHeadMLPClassifier(hidden=(7, 5), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"layer=.* is not a hidden layer.*from -2 to 1"):
        clf.embed(X, layer=layer)


def test_embed_without_hidden_layer_or_fit_raises():
    from sklearn.exceptions import NotFittedError

    X, y = _two_domains()
    with pytest.raises(NotFittedError):
        MultiHeadMLPClassifier().embed(X)
    clf = MultiHeadMLPClassifier(hidden=(), max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match=r"embed needs a hidden layer.*hidden=\(\)"):
        clf.embed(X)
