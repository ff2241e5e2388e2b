"""scikit-learn's estimator checks for ImageFlattener.

ImageFlattener's tags say its input is images (3-D/4-D arrays, file paths,
PIL images) and not a 2-D feature matrix. scikit-learn's check suite builds
2-D numeric matrices only, so for such tags ``check_estimator`` runs no check
at all (it warns "Can't test estimator ImageFlattener which requires input
of type ..."). To run the suite anyway, the checks are given a subclass that
differs only in claiming 2-D input; every check that then feeds a 2-D matrix
fails for one reason, listed below, and the same properties are checked by
hand on image batches at the end of this file.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from skoffice31 import ImageFlattener


class _ImageFlattenerForChecks(ImageFlattener):
    """ImageFlattener whose tags admit 2-D input, so that the checks run."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


_NOT_IMAGES = (
    "the check fits on a 2-D numeric matrix, which ImageFlattener rejects by design "
    "(a 2-D array is ambiguous: flattened images or one greyscale image?); the "
    "property is checked on image batches in this file"
)
_MESSAGE = (
    "the check expects scikit-learn's wording for this input; ImageFlattener's "
    "error names the inputs it accepts (image arrays, file paths, PIL images) instead"
)

EXPECTED_FAILED = {
    **{name: _NOT_IMAGES for name in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_estimators_dtypes",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    )},
    **{name: _MESSAGE for name in (
        "check_positive_only_tag_during_fit",  # "Negative values in data"
        "check_complex_data",  # "Complex data not supported"
        "check_estimator_sparse_tag",  # "sparse"
        "check_estimator_sparse_array",
        "check_estimator_sparse_matrix",
        "check_fit2d_1sample",  # "1 sample"
        "check_fit2d_1feature",  # "1 feature(s)"
    )},
    "check_dtype_object": (
        "an object array of numbers is read as a sequence of images, and a row is "
        "neither a file path nor a PIL image"
    ),
    "check_transformer_data_not_an_array": (
        "X is an array-like that is not an ndarray; ImageFlattener accepts "
        "sequences of files or PIL images, and ndarrays of images"
    ),
}


def _expected_failed(estimator):
    return EXPECTED_FAILED


def test_every_expected_failure_has_a_reason():
    assert EXPECTED_FAILED
    for name, reason in EXPECTED_FAILED.items():
        assert name.startswith("check_") and isinstance(reason, str) and len(reason) > 20


@parametrize_with_checks(
    [_ImageFlattenerForChecks(size=(4, 4))], expected_failed_checks=_expected_failed
)
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)


# -------------------------------------------- the same properties, on images


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 9, 7, 3), dtype=np.uint8)


def test_fit_returns_self_and_does_not_change_params(images):
    est = ImageFlattener(size=(4, 5))
    params = est.get_params()
    assert est.fit(images) is est
    assert est.get_params() == params
    assert est.image_shape_ == (5, 4, 3) and est.n_features_out_ == 60


def test_transform_is_idempotent_and_row_wise(images):
    est = ImageFlattener(size=(4, 4)).fit(images)
    out = est.transform(images)
    assert out.shape == (12, 48) and out.dtype == np.float32
    np.testing.assert_array_equal(clone(est).fit(images).transform(images), out)
    order = np.random.default_rng(1).permutation(len(images))
    np.testing.assert_array_equal(est.transform(images[order]), out[order])  # sample order
    np.testing.assert_array_equal(est.transform(images[3:7]), out[3:7])  # subsets
    np.testing.assert_array_equal(est.fit_transform(images), out)


def test_readonly_and_non_contiguous_images(images):
    est = ImageFlattener(size=(4, 4)).fit(images)
    expected = est.transform(images)
    readonly = images.copy()
    readonly.setflags(write=False)
    np.testing.assert_array_equal(est.transform(readonly), expected)
    fortran = np.asfortranarray(images)
    np.testing.assert_array_equal(est.transform(fortran), expected)


def test_pickle_round_trip_and_dict_unchanged(images):
    est = ImageFlattener(size=(4, 4), mode="L").fit(images)
    before = dict(est.__dict__)
    out = est.transform(images)
    assert est.__dict__ == before  # transform changes nothing
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.transform(images), out)


def test_float_images_and_nan(images):
    est = ImageFlattener(size=None).fit(images)
    floats = images.astype(np.float64) / 255
    np.testing.assert_allclose(est.transform(floats), est.transform(images), atol=1 / 255)
    floats[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError):
        est.transform(floats)
