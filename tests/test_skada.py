"""skoffice31 inside skada's domain-adaptation pipelines (skoffice31.adaptation).

Importing skada switches scikit-learn's metadata routing on for the whole
process; the module puts the setting back and turns it on per test, so the
rest of the suite runs as it would without skada.
"""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn

_routing = sklearn.get_config()["enable_metadata_routing"]
skada = pytest.importorskip("skada")
sklearn.set_config(enable_metadata_routing=_routing)

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from skada import CORALAdapter, DensityReweightAdapter, make_da_pipeline  # noqa: E402
from skada.metrics import PredictionEntropyScorer, SupervisedScorer  # noqa: E402
from skada.model_selection import SourceTargetShuffleSplit  # noqa: E402

from skoffice31 import MultiHeadMLPClassifier  # noqa: E402
from skoffice31.adaptation import DomainHeadClassifier  # noqa: E402
from skoffice31.persistence import (  # noqa: E402
    UntrustedTypesError,
    load_model,
    save_model,
)

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(autouse=True)
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def _data(n_source=60, n_target=40, n_features=5, seed=0):
    """Three classes; the target domain is the source shifted and scaled."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 3, n_source + n_target)
    X = rng.normal(0, 1, (len(y), n_features)) + y[:, None]
    X[n_source:] = 2.0 * X[n_source:] + 3.0
    sd = np.r_[np.ones(n_source, int), -2 * np.ones(n_target, int)]
    return X, y, sd


def _net(**params):
    params = {"hidden": (8,), "max_iter": 5, "random_state": 0, **params}
    return MultiHeadMLPClassifier(**params)


def _masked(y, sd):
    y = y.copy()
    y[sd < 0] = -1
    return y


# ---------------------------------------------------------------- the problem


def test_a_plain_network_is_fitted_on_the_source_rows_only():
    """What the docs say skada does with an estimator that does not request sample_domain."""
    X, y, sd = _data()
    pipe = make_da_pipeline(CORALAdapter(), _net()).fit(X, y.copy(), sample_domain=sd)
    net = pipe[-1].get_estimator()
    assert net.n_outputs_ == 1
    assert net.t_ == (sd > 0).sum() * net.n_iter_  # the target rows were dropped


def test_skada_masks_the_given_y_in_place():
    X, y, sd = _data()
    given = y.copy()
    make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net())).fit(
        X, given, sample_domain=sd)
    assert np.all(given[sd < 0] == -1) and np.array_equal(given[sd > 0], y[sd > 0])


def test_a_2d_y_is_refused_by_skada_and_by_the_classifier():
    X, y, sd = _data()
    Y = np.column_stack([np.where(sd > 0, 0, 1), y])
    with pytest.raises(ValueError, match="Incompatible label type"):
        make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net())).fit(
            X, Y, sample_domain=sd)
    # without skada's masking the 2-D y reaches the classifier, which says what to do
    pipe = make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net()),
                            mask_target_labels=False)
    with pytest.raises(ValueError, match="1-D y.*sample_domain"):
        pipe.fit(X, Y, sample_domain=sd)
    with pytest.raises(ValueError, match="built from sample_domain"):
        DomainHeadClassifier(_net()).fit(X, Y, sample_domain=sd)


# ------------------------------------------------------------ the supported path


def test_one_head_y_trains_two_heads_on_every_row():
    X, y, sd = _data()
    pipe = make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net()))
    pipe.fit(X, y.copy(), sample_domain=sd)
    clf = pipe[-1].get_estimator()
    net = clf.estimator_
    assert net.n_outputs_ == 2 and clf.head_names_ == ("domain", "label")
    assert net.t_ == len(X) * net.n_iter_  # every row, the target rows included
    assert clf.domain_classes_.tolist() == ["source", "target"]
    assert net.classes_[0].tolist() == [0, 1]  # the domain head saw both domains
    assert clf.classes_.tolist() == [0, 1, 2]  # -1 (skada's mask) is no class
    pred = pipe.predict(X[sd < 0], sample_domain=sd[sd < 0])
    assert pred.shape == ((sd < 0).sum(),) and set(pred) <= {0, 1, 2}
    proba = pipe.predict_proba(X[sd < 0], sample_domain=sd[sd < 0])
    assert proba.shape == ((sd < 0).sum(), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1)


def test_the_pipeline_fits_what_the_classifier_fits_on_the_adapted_rows():
    """The final step gets every row, the masked y and sample_domain, unchanged."""
    X, y, sd = _data()
    pipe = make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net()))
    pipe.fit(X, y.copy(), sample_domain=sd)
    X_adapted = CORALAdapter().fit_transform(X, _masked(y, sd), sample_domain=sd)
    direct = DomainHeadClassifier(_net()).fit(X_adapted, _masked(y, sd), sample_domain=sd)
    for a, b in zip(pipe[-1].get_estimator().estimator_.coefs_, direct.estimator_.coefs_):
        np.testing.assert_array_equal(a, b)


def test_sample_domain_is_routed_to_the_classifier():
    X, y, _ = _data(n_source=60, n_target=40)
    sd = np.r_[np.ones(30, int), 2 * np.ones(30, int), -3 * np.ones(40, int)]
    pipe = make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net(),
                                                                 domain_head="per_domain"))
    pipe.fit(X, y.copy(), sample_domain=sd)
    clf = pipe[-1].get_estimator()
    assert clf.domain_classes_.tolist() == [-3, 1, 2]
    assert clf.estimator_.classes_[0].tolist() == [0, 1, 2]
    assert set(clf.predict_domain(X)) <= {-3, 1, 2}


def test_the_target_rows_shape_the_fit():
    """Changing only the unlabelled target rows changes the network."""
    X, y, sd = _data()
    ym = _masked(y, sd)
    a = DomainHeadClassifier(_net()).fit(X, ym, sample_domain=sd)
    X2 = X.copy()
    X2[sd < 0] += 1.0
    b = DomainHeadClassifier(_net()).fit(X2, ym, sample_domain=sd)
    assert not np.allclose(a.estimator_.coefs_[0], b.estimator_.coefs_[0])


def test_an_adversarial_domain_head_changes_the_trunk():
    X, y, sd = _data()
    params = {"max_iter": 20, "batch_size": 20}
    plain = make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net(**params)))
    adv = make_da_pipeline(CORALAdapter(), DomainHeadClassifier(
        _net(adversarial_heads={"domain": 1.0}, adversarial_schedule="dann", **params)))
    plain.fit(X, y.copy(), sample_domain=sd)
    adv.fit(X, y.copy(), sample_domain=sd)
    W_plain = plain[-1].get_estimator().estimator_.coefs_[0]
    W_adv = adv[-1].get_estimator().estimator_.coefs_[0]
    assert np.abs(W_adv - W_plain).max() > 1e-3
    # the head names were translated for the network; the given estimator is untouched
    fitted = adv[-1].get_estimator()
    assert fitted.estimator_.adversarial_heads == {0: 1.0}
    assert fitted.estimator.adversarial_heads == {"domain": 1.0}


def test_the_domain_head_gradient_is_reversed_into_the_trunk():
    """One full-batch SGD step: the trunk moves by -lr * (g_label + s * g_domain).

    With s = +1 (a plain domain head), 0 (lambda = 0: the head is detached
    from the trunk) and -1 (adversarial, lambda = 1), the trunk's step from the
    same start differs from the detached one by exactly +-lr * g_domain,
    and the heads' own weights take the same step in all three.
    """
    X, y, sd = _data()
    ym = _masked(y, sd)
    one_step = {"solver": "sgd", "momentum": 0.0, "max_iter": 1, "batch_size": len(X),
                "shuffle": False, "learning_rate_init": 0.1}
    fits = {}
    for name, adv in [("plain", None), ("detached", {"domain": 0.0}),
                      ("adversarial", {"domain": 1.0})]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = DomainHeadClassifier(_net(adversarial_heads=adv, **one_step))
            fits[name] = clf.fit(X, ym, sample_domain=sd).estimator_.coefs_
    plain, detached, adversarial = (fits[k] for k in ("plain", "detached", "adversarial"))
    step_domain = plain[0] - detached[0]
    assert np.abs(step_domain).max() > 1e-6
    np.testing.assert_allclose(adversarial[0] - detached[0], -step_domain, atol=1e-12)
    np.testing.assert_allclose(adversarial[1], plain[1], atol=1e-12)


def test_without_sample_domain_the_unlabelled_rows_are_the_target():
    X, y, sd = _data()
    ym = _masked(y, sd)
    a = DomainHeadClassifier(_net()).fit(X, ym)
    b = DomainHeadClassifier(_net()).fit(X, ym, sample_domain=sd)
    for wa, wb in zip(a.estimator_.coefs_, b.estimator_.coefs_):
        np.testing.assert_array_equal(wa, wb)


def test_string_labels_are_refused_by_skada_and_work_alone():
    X, y, sd = _data()
    names = np.array(["chair", "desk", "mug"])[y]
    with pytest.raises(TypeError, match="isnan"):  # skada's label check: encode labels
        make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net())).fit(
            X, names.copy(), sample_domain=sd)
    semi = names.astype(object)
    semi[sd < 0] = None
    clf = DomainHeadClassifier(_net()).fit(X, semi, sample_domain=sd)
    assert clf.classes_.tolist() == ["chair", "desk", "mug"]
    assert clf.estimator_.t_ == len(X) * clf.estimator_.n_iter_
    assert set(clf.predict(X)) <= {"chair", "desk", "mug"}


def test_score_leaves_unlabelled_rows_out():
    X, y, sd = _data()
    clf = DomainHeadClassifier(_net(max_iter=20)).fit(X, _masked(y, sd), sample_domain=sd)
    src = sd > 0
    expected = np.mean(clf.predict(X[src]) == y[src])
    assert clf.score(X, _masked(y, sd)) == pytest.approx(expected)
    assert np.isnan(clf.score(X[~src], _masked(y, sd)[~src]))


def test_reweighting_adapter_weights_reach_the_network_and_warn():
    X, y, sd = _data()
    clf = DomainHeadClassifier(_net()).set_fit_request(sample_weight=True)
    pipe = make_da_pipeline(DensityReweightAdapter(), clf)
    with pytest.warns(UserWarning, match="zero on every target row"):
        pipe.fit(X, y.copy(), sample_domain=sd)
    plain = DomainHeadClassifier(_net()).fit(X, _masked(y, sd), sample_domain=sd)
    assert not np.allclose(pipe[-1].get_estimator().estimator_.coefs_[0],
                           plain.estimator_.coefs_[0])


def test_grid_search_with_skada_splitter_and_scorers():
    X, y, sd = _data()
    pipe = make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net()))
    grid = {"domainheadclassifier__estimator__adversarial_heads": [None, {"domain": 0.5}],
            "domainheadclassifier__estimator__hidden": [(4,), (8,)]}
    search = GridSearchCV(
        pipe, grid, cv=SourceTargetShuffleSplit(n_splits=2, random_state=0),
        scoring={"entropy": PredictionEntropyScorer(), "target": SupervisedScorer()},
        refit="target", error_score="raise")
    search.fit(X, _masked(y, sd), sample_domain=sd, target_labels=y)
    for key in ("mean_test_entropy", "mean_test_target"):
        scores = search.cv_results_[key]
        assert len(scores) == 4 and np.all(np.isfinite(scores))
    assert np.all(search.cv_results_["mean_test_entropy"] <= 0)  # a negated entropy
    assert np.all((0 <= search.cv_results_["mean_test_target"])
                  & (search.cv_results_["mean_test_target"] <= 1))
    best = search.best_estimator_[-1].get_estimator()
    assert best.estimator_.t_ > 0 and best.estimator_.n_outputs_ == 2
    pred = search.best_estimator_.predict(X[sd < 0], sample_domain=sd[sd < 0])
    assert pred.shape == ((sd < 0).sum(),)


def test_a_fitted_da_pipeline_saves_and_loads_with_its_skada_types_trusted(tmp_path):
    X, y, sd = _data()
    pipe = make_da_pipeline(CORALAdapter(), DomainHeadClassifier(_net()))
    pipe.fit(X, y.copy(), sample_domain=sd)
    path = save_model(pipe, tmp_path / "da.skops")
    with pytest.raises(UntrustedTypesError) as info:
        load_model(path)
    assert {"skada.base.Shared", "skada._mapping.CORALAdapter"} <= set(info.value.types)
    assert not any(t.startswith("skoffice31.") for t in info.value.types)
    loaded = load_model(path, trusted=info.value.types)
    t = sd < 0
    np.testing.assert_array_equal(loaded.predict(X[t], sample_domain=sd[t]),
                                  pipe.predict(X[t], sample_domain=sd[t]))
    # the classifier alone is one of the package's trusted types
    alone = save_model(pipe[-1].get_estimator(), tmp_path / "alone.skops")
    np.testing.assert_array_equal(load_model(alone).predict(X), pipe[-1].get_estimator()
                                  .predict(X))


def test_clone_and_params():
    clf = DomainHeadClassifier(_net(hidden=(3,)), domain_head="per_domain")
    twin = clone(clf)
    assert twin.get_params()["estimator__hidden"] == (3,)
    assert twin.domain_head == "per_domain"
    X, y, sd = _data()
    default = DomainHeadClassifier().set_params(estimator=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = default.set_params(domain_head="source_target").fit(
            X[:, :2], _masked(y, sd), sample_domain=sd)
    assert isinstance(fitted.estimator_, MultiHeadMLPClassifier)
    assert fitted.n_features_in_ == 2 and fitted.embed(X[:3, :2]).shape == (3, 100)


@pytest.mark.parametrize("kwargs, sd_fn, match", [
    ({}, lambda sd: np.ones_like(sd), "source rows only"),
    ({}, lambda sd: np.where(sd > 0, 0, -1), "holds 0"),
    ({}, lambda sd: sd[:-1], "one entry per row"),
    ({}, lambda sd: sd + 0.5, "integers"),
    ({"adversarial_heads": {"object": 1.0}}, lambda sd: sd, "heads \\['domain', 'label'\\]"),
])
def test_bad_input(kwargs, sd_fn, match):
    X, y, sd = _data()
    with pytest.raises(ValueError, match=match):
        DomainHeadClassifier(_net(**kwargs)).fit(X, _masked(y, sd), sample_domain=sd_fn(sd))


def test_bad_labels():
    X, y, sd = _data()
    with pytest.raises(ValueError, match="Every label of y is missing"):
        DomainHeadClassifier(_net()).fit(X, -np.ones_like(y), sample_domain=sd)
    one = np.where(sd > 0, 2, -1)
    with pytest.raises(ValueError, match="one class only"):
        DomainHeadClassifier(_net()).fit(X, one, sample_domain=sd)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        DomainHeadClassifier(_net()).fit(X, np.where(sd > 0, y + 0.5, np.nan),
                                         sample_domain=sd)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # before any domain or label check
        DomainHeadClassifier(_net()).fit(X_nan, np.ones_like(y), sample_domain=np.ones_like(sd))
    with pytest.raises(ValueError, match="X has 99 samples but y has 100"):
        DomainHeadClassifier(_net()).fit(X[1:], _masked(y, sd), sample_domain=sd)
    with pytest.raises(ValueError, match="requires y to be passed"):
        DomainHeadClassifier(_net()).fit(X, None, sample_domain=sd)
    with pytest.raises(ValueError, match="domain_head"):
        DomainHeadClassifier(_net(), domain_head="nope").fit(X, _masked(y, sd),
                                                             sample_domain=sd)


def test_the_docs_code_blocks_run():
    """Every python code block of docs/skada.rst, in order, in one namespace."""
    text = (DOCS / "skada.rst").read_text(encoding="utf-8")
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text)
    assert len(blocks) >= 2
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in blocks:
            code = "\n".join(line[3:] for line in block.splitlines())
            exec(compile(code, str(DOCS / "skada.rst"), "exec"), namespace)
