"""The images of a transfer run: Office-31 from a folder, or the built-in data."""

import numpy as np
from sklearn.utils import Bunch

__all__ = ["BUILTIN_TRANSFER_SIZE", "OFFICE31_TRANSFER_SIZE", "load_transfer_data"]

#: Image sides of the transfer runs: 16x16 for both the photos and the
#: built-in data. On the six Office-31 tasks (3 seeds) every method's mean
#: target accuracy was 2 to 4.5 points higher at 16x16 than at 32x32
#: (benchmarks/results/transfer_cli and transfer_size32, docs/transfer.rst).
OFFICE31_TRANSFER_SIZE = 16
BUILTIN_TRANSFER_SIZE = 16


def load_transfer_data(path=None, *, size=None, cache=True, n_jobs=None):
    """The images, domains and object labels of a transfer run.

    Parameters
    ----------
    path : path-like or None, default=None
        An Office-31 folder (:func:`~skoffice31.datasets.load_office31`);
        ``None``: the built-in :func:`~skoffice31.datasets.load_office_digits`.
    size : int or None, default=None
        Image side; default :data:`OFFICE31_TRANSFER_SIZE` (16) for the
        photos, :data:`BUILTIN_TRANSFER_SIZE` (16) for the built-in data.
    cache, n_jobs
        As :func:`~skoffice31.datasets.load_office31`.

    Returns
    -------
    data : Bunch
        ``X`` (n_images, size * size * 3), ``domains``, ``y`` (object
        labels), ``image_shape`` (height, width, channels), ``size`` and
        ``description`` (one line).
    """
    from ..datasets import load_office31, load_office_digits

    if path is None:
        side = BUILTIN_TRANSFER_SIZE if size is None else int(size)
        data = load_office_digits(size=(side, side))
        description = (f"built-in Office-digits (a stand-in made from scikit-learn's digits, "
                       f"not Office-31), {len(data.data)} images at {side}x{side}")
    else:
        side = OFFICE31_TRANSFER_SIZE if size is None else int(size)
        data = load_office31(path, size=(side, side), cache=cache, n_jobs=n_jobs)
        description = f"Office-31 from {path}, {len(data.data)} images at {side}x{side}"
    domains = np.asarray(data.target[:, 0], dtype=object)
    counts = ", ".join(f"{d} {int((domains == d).sum())}" for d in np.unique(domains))
    return Bunch(X=data.data, domains=domains, y=np.asarray(data.target[:, 1], dtype=object),
                 image_shape=tuple(data.images.shape[1:]), size=side,
                 description=f"{description} ({counts})")
