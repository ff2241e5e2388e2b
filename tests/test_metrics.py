"""Per-head metrics and scorers: against scikit-learn's one-head metrics."""

import re
from pathlib import Path

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    confusion_matrix,
    log_loss,
)
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skoffice31 import MultiHeadMLPClassifier
from skoffice31.datasets import load_office_digits
from skoffice31.metrics import (
    HeadAccuracyScorer,
    exact_match_accuracy,
    exact_match_scorer,
    head_accuracies,
    head_accuracy_scorer,
    head_classification_report,
    head_confusion_matrices,
    head_log_loss_scorer,
    head_log_losses,
)

pd = pytest.importorskip("pandas")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def two_heads():
    """Digits with two named heads (parity as strings, the digit as ints)."""
    X, d = load_digits(return_X_y=True)
    X = X[:600] / 16.0
    d = d[:600]
    y = pd.DataFrame({"parity": np.where(d % 2, "odd", "even"), "digit": d})
    return X, y


@pytest.fixture(scope="module")
def fitted(two_heads):
    X, y = two_heads
    clf = MultiHeadMLPClassifier(hidden=(16,), max_iter=15, random_state=0).fit(X, y)
    return clf


@pytest.fixture(scope="module")
def weights():
    return np.random.default_rng(0).uniform(0.1, 3.0, size=600)


def _cols(pred):
    """The columns of a mixed object prediction, each with its own dtype."""
    return [np.array(pred[:, h].tolist()) for h in range(pred.shape[1])]


def _y_pred_columns(clf, X):
    return _cols(clf.predict(X))


# ------------------------------------------------------------------ functions


def test_head_accuracies_and_exact_match_equal_sklearn(two_heads, fitted, weights):
    X, y = two_heads
    pred = fitted.predict(X)
    assert pred.dtype == object  # strings in one head, ints in the other
    for sw in (None, weights):
        acc = head_accuracies(y, pred, sample_weight=sw)
        for h, col in enumerate(_cols(pred)):
            assert acc[h] == pytest.approx(
                accuracy_score(y.iloc[:, h], col, sample_weight=sw), abs=1e-12)
        both = (y.iloc[:, 0].to_numpy() == pred[:, 0]) & (y.iloc[:, 1].to_numpy() == pred[:, 1])
        assert exact_match_accuracy(y, pred, sample_weight=sw) == pytest.approx(
            np.average(both, weights=sw), abs=1e-12)
    with pytest.raises(ValueError, match="y_pred has shape"):
        head_accuracies(y, pred[:, :1])


def test_head_classification_report_is_sklearns_per_head(two_heads, fitted, weights):
    X, y = two_heads
    pred = fitted.predict(X)
    reports = head_classification_report(y, pred, output_dict=True, sample_weight=weights,
                                         zero_division=0.0)
    assert list(reports) == ["parity", "digit"]  # the DataFrame's columns
    for h, name in enumerate(reports):
        expected = classification_report(y.iloc[:, h].to_numpy(), _cols(pred)[h],
                                         sample_weight=weights, output_dict=True,
                                         zero_division=0.0)
        assert reports[name] == expected
    text = head_classification_report(y.to_numpy(), pred, zero_division=0.0, digits=3)
    assert text.startswith("head: head0\n")  # a plain array: generic names
    assert "head: head1" in text
    assert classification_report(y.iloc[:, 1].to_numpy(), _cols(pred)[1], digits=3,
                                 zero_division=0.0) in text
    named = head_classification_report(y.to_numpy(), pred, head_names=("p", "d"),
                                       zero_division=0.0)
    assert "head: p\n" in named and "head: d\n" in named
    with pytest.raises(ValueError, match="head_names has 1 name"):
        head_classification_report(y, pred, head_names=["only"])


