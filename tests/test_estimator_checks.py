"""scikit-learn's estimator checks."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skoffice31 import MultiHeadMLPClassifier

# No check is expected to fail. scikit-learn marks
# check_sample_weight_equivalence_on_dense_data as failing for MLPClassifier
# (minibatches split a repeated row from its twin); it passes here because the
# check's data is smaller than the default batch, so every step is full-batch
# and a weight of 2 equals a repeated row. tests/test_multihead.py checks the
# same equivalence on purpose.
EXPECTED_FAILED = {}


def _expected_failed(estimator):
    return EXPECTED_FAILED


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(
    [
        MultiHeadMLPClassifier(random_state=0),
        MultiHeadMLPClassifier(solver="sgd", hidden=(20, 10), learning_rate_init=0.01,
                               random_state=0),
    ],
    expected_failed_checks=_expected_failed,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
