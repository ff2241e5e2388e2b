"""Tests for skoffice31.ImageFlattener."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils._param_validation import InvalidParameterError

from skoffice31 import ImageFlattener


def _rgb(h=12, w=10, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)


@pytest.fixture
def image_files(tmp_path):
    """A folder of unusual but valid images, and broken files."""
    rng = np.random.RandomState(0)
    files = {}
    rgb = _rgb(40, 30)
    files["rgb_jpg"] = tmp_path / "rgb.jpg"
    Image.fromarray(rgb).save(files["rgb_jpg"], quality=95)
    files["upper_JPG"] = tmp_path / "UPPER.JPG"
    Image.fromarray(rgb).save(files["upper_JPG"], format="JPEG")
    files["gray_jpg"] = tmp_path / "gray.jpg"
    Image.fromarray(rng.randint(0, 256, (40, 30)).astype(np.uint8), "L").save(
        files["gray_jpg"])
    files["cmyk_jpg"] = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(files["cmyk_jpg"], format="JPEG")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    files["rgba_png"] = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(files["rgba_png"])
    files["palette_png"] = tmp_path / "palette.png"
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(
        files["palette_png"])
    # broken ones
    full = tmp_path / "full_for_trunc.jpg"
    Image.fromarray(_rgb(200, 200)).save(full, quality=95)
    files["truncated"] = tmp_path / "truncated.jpg"
    files["truncated"].write_bytes(full.read_bytes()[:600])
    files["text"] = tmp_path / "notes.jpg"
    files["text"].write_text("this is not an image\n")
    files["ds_store"] = tmp_path / ".DS_Store"
    files["ds_store"].write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    return files


# ----------------------------------------------------------------- arrays
def test_uint8_array_no_resize_is_exact_and_c_order():
    X = np.stack([_rgb(seed=i) for i in range(3)])
    out = ImageFlattener(size=None).fit_transform(X)
    assert out.dtype == np.float32
    assert out.shape == (3, 12 * 10 * 3)
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, X.reshape(3, -1) / 255.0, rtol=1e-6)
    # C order: row, column, channel
    assert out[1, (2 * 10 + 4) * 3 + 1] == pytest.approx(X[1, 2, 4, 1] / 255)


def test_scale_one_gives_raw_pixels():
    X = np.stack([_rgb(seed=i) for i in range(2)])
    out = ImageFlattener(size=None, scale=1.0).fit_transform(X)
    np.testing.assert_array_equal(out, X.reshape(2, -1).astype(np.float32))


def test_resize_shape_and_int_size():
    X = np.stack([_rgb(seed=i) for i in range(2)])
    t = ImageFlattener(size=(5, 4)).fit(X)  # (width, height)
    assert t.image_shape_ == (4, 5, 3)
    assert t.transform(X).shape == (2, 60)
    assert ImageFlattener(size=6).fit_transform(X).shape == (2, 6 * 6 * 3)


def test_grayscale_array_and_mode_conversions():
    X = np.stack([_rgb(seed=i) for i in range(2)])
    gray = ImageFlattener(size=None, mode="L", scale=1.0).fit_transform(X)
    expected = np.stack([np.asarray(Image.fromarray(x).convert("L")) for x in X])
    np.testing.assert_array_equal(gray, expected.reshape(2, -1))
    # (n, H, W) greyscale to RGB repeats the channel
    out = ImageFlattener(size=None, scale=1.0).fit_transform(expected)
    np.testing.assert_array_equal(out.reshape(2, 12, 10, 3)[..., 2], expected)
    # RGBA arrays lose their alpha channel
    rgba = np.concatenate([X, np.zeros(X.shape[:3] + (1,), np.uint8)], axis=3)
    out = ImageFlattener(size=None, scale=1.0).fit_transform(rgba)
    np.testing.assert_array_equal(out, X.reshape(2, -1))


def test_float_arrays_in_unit_range():
    X = np.stack([_rgb(seed=i) for i in range(2)])
    f = X.astype(np.float64) / 255.0
    a = ImageFlattener(size=None).fit_transform(f)
    b = ImageFlattener(size=None).fit_transform(X)
    np.testing.assert_allclose(a, b, atol=1e-6)
    # resizing float images stays close to resizing uint8 images
    a = ImageFlattener(size=(5, 6)).fit_transform(f)
    b = ImageFlattener(size=(5, 6)).fit_transform(X)
    np.testing.assert_allclose(a, b, atol=2 / 255)
    a = ImageFlattener(size=(5, 6), mode="L").fit_transform(f)
    b = ImageFlattener(size=(5, 6), mode="L").fit_transform(X)
    np.testing.assert_allclose(a, b, atol=2 / 255)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ImageFlattener(size=None).fit_transform(f * 255)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 4)), "shape"),
        (np.zeros((2, 4, 4, 2), np.uint8), "channels"),
        (np.zeros((0, 4, 4, 3), np.uint8), "0 sample"),
        (np.full((2, 4, 4), np.nan), "NaN"),
        (np.full((2, 4, 4), 300, dtype=np.int64), "0..255"),
    ],
)
def test_bad_arrays(bad, match):
    with pytest.raises(ValueError, match=match):
        ImageFlattener(size=None).fit_transform(bad)


def test_inverse_transform_round_trip_and_feature_names():
    X = np.stack([_rgb(seed=i) for i in range(3)])
    t = ImageFlattener(size=None)
    Xt = t.fit_transform(X)
    back = t.inverse_transform(Xt)
    assert back.dtype == np.uint8 and back.shape == X.shape
    np.testing.assert_array_equal(back, X)
    names = t.get_feature_names_out()
    assert names.shape == (Xt.shape[1],)
    assert names[0] == "pixel_0_0_R" and names[1] == "pixel_0_0_G"
    assert names[3] == "pixel_0_1_R" and names[-1] == "pixel_11_9_B"
    tl = ImageFlattener(size=(4, 3), mode="L").fit(X)
    assert tl.inverse_transform(tl.transform(X)).shape == (3, 3, 4, 1)
    assert list(tl.get_feature_names_out()[:2]) == ["pixel_0_0_L", "pixel_0_1_L"]
    with pytest.raises(ValueError, match="features"):
        t.inverse_transform(np.zeros((1, 7)))


def test_size_none_requires_uniform_sizes():
    imgs = [Image.fromarray(_rgb(12, 10)), Image.fromarray(_rgb(8, 10))]
    with pytest.raises(ValueError, match="one size"):
        ImageFlattener(size=None).fit_transform(imgs)
    t = ImageFlattener(size=None).fit(np.stack([_rgb(12, 10)] * 2))
    with pytest.raises(ValueError, match="fitted for"):
        t.transform(np.stack([_rgb(8, 10)] * 2))


# ------------------------------------------------------------------ files
def test_paths_pil_and_arrays_agree(image_files):
    p = image_files["rgb_jpg"]
    with Image.open(p) as im:
        im.load()
        arr = np.asarray(im.convert("RGB"))[None]
        pil = im.copy()
    t = ImageFlattener(size=None)
    a = t.fit_transform([str(p)])
    b = t.fit_transform([Path(p)])
    c = t.fit_transform([pil])
    d = t.fit_transform(arr)
    for other in (b, c, d):
        np.testing.assert_array_equal(a, other)
    # resizing by less than 2x (draft cannot reduce): paths == PIL images
    t = ImageFlattener(size=(25, 35))
    np.testing.assert_array_equal(t.fit_transform([p]), t.fit_transform([pil]))


def test_unusual_files_are_converted(image_files):
    keys = ["rgb_jpg", "upper_JPG", "gray_jpg", "cmyk_jpg", "rgba_png", "palette_png"]
    paths = [image_files[k] for k in keys]
    out = ImageFlattener(size=(8, 8)).fit_transform(paths)
    assert out.shape == (len(keys), 8 * 8 * 3)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    gray = out[keys.index("gray_jpg")].reshape(8, 8, 3)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])  # grey -> RGB
    # CMYK is converted to RGB colours close to the original image
    rgb = out[keys.index("rgb_jpg")]
    cmyk = out[keys.index("cmyk_jpg")]
    assert np.abs(rgb - cmyk).mean() < 0.15
    outl = ImageFlattener(size=(8, 8), mode="L").fit_transform(paths)
    assert outl.shape == (len(keys), 64)


@pytest.mark.parametrize("key", ["truncated", "text", "ds_store"])
def test_broken_file_raises_naming_it(image_files, key):
    paths = [image_files["rgb_jpg"], image_files[key], image_files["gray_jpg"]]
    with pytest.raises(ValueError, match=image_files[key].name):
        ImageFlattener(size=(8, 8)).fit_transform(paths)


def test_missing_file_raises_naming_it(tmp_path, image_files):
    missing = tmp_path / "no_such_image.jpg"
    with pytest.raises(ValueError, match="no_such_image.jpg.*does not exist"):
        ImageFlattener(size=(8, 8)).fit_transform([image_files["rgb_jpg"], missing])
    with pytest.raises(ValueError, match="no_such_image.jpg"):
        ImageFlattener(size=None).fit([missing])


def test_broken_file_in_parallel_raises(image_files):
    from joblib import parallel_config

    paths = [image_files["rgb_jpg"]] * 70 + [image_files["text"]]
    # threads: an error makes joblib kill its process workers, and starting
    # them again costs seconds; the error path through joblib is the same.
    with parallel_config(backend="threading"):
        with pytest.raises(ValueError, match="notes.jpg"):
            ImageFlattener(size=(8, 8), n_jobs=2).fit_transform(paths)


def test_n_jobs_gives_same_result(image_files):
    paths = [image_files[k] for k in ("rgb_jpg", "gray_jpg", "rgba_png")] * 30
    a = ImageFlattener(size=(9, 7)).fit_transform(paths)
    b = ImageFlattener(size=(9, 7), n_jobs=2).fit_transform(paths)
    np.testing.assert_array_equal(a, b)


def test_jpeg_draft_decoding_used_when_shrinking(tmp_path, monkeypatch):
    from PIL import JpegImagePlugin

    big = tmp_path / "big.jpg"
    yy, xx = np.mgrid[0:800, 0:800]
    smooth = np.dstack([xx * 255 // 800, yy * 255 // 800, (xx + yy) * 255 // 1600])
    Image.fromarray(smooth.astype(np.uint8)).save(big, quality=95)
    calls = []
    orig = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append(size)
        return orig(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    fast = ImageFlattener(size=(100, 100)).fit_transform([big])
    assert calls == [(100, 100)]
    # no draft without shrinking
    calls.clear()
    ImageFlattener(size=None).fit_transform([big])
    assert calls == []
    # drafted result is close to the full decode
    with Image.open(big) as im:
        full = np.asarray(im.convert("RGB").resize((100, 100), Image.BILINEAR))
    assert np.abs(fast * 255 - full.reshape(1, -1)).mean() < 3


def test_params_are_validated():
    X = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(InvalidParameterError):
        ImageFlattener(mode="CMYK").fit(X)
    with pytest.raises(InvalidParameterError):
        ImageFlattener(resample="fancy").fit(X)
    with pytest.raises(InvalidParameterError):
        ImageFlattener(scale=0).fit(X)
    with pytest.raises(ValueError, match="size"):
        ImageFlattener(size=(0, 4)).fit(X)
    with pytest.raises(ValueError, match="size"):
        ImageFlattener(size=(1, 2, 3)).fit(X)
    with pytest.raises(ValueError, match="single image"):
        ImageFlattener().fit("photo.jpg")
    with pytest.raises(ValueError, match="Element 1"):
        ImageFlattener().fit(["a.jpg", 3])


def test_clone_pickle_and_tags():
    X = np.stack([_rgb(seed=i) for i in range(2)])
    t = ImageFlattener(size=(5, 5), mode="L", scale=1.0, resample="nearest")
    c = clone(t)
    assert c.get_params() == t.get_params()
    t.fit(X)
    t2 = pickle.loads(pickle.dumps(t))
    np.testing.assert_array_equal(t.transform(X), t2.transform(X))
    tags = t.__sklearn_tags__()
    assert tags.transformer_tags.preserves_dtype == ["float32"]
    assert not tags.target_tags.required
    with pytest.raises(Exception, match="not fitted"):
        ImageFlattener().transform(X)


# ------------------------------------------------ with the estimator
def _two_head_images(n_per=12, seed=0):
    """Tiny images whose colour is one head and whose brightness the other."""
    rng = np.random.RandomState(seed)
    imgs, y = [], []
    for colour, ch in (("red", 0), ("green", 1), ("blue", 2)):
        for light in ("dark", "light"):
            for _ in range(n_per):
                img = rng.randint(0, 30, size=(10, 10, 3))
                img[..., ch] += 120 if light == "dark" else 220
                imgs.append(np.clip(img, 0, 255).astype(np.uint8))
                y.append((colour, light))
    return np.stack(imgs), np.array(y, dtype=object)


def test_pipeline_with_two_heads():
    from skoffice31 import MultiHeadMLPClassifier

    X, y = _two_head_images()
    pipe = make_pipeline(
        ImageFlattener(size=(6, 6)),
        MultiHeadMLPClassifier(hidden=(16,), max_iter=300, random_state=0,
                               learning_rate_init=1e-2),
    )
    assert isinstance(pipe, Pipeline)
    pipe.fit(X, y)
    pred = pipe.predict(X)
    assert pred.shape == y.shape
    assert (pred == y).all(axis=0).mean() >= 0.5
    assert pipe.score(X, y) > 0.9


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_with_file_paths(tmp_path):
    from skoffice31 import MultiHeadMLPClassifier

    X, y = _two_head_images(n_per=4)
    paths = []
    for i, img in enumerate(X):
        p = tmp_path / f"img_{i}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    pipe = make_pipeline(ImageFlattener(size=(5, 5)),
                         MultiHeadMLPClassifier(hidden=(8,), max_iter=50,
                                                random_state=0))
    pipe.fit(paths, y)
    assert pipe.predict(paths).shape == y.shape


def test_grid_search_over_size():
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from skoffice31 import MultiHeadMLPClassifier

    X, y = _two_head_images(n_per=10)
    pipe = Pipeline([
        ("imageflattener", ImageFlattener()),
        ("clf", MultiHeadMLPClassifier(hidden=(8,), max_iter=30, random_state=0,
                                       learning_rate_init=1e-2)),
    ])
    search = GridSearchCV(
        pipe, {"imageflattener__size": [(4, 4), (8, 8)]}, cv=3, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert search.best_params_["imageflattener__size"] in [(4, 4), (8, 8)]
    assert len(search.cv_results_["mean_test_score"]) == 2
    best = search.best_estimator_.named_steps["imageflattener"]
    side = search.best_params_["imageflattener__size"][0]
    assert best.n_features_out_ == side * side * 3
    assert search.predict(X).shape == y.shape


def test_string_array_series_and_pandas_output(image_files):
    import pandas as pd

    paths = [str(image_files["rgb_jpg"]), str(image_files["gray_jpg"])]
    a = ImageFlattener(size=(4, 4)).fit_transform(paths)
    b = ImageFlattener(size=(4, 4)).fit_transform(np.array(paths))
    c = ImageFlattener(size=(4, 4)).fit_transform(pd.Series(paths))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    df = ImageFlattener(size=(4, 4)).set_output(transform="pandas").fit_transform(paths)
    assert list(df.columns[:2]) == ["pixel_0_0_R", "pixel_0_0_G"]
    np.testing.assert_array_equal(df.to_numpy(), a)
