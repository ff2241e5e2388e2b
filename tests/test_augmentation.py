"""Tests of skoffice31.augmentation: the mirror and shift transformations and
AugmentedClassifier (what it trains on, how it predicts, where it plugs in)."""

import itertools

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from skoffice31 import MultiHeadMLPClassifier
from skoffice31.augmentation import AugmentedClassifier, mirror_images, shift_images
from skoffice31.study import StudySettings, final_classifier


def _images(n=6, h=5, w=4, c=3, seed=0):
    return np.random.default_rng(seed).random((n, h, w, c)).astype(np.float32)


def _naive_shift(image, oy, ox):
    """``image`` moved down by ``oy`` and right by ``ox``, edges repeated (index clipping)."""
    h, w = image.shape[:2]
    rows = np.clip(np.arange(h) - oy, 0, h - 1)
    cols = np.clip(np.arange(w) - ox, 0, w - 1)
    return image[rows][:, cols]


# --------------------------------------------------------------------- mirror


def test_mirror_flips_each_row_of_pixels():
    images = _images()
    out = mirror_images(images.reshape(6, -1), image_shape=(5, 4, 3)).reshape(images.shape)
    for i, y, x in itertools.product(range(6), range(5), range(4)):
        np.testing.assert_array_equal(out[i, y, x], images[i, y, 3 - x])


def test_mirror_twice_is_the_identity_and_keeps_dtype():
    X = _images(h=4, w=4).reshape(6, -1)
    once = mirror_images(X)  # square RGB by default
    assert once.dtype == X.dtype and once.shape == X.shape
    assert not np.array_equal(once, X)
    np.testing.assert_array_equal(mirror_images(once), X)


@pytest.mark.parametrize("X, shape, words", [
    (np.zeros((2, 50)), None, "not a square image of 3 channels"),
    (np.zeros((2, 48)), (4, 3, 3), "has 36 values per image but X has 48"),
    (np.zeros((2, 48)), (4, 4), "(height, width, channels)"),
    (np.zeros((2, 4, 4, 3)), None, "2-D array of flattened images"),
])
def test_bad_shapes_are_named(X, shape, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        mirror_images(X, image_shape=shape)


# ---------------------------------------------------------------------- shift


def test_shift_moves_each_image_by_one_offset_within_max_shift():
    images = _images(n=200, h=6, w=7, seed=1)
    out = shift_images(images.reshape(200, -1), (6, 7, 3), max_shift=2,
                       random_state=0).reshape(images.shape)
    seen = set()
    for img, moved in zip(images, out):
        matches = [(oy, ox) for oy in range(-2, 3) for ox in range(-2, 3)
                   if np.array_equal(moved, _naive_shift(img, oy, ox))]
        assert len(matches) == 1  # random pixels: exactly one offset explains it
        seen.add(matches[0])
    assert len(seen) == 25  # every offset of the range is drawn


def test_shift_zero_is_a_copy_and_the_seed_repeats():
    X = _images().reshape(6, -1)
    out = shift_images(X, (5, 4, 3), max_shift=0, random_state=0)
    np.testing.assert_array_equal(out, X)
    assert out is not X
    a = shift_images(X, (5, 4, 3), max_shift=1, random_state=3)
    np.testing.assert_array_equal(a, shift_images(X, (5, 4, 3), max_shift=1, random_state=3))
    with pytest.raises(ValueError, match="max_shift must be >= 0"):
        shift_images(X, (5, 4, 3), max_shift=-1)


# ---------------------------------------------------------- AugmentedClassifier


class _Recorder(ClassifierMixin, BaseEstimator):
    """Records what fit received; predicts class probabilities from the first feature."""

    def fit(self, X, y, sample_weight=None):
        self.X_, self.y_, self.sample_weight_ = np.array(X), np.array(y), sample_weight
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        X = np.asarray(X)
        p = np.clip(X[:, :1], 0, 1)
        return np.hstack([1 - p, p])

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _data(n=30, side=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, side * side * 3)).astype(np.float32)
    y = np.column_stack([np.arange(n) % 2, np.array(["a", "b", "c"])[np.arange(n) % 3]]).astype(object)
    y[:, 0] = y[:, 0].astype(int)
    return X, y