def test_head_confusion_matrices_feed_confusion_matrix_display(two_heads, fitted, weights):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = two_heads
    pred = fitted.predict(X)
    cms = head_confusion_matrices(y, pred, sample_weight=weights, normalize="true")
    assert list(cms) == ["parity", "digit"]
    for h, name in enumerate(cms):
        col = _cols(pred)[h]
        labels = np.unique(np.concatenate([y.iloc[:, h].to_numpy(), col]))
        np.testing.assert_array_equal(cms[name].display_labels, labels)
        np.testing.assert_allclose(
            cms[name].confusion_matrix,
            confusion_matrix(y.iloc[:, h].to_numpy(), col, labels=labels,
                             sample_weight=weights, normalize="true"),
            rtol=0, atol=1e-12)
    display = ConfusionMatrixDisplay(**cms["digit"]).plot()
    assert display.im_.get_array().shape == (10, 10)
    plt.close("all")


def test_confusion_matrix_labels_include_labels_only_predicted():
    cms = head_confusion_matrices([["a", 1], ["a", 2]], [["b", 1], ["a", 1]])
    np.testing.assert_array_equal(cms["head0"].display_labels, ["a", "b"])
    np.testing.assert_array_equal(cms["head0"].confusion_matrix, [[1, 1], [0, 0]])
    np.testing.assert_array_equal(cms["head1"].confusion_matrix, [[1, 0], [1, 0]])


def test_head_log_losses_equal_sklearn(two_heads, fitted, weights):
    X, y = two_heads
    proba = fitted.predict_proba(X)
    losses = head_log_losses(y, proba, classes=fitted.classes_, sample_weight=weights)
    for h in range(2):
        assert losses[h] == pytest.approx(
            log_loss(y.iloc[:, h], proba[h], labels=fitted.classes_[h], sample_weight=weights),
            rel=1e-12)
    with pytest.raises(ValueError, match="one probability array and one class list per head"):
        head_log_losses(y, proba[:1], classes=fitted.classes_[:1])


# ------------------------------------------------------------------ scorers


def test_scorers_by_name_and_by_index(two_heads, fitted, weights):
    X, y = two_heads
    pred_parity, pred_digit = _y_pred_columns(fitted, X)
    digit = accuracy_score(y["digit"], pred_digit, sample_weight=weights)
    for head in ("digit", 1, -1):
        assert head_accuracy_scorer(head)(fitted, X, y, sample_weight=weights) == pytest.approx(
            digit, abs=1e-12)
    assert head_accuracy_scorer(0)(fitted, X, y) == accuracy_score(y["parity"], pred_parity)
    both = np.mean((pred_parity == y["parity"].to_numpy()) & (pred_digit == y["digit"].to_numpy()))
    assert exact_match_scorer(fitted, X, y) == pytest.approx(both, abs=1e-12)
    proba = fitted.predict_proba(X)
    assert head_log_loss_scorer("parity")(fitted, X, y, sample_weight=weights) == pytest.approx(
        -log_loss(y["parity"], proba[0], sample_weight=weights), rel=1e-12)
    assert head_log_loss_scorer(1)(fitted, X, y) == pytest.approx(
        -log_loss(y["digit"], proba[1], labels=fitted.classes_[1]), rel=1e-12)


def test_scorers_work_on_one_head_and_through_a_pipeline(two_heads):
    X, y = two_heads
    pipe = make_pipeline(StandardScaler(), MultiHeadMLPClassifier(hidden=(8,), max_iter=5,
                                                                  random_state=0))
    pipe.fit(X, y["parity"])  # a named Series: one head called "parity"
    assert pipe[-1].head_names_ == ("parity",)
    expected = accuracy_score(y["parity"], pipe.predict(X))
    assert head_accuracy_scorer("parity")(pipe, X, y["parity"]) == expected
    assert head_accuracy_scorer(0)(pipe, X, y["parity"].to_numpy()) == expected
    assert head_log_loss_scorer(0)(pipe, X, y["parity"]) == pytest.approx(
        -log_loss(y["parity"], pipe.predict_proba(X)), rel=1e-12)


