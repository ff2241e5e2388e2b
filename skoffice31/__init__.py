"""skoffice31: multi-head neural networks the scikit-learn way.

The package's centre is :class:`MultiHeadMLPClassifier`, a multilayer
perceptron with a shared trunk and one softmax head per target column,
trained with its own NumPy back-propagation (SGD or Adam).
"""

from ._image import ImageFlattener
from ._multihead import MultiHeadMLPClassifier, TrainingCollapseWarning

__version__ = "0.1.0"

__all__ = ["ImageFlattener", "MultiHeadMLPClassifier", "TrainingCollapseWarning", "__version__"]