@pytest.mark.parametrize("copies", [1, 2, 3, 4, 5])
def test_fit_trains_on_the_copies_in_order(copies):
    X, _ = _data(n=10)
    y = np.arange(10) % 2
    w = np.linspace(0.5, 1.5, 10)
    model = AugmentedClassifier(_Recorder(), copies=copies, random_state=0)
    model.fit(X, y, sample_weight=w)
    rec = model.estimator_
    assert rec.X_.shape == (copies * 10, X.shape[1])
    np.testing.assert_array_equal(rec.y_, np.tile(y, copies))
    np.testing.assert_array_equal(rec.sample_weight_, np.tile(w, copies))
    blocks = rec.X_.reshape(copies, 10, -1)
    np.testing.assert_array_equal(blocks[0], X)
    if copies >= 2:
        np.testing.assert_array_equal(blocks[1], mirror_images(X))
    for k in range(2, copies):  # shifted copies of the photo and of its mirror, in turn
        source = blocks[k % 2].reshape(10, 4, 4, 3)
        for img, moved in zip(source, blocks[k].reshape(10, 4, 4, 3)):
            assert any(np.array_equal(moved, _naive_shift(img, oy, ox))
                       for oy in range(-2, 3) for ox in range(-2, 3))
    # the template is never fitted; the clone is
    assert not hasattr(model.estimator, "X_")


def test_without_mirror_every_copy_is_a_shift_of_the_image():
    X, _ = _data(n=8)
    y = np.arange(8) % 2
    model = AugmentedClassifier(_Recorder(), copies=3, mirror=False, max_shift=1,
                                random_state=0).fit(X, y)
    blocks = model.estimator_.X_.reshape(3, 8, 4, 4, 3)
    np.testing.assert_array_equal(blocks[0].reshape(8, -1), X)
    images = X.reshape(8, 4, 4, 3)
    for k in (1, 2):
        for img, moved in zip(images, blocks[k]):
            assert any(np.array_equal(moved, _naive_shift(img, oy, ox))
                       for oy in range(-1, 2) for ox in range(-1, 2))
    # and prediction is the estimator's: no mirror image at predict either
    np.testing.assert_array_equal(model.predict_proba(X), model.estimator_.predict_proba(X))


def test_copies_one_is_the_estimator_alone():
    X, y = _data()
    est = MultiHeadMLPClassifier(hidden=(8,), max_iter=3, random_state=0)
    alone = clone(est).fit(X, y)
    model = AugmentedClassifier(est, copies=1).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), alone.predict(X))
    for p, q in zip(model.predict_proba(X), alone.predict_proba(X)):
        np.testing.assert_array_equal(p, q)


def test_predict_averages_the_photo_and_its_mirror():
    X, y = _data()
    est = MultiHeadMLPClassifier(hidden=(8,), max_iter=3, random_state=0)
    model = AugmentedClassifier(est, copies=2).fit(X, y)
    inner = model.estimator_
    # it trained on the photos and their mirror images
    manual = clone(est).fit(np.concatenate([X, mirror_images(X)]), np.concatenate([y, y]))
    for p, q in zip(inner.predict_proba(X), manual.predict_proba(X)):
        np.testing.assert_allclose(p, q, rtol=1e-6)
    expected = [(p + q) / 2 for p, q in zip(inner.predict_proba(X),
                                            inner.predict_proba(mirror_images(X)))]
    got = model.predict_proba(X)
    for p, q in zip(got, expected):
        np.testing.assert_allclose(p, q, rtol=1e-6)
    pred = model.predict(X)
    assert pred.dtype == object and pred.shape == (len(X), 2)  # heads mix ints and strings
    for h in range(2):
        np.testing.assert_array_equal(pred[:, h], inner.classes_[h][expected[h].argmax(axis=1)])
    acc = [np.mean(pred[:, h] == y[:, h]) for h in range(2)]
    assert model.score(X, y) == pytest.approx(np.mean(acc))
    assert list(model.head_names_) == list(inner.head_names_)
    assert model.n_outputs_ == 2 and model.n_features_in_ == X.shape[1]