def test_a_name_is_found_in_y_when_the_estimator_names_no_heads(two_heads):
    # e.g. a MultiOutputClassifier baseline: no head_names_, but a DataFrame y
    X, y = two_heads
    y = y.assign(digit="d" + y["digit"].astype(str))  # MultiOutputClassifier: one label type
    base = MultiOutputClassifier(LogisticRegression(max_iter=200)).fit(X, y)
    pred = base.predict(X)
    assert head_accuracy_scorer("digit")(base, X, y) == accuracy_score(y["digit"], pred[:, 1])
    proba = base.predict_proba(X)
    assert head_log_loss_scorer("parity")(base, X, y) == pytest.approx(
        -log_loss(y["parity"], proba[0], labels=base.classes_[0]), rel=1e-12)
    with pytest.raises(ValueError, match=r"names no heads and y's columns are \['parity', "):
        head_accuracy_scorer("colour")(base, X, y)


def test_unknown_heads_raise_clear_errors(two_heads, fitted):
    X, y = two_heads
    plain = MultiHeadMLPClassifier(hidden=(4,), max_iter=2, random_state=0).fit(X, y.to_numpy())
    assert plain.head_names_ == ("head0", "head1")
    with pytest.raises(ValueError, match=r"Unknown head 'domain': the fitted estimator's "
                                         r"heads are \['head0', 'head1'\]\. .*DataFrame"):
        head_accuracy_scorer("domain")(plain, X, y.to_numpy())
    with pytest.raises(ValueError, match="Unknown head 'colour'"):
        head_log_loss_scorer("colour")(fitted, X, y)
    with pytest.raises(ValueError, match="Head index 2 is out of range: y has 2 head"):
        head_accuracy_scorer(2)(fitted, X, y)
    with pytest.raises(TypeError, match="head must be a head's name"):
        HeadAccuracyScorer(1.5)
    with pytest.raises(TypeError, match="head must be a head's name"):
        head_log_loss_scorer(True)


def test_a_wrong_head_in_a_search_is_not_a_silent_nan(two_heads):
    X, y = two_heads
    plain = y.to_numpy()  # unnamed heads: "domain" does not exist
    search = GridSearchCV(
        MultiHeadMLPClassifier(hidden=(4,), max_iter=2, random_state=0), {"alpha": [1e-4]},
        scoring={"domain": head_accuracy_scorer("domain"), "both": exact_match_scorer},
        refit=False, cv=KFold(2, shuffle=True, random_state=0))
    # scikit-learn's default error_score=nan turns a scorer's exception into
    # NaN; the warning it emits carries the scorer's message
    with pytest.warns(UserWarning) as record:
        search.fit(X, plain)
    messages = [str(w.message) for w in record]
    assert any("Scoring failed" in m and "Unknown head 'domain'" in m for m in messages)
    assert any("non-finite" in m for m in messages)
    assert np.isnan(search.cv_results_["mean_test_domain"]).all()
    assert np.isfinite(search.cv_results_["mean_test_both"]).all()
    with pytest.raises(ValueError, match="Unknown head 'domain'"):
        search.set_params(error_score="raise").fit(X, plain)


def test_scorer_reprs():
    assert repr(head_accuracy_scorer("object")) == "head_accuracy_scorer('object')"
    assert repr(head_log_loss_scorer(0)) == "head_log_loss_scorer(0)"
    assert repr(exact_match_scorer) == "exact_match_scorer"


def test_multi_metric_scoring_predicts_once_per_split(two_heads, fitted):
    X, y = two_heads
    from sklearn.metrics._scorer import _MultimetricScorer

    class Counting(MultiHeadMLPClassifier):
        pass

    model = Counting(hidden=(4,), max_iter=2, random_state=0).fit(X, y)
    calls = []
    original = model.predict
    model.predict = lambda X_: calls.append(1) or original(X_)
    scorer = _MultimetricScorer(scorers={"a": head_accuracy_scorer(0),
                                         "b": head_accuracy_scorer(1),
                                         "c": exact_match_scorer})
    scores = scorer(model, X, y)
    assert len(calls) == 1
    assert scores["c"] == exact_match_accuracy(y, original(X))


# ------------------------------------------------------------------ routing


