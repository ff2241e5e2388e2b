"""study._train.fit_context: the one set-up of a fit, shared by the runner and ``train``."""

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning

from skoffice31 import TrainingCollapseWarning
from skoffice31.study import StudySettings
from skoffice31.study._train import fit_context


@pytest.fixture
def settings():
    return StudySettings.from_preset("study", epochs=1, hidden=[(4,)], solvers=["sgd"])


def test_collapses_are_kept_on_one_line_and_others_reissued(settings):
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        with fit_context(settings) as collapses:
            warnings.warn(TrainingCollapseWarning("the loss grew\n  far above its start"))
            warnings.warn(ConvergenceWarning("max_iter reached"))
            warnings.warn(UserWarning("batch_size clipped"))
            assert collapses == []  # filled when the block ends
    assert collapses == ["the loss grew far above its start"]
    assert [(w.category, str(w.message)) for w in outside] == [(UserWarning, "batch_size clipped")]


def test_reissue_false_drops_the_other_warnings(settings):
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        with fit_context(settings, reissue=False) as collapses:
            warnings.warn(UserWarning("batch_size clipped"))
            warnings.warn(TrainingCollapseWarning("dead units"))
    assert outside == [] and collapses == ["dead units"]


def test_collapses_are_kept_when_the_block_raises(settings):
    with pytest.raises(ArithmeticError):
        with fit_context(settings) as collapses:
            warnings.warn(TrainingCollapseWarning("diverged"))
            raise ArithmeticError("nan loss")
    assert collapses == ["diverged"]


def test_blas_threads_are_limited_inside_only(settings):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    limited = StudySettings.from_preset("study", epochs=1, hidden=[(4,)], solvers=["sgd"],
                                        blas_threads=1)

    def blas_threads():
        return [p["num_threads"] for p in threadpoolctl.threadpool_info()
                if p["user_api"] == "blas"]

    before = blas_threads()
    if not before:
        pytest.skip("no BLAS library found by threadpoolctl")
    with fit_context(limited):
        assert set(blas_threads()) == {1}
    assert blas_threads() == before
