"""scikit-learn's callback API in MultiHeadMLPClassifier, and EpochReporter."""

import pickle

import numpy as np
import pytest
from sklearn.callback import ProgressBar
from sklearn.callback._callback_context import get_context_path
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skoffice31 import MultiHeadMLPClassifier
from skoffice31.callbacks import EpochReporter
from skoffice31.metrics import exact_match_scorer

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _toy(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.column_stack([np.where(X[:, 0] > 0, "pos", "neg"), (X[:, 1] > 0).astype(int)])
    return X, y


class Recorder:
    """A FitCallback that records every hook call (in this process)."""

    def __init__(self, auto=False):
        self.calls = []
        if auto:  # AutoPropagatedCallback: set on a meta-estimator, reaches ours
            self.max_propagation_depth = None

    def setup(self, estimator, context):
        self.calls.append(("setup", type(estimator).__name__, context.task_name))

    def on_fit_task_begin(self, estimator, context, *, X=None):
        self.calls.append(("begin", self._path(context), X is not None))

    def on_fit_task_end(self, estimator, context, *, X=None, fitted_estimator=None):
        self.calls.append(("end", self._path(context), X is not None))
        if context.task_name == "epoch" and fitted_estimator is not None:
            self.snapshots = getattr(self, "snapshots", [])
            self.snapshots.append((estimator.n_iter_, fitted_estimator))

    def teardown(self, estimator, context):
        self.calls.append(("teardown", type(estimator).__name__, context.task_name))

    @staticmethod
    def _path(context):
        return tuple((c.task_name, c.task_id) for c in get_context_path(context))


def test_fit_is_one_task_with_one_subtask_per_epoch():
    X, y = _toy()
    rec = Recorder()
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=3, tol=0, random_state=0)
    clf.set_callbacks(rec).fit(X, y)
    root = (("fit", 0),)
    epochs = [root + (("epoch", i),) for i in range(3)]
    assert rec.calls == [
        ("setup", "MultiHeadMLPClassifier", "fit"),
        ("begin", root, True),
        ("begin", epochs[0], True), ("end", epochs[0], True),
        ("begin", epochs[1], True), ("end", epochs[1], True),
        ("begin", epochs[2], True), ("end", epochs[2], True),
        ("end", root, True),
        ("teardown", "MultiHeadMLPClassifier", "fit"),
    ]
    # nothing of the callback machinery stays on the fitted estimator
    assert not [k for k in vars(clf) if "callback_" in k and k != "_skl_callbacks"]
    pickle.loads(pickle.dumps(clf.set_callbacks()))


def test_early_stop_ends_the_unused_epoch_task_empty():
    X, y = _toy()
    seen, rec = [], Recorder()
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=50, tol=10.0, n_iter_no_change=1,
                                 random_state=0)
    clf.set_callbacks(rec, EpochReporter(seen.append)).fit(X, y)
    assert clf.n_iter_ < 50 and len(seen) == clf.n_iter_
    epoch_ends = [c for c in rec.calls if c[0] == "end" and c[1][-1][0] == "epoch"]
    # like LogisticRegression's last L-BFGS iteration: begun, then ended without data
    assert [c[2] for c in epoch_ends] == [True] * clf.n_iter_ + [False]


def test_fitted_estimator_of_an_epoch_predicts_with_that_epochs_weights():
    X, y = _toy()
    rec = Recorder()
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=3, tol=0, random_state=0,
                                 learning_rate_init=0.1).set_callbacks(rec).fit(X, y)
    (n1, first), (_, last) = rec.snapshots[0], rec.snapshots[-1]
    assert n1 == 1
    np.testing.assert_array_equal(last.predict_proba(X)[0], clf.predict_proba(X)[0])
    assert not np.array_equal(first.coefs_[0], clf.coefs_[0])  # a snapshot, not a view


def test_partial_fit_is_one_epoch_task():
    X, y = _toy()
    rec = Recorder()
    clf = MultiHeadMLPClassifier(hidden=(5,), random_state=0).set_callbacks(rec)
    clf.partial_fit(X, y, classes=[np.unique(y[:, 0]), np.unique(y[:, 1])])
    clf.partial_fit(X, y)
    ends = [c[1] for c in rec.calls if c[0] == "end"]
    assert ends == [(("partial_fit", 0), ("epoch", 0)), (("partial_fit", 0),)] * 2


def test_failed_fit_tears_down_and_keeps_the_previous_state():
    X, y = _toy()
    rec = Recorder()
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=2, random_state=0).set_callbacks(rec)
    clf.fit(X, y)
    coefs = [W.copy() for W in clf.coefs_]
    rec.calls.clear()
    with pytest.raises(ValueError):
        clf.set_params(learning_rate_init=-1.0).fit(X, y)
    assert rec.calls[0][0] == "setup" and rec.calls[-1][0] == "teardown"
    assert all(np.array_equal(a, b) for a, b in zip(coefs, clf.coefs_))