def test_routed_sample_weight_reaches_every_head(two_heads, weights):
    X, y = two_heads
    with sklearn.config_context(enable_metadata_routing=True):
        scoring = {
            "parity": head_accuracy_scorer("parity").set_score_request(sample_weight=True),
            "digit": head_accuracy_scorer(1).set_score_request(sample_weight=True),
            "both": exact_match_scorer.__class__().set_score_request(sample_weight=True),
            "nll": head_log_loss_scorer("digit").set_score_request(sample_weight=True),
        }
        model = MultiHeadMLPClassifier(hidden=(8,), max_iter=5, random_state=0)
        model.set_fit_request(sample_weight=False)
        res = cross_validate(model, X, y, cv=KFold(3, shuffle=True, random_state=0),
                             scoring=scoring, params={"sample_weight": weights},
                             return_estimator=True, return_indices=True)
    differs = False
    for k, (est, test) in enumerate(zip(res["estimator"], res["indices"]["test"])):
        pred, w, y_test = est.predict(X[test]), weights[test], y.iloc[test]
        for h, name in enumerate(["parity", "digit"]):
            col = _cols(pred)[h]
            expected = accuracy_score(y_test.iloc[:, h], col, sample_weight=w)
            assert res[f"test_{name}"][k] == pytest.approx(expected, abs=1e-12)
            differs |= abs(expected - accuracy_score(y_test.iloc[:, h], col)) > 1e-6
        both = np.all(y_test.to_numpy() == pred, axis=1)
        assert res["test_both"][k] == pytest.approx(np.average(both, weights=w), abs=1e-12)
        proba = est.predict_proba(X[test])[1]
        assert res["test_nll"][k] == pytest.approx(
            -log_loss(y_test["digit"], proba, labels=est.classes_[1], sample_weight=w), rel=1e-12)
    assert differs  # the weights change the scores: the test can tell


def test_unrequested_routed_sample_weight_is_an_error_not_dropped(two_heads, weights):
    X, y = two_heads
    with sklearn.config_context(enable_metadata_routing=True):
        model = MultiHeadMLPClassifier(hidden=(4,), max_iter=2, random_state=0)
        model.set_fit_request(sample_weight=False)
        with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):
            cross_validate(model, X, y, cv=KFold(2, shuffle=True, random_state=0),
                           scoring={"parity": head_accuracy_scorer("parity"),
                                    "both": exact_match_scorer},
                           params={"sample_weight": weights}, error_score="raise")
    with pytest.raises(RuntimeError, match="enable_metadata_routing"):
        head_accuracy_scorer(0).set_score_request(sample_weight=True)


# ------------------------------------------------------------------ README


def _readme_search_snippet():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    snippets = [b for b in blocks if "GridSearchCV(" in b]
    assert len(snippets) == 1, "README.md should hold one GridSearchCV snippet"
    return snippets[0]


def test_readme_search_snippet_gives_finite_scores_equal_to_a_hand_computation():
    data = load_office_digits(size=(8, 8), as_frame=True)
    X, y = data.data.iloc[::3], data.target.iloc[::3]  # every domain, 599 rows
    namespace = {}
    exec(compile(_readme_search_snippet(), str(README), "exec"), namespace)
    search = namespace["search"]
    search.fit(X, y)
    results = search.cv_results_
    for name in ("domain", "object", "both"):
        assert np.all(np.isfinite(results[f"mean_test_{name}"])), name
    assert search.best_index_ == int(np.argmax(results["mean_test_object"]))
    # one split of one candidate by hand
    train, test = next(search.cv.split(X, y))
    model = clone(search.estimator).set_params(**results["params"][1]).fit(
        X.iloc[train], y.iloc[train])
    pred, y_test = model.predict(X.iloc[test]), y.iloc[test].to_numpy()
    assert results["split0_test_domain"][1] == accuracy_score(y_test[:, 0], pred[:, 0])
    assert results["split0_test_object"][1] == accuracy_score(y_test[:, 1], pred[:, 1])
    assert results["split0_test_both"][1] == np.mean(np.all(y_test == pred, axis=1))
    # shuffled folds (the rows are sorted by domain): every test fold holds
    # every domain, and no fold's domain head scores 0 as unshuffled ones do
    for k, (_, test_k) in enumerate(search.cv.split(X, y)):
        assert set(y["domain"].iloc[test_k]) == set(y["domain"])
        assert np.all(results[f"split{k}_test_domain"] > 0)