def test_mirror_at_predict_false_predicts_as_the_estimator():
    X, y = _data()
    model = AugmentedClassifier(MultiHeadMLPClassifier(hidden=(8,), max_iter=3, random_state=0),
                                copies=2, mirror_at_predict=False).fit(X, y)
    np.testing.assert_array_equal(model.predict(X), model.estimator_.predict(X))


def test_one_head_and_a_pipeline_route_sample_weight_to_the_last_step():
    X, y = _data()
    pipe = make_pipeline(StandardScaler(), _Recorder())
    w = np.arange(len(X), dtype=float)
    model = AugmentedClassifier(pipe, copies=2).fit(X, y[:, 0].astype(int), sample_weight=w)
    np.testing.assert_array_equal(model.estimator_[-1].sample_weight_, np.tile(w, 2))
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_array_equal(model.predict(X), model.classes_[proba.argmax(axis=1)])


def test_errors_name_the_problem():
    X, y = _data()
    model = AugmentedClassifier(_Recorder(), copies=2).fit(X, y[:, 0].astype(int))
    with pytest.raises(ValueError, match="not a square image"):
        model.predict(X[:, :-1])
    with pytest.raises(ValueError, match="X has 5 rows but y has 4"):
        AugmentedClassifier(_Recorder()).fit(X[:5], y[:4, 0])
    with pytest.raises(InvalidParameterError, match="copies"):
        AugmentedClassifier(_Recorder(), copies=0).fit(X, y[:, 0])
    with pytest.raises(ValueError, match="has 12 values per image"):
        AugmentedClassifier(_Recorder(), image_shape=(2, 2, 3)).fit(X, y[:, 0])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        AugmentedClassifier(_Recorder()).predict(X)


def test_cross_validation_augments_the_training_folds_only():
    X, y = _data(n=40)
    seen = []

    class Spy(_Recorder):
        def fit(self, X, y, sample_weight=None):
            seen.append(len(X))
            return super().fit(X, y, sample_weight)

    scores = cross_val_score(AugmentedClassifier(Spy(), copies=3, random_state=0), X,
                             y[:, 0].astype(int), cv=KFold(4, shuffle=True, random_state=0))
    assert seen == [3 * 30] * 4 and len(scores) == 4


def test_settings_wrap_the_pipeline_and_final_classifier_finds_it():
    s = StudySettings.from_preset("tuned", augment=3, epochs=2, hidden=[(8,)])
    model = s.make_pipeline(((8,), "sgd"))
    assert isinstance(model, AugmentedClassifier) and model.copies == 3
    assert isinstance(model.estimator, Pipeline)
    assert isinstance(final_classifier(model), MultiHeadMLPClassifier)
    X, y = _data(n=40, side=32)
    model.fit(X, y)
    fitted = final_classifier(model, fitted=True)
    assert fitted is model.estimator_[-1] and fitted.n_iter_ == 2
    assert final_classifier(model) is not fitted
    # the settings' own size gives the image shape (width, height)
    s = StudySettings.from_preset("study", augment=2, size=(4, 2))
    assert s.make_pipeline(((4,), "sgd")).image_shape == (2, 4, 3)
    assert type(StudySettings.from_preset("study").make_pipeline(((4,), "sgd"))).__name__ == (
        "MultiHeadMLPClassifier")
    with pytest.raises(ValueError, match="augment must be an integer >= 1"):
        StudySettings.from_preset("tuned", augment=0)


def test_study_row_of_an_augmented_configuration():
    """The runner's row: callbacks reach the fitted clone, attributes come from it."""
    from skoffice31.callbacks import EpochReporter
    from skoffice31.study import fit_and_evaluate

    X, y = _data(n=60, side=32)
    records = []
    s = StudySettings.from_preset("tuned", augment=2, epochs=3, hidden=[(8,)])
    row = fit_and_evaluate(s, ((8,), "sgd"), X, y, np.arange(45), np.arange(45, 60),
                           callbacks=[EpochReporter(records.append)])
    assert row["status"] == "ok", row["status"]
    assert len(records) == 3 and row["n_iter"] == 3 and len(row["loss_curve"]) == 3
    assert 0 <= row["object_acc"] <= 1