def test_epoch_reporter_reports_every_epoch():
    X, y = _toy()
    seen = []
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=3, tol=0, random_state=0)
    clf.set_callbacks(EpochReporter(seen.append, tag="a")).fit(X, y)
    MultiHeadMLPClassifier(hidden=(5,), max_iter=2, random_state=0).fit(X, y)  # no callback
    assert [s["epoch"] for s in seen] == [1, 2, 3]
    assert {s["tag"] for s in seen} == {"a"} and seen[-1]["max_iter"] == 3
    assert [s["loss"] for s in seen] == clf.loss_curve_
    assert seen[-1]["head_losses"] == {k: v[-1] for k, v in clf.head_loss_curves_.items()}
    assert 0 <= seen[0]["elapsed"] <= seen[1]["elapsed"] <= seen[2]["elapsed"]


def test_epoch_reporter_counts_one_epoch_partial_fits_from_the_first():
    """Epochs given one ``partial_fit`` call each (AugmentedClassifier's
    shift_each_epoch) report the time since the first epoch began."""
    import time

    X, y = _toy()
    seen = []
    clf = MultiHeadMLPClassifier(hidden=(5,), max_iter=3, random_state=0)
    clf.set_callbacks(EpochReporter(seen.append))
    classes = [np.unique(y[:, 0]), np.unique(y[:, 1])]
    for _ in range(3):
        clf.partial_fit(X, y, classes=classes)
        time.sleep(0.05)
    assert [s["epoch"] for s in seen] == [1, 2, 3]
    assert seen[2]["elapsed"] >= seen[1]["elapsed"] + 0.05 >= seen[0]["elapsed"] + 0.1
    clf.fit(X, y)  # a new fit counts from its own start
    assert [s["epoch"] for s in seen[3:]] == [1, 2, 3]
    assert seen[3]["elapsed"] < seen[2]["elapsed"]


def test_epoch_reporter_checks_its_argument():
    with pytest.raises(TypeError, match="report must be a callable"):
        EpochReporter("print")


def test_callbacks_reach_the_estimator_in_pipeline_and_grid_search():
    X, y = _toy()
    seen = []
    clf = MultiHeadMLPClassifier(hidden=(3,), max_iter=2, tol=0, random_state=0)
    clf.set_callbacks(EpochReporter(seen.append))
    make_pipeline(StandardScaler(), clf).fit(X, y)
    assert [s["epoch"] for s in seen] == [1, 2]
    seen.clear()
    GridSearchCV(clf, {"hidden": [(2,), (3,)]}, cv=2, scoring=exact_match_scorer).fit(X, y)
    assert len(seen) == (2 * 2 + 1) * 2  # 2 candidates x 2 splits + the refit, 2 epochs each


def test_grid_search_nests_our_epochs_under_its_tasks():
    X, y = _toy()
    rec = Recorder(auto=True)
    search = GridSearchCV(MultiHeadMLPClassifier(hidden=(3,), max_iter=2, tol=0),
                          {"hidden": [(2,), (3,)]}, cv=2, scoring=exact_match_scorer)
    search.set_callbacks(rec).fit(X, y)
    epoch_paths = [c[1] for c in rec.calls if c[0] == "end" and c[1][-1][0] == "epoch" and c[2]]
    assert len(epoch_paths) == (2 * 2 + 1) * 2
    names = {tuple(name for name, _ in path) for path in epoch_paths}
    # our root task is merged into the search's leaf task (named after ours)
    assert names == {("fit", "search", "fit", "epoch"), ("fit", "fit", "epoch")}


@pytest.mark.parametrize("where", ["alone", "pipeline", "grid_search"])
def test_progress_bar(where, capsys):
    pytest.importorskip("rich")
    X, y = _toy()
    clf = MultiHeadMLPClassifier(hidden=(3,), max_iter=3, tol=0, random_state=0)
    if where == "alone":
        model = clf
    elif where == "pipeline":
        model = make_pipeline(StandardScaler(), clf)
    else:
        model = GridSearchCV(clf, {"hidden": [(2,), (3,)]}, cv=2, scoring=exact_match_scorer)
    model.set_callbacks(ProgressBar(max_propagation_depth=None)).fit(X, y)
    out = capsys.readouterr().out
    assert "MultiHeadMLPClassifier - fit" in out
    if where != "grid_search":  # (nested lines are cut before the percentage)
        assert "100%" in out
