"""ImageStandardizer and PrincipalComponents: the maths, the feature names, estimator
checks, pipelines and saving."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skoffice31 import (
    ImageFlattener,
    ImageStandardizer,
    MultiHeadMLPClassifier,
    PrincipalComponents,
)
from skoffice31.datasets import load_office_digits
from skoffice31.persistence import TRUSTED_TYPES, load_model, save_model


@parametrize_with_checks(
    [
        ImageStandardizer(),
        ImageStandardizer(per_channel=True, n_channels=1, append_stats=True),
        PrincipalComponents(random_state=0),
        PrincipalComponents(n_components=2, random_state=0),
    ]
)
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)


# two 2x1-pixel RGB "images", channel-last: R0 G0 B0 R1 G1 B1
X = np.array([[0.1, 0.2, 0.9, 0.3, 0.2, 0.5],
              [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]])


def test_whole_image_matches_a_hand_computation():
    # row 0: mean 2.2/6, deviations computed by hand
    m = 2.2 / 6
    dev = np.array([0.1, 0.2, 0.9, 0.3, 0.2, 0.5]) - m
    s = np.sqrt((dev ** 2).sum() / 6)
    out = ImageStandardizer(eps=0).fit_transform(X)
    np.testing.assert_allclose(out[0], dev / s)
    # row 1: three ones and three zeros: mean 1/2, std 1/2 -> +-1
    np.testing.assert_allclose(out[1], [1, -1, -1, 1, -1, 1])


def test_per_channel_matches_a_hand_computation():
    # row 0: R (0.1, 0.3) -> (-1, 1); G (0.2, 0.2) constant -> 0 (eps keeps
    # 0 / 0 away); B (0.9, 0.5) -> (1, -1)
    out = ImageStandardizer(per_channel=True).fit_transform(X)
    np.testing.assert_allclose(out[0], [-1, 0, 1, 1, 0, -1], atol=1e-6)
    # row 1: R (1, 1) and G (0, 0) constant -> 0; B (0, 1) -> (-1, 1)
    np.testing.assert_allclose(out[1], [0, 0, -1, 0, 0, 1], atol=1e-6)


def test_each_image_gets_mean_0_and_std_1():
    rng = np.random.default_rng(0)
    Xr = rng.uniform(0, 1, (5, 30)) * rng.uniform(0.1, 2, (5, 1)) + rng.uniform(0, 3, (5, 1))
    out = ImageStandardizer(eps=0).fit_transform(Xr)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1), 1, rtol=1e-6)
    out = ImageStandardizer(per_channel=True, eps=0).fit_transform(Xr).reshape(5, 10, 3)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1), 1, rtol=1e-6)


def test_append_stats_appends_the_channel_means_and_stds_of_the_input():
    st = ImageStandardizer(append_stats=True, eps=0).fit(X)
    out = st.transform(X)
    assert out.shape == (2, 12) and st.n_features_out_ == 12
    np.testing.assert_allclose(out[:, :6], ImageStandardizer(eps=0).fit_transform(X))
    np.testing.assert_allclose(out[0, 6:9], [0.2, 0.2, 0.7])  # R, G, B means
    np.testing.assert_allclose(out[0, 9:], [0.1, 0.0, 0.2], atol=1e-12)  # R, G, B stds
    np.testing.assert_allclose(out[1, 6:], [1, 0, 0.5, 0, 0, 0.5])


def test_the_output_keeps_float32():
    out = ImageStandardizer(append_stats=True).fit_transform(X.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ImageStandardizer(append_stats=True).fit_transform(X),
                               rtol=1e-5, atol=1e-6)


def test_feature_names():
    st = ImageStandardizer().fit(X)
    assert st.get_feature_names_out().tolist() == [f"x{i}" for i in range(6)]
    st = ImageStandardizer(append_stats=True).fit(X)
    names = st.get_feature_names_out(["a", "b", "c", "d", "e", "f"]).tolist()
    assert names == ["a", "b", "c", "d", "e", "f", "channel0_mean", "channel1_mean",
                     "channel2_mean", "channel0_std", "channel1_std", "channel2_std"]
    # after the flattener: the pixels keep their names
    images = np.zeros((2, 2, 2, 3), dtype=np.uint8)
    pipe = make_pipeline(ImageFlattener(size=2), ImageStandardizer(append_stats=True))
    pipe.fit(images)
    names = pipe.get_feature_names_out().tolist()
    assert names[:3] == ["pixel_0_0_R", "pixel_0_0_G", "pixel_0_0_B"]
    assert names[-1] == "channel2_std" and len(names) == 18


@pytest.mark.parametrize("params", [{"per_channel": True}, {"append_stats": True}])
def test_a_row_that_is_not_whole_pixels_is_refused(params):
    with pytest.raises(ValueError, match="not a multiple of n_channels=3.*Set n_channels"):
        ImageStandardizer(**params).fit(np.zeros((2, 7)))
    ImageStandardizer(**params, n_channels=7).fit(np.zeros((2, 7)))  # 7 x 1 channel: fine
    ImageStandardizer().fit(np.zeros((2, 7)))  # whole image: channels are not used


def test_saved_pipeline_applies_the_same_preprocessing(tmp_path):
    data = load_office_digits(size=8)
    rows = np.random.RandomState(0).permutation(len(data.images))[:200]
    model = make_pipeline(
        ImageFlattener(size=(8, 8)), ImageStandardizer(per_channel=True, append_stats=True),
        StandardScaler(), MultiHeadMLPClassifier(hidden=(8,), max_iter=3, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data.images[rows], data.target[rows])
    assert "skoffice31._preprocessing.ImageStandardizer" in TRUSTED_TYPES
    loaded = load_model(save_model(model, tmp_path / "m.skops"))
    images = data.images[rows[:30]]
    np.testing.assert_array_equal(loaded[:-1].transform(images), model[:-1].transform(images))
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    for a, b in zip(loaded.predict_proba(images), model.predict_proba(images)):
        np.testing.assert_array_equal(a, b)
    # the preprocessing is part of the model: without it the predictions differ
    flat = model[0].transform(images)
    raw = model[-1].predict_proba(
        np.hstack([flat, np.zeros((len(flat), 6), np.float32)]))
    assert not all(np.allclose(a, b) for a, b in zip(raw, model.predict_proba(images)))


# ------------------------------------------------------------ PrincipalComponents


def test_principal_components_are_sklearns_pca_when_fewer_than_the_data_has():
    from sklearn.decomposition import PCA

    X = np.random.default_rng(0).normal(size=(60, 30))
    pc = PrincipalComponents(n_components=8, random_state=3).fit(X)
    ref = PCA(8, svd_solver="randomized", random_state=3).fit(X)
    assert pc.n_components_ == 8 and pc.pca_.svd_solver == "randomized"
    np.testing.assert_array_equal(pc.transform(X), ref.transform(X))
    np.testing.assert_array_equal(pc.explained_variance_ratio_, ref.explained_variance_ratio_)
    # the projection of the centred rows on orthonormal components
    np.testing.assert_allclose(pc.pca_.components_ @ pc.pca_.components_.T, np.eye(8),
                               atol=1e-12)
    np.testing.assert_allclose(pc.transform(X), (X - X.mean(axis=0)) @ pc.pca_.components_.T)


@pytest.mark.parametrize("shape,kept", [((40, 192), 40), ((300, 12), 12), ((5, 5), 5)])
def test_principal_components_keep_at_most_what_the_data_has(shape, kept):
    X = np.random.default_rng(1).normal(size=shape)
    pc = PrincipalComponents(n_components=512, random_state=0).fit(X)
    assert pc.n_components_ == kept and pc.pca_.svd_solver == "full"
    Z = pc.transform(X)
    assert Z.shape == (shape[0], kept)
    # every component kept: the projection loses nothing
    np.testing.assert_allclose(pc.pca_.inverse_transform(Z), X, atol=1e-10)
    assert pc.explained_variance_ratio_.sum() == pytest.approx(1.0)


def test_principal_components_keep_float32_and_name_their_outputs():
    X = np.random.default_rng(2).normal(size=(20, 6)).astype(np.float32)
    pc = PrincipalComponents(n_components=3, random_state=0).fit(X)
    assert pc.transform(X).dtype == np.float32
    assert pc.get_feature_names_out().tolist() == [
        "principalcomponents0", "principalcomponents1", "principalcomponents2"]


def test_saved_pipeline_applies_the_same_projection(tmp_path):
    X = np.random.default_rng(3).normal(size=(30, 12))
    y = np.column_stack([np.arange(30) % 2, np.arange(30) % 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(StandardScaler(), PrincipalComponents(5, random_state=0),
                             MultiHeadMLPClassifier(hidden=(4,), max_iter=3,
                                                    random_state=0)).fit(X, y)
    path = tmp_path / "pca.skops"
    save_model(pipe, path)
    assert "skoffice31._preprocessing.PrincipalComponents" in TRUSTED_TYPES
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(X)[1], pipe.predict_proba(X)[1])
    assert loaded[1].n_components_ == 5
