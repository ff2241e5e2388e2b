"""ImageStandardizer, ImageStatistics and PrincipalComponents: the maths, the feature names, estimator
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
    ImageStatistics,
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
        # any number of features: each row one pixel high, its width inferred
        ImageStatistics(image_shape=(1, -1), n_channels=1),
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


# ------------------------------------------------------------ ImageStatistics


def _by_hand(image):
    """The eight statistics of one channel (h, w), pixel by pixel, in pure Python."""
    h, w = image.shape
    values = [float(v) for v in image.ravel()]
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
    dx = [abs(image[i, j + 1] - image[i, j]) for i in range(h) for j in range(w - 1)]
    dy = [abs(image[i + 1, j] - image[i, j]) for i in range(h - 1) for j in range(w)]

    def at(i, j):  # the edge repeated
        return image[min(max(i, 0), h - 1), min(max(j, 0), w - 1)]

    lap = [at(i - 1, j) + at(i + 1, j) + at(i, j - 1) + at(i, j + 1) - 4 * at(i, j)
           for i in range(h) for j in range(w)]
    lap_mean = sum(lap) / len(lap)
    return [mean, std, min(values), max(values),
            sum(dx) / len(dx) if dx else 0.0, sum(dy) / len(dy) if dy else 0.0,
            sum(abs(v) for v in lap) / len(lap),
            (sum((v - lap_mean) ** 2 for v in lap) / len(lap)) ** 0.5]


@pytest.mark.parametrize("h,w,c", [(5, 7, 3), (1, 6, 3), (6, 1, 2), (1, 1, 1), (3, 3, 1)])
def test_image_statistics_match_a_hand_computation(h, w, c):
    images = np.random.default_rng(h * 10 + w).uniform(0, 1, (4, h, w, c))
    X = images.reshape(4, -1)
    out = ImageStatistics(image_shape=(h, w), n_channels=c).fit_transform(X)
    assert out.shape == (4, 8 * c)
    for n in range(4):
        expected = np.array([_by_hand(images[n, :, :, k]) for k in range(c)])  # (c, 8)
        # statistic by statistic, channel by channel
        np.testing.assert_allclose(out[n], expected.T.ravel(), atol=1e-12)


def test_image_statistics_of_a_constant_and_a_striped_image():
    const = np.full((1, 4 * 4), 0.25)
    out = ImageStatistics(n_channels=1).fit_transform(const)[0]
    np.testing.assert_allclose(out, [0.25, 0, 0.25, 0.25, 0, 0, 0, 0], atol=1e-15)
    # vertical stripes 0 1 0 1: every horizontal neighbour differs by 1, no vertical one
    stripes = np.tile([0.0, 1.0, 0.0, 1.0], (4, 1)).reshape(1, -1)
    out = ImageStatistics(n_channels=1).fit_transform(stripes)[0]
    assert out[4] == 1.0 and out[5] == 0.0


def test_image_statistics_infer_square_images_and_blocks_do_not_matter():
    from skoffice31 import _preprocessing

    X = np.random.default_rng(5).uniform(0, 1, (_preprocessing._BLOCK_ROWS * 2 + 3, 6 * 6 * 3))
    st = ImageStatistics().fit(X)
    assert st.image_shape_ == (6, 6) and st.n_features_out_ == 24
    out = st.transform(X)
    # the rows transformed one at a time: the same numbers as block by block
    np.testing.assert_array_equal(np.vstack([st.transform(X[i:i + 1]) for i in range(len(X))]),
                                  out)


def test_image_statistics_keep_float32():
    X = np.random.default_rng(6).uniform(0, 1, (3, 4 * 4 * 3))
    out32 = ImageStatistics().fit_transform(X.astype(np.float32))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, ImageStatistics().fit_transform(X), rtol=1e-6, atol=1e-6)


def test_image_statistics_infer_one_side_of_the_shape():
    X = np.random.default_rng(7).uniform(0, 1, (2, 3 * 5 * 2))
    full = ImageStatistics(image_shape=(3, 5), n_channels=2).fit_transform(X)
    for shape in ((-1, 5), (3, -1)):
        st = ImageStatistics(image_shape=shape, n_channels=2).fit(X)
        assert st.image_shape_ == (3, 5)
        np.testing.assert_array_equal(st.transform(X), full)


def test_image_statistics_feature_names():
    st = ImageStatistics(n_channels=2).fit(np.zeros((2, 2 * 2 * 2)))
    names = st.get_feature_names_out().tolist()
    assert names[:4] == ["channel0_mean", "channel1_mean", "channel0_std", "channel1_std"]
    assert names[-1] == "channel1_std_laplacian" and len(names) == 16


@pytest.mark.parametrize("params,n_features,match", [
    ({}, 7 * 7 * 3 + 1, "not a square image of n_channels=3.*image_shape=.height, width."),
    ({"n_channels": 2}, 5 * 5 * 3, "not a square image of n_channels=2"),
    ({"image_shape": (4, 5)}, 4 * 4 * 3, r"image_shape=\(4, 5\) with n_channels=3 makes 60"),
    ({"image_shape": (0, 5)}, 1, "image_shape must be positive"),
    ({"image_shape": (-1, -1)}, 12, "one side may be -1"),
    ({"image_shape": (-1, 5)}, 5 * 3 * 2 + 3, "not a multiple of 15 .image_shape=.-1, 5."),
    ({"image_shape": ("a", 5)}, 12, "image_shape must be .height, width."),
])
def test_image_statistics_refuse_a_shape_that_does_not_fit(params, n_features, match):
    with pytest.raises(ValueError, match=match):
        ImageStatistics(**params).fit(np.zeros((2, max(n_features, 1))))


def test_saved_pipeline_applies_the_same_statistics(tmp_path):
    from sklearn.pipeline import make_union

    data = load_office_digits(size=8)
    rows = np.random.RandomState(1).permutation(len(data.images))[:120]
    model = make_pipeline(
        ImageFlattener(size=(8, 8)),
        make_union("passthrough", make_pipeline(ImageStatistics((8, 8)), StandardScaler())),
        MultiHeadMLPClassifier(hidden=(8,), max_iter=3, random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data.images[rows], data.target[rows])
    assert "skoffice31._preprocessing.ImageStatistics" in TRUSTED_TYPES
    assert model[-1].n_features_in_ == 8 * 8 * 3 + 24
    loaded = load_model(save_model(model, tmp_path / "stats.skops"))
    images = data.images[rows[:20]]
    np.testing.assert_array_equal(loaded[:-1].transform(images), model[:-1].transform(images))
    for a, b in zip(loaded.predict_proba(images), model.predict_proba(images)):
        np.testing.assert_array_equal(a, b)
