"""skoffice31: multi-head neural networks the scikit-learn way.

The package's centre is :class:`MultiHeadMLPClassifier`, a multilayer
perceptron with a shared trunk and one softmax head per target column,
trained with its own NumPy back-propagation (SGD or Adam). It supports
scikit-learn's callback API (:mod:`skoffice31.callbacks`). The Office-31
two-head study is :mod:`skoffice31.study`; :mod:`skoffice31.parallel` runs
joblib work (the study, a grid search) on a dask cluster.
"""

from ._image import ImageFlattener
from ._multihead import MultiHeadMLPClassifier, TrainingCollapseWarning
from ._preprocessing import ImageStandardizer, ImageStatistics, PrincipalComponents

__version__ = "0.1.0"

__all__ = [
    "ImageFlattener",
    "ImageStandardizer",
    "ImageStatistics",
    "PrincipalComponents",
    "MultiHeadMLPClassifier",
    "TrainingCollapseWarning",
    "__version__",
]