def test_saved_and_loaded_with_the_safe_format(tmp_path):
    from skoffice31.persistence import load_model, save_model

    X, y = _data()
    model = AugmentedClassifier(
        make_pipeline(StandardScaler(), MultiHeadMLPClassifier(hidden=(8,), max_iter=3,
                                                               random_state=0)),
        copies=4, random_state=0).fit(X, y)
    path = save_model(model, tmp_path / "m.skops")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# ------------------------------------------------------------ shift_each_epoch


class _EpochRecorder(_Recorder):
    """Records every ``partial_fit`` call (one epoch each) and its ``classes``."""

    def __init__(self, max_iter=3, random_state=None):
        self.max_iter = max_iter
        self.random_state = random_state

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        if not hasattr(self, "epochs_"):
            self.epochs_, self.classes_seen_ = [], classes
        self.epochs_.append(np.array(X))
        self.random_state_during_fit_ = self.random_state
        return super().fit(X, y, sample_weight)


class _CountingScaler(StandardScaler):
    def fit(self, X, y=None, sample_weight=None):
        self.n_fits_ = getattr(self, "n_fits_", 0) + 1
        return super().fit(X, y, sample_weight)


def test_shift_each_epoch_draws_new_shifts_and_keeps_the_fixed_copies():
    X, _ = _data(n=10)
    y = np.arange(10) % 2
    model = AugmentedClassifier(_EpochRecorder(max_iter=3, random_state=7), copies=4,
                                shift_each_epoch=True, random_state=0).fit(X, y)
    rec = model.estimator_
    assert len(rec.epochs_) == 3  # the classifier's max_iter epochs, one partial_fit each
    np.testing.assert_array_equal(rec.classes_seen_, [0, 1])
    # the first epoch is what fit trains on without the option (same seed)
    np.testing.assert_array_equal(rec.epochs_[0], AugmentedClassifier(
        _Recorder(), copies=4, random_state=0).augment(X, y)[0])
    for a, b in itertools.combinations(rec.epochs_, 2):
        np.testing.assert_array_equal(a[:20], b[:20])  # the photos and their mirror images
        assert not np.array_equal(a[20:], b[20:])  # new shifts
    for epoch in rec.epochs_:  # every shifted block is a shift of its source
        blocks = epoch.reshape(4, 10, 4, 4, 3)
        for k in (2, 3):
            for img, moved in zip(blocks[k % 2], blocks[k]):
                assert any(np.array_equal(moved, _naive_shift(img, oy, ox))
                           for oy in range(-2, 3) for ox in range(-2, 3))
    # an integer seed of the classifier became one stream for the epochs, then came back
    assert isinstance(rec.random_state_during_fit_, np.random.RandomState)
    assert rec.random_state == 7 and model.estimator.random_state == 7


def test_shift_each_epoch_fits_the_preprocessing_once_and_transforms_each_epoch():
    X, _ = _data(n=10)
    y = np.arange(10) % 2
    pipe = make_pipeline(_CountingScaler(), _EpochRecorder(max_iter=3))
    model = AugmentedClassifier(pipe, copies=3, shift_each_epoch=True, random_state=0)
    model.fit(X, y)
    scaler, rec = model.estimator_[0], model.estimator_[-1]
    assert scaler.n_fits_ == 1
    first = AugmentedClassifier(_Recorder(), copies=3, random_state=0).augment(X, y)[0]
    np.testing.assert_allclose(scaler.mean_, first.mean(axis=0), rtol=1e-6)
    for epoch in rec.epochs_:  # each epoch's rows went through the fitted scaler
        assert epoch.shape == (30, X.shape[1])
        np.testing.assert_array_equal(epoch[:20], scaler.transform(first[:20]))
    assert not np.array_equal(rec.epochs_[1][20:], rec.epochs_[2][20:])
    assert model.predict(X).shape == (10,)


def test_shift_each_epoch_without_movement_is_the_plain_fit():
    """max_shift=0: every epoch sees the same copies, and the epochs one at a time
    (partial_fit, one stream of minibatch orders) give the weights fit gives."""
    X, y = _data(n=40)
    clf = MultiHeadMLPClassifier(hidden=(8,), solver="adam", max_iter=4, n_iter_no_change=4,
                                 random_state=0)
    kw = dict(copies=4, max_shift=0, random_state=0)
    plain = AugmentedClassifier(make_pipeline(StandardScaler(), clf), **kw).fit(X, y)
    epochs = AugmentedClassifier(make_pipeline(StandardScaler(), clf), shift_each_epoch=True,
                                 **kw).fit(X, y)
    a, b = plain.estimator_[-1], epochs.estimator_[-1]
    assert b.n_iter_ == 4 and len(b.loss_curve_) == 4
    for w, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(w, v)
    np.testing.assert_array_equal(plain.predict(X), epochs.predict(X))


def test_shift_each_epoch_without_shifted_copies_is_the_plain_fit():
    X, y = _data(n=20)
    y = y[:, 0].astype(int)
    model = AugmentedClassifier(_EpochRecorder(), copies=2, shift_each_epoch=True).fit(X, y)
    assert not hasattr(model.estimator_, "epochs_") and model.estimator_.X_.shape[0] == 40


def test_shift_each_epoch_with_scikit_learns_mlp_on_one_head():
    from sklearn.neural_network import MLPClassifier

    X, y = _data(n=30)
    y = y[:, 1]
    model = AugmentedClassifier(MLPClassifier((8,), max_iter=3, random_state=0), copies=3,
                                shift_each_epoch=True, random_state=0).fit(X, y)
    # scikit-learn's partial_fit counts n_iter_ per call; the loss curve has every epoch
    assert len(model.estimator_.loss_curve_) == 3 and model.estimator_.random_state == 0
    assert set(model.predict(X)) <= {"a", "b", "c"}


def test_shift_each_epoch_errors_name_the_problem():
    from sklearn.linear_model import LogisticRegression

    X, y = _data(n=20)
    with pytest.raises(ValueError, match="LogisticRegression has no partial_fit"):
        AugmentedClassifier(LogisticRegression(), copies=3, shift_each_epoch=True).fit(
            X, y[:, 0].astype(int))
    with pytest.raises(ValueError, match="no early stopping: set its early_stopping=False"):
        AugmentedClassifier(MultiHeadMLPClassifier(early_stopping=True), copies=3,
                            shift_each_epoch=True).fit(X, y)
    with pytest.raises(InvalidParameterError, match="shift_each_epoch"):
        AugmentedClassifier(_Recorder(), shift_each_epoch="yes").fit(X, y[:, 0])


def test_settings_shift_each_epoch_reaches_the_augmenter_and_the_study_row():
    from skoffice31.callbacks import EpochReporter
    from skoffice31.study import fit_and_evaluate

    s = StudySettings.from_preset("tuned", augment=3, epochs=3, hidden=[(8,)],
                                  shift_each_epoch=True)
    assert s.make_pipeline(((8,), "sgd")).shift_each_epoch is True
    assert StudySettings.from_preset("tuned", augment=3).make_pipeline(
        ((8,), "sgd")).shift_each_epoch is StudySettings.from_preset("tuned").shift_each_epoch
    X, y = _data(n=60, side=32)
    records = []
    row = fit_and_evaluate(s, ((8,), "sgd"), X, y, np.arange(45), np.arange(45, 60),
                           callbacks=[EpochReporter(records.append)])
    assert row["status"] == "ok", row["status"]
    assert len(records) == 3 and row["n_iter"] == 3 and len(row["loss_curve"]) == 3
    with pytest.raises(ValueError, match="shift_each_epoch must be True or False"):
        StudySettings.from_preset("tuned", shift_each_epoch=1)
